/**
 * The servald part of `npm run bench` (only when SVP_SERVALD names a servald binary): TCP
 * over MSP through two real servald daemons on one machine, linked by servald's file
 * interface (loopback only), svp's tool next to servald's own on the same path:
 *
 *   servald: TCP → `servald msp connect --forward=<port> <SID> P` (A) ⇢ `servald msp listen --forward=<target> P` (B) → TCP
 *   svp:     TCP → `svp connect --forward <port> <SID> P`         (A) ⇢ the same servald listener on B              → TCP
 *   svp↔svp: TCP → `svp connect --forward <port> <SID> P+1`       (A) ⇢ `svp listen --forward=<target> P+1` (B)        → TCP
 *
 *   SVP_SERVALD=/path/to/servald node --import tsx bench/servald.ts [--rounds N] [--mib N] [--ttfb N] [--svp CMD]
 *
 * This process is the TCP client and the target (one server: the first byte asks for an
 * upload sink, a download source or a small answer). Measured, the two paths interleaved:
 * one stream's throughput up (client → target: from the first byte written until the target
 * has all of it) and down (from connect until the client has all of it), `--mib` MiB each
 * (default 1), median of `--rounds` (default 3); time to first byte (connect, 2-byte request,
 * first byte of the answer) on a new connection, median of `--ttfb` (default 10); CPU
 * (user + system, /proc/<pid>/stat) of the A-side tool per MiB moved. The servald daemons and
 * B's listener are shared by both paths.
 *
 * Prints a markdown section on stdout (progress on stderr); bench/run.ts copies it into
 * bench/RESULTS.md. Every wait is bounded; every process is stopped at the end.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { SERVALD, ServaldMesh } from "../test/interop/servald-harness.ts";
import type { ServaldNode } from "../test/interop/servald-harness.ts";
import { builtSvpCommand, median, root, sleep } from "./common.ts";

const { values: opts } = parseArgs({
  options: { rounds: { type: "string", default: "3" }, mib: { type: "string", default: "1" }, ttfb: { type: "string", default: "10" }, svp: { type: "string" }, seconds: { type: "string" } },
});
const ROUNDS = Math.max(1, Math.floor(Number(opts.rounds)));
const BYTES = Math.max(64 * 1024, Math.round(Number(opts.mib) * 1024 * 1024));
const TTFB_RUNS = Math.max(1, Math.floor(Number(opts.ttfb)));
const MDP_PORT = 4242;
const STEP_TIMEOUT_MS = 120_000;

const log = (m: string) => process.stderr.write(`bench/servald: ${m}\n`);
const SVP = builtSvpCommand(opts.svp) ?? [process.execPath, "--import", "tsx", `${root}cli/main.ts`];

/** Bound a promise. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}

// ---------- the target: U<8-byte size> = sink, D<8-byte size> = source, T = small answer ----------

let sinkDone: ((bytes: number) => void) | undefined;

function startTarget(): Promise<net.Server> {
  const chunk = new Uint8Array(64 * 1024).fill(0x5a);
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => undefined);
    let head = new Uint8Array(0);
    const onHead = (c: Buffer) => {
      head = Buffer.concat([head, c]);
      const kind = String.fromCharCode(head[0]!);
      if (kind === "T") {
        s.off("data", onHead);
        s.end("ok\n");
        return;
      }
      if (head.length < 9) return;
      s.off("data", onHead);
      const size = Number(Buffer.from(head.subarray(1, 9)).readBigUInt64BE());
      if (kind === "U") {
        let got = head.length - 9;
        const check = () => {
          if (got >= size && sinkDone) {
            const done = sinkDone;
            sinkDone = undefined;
            done(got);
          }
        };
        s.on("data", (d: Buffer) => {
          got += d.length;
          check();
        });
        s.on("end", () => s.end());
        check();
      } else if (kind === "D") {
        let left = size;
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once("drain", pump);
          }
          s.end();
        };
        pump();
        s.resume();
      } else s.destroy();
    };
    s.on("data", onHead);
  });
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r(server)));
}

function header(kind: "U" | "D", size: number): Uint8Array {
  const h = Buffer.alloc(9);
  h.write(kind, 0);
  h.writeBigUInt64BE(BigInt(size), 1);
  return h;
}

function connectTo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Upload `size` bytes through `port`; ms from the first byte written until the target has them all. */
async function upload(port: number, size: number): Promise<number> {
  const s = await connectTo(port);
  const arrived = new Promise<number>((r) => (sinkDone = r));
  const start = performance.now();
  const chunk = new Uint8Array(64 * 1024).fill(0xa5);
  s.write(header("U", size));
  let left = size;
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once("drain", pump);
      }
      resolve();
    };
    pump();
  });
  const got = await within(arrived, STEP_TIMEOUT_MS, `upload of ${size} bytes through port ${port}`);
  const ms = performance.now() - start;
  s.end();
  s.destroy();
  if (got !== size) throw new Error(`the target got ${got} bytes of ${size}`);
  return ms;
}

