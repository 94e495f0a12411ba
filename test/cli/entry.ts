/**
 * How CLI tests run the real `svp`: the bundle dist/svp.cjs when it is at least as new as
 * every source file (`make test` builds it first), else the TypeScript entry through tsx.
 * Both are the same program; the bundle starts faster.
 */

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { after } from "node:test";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Node itself, also when the tests run under Deno (svp is shipped for Node). */
const NODE = /(^|[\\/])node(\.exe)?$/.test(process.execPath) ? process.execPath : "node";

/** The command line prefix that runs svp: [executable, ...args]. */
export function svpCommand(): string[] {
  const bundle = join(ROOT, "dist", "svp.cjs");
  if (existsSync(bundle)) {
    const built = statSync(bundle).mtimeMs;
    if (built >= Math.max(newestSource(join(ROOT, "src")), newestSource(join(ROOT, "cli")))) return [NODE, bundle];
  }
  return [NODE, "--import", "tsx", join(ROOT, "cli", "main.ts")];
}

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run svp to completion (bounded by `timeoutMs`, then killed). */
export function runSvp(args: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Run> {
  const [cmd, ...pre] = svpCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, [...pre, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 15_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running svp child with line-wise access to its stderr. */
export class SvpProcess {
  readonly child: ChildProcess;
  stderr = "";
  stdout = "";
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: (() => void)[] = [];

  constructor(args: string[], options: { shellPrefix?: string; env?: Record<string, string>; stdin?: "pipe" } = {}) {
    const cmd = svpCommand();
    const quoted = [...cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    // A shell prefix (e.g. "ulimit -n 64;") runs before exec, so the pid stays svp's.
    const stdio = [options.stdin ?? "ignore", "pipe", "pipe"] as const;
    this.child = options.shellPrefix
      ? spawn("/bin/sh", ["-c", `${options.shellPrefix} exec ${quoted}`], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", ...options.env }, stdio: [...stdio] })
      : spawn(cmd[0]!, [...cmd.slice(1), ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", ...options.env }, stdio: [...stdio] });
    this.child.stderr!.on("data", (d: Uint8Array) => {
      this.stderr += new TextDecoder().decode(d);
      this.#wake();
    });
    this.child.stdout!.on("data", (d: Uint8Array) => (this.stdout += new TextDecoder().decode(d)));
    this.exit = new Promise((resolve) => this.child.on("close", (code, signal) => {
      this.#wake();
      resolve({ code, signal });
    }));
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Wait until stderr has a line matching `re`; returns the match. */
  async waitFor(re: RegExp, ms = 10_000): Promise<RegExpMatchArray> {
    const end = Date.now() + ms;
    for (;;) {
      const m = this.stderr.match(re);
      if (m) return m;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`svp exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${re}; stderr:\n${this.stderr}`);
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; stderr so far:\n${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The first "listening on host:port" address. */
  async address(): Promise<{ host: string; port: number }> {
    const m = await this.waitFor(/listening on (\d+\.\d+\.\d+\.\d+):(\d+)/);
    return { host: m[1]!, port: Number(m[2]) };
  }

  /** Wait for exit, killing it after `ms`. */
  async stopped(ms = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const t = setTimeout(() => this.kill("SIGKILL"), ms);
    try {
      return await this.exit;
    } finally {
      clearTimeout(t);
    }
  }

  /**
   * Send `sig` (through process.kill: Deno's child.kill() reports the signal as the exit
   * cause even when the child handled it and exited 0). A no-op once it has exited.
   */
  kill(sig: NodeJS.Signals = "SIGTERM"): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, sig);
    } catch {
      // already gone
    }
  }
}

/**
 * A private root for daemon tests: `env` gives them a same-host discovery directory of
 * their own (these daemons find only each other), `home()` a new instance directory (its path; `name` to choose it); after
 * the file's tests every daemon is stopped and the root removed. Call at a file's top level.
 */
export function daemonSandbox(prefix: string): { root: string; env: Record<string, string>; home: (name?: string) => string } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const env = { SVP_DISCOVERY_DIR: join(root, "discovery") };
  const homes: string[] = [];
  after(async () => {
    // Stop anything a failed test left running.
    await Promise.all(homes.map((h) => runSvp(["daemon", "stop", "--home", h], { env })));
    rmSync(root, { recursive: true, force: true });
  });
  const home = (name = `h${homes.length + 1}`) => {
    const h = join(root, name);
    homes.push(h);
    return h;
  };
  return { root, env, home };
}
