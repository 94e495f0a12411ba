/**
 * MSP on emulated links (issue 14's figures), part of `npm run bench`:
 *
 *   node --import tsx bench/msp-link.ts [--seconds N] [--only loopback,rtt20,lossy,bottleneck,fair] [--svp CMD]
 *
 * Two embedded nodes as separate `svp daemon` processes; node A's only peer is the link
 * emulator (test/helpers/link-emulator.ts, its own process), which relays to node B with
 * the scenario's delay, jitter, loss, duplication, reordering and rate. Node B runs
 * `svp listen --forward` in front of a sink in this process; node A runs
 * `svp connect --forward`, into which this process writes a checked byte pattern on one or
 * eight TCP connections for `--seconds`. Each scenario runs twice on the same daemons: with
 * svp's MSP extension (the default) and with SVP_MSP_EXTENSION=off, which is servald's
 * window of 4 messages of 1 KiB and 1.5 s retransmit.
 *
 * Reported per run: throughput at the sink over the measured window (after a warm-up),
 * whether every byte arrived as sent, CPU seconds per MiB of the four svp processes (the
 * two daemons, listen and connect; the emulator's own CPU is left out), retransmissions
 * as svp connect --verbose reports them, and for the bottleneck the emulator's queueing
 * delay; for eight streams Jain's fairness index of their throughputs.
 *
 * Prints a markdown section on stdout (progress on stderr). Loopback only; every wait is
 * bounded; every process is stopped at the end.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { builtSvpCommand, root, sleep } from "./common.ts";

const { values: opts } = parseArgs({
  options: { seconds: { type: "string", default: "8" }, only: { type: "string" }, svp: { type: "string" } },
});
const SECONDS = Math.max(2, Number(opts.seconds));
const WARMUP_S = 1.5;
const only = opts.only ? new Set(opts.only.split(",")) : undefined;
const SVP = builtSvpCommand(opts.svp) ?? [process.execPath, "--import", "tsx", `${root}cli/main.ts`];
const MiB = 1024 * 1024;

const log = (m: string) => process.stderr.write(`bench/msp-link: ${m}\n`);
const work = mkdtempSync(join(tmpdir(), "svp-bench-link-"));
const baseEnv = { ...process.env, SVP_DISCOVERY_DIR: join(work, "discovery"), SVP_MESH: "embedded", NO_COLOR: "1" };
const children = new Set<ChildProcess>();
const homes: string[] = [];

function cleanup(): void {
  for (const c of children) c.kill("SIGKILL");
  for (const h of homes) spawnSync(SVP[0]!, [...SVP.slice(1), "daemon", "stop", "--home", h], { env: baseEnv, timeout: 10_000 });
  rmSync(work, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));

interface Scenario {
  name: string;
  what: string;
  /** Emulator flags; undefined: node A peers with node B directly. */
  link?: string[];
  streams: number;
  /** Bottleneck rate, bytes/s (for the utilisation figure). */
  rate?: number;
  /** Seconds to measure at least (AIMD between eight streams needs several loss cycles to even out). */
  seconds?: number;
}

const SCENARIOS: Scenario[] = [
  { name: "loopback", what: "loopback, no emulator", streams: 1 },
  { name: "rtt20", what: "20 ms round trip, no loss", link: ["--delay", "10ms"], streams: 1 },
  { name: "lossy", what: "20–40 ms round trip, 3% loss, 2% duplication, 2% reordering", link: ["--delay", "10ms", "--jitter", "10ms", "--loss", "0.03", "--dup", "0.02", "--reorder", "0.02"], streams: 1 },
  { name: "bottleneck", what: "2 MiB/s bottleneck, 100-message drop-tail queue, 20 ms round trip", link: ["--delay", "10ms", "--rate", "2MiB/s", "--queue", "100"], streams: 1, rate: 2 * MiB },
  { name: "fair", what: "8 streams sharing that bottleneck", link: ["--delay", "10ms", "--rate", "2MiB/s", "--queue", "100"], streams: 8, rate: 2 * MiB, seconds: 16 },
];

