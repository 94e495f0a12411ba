/**
 * The `svp` command line: parses with cac, runs one subcommand, maps errors to exit codes.
 * Each subcommand lives in its own file and exports `register(cli)`.
 */

import { cac, type CAC } from "cac";
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
    const parsed = cli.parse(["node", "svp", ...joinNegativeValues(cli, argv)], { run: false });
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

/**
 * `--max-conns -1` and `-w -5` as `--max-conns=-1` and `--wait=-5`, for cac only: mri reads
 * a value that starts with "-" as an option ("unknown option -1"), where the command's own
 * check of the value (it reads the original argv) says what is wrong with it.
 */
function joinNegativeValues(cli: CAC, argv: readonly string[]): string[] {
  const longName = new Map<string, string>();
  for (const command of [cli.globalCommand, ...cli.commands]) {
    for (const option of command.options) {
      if (option.isBoolean) continue;
      const flags = option.rawName.split(",").map((part) => part.trim().split(/\s/)[0] ?? "");
      const long = flags.find((f) => f.startsWith("--"));
      if (long) for (const f of flags) if (f.startsWith("-")) longName.set(f, long);
    }
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.push(...argv.slice(i));
      break;
    }
    const long = longName.get(a);
    const next = argv[i + 1];
    if (long !== undefined && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${long}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
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
