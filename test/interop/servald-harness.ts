/**
 * Real servald instances for the interop tests: the recipe of serval-dna's own test suite
 * (tests/testdefs.sh, `add_servald_interface --file`), reimplemented here. Each instance gets
 * its own SERVALINSTANCE_PATH under one short temporary directory; all of them are linked
 * only through servald's file-backed test interface (a shared append-only file), so no
 * daemon touches a real network interface. (servald's HTTP server still listens on
 * 0.0.0.0:4110-4210; it cannot be switched off, and nothing connects to it.)
 *
 * The binary comes from SVP_SERVALD; without it the tests skip with `SKIP_REASON`.
 */

import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { concatBytes } from "../../src/bytes/concat.ts";
import { unixDatagramSupport } from "../../src/platform/unix-dgram.ts";

export const SERVALD = process.env.SVP_SERVALD;

const addon = unixDatagramSupport();
/** Why the interop tests cannot run here, or false. */
export const SKIP_REASON: string | false = !SERVALD
  ? "set SVP_SERVALD=/path/to/servald to run the interop tests; see test/interop/README.md"
  : !existsSync(SERVALD)
    ? `SVP_SERVALD=${SERVALD} does not exist; see test/interop/README.md`
    : !addon.available
      ? `the servald backend is unavailable: ${addon.reason}`
      : false;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ServaldNode {
  /** "A", "B", … */
  name: string;
  /** SERVALINSTANCE_PATH of this daemon. */
  instance: string;
  /** Primary SID, 64 upper-case hex digits. */
  sid: string;
  /** Environment for servald CLI commands against this instance. */
  env: NodeJS.ProcessEnv;
}

/**
 * Several servald daemons linked over one shared file interface. `start()` returns once
 * every node has every other in its route table; `stop()` stops children, then daemons,
 * and deletes the shared interface file only after every daemon is gone.
 */
export class ServaldMesh {
  readonly nodes: ServaldNode[] = [];
  readonly #children = new Set<ChildProcess>();
  #stopped = false;
  #inputs = 0;

  private constructor(readonly base: string) {}

  get shared(): string {
    return join(this.base, "shared");
  }

  /** Start `count` linked daemons (bounded: 30 s for linking). */
  static async start(count = 2, options: { debugMsp?: boolean } = {}): Promise<ServaldMesh> {
    // sun_path holds 107 bytes: keep the base short (servald's client names are long).
    const mesh = new ServaldMesh(mkdtempSync("/tmp/svp-sd-"));
    try {
      mkdirSync(mesh.shared, { recursive: true });
      writeFileSync(join(mesh.shared, "dummy1"), "", { flag: "a" });
      for (let i = 0; i < count; i++) await mesh.#startNode(String.fromCharCode(65 + i), i + 1, options);
      await mesh.#waitLinked();
      return mesh;
    } catch (err) {
      await mesh.stop();
      throw err;
    }
  }