function svpSync(args: string[]): string {
  const r = spawnSync(SVP[0]!, [...SVP.slice(1), ...args], { env: baseEnv, encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`svp ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout;
}

interface Daemon {
  home: string;
  sid: string;
  pid: number;
  port: number;
}

function startDaemon(name: string, extra: string[]): Daemon {
  const home = join(work, name);
  homes.push(home);
  svpSync(["daemon", "start", "--home", home, "--port", "0", "--no-discovery", "--hello-interval", "1s", ...extra]);
  const st = JSON.parse(svpSync(["status", "--home", home, "--json"])) as { identity: { sid: string }; daemon: { pid: number; udp: string[] } };
  const v4 = st.daemon.udp.find((u) => u.startsWith("127.0.0.1:"))!;
  return { home, sid: st.identity.sid, pid: st.daemon.pid, port: Number(v4.split(":")[1]) };
}

async function waitPeer(a: Daemon, sid: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const st = JSON.parse(svpSync(["status", "--home", a.home, "--json"])) as { peers: { sid: string; live: boolean }[] };
    if (st.peers.some((p) => p.sid === sid && p.live)) return;
    await sleep(100);
  }
  throw new Error(`${a.home} never saw ${sid}`);
}

/** A long-running child; resolves once its output matches `ready`. */
function long(cmd: string[], env: NodeJS.ProcessEnv, ready: RegExp, stream: "stdout" | "stderr" = "stderr"): Promise<{ child: ChildProcess; match: RegExpMatchArray; output: () => string }> {
  const child = spawn(cmd[0]!, cmd.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let out = "";
  child.stdout!.on("data", (d: Uint8Array) => (out += stream === "stdout" ? new TextDecoder().decode(d) : ""));
  child.stderr!.on("data", (d: Uint8Array) => (out += stream === "stderr" ? new TextDecoder().decode(d) : ""));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd.join(" ")}: not ready after 20 s: ${out}`)), 20_000);
    const check = () => {
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m, output: () => out });
      }
    };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd.join(" ")} exited (${code}): ${out}`));
    });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  await Promise.race([done, sleep(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

function cpuSeconds(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      total += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // gone
    }
  }
  return total;
}

// ---------- the byte pattern, written by the sources and checked by the sink ----------

const PATTERN = new Uint8Array(64 * 1024 + 64 * 1024);
for (let i = 0, x = 0x9e3779b9; i < PATTERN.length / 2; i++) {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  PATTERN[i] = x & 0xff;
}
PATTERN.copyWithin(64 * 1024, 0, 64 * 1024);

interface Sink {
  port: number;
  /** Bytes received per connection, in accept order. */
  counts: number[];
  intact: boolean;
  close(): void;
}

async function startSink(): Promise<Sink> {
  const sockets = new Set<net.Socket>();
  const sink: Sink = { port: 0, counts: [], intact: true, close: () => undefined };
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    const i = sink.counts.push(0) - 1;
    let offset = 0;
    s.on("data", (d: Buffer) => {
      for (let o = 0; o < d.length; ) {
        const at = offset % (64 * 1024);
        const n = Math.min(d.length - o, 64 * 1024);
        if (Buffer.compare(d.subarray(o, o + n), PATTERN.subarray(at, at + n)) !== 0) sink.intact = false;
        o += n;
        offset += n;
      }
      sink.counts[i]! += d.length;
    });
    s.on("error", () => undefined);
    s.on("end", () => s.end());
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  sink.port = (srv.address() as net.AddressInfo).port;
  sink.close = () => {
    for (const s of sockets) s.destroy();
    srv.close();
  };
  return sink;
}

/** Write the pattern into a TCP connection as fast as it takes it until `until()` says stop. */
function source(port: number, stopAt: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, noDelay: true, allowHalfOpen: true });
    s.on("error", () => resolve());
    let offset = 0;
    const pump = () => {
      while (!stopAt()) {
        const at = offset % (64 * 1024);
        offset += 64 * 1024;
        if (!s.write(PATTERN.subarray(at, at + 64 * 1024))) return;
      }
      s.end();
      s.once("close", () => resolve());
    };
    s.on("drain", pump);
    s.once("connect", pump);
  });
}

interface RunResult {
  mibps: number;
  perStream: number[];
  intact: boolean;
  cpuMsPerMiB: number;
  /** CPU ms per MiB of the sending end (daemon A + svp connect) and the receiving end (daemon B + svp listen). */
  sendMsPerMiB: number;
  recvMsPerMiB: number;
}

async function measure(a: Daemon, b: Daemon, sc: Scenario, ext: boolean, mdpPort: number): Promise<RunResult> {
  const env = { ...baseEnv, SVP_MSP_EXTENSION: ext ? "on" : "off" };
  const sink = await startSink();
  const listen = await long([...SVP, "listen", "--home", b.home, "--forward", String(sink.port), String(mdpPort)], env, /listening on/);
  const connect = await long([...SVP, "connect", "--home", a.home, "--forward", "127.0.0.1:0", b.sid, String(mdpPort)], env, /127\.0\.0\.1:(\d+)/);
  const fwd = Number(connect.match[1]);
  const pids = [a.pid, b.pid, listen.child.pid!, connect.child.pid!];
  const seconds = Math.max(SECONDS, sc.seconds ?? 0);
  const end = Date.now() + seconds * 1000;
  const sources = Array.from({ length: sc.streams }, () => source(fwd, () => Date.now() >= end));
  await sleep(WARMUP_S * 1000);
  const c0 = cpuSeconds(pids);
  const s0 = cpuSeconds([a.pid, connect.child.pid!]);
  const b0 = [...sink.counts];
  const t0 = performance.now();
  await sleep(seconds * 1000 - WARMUP_S * 1000);
  const t1 = performance.now();
  const c1 = cpuSeconds(pids);
  const s1 = cpuSeconds([a.pid, connect.child.pid!]);
  const perStream = sink.counts.map((n, i) => (n - (b0[i] ?? 0)) / MiB / ((t1 - t0) / 1000));
  await Promise.race([Promise.all(sources), sleep(15_000)]);
  const total = perStream.reduce((x, y) => x + y, 0);
  const moved = total * ((t1 - t0) / 1000);
  await stop(connect.child);
  await stop(listen.child);
  sink.close();
  const per = (sec: number) => (moved > 0 ? (sec * 1000) / moved : NaN);
  return { mibps: total, perStream, intact: sink.intact && sink.counts.length === sc.streams, cpuMsPerMiB: per(c1 - c0), sendMsPerMiB: per(s1 - s0), recvMsPerMiB: per(c1 - c0 - (s1 - s0)) };
}

function jain(xs: number[]): number {
  const s = xs.reduce((a, b) => a + b, 0);
  const q = xs.reduce((a, b) => a + b * b, 0);
  return xs.length && q > 0 ? (s * s) / (xs.length * q) : NaN;
}

async function main(): Promise<void> {
  const rows: string[] = [];
  let port = 7100;
  for (const sc of SCENARIOS) {
    if (only && !only.has(sc.name)) continue;
    log(`${sc.name}: ${sc.what}`);
    const b = startDaemon(`${sc.name}-b`, []);
    let emu: Awaited<ReturnType<typeof long>> | undefined;
    let target = `127.0.0.1:${b.port}`;
    if (sc.link) {
      emu = await long([process.execPath, "--import", "tsx", `${root}test/helpers/link-emulator.ts`, "--target", `127.0.0.1:${b.port}`, ...sc.link, "--seed", "7", "--duration", "10m"], baseEnv, /listening (127\.0\.0\.1:\d+)/, "stdout");
      target = emu.match[1]!;
    }
    const a = startDaemon(`${sc.name}-a`, ["--peer", target]);
    await waitPeer(a, b.sid);
    const results: Record<string, RunResult> = {};
    for (const ext of [true, false]) {
      log(`  ${ext ? "extension" : "servald's window"}`);
      results[ext ? "ext" : "classic"] = await measure(a, b, sc, ext, port++);
    }
    let queue = "";
    if (emu) {
      const statsLine = new Promise<string>((r) => emu!.child.stdout!.on("data", () => r(emu!.output())));
      await stop(emu.child);
      const out = await Promise.race([statsLine, sleep(2000).then(() => emu!.output())]);
      const m = out.match(/\{"event":"stats".*\}/);
      if (m && sc.rate) {
        const s = JSON.parse(m[0]) as { ab: { maxQueueDelayMs: number; meanQueueDelayMs: number; queueDrops: number } };
        queue = `queueing delay mean ${s.ab.meanQueueDelayMs.toFixed(0)} ms, max ${s.ab.maxQueueDelayMs.toFixed(0)} ms; ${s.ab.queueDrops} queue drops (both runs)`;
      }
    }
    svpSync(["daemon", "stop", "--home", a.home]);
    svpSync(["daemon", "stop", "--home", b.home]);
    const e = results.ext!;
    const c = results.classic!;
    const notes = [sc.rate ? `${((e.mibps / (sc.rate / MiB)) * 100).toFixed(0)}% of the bottleneck` : "", sc.streams > 1 ? `Jain's index ${jain(e.perStream).toFixed(3)} (servald's window: ${jain(c.perStream).toFixed(3)})` : "", queue].filter(Boolean).join("; ");
    const cpu = (r: RunResult) => `${r.cpuMsPerMiB.toFixed(0)} (${r.sendMsPerMiB.toFixed(0)} + ${r.recvMsPerMiB.toFixed(0)})`;
    rows.push(`| ${sc.what} | ${e.mibps.toFixed(2)} | ${e.intact ? "yes" : "**no**"} | ${cpu(e)} | ${c.mibps.toFixed(2)} | ${c.intact ? "yes" : "**no**"} | ${cpu(c)} | ${(e.mibps / c.mibps).toFixed(1)}× | ${notes} |`);
  }
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  process.stdout.write(
    [
      `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus().length} × ${cpu}, load average ${loadavg()[0]!.toFixed(2)} at the end. One stream (eight in the last row) through \`svp connect --forward\` → node A → link emulator → node B → \`svp listen --forward\`, ${SECONDS - WARMUP_S} s measured (eight streams: ${Math.max(SECONDS, 16) - WARMUP_S} s) after ${WARMUP_S} s of warm-up. CPU: user + system of the two daemons, svp listen and svp connect, per MiB delivered, in ms: all four (sending end: daemon A and svp connect + receiving end: daemon B and svp listen).`,
      "",
      "| link | svp extension MiB/s | intact | CPU ms/MiB (send + receive) | servald's window MiB/s | intact | CPU ms/MiB (send + receive) | ratio | notes |",
      "|---|---|---|---|---|---|---|---|---|",
      ...rows,
      "",
    ].join("\n"),
  );
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
