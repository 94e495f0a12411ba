/**
 * The embedded-node part of `npm run bench`: svp's own mesh node (`svp daemon run`, two
 * real daemon processes with temp instance directories and a private same-host discovery
 * directory, UDP on loopback), measured through its local API.
 *
 *   node --import tsx bench/node.ts [--seconds N] [--rounds N] [--idle N] [--svp CMD] [--skip tcp,msp,dgram,idle]
 *
 * This process is the client of both daemons (one local API connection to each, as
 * `svp connect` and `svp listen` would be) and runs both MSP ends; the daemons carry the
 * MDP datagrams between them (seal, UDP, open). Measured:
 *   - MSP bulk throughput A → B, one stream and eight streams, servald's window (4 × 1024 B),
 *     and one stream with a window of 32 (svp ↔ svp only) to show where the window is the
 *     limit; next to direct TCP on loopback between two sockets of this process (same
 *     generator, same run, rounds interleaved). CPU per MiB of each daemon and of this
 *     process; MSP's smoothed RTT under load; the 1-byte round trip on an idle stream.
 *   - MDP datagrams per second A → B through the overlay (1024-byte and 64-byte payloads):
 *     as fast as daemon A takes them, paced at half that rate, and closed-loop (64 in
 *     flight: the lossless rate), with loss counted and located (UDP between the daemons,
 *     B's client queue); next to node:dgram alone with the same window. Run-queue waits
 *     (/proc/<pid>/schedstat) show how much the shared machine held each process back.
 *   - Daemon memory: RSS of both daemons before and with N (default 1,000) open idle MSP
 *     streams, and the daemons' CPU while those streams only exchange keep-alives.
 *
 * The daemons run the current tree: cli/bin.ts bundled here with esbuild (as `make build`
 * does) and run on this Node; `--svp CMD` runs another svp (e.g. dist/svp).
 * Prints a markdown section on stdout (progress on stderr); bench/run.ts copies it into
 * bench/RESULTS.md. Network rule: loopback only (daemons bind 127.0.0.1/::1, discovery is
 * the private directory, no --lan); every loop is bounded in count and time; every process
 * started here is stopped at the end.
 */

import { spawn, type ChildProcess } from "node:child_process";
import * as dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openEmbeddedTransport, type EmbeddedTransport } from "../src/node/embedded-transport.ts";
import { connectMsp } from "../src/msp/connect.ts";
import { listenMsp } from "../src/msp/listener.ts";
import type { MspStream } from "../src/msp/msp-stream.ts";
import { sidToHex } from "../src/mesh/sid.ts";
import { connectUnix } from "../src/platform/net.ts";
import type { SocketStream } from "../src/platform/socket-stream.ts";
import { socketPath } from "../src/platform/instance-files.ts";
import type { StatusReport } from "../src/status/status-report.ts";
import { freshSvpCommand, median, sleep } from "./common.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    idle: { type: "string", default: "1000" },
    svp: { type: "string" },
    skip: { type: "string", default: "" },
  },
});
const SECONDS = Number(opts.seconds);
if (!(SECONDS >= 0.5 && SECONDS <= 30)) throw new Error("--seconds must be 0.5..30");
const ROUNDS = Number(opts.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 9) throw new Error("--rounds must be an integer 1..9");
const IDLE = Number(opts.idle);
if (!Number.isInteger(IDLE) || IDLE < 1 || IDLE > 4000) throw new Error("--idle must be an integer 1..4000");
const skip = new Set((opts.skip ?? "").split(",").filter(Boolean));
const WARMUP_S = 0.5;
/** Datagrams in flight in the closed-loop datagram runs (fits the default UDP receive buffer). */
const DGRAM_WINDOW = 64;
const MiB = 1024 * 1024;
const CHUNK = new Uint8Array(64 * 1024).fill(0xa5);

const log = (m: string) => process.stderr.write(`bench/node: ${m}\n`);
const fmt = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const group = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–");

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

const work = mkdtempSync(join(tmpdir(), "svp-bench-node-"));
const env = { ...process.env, SVP_DISCOVERY_DIR: join(work, "discovery"), NO_COLOR: "1" };
const children: ChildProcess[] = [];

// ---------- machine, load, CPU, memory ----------

const loadSamples: number[] = [];
const loadavg = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
const loadTimer = setInterval(() => loadSamples.push(loadavg()), 1000);
loadTimer.unref();

function machine(): string {
  return `${availableParallelism()} × ${cpus()[0]?.model ?? "unknown CPU"} (nproc ${availableParallelism()}), Linux ${release()}, Node ${process.versions.node}`;
}

