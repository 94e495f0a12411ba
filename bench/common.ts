/** Small helpers shared by the benchmark scripts. */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
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

/**
 * The svp processes of one benchmark run: commands run to completion (`sync`), long-running
 * ones (`long`, with --quiet, ready when stderr matches), and one `cleanup` that stops them,
 * then the daemons of the given homes, and removes the work directory.
 */
export class SvpRunner {
  readonly children: ChildProcess[] = [];

  /** `command`: how to run svp (builtSvpCommand); `work`: removed by cleanup; ready waits up to `readyMs`. */
  constructor(
    readonly command: readonly string[],
    readonly work: string,
    readonly options: { env: NodeJS.ProcessEnv; cwd?: string; readyMs: number },
  ) {}

  /** Run `svp args` to its end; its stdout and stderr, or an error naming its exit. */
  sync(args: string[]): string {
    const [cmd, ...pre] = this.command;
    const r = spawnSync(cmd!, [...pre, ...args], { env: this.options.env, cwd: this.options.cwd, encoding: "utf8", timeout: 30_000 });
    if (r.status !== 0) throw new Error(`svp ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}`);
    return r.stdout + r.stderr;
  }

  /** Start `svp args --quiet`; resolves with the process once its stderr matches `ready`. */
  long(args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
    const [cmd, ...pre] = this.command;
    const child = spawn(cmd!, [...pre, ...args, "--quiet"], { env: this.options.env, cwd: this.options.cwd, stdio: ["ignore", "ignore", "pipe"] });
    this.children.push(child);
    const seconds = this.options.readyMs / 1000;
    let err = "";
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`svp ${args.join(" ")}: not ready after ${seconds} s: ${err}`)), this.options.readyMs);
      child.stderr!.on("data", (d: Uint8Array) => {
        err += new TextDecoder().decode(d);
        if (err.length > 65536) err = err.slice(-32768);
        const m = err.match(ready);
        if (m) {
          clearTimeout(timer);
          resolve({ child, match: m });
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`svp ${args.join(" ")} exited (${code}): ${err}`));
      });
    });
  }

  /** SIGTERM every long-running command and wait for it, stop the daemons of `homes`, remove the work directory. */
  async cleanup(homes: readonly string[]): Promise<void> {
    for (const c of this.children) c.kill("SIGTERM");
    await Promise.all(this.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once("exit", r)))));
    for (const home of homes) {
      try {
        this.sync(["daemon", "stop", "--home", home]);
      } catch {
        // not running
      }
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}
