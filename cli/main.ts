/**
 * The `svp` command line: parses with cac, runs one subcommand, maps errors to exit codes.
 * Each subcommand lives in its own file and exports `register(cli)`.
 */

import { cac, type CAC } from "cac";
import { UsageError } from "../src/errors.ts";
import { reportError, tidyHelp } from "./render.ts";
import { register as registerSocks } from "./socks.ts";
import { register as registerDaemon } from "./daemon.ts";
import { register as registerId } from "./id.ts";
import { register as registerStatus } from "./status.ts";
import { register as registerConnect } from "./connect.ts";
import { register as registerListen } from "./listen.ts";
import { register as registerDiscover } from "./discover.ts";
import { register as registerCompletion } from "./completion.ts";
import { COMPLETE_COMMAND, runComplete } from "./complete.ts";
import { commandSpec } from "./command-spec.ts";
import { MAN_COMMAND, manPage } from "./man-page.ts";
import { TAGLINE, VERSION, VERSION_LINE } from "./version.ts";
import { pinYoungGeneration } from "../src/platform/young-generation.ts";

/**
 * The command definitions: every subcommand registered on one cac instance. `--help`, the
 * man page (`svp __man`) and the completion scripts (`svp completion`) all read these.
 */
export function buildCli(argv: readonly string[]): CAC {
  const cli = cac("svp");
  // Subcommands register here, one import each.
  registerSocks(cli, { argv });
  registerDaemon(cli);
  registerId(cli);
  registerStatus(cli);
  registerConnect(cli, { argv });
  registerListen(cli, { argv });
  registerDiscover(cli, { argv });
  registerCompletion(cli);
  cli.help(tidyHelp(VERSION, TAGLINE));
  // Declared, not cac's `version()`: that prints "svp/<version> <platform> <runtime>";
  // `svp --version` prints VERSION_LINE (main() below), and only without a command.
  cli.option("-v, --version", "Display version number");
  return cli;
}

export async function main(argv: string[]): Promise<number> {
  // svp's commands are this process (the library never does this: the flag is process-wide).
  pinYoungGeneration();
  // Hidden helpers of the completion scripts and `make install`; not in --help.
  if (argv[0] === COMPLETE_COMMAND) return runComplete(commandSpec(buildCli([])), argv.slice(1));
  if (argv[0] === MAN_COMMAND) {
    process.stdout.write(manPage(commandSpec(buildCli([]))));
    return 0;
  }
  const cli = buildCli(argv);
  let command = "";
  try {
    const parsed = cli.parse(["node", "svp", ...joinNegativeValues(cli, argv)], { run: false });
    command = cli.matchedCommandName ?? "";
    if (!cli.matchedCommand) {
      if (parsed.options.help) return 0;
      if (parsed.options.version) {
        process.stdout.write(VERSION_LINE);
        return 0;
      }
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

// `node --import tsx cli/main.ts …` and `deno run -A cli/main.ts …` run it directly; the
// other entry, cli/bin.ts (and so the bundle and the binary), calls main() itself. Only
// this module's own file name counts: a bundle or another entry that imports main.ts must
// not run it a second time.
if (/(^|[\\/])main\.ts$/.test(process.argv[1] ?? "")) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.exitCode = reportError("", "start", err);
    },
  );
}
