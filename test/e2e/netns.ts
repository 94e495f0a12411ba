/**
 * Real links for real daemons: private network namespaces (`ip netns`, as root) joined by
 * veth pairs or by a Linux bridge, each running `svp daemon run` and other svp commands.
 *
 * Names: every namespace is `svpt<pid>-<name>`, <pid> being this test process, so runs
 * never collide and leftovers of a run that died (its pid gone) are removed first. Veth
 * ends are created directly inside their namespaces (nothing is ever made in the host's
 * namespace), so deleting the namespaces removes every link too. `close()` stops every
 * process and deletes every namespace, and is meant for `after()`, so it runs on failure.
 * Addresses are private (10.23x.y.z) and exist only inside those namespaces.
 * Used by test/e2e/netns.test.ts and bench/routing.ts (so no node:test in here).
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const FAMILY = "svpt";

function ip(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}`.trim() || (r.error?.message ?? "") };
}

function must(args: string[]): void {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(" ")}: ${r.out}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove namespaces left by earlier runs whose process is gone. */
export function removeStaleNamespaces(): string[] {
  const list = ip(["netns", "list"]);
  if (!list.ok) return [];
  const removed: string[] = [];
  for (const line of list.out.split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = new RegExp(`^${FAMILY}(\\d+)-`).exec(name);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
      if (ip(["netns", "del", name]).ok) removed.push(name);
    }
  }
  return removed;
}

/** Why namespaces cannot be used here, or undefined when they can (made and removed once to find out). */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== "linux") return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0) return "network namespaces need root (ip netns add)";
  const probe = `${FAMILY}${process.pid}-probe`;
  const r = ip(["netns", "add", probe]);
  if (!r.ok) return `"ip netns add" failed: ${r.out || "ip not found"}`;
  ip(["netns", "del", probe]);
  return undefined;
}

export interface NsProcess {
  child: ChildProcess;
  stderr: string;
  stdout: string;
  exited: Promise<number | null>;
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

export interface DaemonNode {
  name: string;
  ns: string;
  home: string;
  proc: NsProcess;
  sid: string;
}

export class NetnsLab {
  readonly root: string;
  readonly env: Record<string, string>;
  readonly #namespaces: string[] = [];
  readonly #procs: NsProcess[] = [];
  #linkSeq = 0;
  readonly #svp: string[];

  /** `svp`: the command line that runs svp (executable and leading arguments). */
  constructor(svp: string[]) {
    this.#svp = svp;
    removeStaleNamespaces();
    this.root = mkdtempSync(join(tmpdir(), "svp-netns-"));
    // Same-host discovery would only probe each namespace's own loopback; keep it private anyway.
    this.env = { SVP_DISCOVERY_DIR: join(this.root, "discovery"), NO_COLOR: "1", SVP_MESH: "embedded" };
  }

  /** Create namespace `name` (loopback up); returns its full name. */
  ns(name: string): string {
    const full = `${FAMILY}${process.pid}-${name}`;
    must(["netns", "add", full]);
    this.#namespaces.push(full);
    must(["-n", full, "link", "set", "lo", "up"]);
    return full;
  }

  /** A veth pair between two namespaces with an address (CIDR) on each end. */
  link(nsA: string, addrA: string, nsB: string, addrB: string): void {
    const n = this.#linkSeq++;
    const a = `v${n}a`;
    const b = `v${n}b`;
    must(["link", "add", a, "netns", nsA, "type", "veth", "peer", "name", b, "netns", nsB]);
    must(["-n", nsA, "addr", "add", addrA, "dev", a]);
    must(["-n", nsB, "addr", "add", addrB, "dev", b]);
    must(["-n", nsA, "link", "set", a, "up"]);
    must(["-n", nsB, "link", "set", b, "up"]);
  }

  /** A bridge `br` inside namespace `switchNs`. */
  bridge(switchNs: string, br: string): void {
    must(["-n", switchNs, "link", "add", br, "type", "bridge"]);
    must(["-n", switchNs, "link", "set", br, "up"]);
  }

