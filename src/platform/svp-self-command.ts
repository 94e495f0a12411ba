/**
 * How to run this same svp again (for the background daemon it starts): the SEA binary
 * itself, `node [flags] dist/svp.cjs`, `node --import tsx cli/main.ts` (from source) or
 * `deno run -A cli/main.ts`.
 */

import { basename, resolve as resolvePath } from "node:path";

/** How to run svp itself: executable and the arguments before the subcommand. */
export interface SvpCommand {
  command: string;
  args: string[];
}

/** The command that runs this same svp (inspector, test and profiler flags left out). */
export function svpSelfCommand(): SvpCommand {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const script = process.argv[1];
  if (deno) return { command: deno.execPath(), args: ["run", "-A", ...(script ? [script] : [])] };
  const exe = process.execPath;
  if (!script || isSingleExecutable(script, exe)) return { command: exe, args: [] };
  const flags = process.execArgv.filter((a) => !/^--(inspect|test|watch|prof|cpu-prof|heap-prof|experimental-test)/.test(a));
  return { command: exe, args: [...flags, script] };
}

/** True inside the Node single-executable binary (dist/svp), where argv[1] is the binary as typed. */
function isSingleExecutable(script: string, exe: string): boolean {
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  const sea = getBuiltin?.("node:sea") as { isSea?: () => boolean } | undefined;
  if (sea?.isSea) return sea.isSea();
  return resolvePath(script) === exe || (basename(script) === basename(exe) && !/\.(c|m)?(j|t)s$/.test(script));
}