/** User + system CPU seconds of `pid` so far (from /proc; NaN when gone). */
function cpuOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Seconds `pid`'s main thread has spent runnable but waiting for a CPU (/proc/<pid>/schedstat). */
function waitOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[1]) / 1e9;
  } catch {
    return NaN;
  }
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

/** CPU seconds and run-queue wait seconds of the daemons and of this process, taken together. */
interface CpuMark {
  a: number;
  b: number;
  self: number;
  waitA: number;
  waitB: number;
  waitSelf: number;
  t: number;
}
function cpuMark(): CpuMark {
  const u = process.cpuUsage();
  return { a: cpuOf(da.pid), b: cpuOf(db.pid), self: (u.user + u.system) / 1e6, waitA: waitOf(da.pid), waitB: waitOf(db.pid), waitSelf: waitOf(process.pid), t: performance.now() / 1000 };
}

/** Shares of the window that A, B and this process spent waiting for a CPU. */
function waits(c0: CpuMark, c1: CpuMark): [number, number, number] {
  const wall = c1.t - c0.t;
  return [(c1.waitA - c0.waitA) / wall, (c1.waitB - c0.waitB) / wall, (c1.waitSelf - c0.waitSelf) / wall];
}

// ---------- daemons ----------

interface Daemon {
  name: string;
  home: string;
  pid: number;
  child: ChildProcess;
  /** This process's local API connection (and the stream under it, for backpressure). */
  t: EmbeddedTransport;
  stream: SocketStream;
  /** The last 4,000 characters of its log (stderr). */
  logTail: () => string;
}

function svpCommand(): Promise<string[]> {
  return freshSvpCommand(opts.svp, work);
}

async function openApi(home: string, name: string): Promise<{ t: EmbeddedTransport; stream: SocketStream }> {
  const stream = await connectUnix(socketPath(home), { timeoutMs: 2000 });
  // As connectEmbedded does: frames of one I/O batch go to the daemon in one write.
  const t = await openEmbeddedTransport(stream, { name, pid: process.pid, requestTimeoutMs: 10_000, defer: (fn) => void setImmediate(fn) });
  return { t, stream };
}