/** Download `size` bytes through `port`; ms from connect until all have arrived. */
async function download(port: number, size: number): Promise<number> {
  const start = performance.now();
  const s = await connectTo(port);
  s.write(header("D", size));
  let got = 0;
  await within(
    new Promise<void>((resolve, reject) => {
      s.on("data", (d: Buffer) => {
        got += d.length;
        if (got >= size) resolve();
      });
      s.once("end", () => (got >= size ? resolve() : reject(new Error(`stream ended after ${got} of ${size} bytes`))));
      s.once("error", reject);
    }),
    STEP_TIMEOUT_MS,
    `download of ${size} bytes through port ${port}`,
  );
  const ms = performance.now() - start;
  s.destroy();
  if (got !== size) throw new Error(`got ${got} bytes of ${size}`);
  return ms;
}

/** ms from starting to connect until the first byte of the answer to a 2-byte request. */
async function firstByte(port: number, timeoutMs = 15_000): Promise<number> {
  const start = performance.now();
  const s = await connectTo(port);
  s.write("T\n");
  await within(
    new Promise<void>((resolve, reject) => {
      s.once("data", () => resolve());
      s.once("end", () => reject(new Error("closed before answering")));
      s.once("error", reject);
    }),
    timeoutMs,
    `first byte through port ${port}`,
  ).finally(() => s.destroy());
  return performance.now() - start;
}

// ---------- processes ----------

const children: ChildProcess[] = [];

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, ready?: RegExp): Promise<{ child: ChildProcess; match?: RegExpMatchArray }> {
  const child = spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let err = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(" ")}: not ready within 20 s: ${err.slice(-400)}`)), 20_000);
    if (!ready) {
      clearTimeout(timer);
      resolve({ child });
    }
    child.stderr!.on("data", (c: Buffer) => {
      err = (err + c.toString()).slice(-4000);
      const m = ready ? err.match(ready) : null;
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(" ")} exited (${code}): ${err.slice(-400)}`));
    });
  });
}

