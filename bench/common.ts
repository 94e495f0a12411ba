/** Small helpers shared by the benchmark scripts. */

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** The repository root, with a trailing slash. */
export const root = fileURLToPath(new URL("..", import.meta.url));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Median of the finite values (mean of the middle two for an even count); NaN when none. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * How to run the built svp: `override` (a space-separated command line, from `--svp`), else
 * dist/svp, else dist/svp.cjs on this Node; undefined when nothing is built.
 */
export function builtSvpCommand(override?: string): string[] | undefined {
  if (override) return override.split(" ").filter(Boolean);
  if (existsSync(`${root}dist/svp`)) return [`${root}dist/svp`];
  if (existsSync(`${root}dist/svp.cjs`)) return [process.execPath, `${root}dist/svp.cjs`];
  return undefined;
}

/**
 * How to run svp from this tree's sources: `override` (from `--svp`), else a CLI bundle built
 * now into `dir` (so the benchmark measures the code as it is, not an older dist/).
 */
export async function freshSvpCommand(override: string | undefined, dir: string): Promise<string[]> {
  if (override) return override.split(" ").filter(Boolean);
  const out = join(dir, "svp.cjs");
  const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { version: string };
  await build({
    entryPoints: [`${root}cli/bin.ts`],
    outfile: out,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    define: { __SVP_VERSION__: JSON.stringify(pkg.version) },
    banner: { js: "globalThis.__SVP_BUNDLE__ = true;" },
    logLevel: "warning",
  });
  return [process.execPath, out];
}

/** Write 64 KiB chunks to `s` as fast as it takes them (writing again on "drain"); the returned function stops it. */
export function keepWriting(s: { writable: boolean; write(chunk: Uint8Array): boolean; on(event: "drain", fn: () => void): unknown }): () => void {
  const chunk = new Uint8Array(64 * 1024);
  let stop = false;
  const pump = () => {
    while (!stop && s.writable && s.write(chunk));
  };
  s.on("drain", pump);
  pump();
  return () => void (stop = true);
}