  async #startNode(name: string, n: number, options: { debugMsp?: boolean }): Promise<void> {
    const dir = join(this.base, name);
    const instance = join(dir, "servald");
    mkdirSync(instance, { recursive: true });
    const env: NodeJS.ProcessEnv = { ...process.env, SERVALINSTANCE_PATH: instance };
    const node: ServaldNode = { name, instance, sid: "", env };
    await this.#check(node, ["keyring", "add"]);
    const config: string[] = [
      "set", "server.interface_path", this.shared,
      "set", "interfaces.1.socket_type", "file",
      "set", "interfaces.1.file", "dummy1",
      "set", "interfaces.1.type", "wifi",
      "set", "interfaces.1.dummy_address", `127.0.1.${n}`,
      "set", "interfaces.1.dummy_netmask", "255.255.255.224",
      "set", "interfaces.1.idle_tick_ms", "500",
      "set", "rhizome.enable", "off",
    ];
    // debug.msp makes `servald msp listen` print "Forwarding from port …" once it has bound.
    if (options.debugMsp) config.push("set", "debug.msp", "on", "set", "log.console.level", "debug");
    await this.#check(node, ["config", ...config]);
    const started = await run(SERVALD!, ["start"], { env: { ...env, SERVALD_SERVER_CHDIR: dir, SERVALD_LOG_FILE: join(dir, "servald.log") } }, 20_000);
    if (started.code !== 0) throw new Error(`servald start failed for ${name}: ${started.stdout}${started.stderr}`);
    node.sid = readFileSync(join(instance, "proc", "primary_sid"), "utf8").trim().toUpperCase();
    if (!/^[0-9A-F]{64}$/.test(node.sid)) throw new Error(`no primary SID for ${name}: ${JSON.stringify(node.sid)}`);
    this.nodes.push(node);
  }

  async #waitLinked(): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      let linked = true;
      for (const node of this.nodes) {
        const table = (await this.servald(node, ["route", "print"])).stdout;
        if (!this.nodes.every((o) => o === node || table.includes(`${o.sid}:`))) linked = false;
      }
      if (linked) return;
      if (Date.now() > deadline) throw new Error(`servald instances not linked within 30 s; logs in ${this.base}/*/servald.log`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Run a servald CLI command on `node` (bounded). */
  servald(node: ServaldNode, args: string[], options: { input?: string | Uint8Array; timeoutMs?: number } = {}): Promise<RunResult> {
    return run(SERVALD!, args, { env: node.env, ...(options.input !== undefined ? { input: options.input } : {}) }, options.timeoutMs ?? 15_000);
  }

  async #check(node: ServaldNode, args: string[]): Promise<string> {
    const r = await this.servald(node, args);
    if (r.code !== 0) throw new Error(`servald ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  /** Start a long-running servald command (e.g. `msp listen`); killed by `stop()` if still running. */
  spawn(node: ServaldNode, args: string[], stdin: "ignore" | "pipe" | number = "ignore"): ChildProcess {
    const child = spawn(SERVALD!, args, { env: node.env, stdio: [stdin, "pipe", "pipe"] });
    this.#children.add(child);
    child.once("exit", () => this.#children.delete(child));
    return child;
  }

  /**
   * `servald msp connect <sid> <port>` with `input` on its stdin from a file (servald's tool
   * truncates piped input over 1 KiB): its exit code, all of stdout and the last 4,000
   * characters of stderr (read as they come: with debug.msp on, an unread pipe stalls it).
   */
  async mspConnect(node: ServaldNode, sid: string, port: number, input: Uint8Array, timeoutMs: number): Promise<{ code: number | null; stdout: Uint8Array; stderr: string }> {
    const file = join(this.base, `msp-connect-input-${++this.#inputs}.bin`);
    writeFileSync(file, input);
    const fd = openSync(file, "r");
    const child = this.spawn(node, ["msp", "connect", sid, String(port)], fd);
    closeSync(fd);
    const out: Uint8Array[] = [];
    let stderr = "";
    child.stdout!.on("data", (c: Buffer) => out.push(new Uint8Array(c)));
    child.stderr!.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`servald msp connect ${sid.slice(0, 8)}… ${port} still running after ${timeoutMs} ms: ${stderr.slice(-500)}`)), timeoutMs);
      child.once("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    return { code, stdout: concatBytes(out), stderr };
  }

  /** Resolves once `child`'s stderr contains `pattern` (bounded). */
  waitForStderr(child: ChildProcess, pattern: RegExp, ms = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => done(new Error(`no ${pattern} on servald's stderr within ${ms} ms: ${text.slice(-500)}`)), ms);
      const onData = (b: Buffer) => {
        text += b.toString();
        if (pattern.test(text)) done();
      };
      const onExit = (code: number | null) => done(new Error(`servald exited (${code}) before ${pattern}: ${text.slice(-500)}`));
      const done = (err?: Error) => {
        clearTimeout(timer);
        child.stderr!.off("data", onData);
        child.off("exit", onExit);
        if (err) reject(err);
        else resolve();
      };
      child.stderr!.on("data", onData);
      child.once("exit", onExit);
    });
  }

  /** Stop one daemon and wait until its process is gone. */
  async stopNode(node: ServaldNode): Promise<void> {
    const pidFile = join(node.instance, "servald.pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : 0;
    await this.servald(node, ["stop"]).catch(() => undefined);
    if (pid > 0) await waitGone(pid);
  }

  /** Children first, then every daemon; the shared file only once all daemons are gone. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const child of this.#children) child.kill("SIGTERM");
    await Promise.all(
      [...this.#children].map(
        (c) => new Promise<void>((r) => {
          const t = setTimeout(() => (c.kill("SIGKILL"), r()), 3000);
          c.once("exit", () => (clearTimeout(t), r()));
        }),
      ),
    );
    for (const node of this.nodes) await this.stopNode(node);
    rmSync(join(this.shared, "dummy1"), { force: true });
    // SVP_INTEROP_KEEP=1 keeps the instance directories (daemon logs) for debugging.
    if (process.env.SVP_INTEROP_KEEP) process.stderr.write(`servald instances kept in ${this.base}\n`);
    else rmSync(this.base, { recursive: true, force: true });
  }
}

/** Wait (bounded) until process `pid` is gone; SIGKILL it (it is a daemon we started) after 10 s. */
async function waitGone(pid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z "); // a zombie is gone
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 10_000;
  while (alive()) {
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Run a command with a time bound; never rejects for a non-zero exit. */
export function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string | Uint8Array }, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: options.env, timeout: timeoutMs, maxBuffer: 64 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== "number" && !(err as { killed?: boolean }).killed) return reject(err);
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
    else child.stdin!.end();
  });
}

// Deno's node:test shows a skipped suite as "ignored" without the reason: say it once.
if (SKIP_REASON && "Deno" in globalThis) process.stderr.write(`interop tests skipped: ${SKIP_REASON}\n`);
