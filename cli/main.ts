/**
 * The `svp` command line: parses with cac, runs one subcommand, maps errors to exit codes.
 * Each subcommand lives in its own file and exports `register(cli)`.
 */

import { cac } from "cac";
import { UsageError } from "../src/index.ts";
import { reportError, tidyHelp } from "./render.ts";
import { register as registerSocks } from "./socks.ts";
import { register as registerDaemon } from "./daemon.ts";
import { register as registerId } from "./id.ts";
import { register as registerStatus } from "./status.ts";
import { register as registerConnect } from "./connect.ts";
import { register as registerListen } from "./listen.ts";
import { register as registerDiscover } from "./discover.ts";
import { VERSION, VERSION_LINE } from "./version.ts";

export async function main(argv: string[]): Promise<number> {
  const cli = cac("svp");
  // Subcommands register here, one import each.
  registerSocks(cli, { argv });
  registerDaemon(cli);
  registerId(cli);
  registerStatus(cli);
  registerConnect(cli, { argv });
  registerListen(cli, { argv });
  registerDiscover(cli, { argv });
  cli.help(tidyHelp(VERSION, "Serval mesh streams for ordinary TCP software"));
  cli.version(VERSION);
  cli.globalCommand.outputVersion = () => process.stdout.write(VERSION_LINE);
  let command = "";
  try {
    const parsed = cli.parse(["node", "svp", ...argv], { run: false });
    command = cli.matchedCommandName ?? "";
    if (!cli.matchedCommand) {
      if (parsed.options.help || parsed.options.version) return 0;
      if (cli.args.length > 0) throw new UsageError(`unknown command "${cli.args[0]}" (see svp --help)`);
      cli.outputHelp();
      return 2;
    }
    const result: unknown = await cli.runMatchedCommand();
    return typeof result === "number" ? result : 0;
  } catch (err) {
    if (err instanceof Error && err.name === "CACError") {
      const msg = err.message.replace(/`/g, "").replace(/^option (--[\w-]+)(?: <[^>]*>)? value is missing$/, "missing value for $1");
      return reportError(command, "parse arguments", new UsageError(msg.charAt(0).toLowerCase() + msg.slice(1)));
    }
    // "cannot start the daemon: …" reads better than "cannot run daemon: …".
    const action = command === "daemon" && typeof cli.args[0] === "string" ? `${cli.args[0] === "status" ? "query" : cli.args[0]} the daemon` : command ? `run ${command}` : "start";
    return reportError(command, action, err);
  }
}

// Run when executed directly (node, tsx, deno, the bundled binary); not when imported by tests.
const entry = process.argv[1] ?? "";
if (/(^|[\\/])(main\.ts|svp(\.cjs)?)$/.test(entry) || (globalThis as { __SVP_BUNDLE__?: boolean }).__SVP_BUNDLE__) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.exitCode = reportError("", "start", err);
    },
  );
}