async function startDaemon(svp: string[], name: string): Promise<Daemon> {
  const home = join(work, name);
  const child = spawn(svp[0]!, [...svp.slice(1), "daemon", "run", "--home", home, "--port", "0", "--hello-interval", "250ms"], { env, stdio: ["ignore", "ignore", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (stderr = (stderr + s).slice(-4000)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`svp daemon run (${name}) exited: ${stderr}`);
    try {
      const api = await openApi(home, "bench/node");
      return { name, home, pid: api.t.daemonPid, child, ...api, logTail: () => stderr };
    } catch {
      if (Date.now() > deadline) throw new Error(`svp daemon run (${name}) did not answer within 20 s: ${stderr}`);
      await sleep(50);
    }
  }
}

async function stopDaemon(d: Daemon): Promise<void> {
  d.t.close();
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill("SIGTERM");
  const killer = setTimeout(() => d.child.kill("SIGKILL"), 5000);
  await new Promise((r) => d.child.once("exit", r));
  clearTimeout(killer);
}

let da: Daemon;
let db: Daemon;

interface Counters {
  out: number;
  in: number;
  drops: Record<string, number>;
}
/** A's packets out to B and B's packets in from A (hellos included), and B's drop counters. */
async function overlayCounters(): Promise<Counters> {
  const [sa, sb]: [StatusReport, StatusReport] = await Promise.all([da.t.status(), db.t.status()]);
  const hexA = sidToHex(da.t.localSid);
  const hexB = sidToHex(db.t.localSid);
  return {
    out: sa.peers.find((p) => p.sid === hexB)?.packetsOut ?? NaN,
    in: sb.peers.find((p) => p.sid === hexA)?.packetsIn ?? NaN,
    drops: { ...(sb.drops as Record<string, number>) },
  };
}

// ---------- direct TCP baseline ----------

async function tcpBulk(streams: number): Promise<number> {
  let received = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("data", (d: Uint8Array) => (received += d.length));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  let stop = false;
  for (let i = 0; i < streams; i++) {
    const c = net.connect({ host: "127.0.0.1", port, noDelay: true });
    sockets.add(c);
    c.on("error", () => {});
    const pump = () => {
      while (!stop && !c.destroyed && c.write(CHUNK));
    };
    c.on("drain", pump);
    c.on("connect", pump);
  }
  await sleep(WARMUP_S * 1000);
  const b0 = received;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const rate = (received - b0) / ((performance.now() - t0) / 1000);
  stop = true;
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  return rate / MiB;
}

// ---------- MSP through the daemons ----------

let nextPort = 7000;

interface MspResult {
  mibps: number;
  /** CPU ms per MiB: daemon A, daemon B, this process (both MSP ends and both API clients). */
  cpuA: number;
  cpuB: number;
  cpuSelf: number;
  /** Busy fraction of one core over the window. */
  busyA: number;
  busyB: number;
  busySelf: number;
  /** Share of the window spent runnable but waiting for a CPU: A, B, this process. */
  wait: [number, number, number];
  rttMs: number;
  retransmissions: number;
}

async function mspBulk(streams: number, window: number): Promise<MspResult> {
  const port = nextPort++;
  const l = await listenMsp(db.t, port, { window, maxConnections: streams + 8 });
  let received = 0;
  const accepted: MspStream[] = [];
  l.on("accept", (x) => {
    accepted.push(x);
    x.on("data", (d) => (received += d.length));
    x.resume();
  });
  const ss = await within(Promise.all(Array.from({ length: streams }, () => connectMsp(da.t, { sid: db.t.localSid, port }, { window }))), 15_000, "MSP connects");
  let stop = false;
  for (const s of ss) {
    s.resume();
    const pump = () => {
      while (!stop && s.writable && s.write(CHUNK));
    };
    s.on("drain", pump);
    pump();
  }
  await sleep(WARMUP_S * 1000);
  const b0 = received;
  const c0 = cpuMark();
  await sleep(SECONDS * 1000);
  const c1 = cpuMark();
  const bytes = received - b0;
  stop = true;
  const wall = c1.t - c0.t;
  const mib = bytes / MiB;
  const rtts = ss.map((s) => s.stats.rttMs ?? NaN);
  const retransmissions = ss.reduce((n, s) => n + s.stats.retransmissions, 0);
  // Connectors first; the listener once their STOPs have arrived (else B counts them as "unbound").
  for (const s of ss) s.abort();
  await sleep(300);
  l.abort();
  return {
    mibps: mib / wall,
    cpuA: ((c1.a - c0.a) * 1000) / mib,
    cpuB: ((c1.b - c0.b) * 1000) / mib,
    cpuSelf: ((c1.self - c0.self) * 1000) / mib,
    busyA: (c1.a - c0.a) / wall,
    busyB: (c1.b - c0.b) / wall,
    busySelf: (c1.self - c0.self) / wall,
    wait: waits(c0, c1),
    rttMs: median(rtts),
    retransmissions,
  };
}

/** Median and fastest round trip (ms) of 1 byte A → B → A on one open, otherwise idle MSP stream. */
async function mspRoundTrip(n: number): Promise<{ median: number; min: number }> {
  const port = nextPort++;
  const l = await listenMsp(db.t, port);
  l.on("accept", (x) => {
    x.on("data", (d) => x.write(d));
    x.resume();
  });
  const s = await connectMsp(da.t, { sid: db.t.localSid, port });
  s.resume();
  const xs: number[] = [];
  const one = new Uint8Array([0x78]);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await within(new Promise<void>((resolve) => (s.once("data", () => resolve()), s.write(one))), 5000, "MSP echo");
    xs.push(performance.now() - t0);
  }
  s.abort();
  await sleep(200);
  l.abort();
  return { median: median(xs), min: Math.min(...xs) };
}

// ---------- datagrams ----------

interface DgramResult {
  /** Datagrams per second offered by the sender / received, over the measured window. */
  offered: number;
  delivered: number;
  sent: number;
  received: number;
  /** Lost in all, and where: between the daemons (UDP), at B's client queue. */
  lost: number;
  lostUdp: number;
  lostClient: number;
  cpuA: number;
  cpuB: number;
  busyA: number;
  busyB: number;
  busySelf: number;
  wait: [number, number, number];
}

/**
 * MDP datagrams of `size` bytes from A to B for SECONDS (after a warm-up), sent
 * - "flat": as fast as daemon A reads the local API (at most 256 KiB queued on the socket,
 *   so nothing is dropped in this process; the sender waits for `drain` beyond that);
 * - { rate }: paced at `rate` per second;
 * - { window }: at most `window` datagrams sent and not yet received (closed loop: the
 *   lossless rate; a datagram still missing after 100 ms of silence counts as lost).
 */
async function datagrams(size: number, pace: "flat" | { rate: number } | { window: number }): Promise<DgramResult> {
  const rx = await db.t.bind(0);
  const tx = await da.t.bind(0);
  const to = rx.local;
  const payload = new Uint8Array(size).fill(0x42);
  const k0 = await overlayCounters();
  let sent = 0;
  let got = 0;
  let writtenOff = 0;
  let lastGotAt = performance.now();
  const start = performance.now();
  const end = start + (WARMUP_S + SECONDS) * 1000;
  let marks: { sent: number; got: number; cpu: CpuMark } | undefined;
  let sentEnd = 0;
  let gotEnd = 0;
  let cpuEnd: CpuMark | undefined;
  let finished = false;
  const window = typeof pace === "object" && "window" in pace ? pace.window : undefined;
  const topUp = () => {
    if (finished || window === undefined) return;
    for (let n = window - (sent - got - writtenOff); n > 0; n--) {
      tx.send(to, payload);
      sent++;
    }
  };
  rx.on("message", () => {
    got++;
    lastGotAt = performance.now();
    if (window !== undefined && !finished) topUp();
  });
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (!marks && now >= start + WARMUP_S * 1000) marks = { sent, got, cpu: cpuMark() };
      if (now >= end) {
        finished = true;
        sentEnd = sent;
        gotEnd = got;
        cpuEnd = cpuMark();
        return resolve();
      }
      if (window !== undefined) {
        if (now - lastGotAt > 100) writtenOff = sent - got; // lost: do not wait for them
        topUp();
        return void setTimeout(tick, 20);
      }
      const allowed = pace === "flat" ? Infinity : Math.floor(((now - start) / 1000) * (pace as { rate: number }).rate) - sent;
      let i = 0;
      for (; i < 256 && i < allowed && da.stream.writableLength < 256 * 1024; i++) {
        tx.send(to, payload);
        sent++;
      }
      if (pace !== "flat") setTimeout(tick, 1);
      else if (da.stream.writableLength >= 256 * 1024) da.stream.once("drain", tick);
      else setImmediate(tick);
    };
    tick();
  });
  // Let the rest arrive: until nothing came for 300 ms (at most 5 s).
  for (let last = -1, i = 0; i < 17 && got !== last; i++) {
    last = got;
    await sleep(300);
  }
  const k1 = await overlayCounters();
  tx.close();
  rx.close();
  const m = marks!;
  const c1 = cpuEnd!;
  const wall = c1.t - m.cpu.t;
  const deliveredN = gotEnd - m.got;
  const udpSent = k1.out - k0.out;
  const udpGot = k1.in - k0.in;
  return {
    offered: (sentEnd - m.sent) / wall,
    delivered: deliveredN / wall,
    sent,
    received: got,
    lost: sent - got,
    lostUdp: udpSent - udpGot,
    lostClient: (k1.drops["client-slow"] ?? 0) - (k0.drops["client-slow"] ?? 0),
    cpuA: ((c1.a - m.cpu.a) * 1e6) / Math.max(1, deliveredN),
    cpuB: ((c1.b - m.cpu.b) * 1e6) / Math.max(1, deliveredN),
    busyA: (c1.a - m.cpu.a) / wall,
    busyB: (c1.b - m.cpu.b) / wall,
    busySelf: (c1.self - m.cpu.self) / wall,
    wait: waits(m.cpu, c1),
  };
}

