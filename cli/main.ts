/**
 * The `svp` command line: reads argv (command-line.ts) against the commands defined with
 * cac, runs one of them, maps errors to exit codes. Each subcommand lives in its own file
 * and exports `register(cli)`.
 */

import { cac, type CAC } from "cac";
import { readCommandLine } from "./command-line.ts";
import { pinYoungGeneration, UsageError } from "../src/index.ts";
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

/**
 * The command definitions: every subcommand registered on one cac instance. `--help`, the
 * man page (`svp __man`), the completion scripts (`svp completion`) and the argv reader
 * (command-line.ts) all read these. Each command's action takes the `CommandLine`.
 */
export function buildCli(): CAC {
  const cli = cac("svp");
  // Subcommands register here, one import each.
  registerSocks(cli);
  registerDaemon(cli);
  registerId(cli);
  registerStatus(cli);
  registerConnect(cli);
  registerListen(cli);
  registerDiscover(cli);
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
  const cli = buildCli();
  const spec = commandSpec(cli);
  // Hidden helpers of the completion scripts and `make install`; not in --help.
  if (argv[0] === COMPLETE_COMMAND) return runComplete(spec, argv.slice(1));
  if (argv[0] === MAN_COMMAND) {
    process.stdout.write(manPage(spec));
    return 0;
  }
  let command = "";
  try {
    const line = readCommandLine(spec, argv);
    command = line.command?.name ?? "";
    const definition = cli.commands.find((c) => c.name === command);
    if (line.flags.has("help")) {
      (definition ?? cli.globalCommand).outputHelp();
      return 0;
    }
    if (definition === undefined) {
      if (line.flags.has("version")) {
        process.stdout.write(VERSION_LINE);
        return 0;
      }
      if (line.positionals.length > 0) throw new UsageError(`unknown command "${line.positionals[0]}" (see svp --help)`);
      cli.outputHelp();
      return 2;
    }
    const result: unknown = await definition.commandAction?.(line);
    return typeof result === "number" ? result : 0;
  } catch (err) {
    // A line that did not parse still names its command, for "svp <command>: …".
    const line = readCommandLine(spec, argv, "lenient");
    command = line.command?.name ?? "";
    const first = line.positionals[0];
    // "cannot start the daemon: …" reads better than "cannot run daemon: …".
    const action = command === "daemon" && first !== undefined ? `${first === "status" ? "query" : first} the daemon` : command ? `run ${command}` : "start";
    return reportError(command, action, err);
  }
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