  /** Plug namespace `ns` into bridge `br` (in `switchNs`) with address `addr` (CIDR). */
  plug(switchNs: string, br: string, ns: string, addr: string): void {
    const n = this.#linkSeq++;
    const a = `v${n}n`;
    const b = `v${n}s`;
    must(["link", "add", a, "netns", ns, "type", "veth", "peer", "name", b, "netns", switchNs]);
    must(["-n", ns, "addr", "add", addr, "dev", a]);
    must(["-n", switchNs, "link", "set", b, "master", br]);
    must(["-n", ns, "link", "set", a, "up"]);
    must(["-n", switchNs, "link", "set", b, "up"]);
  }

  /** Start `argv` inside `ns`; stdout/stderr are collected. */
  spawn(ns: string, argv: string[], env: Record<string, string> = {}): NsProcess {
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { env: { ...process.env, ...this.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const p: NsProcess = {
      child,
      stderr: "",
      stdout: "",
      exited: new Promise((resolve) => child.on("close", (code) => resolve(code))),
      async waitFor(re, ms = 20_000) {
        const end = Date.now() + ms;
        for (;;) {
          const m = p.stderr.match(re);
          if (m) return m;
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${argv.join(" ")} exited (${child.exitCode ?? child.signalCode}) before printing ${re}:\n${p.stderr}`);
          if (Date.now() > end) throw new Error(`timed out waiting for ${re} from ${argv.join(" ")}:\n${p.stderr}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      },
    };
    child.stderr!.on("data", (d: Uint8Array) => (p.stderr += new TextDecoder().decode(d)));
    child.stdout!.on("data", (d: Uint8Array) => (p.stdout += new TextDecoder().decode(d)));
    this.#procs.push(p);
    return p;
  }

  /** Run `argv` in `ns` to completion (killed after `timeoutMs`). */
  async run(ns: string, argv: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: Uint8Array; stderr: string }> {
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { env: { ...process.env, ...this.env }, stdio: ["ignore", "pipe", "pipe"] });
    const out: Uint8Array[] = [];
    let stderr = "";
    child.stdout.on("data", (d: Uint8Array) => out.push(d));
    child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    clearTimeout(timer);
    const total = out.reduce((n, b) => n + b.length, 0);
    const stdout = new Uint8Array(total);
    let o = 0;
    for (const b of out) {
      stdout.set(b, o);
      o += b.length;
    }
    return { code, stdout, stderr };
  }

  /** `svp <args>` inside `ns` (long-running). */
  svp(ns: string, args: string[]): NsProcess {
    return this.spawn(ns, [...this.#svp, ...args]);
  }

  /**
   * `svp daemon run` for node `name` in `ns`, on port 4111 of every IPv4 address there (a
   * node with no --peer would bind loopback only), no same-host discovery; resolves once up.
   */
  async daemon(name: string, ns: string, args: string[]): Promise<DaemonNode> {
    const home = join(this.root, name);
    const proc = this.svp(ns, ["daemon", "run", "--home", home, "--port", "4111", "--no-discovery", "--bind", "0.0.0.0", ...args]);
    const m = await proc.waitFor(/node ([0-9A-F]{64}) up/);
    return { name, ns, home, proc, sid: m[1]! };
  }

  /** Stop every process (TERM, then KILL), delete every namespace (and so every link), remove the files. */
  async close(): Promise<void> {
    for (const p of this.#procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGTERM");
    await Promise.all(
      this.#procs.map((p) =>
        Promise.race([p.exited, new Promise((r) => setTimeout(r, 5000))]).then(() => {
          if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
        }),
      ),
    );
    for (const ns of this.#namespaces.reverse()) ip(["netns", "del", ns]);
    this.#namespaces.length = 0;
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Namespaces of this run still present (for the tests' own cleanup check). */
  static leftovers(): string[] {
    const list = ip(["netns", "list"]);
    return list.ok ? list.out.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => n.startsWith(`${FAMILY}${process.pid}-`)) : [];
  }
}