/**
 * node:dgram alone, socket to socket in this process, with at most `window` datagrams in
 * flight (as the overlay's windowed run): what Node's UDP does without the overlay.
 */
async function rawUdp(size: number, window: number): Promise<{ delivered: number; lost: number; sent: number }> {
  const rx = dgram.createSocket("udp4");
  const tx = dgram.createSocket("udp4");
  await new Promise<void>((r) => rx.bind(0, "127.0.0.1", r));
  await new Promise<void>((r) => tx.bind(0, "127.0.0.1", r));
  const port = rx.address().port;
  // As large as the overlay's datagram carrying `size` bytes (header, DATA header, tag).
  const payload = new Uint8Array(size + 92 + 9 + 16).fill(0x42);
  let sent = 0;
  let got = 0;
  let writtenOff = 0;
  let lastGotAt = performance.now();
  let finished = false;
  const topUp = () => {
    for (let n = window - (sent - got - writtenOff); n > 0 && !finished; n--) {
      tx.send(payload, port, "127.0.0.1");
      sent++;
    }
  };
  rx.on("message", () => {
    got++;
    lastGotAt = performance.now();
    topUp();
  });
  const start = performance.now();
  const end = start + (WARMUP_S + SECONDS) * 1000;
  let mark: { got: number; t: number } | undefined;
  let done: { got: number; t: number } | undefined;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (!mark && now >= start + WARMUP_S * 1000) mark = { got, t: now };
      if (now >= end) {
        finished = true;
        done = { got, t: now };
        return resolve();
      }
      if (now - lastGotAt > 100) writtenOff = sent - got;
      topUp();
      setTimeout(tick, 20);
    };
    tick();
  });
  for (let last = -1, i = 0; i < 17 && got !== last; i++) {
    last = got;
    await sleep(300);
  }
  rx.close();
  tx.close();
  return { delivered: (done!.got - mark!.got) / ((done!.t - mark!.t) / 1000), lost: sent - got, sent };
}