/** Wait until something accepts TCP connections on `port`. */
async function tcpReady(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      (await connectTo(port)).destroy();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after 20 s`);
      await sleep(50);
    }
  }
}

interface Path {
  name: string;
  label: string;
  port: number;
  pid: number;
  up: number[];
  down: number[];
  ttfb: number[];
  cpu: number;
  mib: number;
}

function servaldVersion(): string {
  const out = spawnSync(SERVALD!, ["version"], { timeout: 10_000, encoding: "utf8" }).stdout ?? "";
  return /Serval DNA version (\S+)/.exec(out)?.[1] ?? "unknown";
}

async function main(): Promise<void> {
  if (!SERVALD || !existsSync(SERVALD)) throw new Error("set SVP_SERVALD=/path/to/servald (see test/interop/README.md)");
  log(`svp: ${SVP.join(" ")}; servald: ${SERVALD}`);
  const target = await startTarget();
  const targetPort = (target.address() as net.AddressInfo).port;
  const mesh = await ServaldMesh.start(2);
  const [A, B] = mesh.nodes as [ServaldNode, ServaldNode];
  const loadBefore = loadAverage();
  try {
    const listener = mesh.spawn(B, ["msp", "listen", `--forward=${targetPort}`, String(MDP_PORT)]);
    listener.stderr!.resume();
    const servaldPort = await freePort();
    const sdConnect = mesh.spawn(A, ["msp", "connect", `--forward=${servaldPort}`, B.sid, String(MDP_PORT)]);
    sdConnect.stderr!.resume();
    await tcpReady(servaldPort);
    const svp = await spawnLogged(SVP[0]!, [...SVP.slice(1), "connect", "--forward", "127.0.0.1:0", "--mesh", "servald", "--quiet", B.sid, String(MDP_PORT)], { ...process.env, SERVALINSTANCE_PATH: A.instance, NO_COLOR: "1" }, /listening on 127\.0\.0\.1:(\d+)/);
    const svpPort = Number(svp.match![1]);
    // svp at both ends (the MSP extension between them): svp listen --forward on B, a second svp connect on A.
    await spawnLogged(SVP[0]!, [...SVP.slice(1), "listen", "--forward", String(targetPort), "--mesh", "servald", "--quiet", String(MDP_PORT + 1)], { ...process.env, SERVALINSTANCE_PATH: B.instance, NO_COLOR: "1" }, /listening on/);
    const svp2 = await spawnLogged(SVP[0]!, [...SVP.slice(1), "connect", "--forward", "127.0.0.1:0", "--mesh", "servald", "--quiet", B.sid, String(MDP_PORT + 1)], { ...process.env, SERVALINSTANCE_PATH: A.instance, NO_COLOR: "1" }, /listening on 127\.0\.0\.1:(\d+)/);
    const paths: Path[] = [
      { name: "servald", label: "`servald msp connect --forward` → servald", port: servaldPort, pid: sdConnect.pid!, up: [], down: [], ttfb: [], cpu: 0, mib: 0 },
      { name: "svp", label: "`svp connect --forward` → servald", port: svpPort, pid: svp.child.pid!, up: [], down: [], ttfb: [], cpu: 0, mib: 0 },
      { name: "svp-svp", label: "`svp connect --forward` → `svp listen --forward` (extension)", port: Number(svp2.match![1]), pid: svp2.child.pid!, up: [], down: [], ttfb: [], cpu: 0, mib: 0 },
    ];
    // Warm up (and wait for B's listener to bind): a first answer through each path.
    for (const p of paths) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await firstByte(p.port, 12_000);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`${p.name} path does not answer: ${(err as Error).message}`);
          await sleep(200);
        }
      }
    }
    log(`paths ready: servald :${servaldPort}, svp :${svpPort}; ${ROUNDS} rounds of ${BYTES / 1048576} MiB each way, ${TTFB_RUNS} first-byte runs`);
    const measure = async (p: Path, what: "up" | "down") => {
      const cpu0 = cpuSeconds(p.pid);
      const ms = what === "up" ? await upload(p.port, BYTES) : await download(p.port, BYTES);
      p.cpu += cpuSeconds(p.pid) - cpu0;
      p.mib += BYTES / 1048576;
      p[what].push(BYTES / 1048576 / (ms / 1000));
      log(`${p.name} ${what}: ${(BYTES / 1048576 / (ms / 1000)).toFixed(3)} MiB/s`);
    };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? paths : [...paths].reverse();
      for (const p of order) await measure(p, "up");
      for (const p of order) await measure(p, "down");
    }
    for (let i = 0; i < TTFB_RUNS; i++) for (const p of i % 2 === 0 ? paths : [...paths].reverse()) p.ttfb.push(await firstByte(p.port));
    process.stdout.write(report(paths, loadBefore));
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await mesh.stop();
    target.close();
  }
}

function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";
}

function report(paths: Path[], loadBefore: string): string {
  const [sd, svp, ext] = paths as [Path, Path, Path];
  const f = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "–");
  const ratio = (q: number) => (Number.isFinite(q) ? `${q.toFixed(2)}×` : "–");
  /** Median of the per-round ratios (rounds interleave the two paths, so load drift cancels). */
  const perRound = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]!));
  const cpuPerMiB = (p: Path) => p.cpu / p.mib;
  const rows: [string, (p: Path) => number, number, number, number, string][] = [
    ["1 stream up, MiB/s", (p) => median(p.up), 3, perRound(svp.up, sd.up), perRound(ext.up, sd.up), ""],
    ["1 stream down, MiB/s", (p) => median(p.down), 3, perRound(svp.down, sd.down), perRound(ext.down, sd.down), ""],
    ["time to first byte, ms", (p) => median(p.ttfb), 1, perRound(svp.ttfb, sd.ttfb), perRound(ext.ttfb, sd.ttfb), " (lower is better)"],
    ["A-side tool CPU, ms per MiB", (p) => (p.cpu * 1000) / p.mib, 1, cpuPerMiB(svp) / cpuPerMiB(sd), cpuPerMiB(ext) / cpuPerMiB(sd), " (lower is better)"],
  ];
  const lines = [
    `| (${ROUNDS} rounds; first byte: ${TTFB_RUNS} runs) | ${sd.label} | ${svp.label} | ${ext.label} | svp / servald | svp↔svp / servald |`,
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map(([label, get, d, q, q2, note]) => `| ${label} | ${f(get(sd), d)} | ${f(get(svp), d)} | ${f(get(ext), d)} | ${ratio(q)}${note} | ${ratio(q2)} |`),
  ];
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  return (
    `Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} on ${cpus().length} × ${cpu}, Node ${process.versions.node}, servald ${servaldVersion()}; ` +
    `load average ${loadBefore} at the start and ${loadAverage()} at the end. Two servald daemons linked by their file interface (loopback only); ` +
    `the first two paths end at the same \`servald msp listen --forward\` on B, the third at \`svp listen --forward\` (svp at both ends: the MSP extension); ${BYTES / 1048576} MiB per transfer, every byte counted at the far end; ` +
    `medians (ratios: median of the per-round ratios); svp: \`${SVP.map((a) => a.replace(root, "")).join(" ")}\`.\n\n${lines.join("\n")}\n`
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    for (const c of children) c.kill("SIGKILL");
    process.stderr.write(`bench/servald: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
