/**
 * `svp discover [pattern]`: ask every reachable node (and this one) which services it
 * offers (MDP port 11, as servald's `msp listen --service` answers) and list the answers.
 * stdout: one line per service (SID, service, port), or a JSON array with --json.
 */

import type { CAC } from "cac";
import { DEFAULTS, durationFlagText, meshDiscover, parseDuration, sidToHex, UsageError } from "../src/index.ts";
import type { CommandLine } from "./command-line.ts";
import { addMeshOptions, meshOptions } from "./mesh-flags.ts";
import { formatDuration, reportError } from "./render.ts";

export function register(cli: CAC): void {
  const cmd = cli
    .command("discover [pattern]", "List the services mesh nodes offer (pattern: a service name, * and ? allowed)")
    .usage("discover [options] [pattern]")
    .option("--timeout <duration>", `Collect answers for this long (default: ${durationFlagText(DEFAULTS.discoverTimeoutMs)})`)
    .option("--json", "Print a JSON array of {sid, service, port, self}");
  addMeshOptions(cmd)
    .example("  $ svp discover")
    .example("  $ svp discover 'http*' --json")
    .action((line: CommandLine) => runDiscover(line));
}

async function runDiscover({ positionals: [pattern], flags }: CommandLine): Promise<number> {
  const timeoutText = flags.one("timeout");
  const timeoutMs = timeoutText === undefined ? DEFAULTS.discoverTimeoutMs : parseDuration(timeoutText, "--timeout");
  if (timeoutMs === 0) throw new UsageError(`invalid --timeout "0": must be more than 0`);
  if (pattern !== undefined && (pattern.length > 63 || !/^[A-Za-z0-9_.+*?-]+$/.test(pattern))) {
    throw new UsageError(`invalid pattern "${pattern}": a service name with * and ? wildcards`);
  }
  const json = flags.has("json");
  const r = await meshDiscover({ mesh: meshOptions(flags, "svp discover"), pattern, timeoutMs });
  if (r.stage === "open") return reportError("discover", "open the mesh", r.error);
  if (r.stage === "ask") return reportError("discover", "ask for services", r.error);
  const { answers, peers } = r;
  if (json) {
    process.stdout.write(JSON.stringify(answers.map((a) => ({ sid: sidToHex(a.sid), service: a.service, port: a.port, self: a.self }))) + "\n");
  } else {
    const w = Math.max(7, ...answers.map((a) => a.service.length));
    for (const a of answers) process.stdout.write(`${sidToHex(a.sid)}  ${a.service.padEnd(w)}  ${a.port}${a.self ? "  (this node)" : ""}\n`);
  }
  if (answers.length === 0) {
    process.stderr.write(`svp discover: no ${pattern === undefined ? "services" : `service matching "${pattern}"`} found within ${formatDuration(timeoutMs)} (${peers} reachable peer${peers === 1 ? "" : "s"} asked)\n`);
  }
  return 0;
}
