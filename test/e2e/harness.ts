/**
 * End-to-end harness: embedded mesh nodes as real `svp daemon` processes on one machine
 * (temp instance directories, a private same-host discovery directory, loopback only), and
 * svp commands run against them as child processes. Every wait is bounded; `close()`
 * stops every process it started.
 */

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SvpProcess, runSvp, svpCommand } from "../cli/entry.ts";
import { concatBytes } from "../../src/bytes/concat.ts";

export interface Node {
  name: string;
  home: string;
  sid: string;
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Uint8Array;
  stderr: string;
}

export class MeshLab {
  readonly root: string;
  readonly env: Record<string, string>;
  readonly nodes = new Map<string, Node>();
  readonly #procs: SvpProcess[] = [];

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), "svp-e2e-"));
    // A private discovery directory: these nodes find each other and nobody else's.
    this.env = { SVP_DISCOVERY_DIR: join(this.root, "discovery"), NO_COLOR: "1", SVP_MESH: "embedded" };
  }

  /**
   * Start a daemon for `name` (fast hellos so peers find each other quickly). `daemonArgs`
   * are added to `svp daemon start`, e.g. ["--no-discovery", "--peer", "127.0.0.1:4111"].
   */
  async startNode(name: string, daemonArgs: string[] = []): Promise<Node> {
    const home = join(this.root, name);
    const r = await runSvp(["daemon", "start", "--home", home, "--port", "0", "--hello-interval", "250ms", ...daemonArgs], { env: this.env, timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`svp daemon start for ${name} failed (${r.code}): ${r.stderr}`);
    const id = await runSvp(["id", "--home", home], { env: this.env });
    const sid = id.stdout.trim();
    if (!/^[0-9A-F]{64}$/.test(sid)) throw new Error(`svp id for ${name} printed "${id.stdout}" (${id.stderr})`);
    const node = { name, home, sid };
    this.nodes.set(name, node);
    return node;
  }

  async stopNode(node: Node): Promise<void> {
    await runSvp(["daemon", "stop", "--home", node.home], { env: this.env, timeoutMs: 20_000 });
    this.nodes.delete(node.name);
  }

  /** The live peers `node` knows (from `svp status --json`). */
  async livePeers(node: Node): Promise<string[]> {
    const r = await runSvp(["status", "--home", node.home, "--json"], { env: this.env });
    if (r.code !== 0) return [];
    const doc = JSON.parse(r.stdout) as { peers: { sid: string; live: boolean }[] };
    return doc.peers.filter((p) => p.live).map((p) => p.sid);
  }

  /** The port of `node`'s overlay UDP socket on 127.0.0.1 (from `svp status --json`). */
  async overlayPort(node: Node): Promise<number> {
    const r = await runSvp(["status", "--home", node.home, "--json"], { env: this.env });
    if (r.code !== 0) throw new Error(`svp status for ${node.name} failed (${r.code}): ${r.stderr}`);
    const udp = (JSON.parse(r.stdout) as { daemon: { udp: string[] } }).daemon.udp;
    const v4 = udp.find((a) => a.startsWith("127.0.0.1:"));
    if (!v4) throw new Error(`${node.name} has no overlay socket on 127.0.0.1 (udp: ${udp.join(", ")})`);
    return Number(v4.slice("127.0.0.1:".length));
  }

  /** Wait until `node` sees `peer` as live (or, with `live` false, no longer live). */
  async waitPeer(node: Node, peer: string, live = true, ms = 15_000): Promise<void> {
    const end = Date.now() + ms;
    for (;;) {
      const peers = await this.livePeers(node);
      if (peers.includes(peer) === live) return;
      if (Date.now() > end) throw new Error(`${node.name} still ${live ? "does not see" : "sees"} ${peer} after ${ms} ms (live peers: ${peers.join(", ") || "none"})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A long-running svp command (listen, socks, connect --forward); stopped by `close()`. */
  spawn(args: string[], env: Record<string, string> = {}, stdin?: "pipe"): SvpProcess {
    const p = new SvpProcess(args, { env: { ...this.env, ...env }, ...(stdin ? { stdin } : {}) });
    this.#procs.push(p);
    return p;
  }

  /** Run svp to completion with `input` on its stdin (closed after it); stdout as bytes. */
  run(args: string[], options: { input?: Uint8Array | string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<Ran> {
    const [cmd, ...pre] = svpCommand();
    return new Promise((resolve, reject) => {
      const child = spawn(cmd!, [...pre, ...args], { env: { ...process.env, ...this.env, ...options.env }, stdio: ["pipe", "pipe", "pipe"] });
      const out: Uint8Array[] = [];
      let stderr = "";
      child.stdout.on("data", (d: Uint8Array) => out.push(d));
      child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
      child.stdin.on("error", () => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
      child.on("error", reject);
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout: concat(out), stderr });
      });
      if (options.input !== undefined) child.stdin.end(options.input);
      else child.stdin.end();
    });
  }

  /** Stop every process and daemon, remove the directories. */
  async close(): Promise<void> {
    for (const p of this.#procs) p.kill("SIGTERM");
    await Promise.all(this.#procs.map((p) => p.stopped(5000)));
    await Promise.all([...this.nodes.values()].map((n) => this.stopNode(n)));
    rmSync(this.root, { recursive: true, force: true });
  }
}

export const concat = concatBytes;