// ---------- idle streams ----------

interface IdleResult {
  opened: number;
  rssA0: number;
  rssB0: number;
  rssA1: number;
  rssB1: number;
  /** Daemons' CPU while the streams sit idle (keep-alives only), fraction of one core. */
  idleBusyA: number;
  idleBusyB: number;
  /** Overlay packets per second A → B while idle. */
  idlePps: number;
  openSeconds: number;
}

async function idleStreams(n: number): Promise<IdleResult> {
  await sleep(1000);
  const rssA0 = rssKiB(da.pid);
  const rssB0 = rssKiB(db.pid);
  const port = nextPort++;
  const l = await listenMsp(db.t, port, { maxConnections: n + 16 });
  const accepted: MspStream[] = [];
  l.on("accept", (x) => {
    accepted.push(x);
    x.resume();
  });
  const streams: MspStream[] = [];
  const t0 = performance.now();
  const deadline = t0 + 120_000;
  let failures = 0;
  // 50 connects at a time; every connect is bounded by MSP's own 10 s timeout.
  while (streams.length < n && failures < 50 && performance.now() < deadline) {
    const batch = Math.min(50, n - streams.length);
    const r = await Promise.allSettled(Array.from({ length: batch }, () => connectMsp(da.t, { sid: db.t.localSid, port })));
    for (const x of r) {
      if (x.status === "fulfilled") {
        x.value.resume();
        streams.push(x.value);
      } else failures++;
    }
  }
  const openSeconds = (performance.now() - t0) / 1000;
  log(`${streams.length} idle streams open (${failures} failed) in ${openSeconds.toFixed(1)} s`);
  await sleep(2000);
  const k0 = await overlayCounters();
  const c0 = cpuMark();
  await sleep(3000);
  const c1 = cpuMark();
  const k1 = await overlayCounters();
  const rssA1 = Math.max(rssKiB(da.pid), 0);
  const rssB1 = Math.max(rssKiB(db.pid), 0);
  await sleep(1000);
  const res: IdleResult = {
    opened: Math.min(streams.length, accepted.length),
    rssA0,
    rssB0,
    rssA1: Math.max(rssA1, rssKiB(da.pid)),
    rssB1: Math.max(rssB1, rssKiB(db.pid)),
    idleBusyA: (c1.a - c0.a) / (c1.t - c0.t),
    idleBusyB: (c1.b - c0.b) / (c1.t - c0.t),
    idlePps: (k1.out - k0.out) / (c1.t - c0.t),
    openSeconds,
  };
  for (const s of streams) s.abort();
  await sleep(1000);
  l.abort();
  return res;
}

// ---------- main ----------

async function main(): Promise<string> {
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const loadStart = loadavg();
  const svp = await svpCommand();
  log(`daemons: ${svp.map((a) => a.replace(work, "<tmp>")).join(" ")} daemon run; ${SECONDS} s per measurement, ${ROUNDS} rounds`);
  da = await startDaemon(svp, "a");
  db = await startDaemon(svp, "b");
  await within(
    (async () => {
      while (da.t.reachability(db.t.localSid) !== "reachable" || db.t.reachability(da.t.localSid) !== "reachable") await sleep(50);
    })(),
    15_000,
    "the daemons finding each other",
  );
  log(`daemons up: A pid ${da.pid}, B pid ${db.pid}; peers found`);

  // Warm-up: load and optimise the code paths of both daemons before anything is measured.
  await mspBulk(1, 4);
  await datagrams(1024, { rate: 20_000 });

  let idle: IdleResult | undefined;
  if (!skip.has("idle")) {
    log(`idle: ${IDLE} MSP streams`);
    idle = await idleStreams(IDLE);
  }

  const samples = new Map<string, MspResult[]>();
  const tcp = new Map<number, number[]>();
  const add = <T>(m: Map<string | number, T[]>, k: string | number, v: T) => m.set(k, [...(m.get(k) ?? []), v]);
  const mspConfigs = [
    { key: "1", streams: 1, window: 4 },
    { key: "8", streams: 8, window: 4 },
    { key: "1w32", streams: 1, window: 32 },
  ];
  let rtt: { median: number; min: number } | undefined;
  if (!skip.has("msp")) rtt = await mspRoundTrip(200);
  for (let round = 0; round < ROUNDS && !(skip.has("msp") && skip.has("tcp")); round++) {
    for (const streams of [1, 8]) {
      if (!skip.has("tcp")) {
        log(`round ${round + 1}/${ROUNDS}: direct TCP, ${streams} stream(s)`);
        add(tcp as Map<string | number, number[]>, streams, await tcpBulk(streams));
      }
      if (!skip.has("msp")) {
        for (const c of mspConfigs.filter((x) => x.streams === streams)) {
          log(`round ${round + 1}/${ROUNDS}: MSP ${c.streams} stream(s), window ${c.window}`);
          add(samples as Map<string | number, MspResult[]>, c.key, await mspBulk(c.streams, c.window));
        }
      }
    }
  }

  const dg = new Map<string, DgramResult[]>();
  const raw = new Map<number, { delivered: number; lost: number; sent: number }[]>();
  if (!skip.has("dgram")) {
    for (let round = 0; round < ROUNDS; round++) {
      for (const size of [1024, 64]) {
        log(`round ${round + 1}/${ROUNDS}: datagrams ${size} B, flat out`);
        const flat = await datagrams(size, "flat");
        add(dg as Map<string | number, DgramResult[]>, `${size}`, flat);
        if (size === 1024) {
          log(`round ${round + 1}/${ROUNDS}: datagrams ${size} B, paced at ${Math.round(flat.delivered / 2)}/s`);
          add(dg as Map<string | number, DgramResult[]>, `${size}half`, await datagrams(size, { rate: flat.delivered / 2 }));
        }
        log(`round ${round + 1}/${ROUNDS}: datagrams ${size} B, ${DGRAM_WINDOW} in flight`);
        add(dg as Map<string | number, DgramResult[]>, `${size}win`, await datagrams(size, { window: DGRAM_WINDOW }));
        log(`round ${round + 1}/${ROUNDS}: node:dgram alone, ${size} B, ${DGRAM_WINDOW} in flight`);
        add(raw as Map<string | number, { delivered: number; lost: number; sent: number }[]>, size, await rawUdp(size, DGRAM_WINDOW));
      }
    }
  }
  const dropsB = (await db.t.status()).drops as Record<string, number>;
  const dropsA = (await da.t.status()).drops as Record<string, number>;

  // ---------- report ----------
  const cores = availableParallelism();
  const lines: string[] = [];
  const loadMax = Math.max(loadStart, ...loadSamples);
  const loadMean = loadSamples.length ? loadSamples.reduce((a, b) => a + b, 0) / loadSamples.length : loadStart;
  lines.push(
    `Run ${date} on ${machine()}. Load average (1 min) ${fmt(loadStart, 2)} at the start, ${fmt(loadMean, 2)} mean and ${fmt(loadMax, 2)} highest during the run (the machine is shared). ` +
      `Two \`svp daemon run\` processes (${opts.svp ? `\`${opts.svp}\`` : "the current tree bundled with esbuild, on this Node"}), UDP on loopback, same-host discovery in a private directory; ` +
      `this process is the local-API client of both and runs both MSP ends. Median of ${ROUNDS} rounds of ${SECONDS} s after ${WARMUP_S} s warm-up, measurements interleaved.`,
    "",
  );
  if (samples.size || tcp.size) {
    const ms = (k: string, f: (r: MspResult) => number) => median((samples.get(k) ?? []).map(f));
    const t1 = median(tcp.get(1) ?? []);
    const t8 = median(tcp.get(8) ?? []);
    const ratio = (v: number, d: number) => (Number.isFinite(v) && Number.isFinite(d) && d > 0 ? ` (${(v / d).toFixed(4)}×)` : "");
    lines.push(
      "**MSP bulk A → B** (MiB/s; CPU in ms per MiB moved; busy = share of one core during the window):",
      "",
      "| path | MiB/s | daemon A CPU | daemon B CPU | client CPU | busy A / B / client | waiting for a CPU A / B / client | MSP RTT under load, ms | retransmissions |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
      `| direct TCP, 1 stream | ${fmt(t1, 0)} | | | | | | | |`,
      `| direct TCP, 8 streams | ${fmt(t8, 0)} | | | | | | | |`,
      ...mspConfigs
        .filter((c) => samples.has(c.key))
        .map((c) => {
          const v = ms(c.key, (r) => r.mibps);
          const base = c.streams === 1 ? t1 : t8;
          return `| MSP, ${c.streams} stream${c.streams > 1 ? "s" : ""}, window ${c.window} × 1024 B${c.window === 4 ? " (servald's)" : ""} | ${fmt(v, 2)}${ratio(v, base)} | ${fmt(ms(c.key, (r) => r.cpuA), 0)} | ${fmt(ms(c.key, (r) => r.cpuB), 0)} | ${fmt(ms(c.key, (r) => r.cpuSelf), 0)} | ${fmt(ms(c.key, (r) => r.busyA * 100), 0)} % / ${fmt(ms(c.key, (r) => r.busyB * 100), 0)} % / ${fmt(ms(c.key, (r) => r.busySelf * 100), 0)} % | ${pct3(samples.get(c.key)!.map((r) => r.wait))} | ${fmt(ms(c.key, (r) => r.rttMs), 2)} | ${fmt(ms(c.key, (r) => r.retransmissions), 0)} |`;
        }),
      "",
    );
    if (rtt) {
      const one = ms("1", (r) => r.mibps);
      const w32 = ms("1w32", (r) => r.mibps);
      const eight = ms("8", (r) => r.mibps);
      const rttLoad = ms("1", (r) => r.rttMs);
      const busy1 = Math.max(ms("1", (r) => r.busyA), ms("1", (r) => r.busyB), ms("1", (r) => r.busySelf));
      const total8 = ms("8", (r) => r.busyA + r.busyB + r.busySelf);
      const wait8 = ms("8", (r) => r.wait[0] + r.wait[1] + r.wait[2]);
      const cpuBound8 = total8 + wait8 > 0.8 * cores;
      // CPU per 1 KiB packet summed over the three processes, and what 32 packets in flight take one after another.
      const perPacket8 = ms("8", (r) => r.cpuA + r.cpuB + r.cpuSelf) / 1024;
      const rtt8 = ms("8", (r) => r.rttMs);
      lines.push(
        `Round trip of 1 byte on an idle MSP stream (A → B → A through both daemons and this process): median ${fmt(rtt.median, 3)} ms, fastest ${fmt(rtt.min, 3)} ms. ` +
          `With servald's window one stream can carry at most 4 KiB per round trip: ${fmt(4096 / (rtt.median / 1000) / MiB, 1)} MiB/s at the idle round trip, ${fmt(4096 / (rttLoad / 1000) / MiB, 1)} MiB/s at MSP's smoothed RTT under load; it moved ${fmt(one, 2)} MiB/s, with the busiest process at ${fmt(busy1 * 100, 0)} % of a core.`,
        `A window of 32 moved ${fmt(w32 / one, 2)}× and eight streams ${fmt(eight / one, 2)}× as much as one stream with window 4: ` +
          (w32 > 1.3 * one && busy1 < 0.85 ? "**one stream with servald's window is limited by the window** (its round trip), not by CPU. " : "one stream is not limited by the window alone here. ") +
          `With eight streams the three processes used ${fmt(total8, 2)} of ${cores} cores and waited ${fmt(wait8, 2)} core-seconds per second for a CPU (other jobs share the machine)` +
          (cpuBound8
            ? ": there the CPU is the limit (busy + waiting ≈ all cores), and the round trip grows by queueing."
            : `. Their round trip under load (${fmt(rtt8, 1)} ms) is about what the 32 packets in flight cost one after another (32 × ${fmt(perPacket8, 3)} ms of CPU per packet, all three processes: ${fmt(32 * perPacket8, 1)} ms): the window moves as one burst per round trip and the processes mostly take turns, so eight streams of window 4 are still limited by their windows together, at a round trip set by CPU per packet.`),
        "",
      );
    }
  }
  if (dg.size) {
    const d = (k: string, f: (r: DgramResult) => number) => median((dg.get(k) ?? []).map(f));
    const r = (s: number, f: (x: { delivered: number; lost: number; sent: number }) => number) => median((raw.get(s) ?? []).map(f));
    const row = (k: string, label: string) =>
      `| ${label} | ${group(d(k, (x) => x.offered))} | ${group(d(k, (x) => x.delivered))} | ${fmt(d(k, (x) => (x.delivered * (k.startsWith("64") ? 64 : 1024)) / MiB), 1)} | ${fmt(d(k, (x) => (100 * x.lost) / x.sent), 2)} % (${group(d(k, (x) => x.lost))} of ${group(d(k, (x) => x.sent))}: ${group(d(k, (x) => x.lostUdp))} UDP, ${group(d(k, (x) => x.lostClient))} client queue) | ${fmt(d(k, (x) => x.cpuA), 0)} / ${fmt(d(k, (x) => x.cpuB), 0)} | ${fmt(d(k, (x) => x.busyA * 100), 0)} % / ${fmt(d(k, (x) => x.busyB * 100), 0)} % / ${fmt(d(k, (x) => x.busySelf * 100), 0)} % | ${pct3((dg.get(k) ?? []).map((x) => x.wait))} |`;
    lines.push(
      "**MDP datagrams A → B through the overlay** (sender in this process → local API → daemon A → sealed UDP → daemon B → local API → receiver in this process). Loss is over the whole run of each measurement (sent − received) and where it happened: UDP = daemon A's packets out minus daemon B's packets in; client queue = B's `client-slow` drops.",
      "",
      "| datagrams | offered /s | delivered /s | payload MiB/s | lost | daemon CPU µs per datagram A / B | busy A / B / client | waiting for a CPU A / B / client |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
      row("1024", "1024 B, flat out"),
      row("1024half", "1024 B, paced at half the flat-out rate"),
      row("1024win", `1024 B, ${DGRAM_WINDOW} in flight (closed loop)`),
      row("64", "64 B, flat out"),
      row("64win", `64 B, ${DGRAM_WINDOW} in flight (closed loop)`),
      `| node:dgram alone, ${1024 + 117} B datagrams, ${DGRAM_WINDOW} in flight (one process, no overlay) | | ${group(r(1024, (x) => x.delivered))} | | ${fmt(r(1024, (x) => (100 * x.lost) / x.sent), 2)} % | | | |`,
      `| node:dgram alone, ${64 + 117} B datagrams, ${DGRAM_WINDOW} in flight | | ${group(r(64, (x) => x.delivered))} | | ${fmt(r(64, (x) => (100 * x.lost) / x.sent), 2)} % | | | |`,
      "",
      `Drop counters of the daemons at the end of the run (all measurements): A ${JSON.stringify(nonzero(dropsA))}, B ${JSON.stringify(nonzero(dropsB))}.`,
      "",
    );
  }
  if (idle) {
    const per = (a: number, b: number) => ((b - a) / Math.max(1, idle!.opened)).toFixed(1);
    lines.push(
      `**Daemon memory with ${idle.opened.toLocaleString("en-US")} open idle MSP streams** (opened in ${fmt(idle.openSeconds, 1)} s, 50 at a time; each is a bound MDP port on A and a connection to one listening port on B; the MSP state lives in the client, the daemons carry bindings and datagrams):`,
      "",
      "| daemon | RSS before, MiB | RSS with the streams, MiB | per stream, KiB | CPU while idle (keep-alives) |",
      "| --- | --- | --- | --- | --- |",
      `| A (connecting side: one binding per stream) | ${fmt(idle.rssA0 / 1024, 1)} | ${fmt(idle.rssA1 / 1024, 1)} | ${per(idle.rssA0, idle.rssA1)} | ${fmt(idle.idleBusyA * 100, 1)} % of a core |`,
      `| B (listening side: one binding) | ${fmt(idle.rssB0 / 1024, 1)} | ${fmt(idle.rssB1 / 1024, 1)} | ${per(idle.rssB0, idle.rssB1)} | ${fmt(idle.idleBusyB * 100, 1)} % of a core |`,
      "",
      `Idle MSP streams are not silent: each sends a keep-alive after 1.5 s without traffic, so the overlay carried ${group(idle.idlePps)} packets/s A → B with the streams idle.`,
      "",
    );
  }
  lines.push(`Load average at the end: ${fmt(loadavg(), 2)}.`);
  return lines.join("\n") + "\n";
}

/** "a % / b % / c %": medians of three shares. */
function pct3(xs: [number, number, number][]): string {
  return [0, 1, 2].map((i) => `${fmt(median(xs.map((x) => x[i]! * 100)), 0)} %`).join(" / ");
}

function nonzero(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v > 0));
}

async function cleanup(): Promise<void> {
  clearInterval(loadTimer);
  await Promise.all([da, db].filter(Boolean).map((d) => stopDaemon(d)));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}

main().then(
  async (text) => {
    await cleanup();
    process.stdout.write(text);
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench/node: ${(err as Error).stack ?? String(err)}\n`);
    for (const d of [da, db]) if (d?.logTail()) process.stderr.write(`bench/node: daemon ${d.name} log tail:\n${d.logTail().slice(-1500)}\n`);
    await cleanup().catch(() => {});
    process.exit(1);
  },
);
