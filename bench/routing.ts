/**
 * The routing part of `npm run bench` (bench/run.ts copies its stdout into RESULTS.md's
 * "Routing" section):
 *
 *   node --expose-gc --import tsx bench/routing.ts [--seconds N] [--rounds N] [--skip sim,sim1000,reroute,hops] [--svp CMD]
 *
 *   - Scale, simulated in-process (bench/routing-sim.ts): 100 and 1,000 routers in a random
 *     geometric graph: convergence time in hello intervals, routing bytes per node per second
 *     on the wire in steady state (target: <= 1 KiB/s at 100 nodes, default interval), JS
 *     heap per route.
 *   - Reroute time, real daemons in network namespaces (a diamond A-B-D, A-C-D on veth
 *     links): the node A's route to D goes through is stopped cleanly (`svp daemon stop`) or
 *     killed (SIGKILL); measured until A's route to D goes through the other node, and until
 *     a datagram A sends (one every 10 ms) reaches D again; at the default hello interval
 *     (5 s) and at 1 s.
 *   - MSP through 1, 2 and 4 hops, real daemons in a chain of 5 namespaces: bulk
 *     throughput (this process runs both MSP ends over the two end daemons' local APIs) and
 *     the first-byte time (connect, send 1 byte, first byte of the echo), with classic MSP
 *     (servald's window of 4 packets) and with svp's MSP extension (the default between svp
 *     nodes). Target: 2 hops >= 0.7 x one hop.
 *
 * Network namespaces need root; without them the namespace parts say so and are skipped
 * (nothing falls back to the host's network). Every namespace made here is removed at the
 * end, also on failure (see test/e2e/netns.ts). Progress on stderr.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { openEmbeddedTransport, type EmbeddedTransport } from "../src/node/embedded-transport.ts";
import { connectMsp } from "../src/msp/connect.ts";
import { listenMsp } from "../src/msp/listener.ts";
import type { MspStream } from "../src/msp/msp-stream.ts";
import { fromHex } from "../src/bytes/hex.ts";
import { connectUnix } from "../src/platform/net.ts";
import { socketPath } from "../src/platform/instance-files.ts";
import { type DaemonNode, NetnsLab, netnsUnavailable } from "../test/e2e/netns.ts";
import { freshSvpCommand, median, sleep } from "./common.ts";
import { simulate, type SimResult } from "./routing-sim.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    skip: { type: "string", default: "" },
    svp: { type: "string" },
  },
});
const SECONDS = Number(opts.seconds);
if (!(SECONDS >= 0.5 && SECONDS <= 30)) throw new Error("--seconds must be 0.5..30");
const ROUNDS = Number(opts.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 9) throw new Error("--rounds must be an integer 1..9");
const skip = new Set((opts.skip ?? "").split(",").filter(Boolean));
const MiB = 1024 * 1024;
const log = (m: string) => process.stderr.write(`bench/routing: ${m}\n`);
const fmt = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : "–");
const work = mkdtempSync(join(tmpdir(), "svp-bench-routing-"));
const labs: NetnsLab[] = [];

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no result within ${ms} ms`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function svpCommand(): Promise<string[]> {
  return freshSvpCommand(opts.svp, work);
}

async function api(home: string): Promise<EmbeddedTransport> {
  const stream = await connectUnix(socketPath(home), { timeoutMs: 2000 });
  return openEmbeddedTransport(stream, { name: "bench/routing", pid: process.pid, requestTimeoutMs: 10_000, defer: (fn) => void setImmediate(fn) });
}

async function until(pred: () => boolean | Promise<boolean>, what: string, ms: number, stepMs = 10): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

// ---------- scale (simulated) ----------

function simSection(): string {
  const rows: SimResult[] = [];
  if (!skip.has("sim")) {
    log("simulating 100 nodes");
    rows.push(simulate(100, 8, 5000, 1, 3));
  }
  if (!skip.has("sim1000")) {
    log("simulating 1,000 nodes (a few minutes)");
    rows.push(simulate(1000, 10, 5000, 1, 1));
  }
  if (!rows.length) return "";
  const head = "| nodes | links (mean degree) | diameter | converged after | all routes shortest (at the end) | routing bytes/node/s, steady | (during convergence) | hellos bytes/node/s | JS heap per route | sim wall time |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |";
  const body = rows
    .map(
      (r) =>
        `| ${r.nodes} | ${r.links} (${fmt(r.meanDegree, 1)}) | ${r.diameter} hops | ${fmt(r.convergeMs)} ms = ${fmt(r.convergeHellos, 2)} hello intervals | ${r.shortest ? "yes" : `${r.longer} of ${r.nodes * (r.nodes - 1) - r.beyondTtl} longer (by ${fmt(r.meanExtraHops, 1)} hops on average)`} | **${fmt(r.steadyBytesPerNodePerS)}** | ${fmt(r.startBytesPerNodePerS)} | ${fmt(r.helloBytesPerNodePerS)} | ${fmt(r.heapPerRouteBytes)} B | ${fmt(r.wallMs / 1000, 1)} s |`,
    )
    .join("\n");
  return (
    `### Scale (simulated in-process: bench/routing-sim.ts)\n\n` +
    `Routers of src/node/router.ts in a random geometric graph (seed 1; re-drawn until connected), default hello interval 5 s (update interval 20 s), 1-5 ms per packet, every link up at a random moment within the first hello interval. ` +
    `"Converged": every node has a route to every other within 31 hops (MDP's TTL; pairs further apart get none, by design) (time from the start, so it includes the links coming up); "at the end": after the steady-state measurement, whether every route has the fewest hops (all links cost the same here); routing bytes on the wire (plaintext + sealed header and tag + UDP/IPv4), steady state over ${rows.length > 1 ? "3 (100 nodes) or 1 (1,000 nodes)" : "3"} update intervals after every node's first periodic dump; hellos computed (a request and a reply per link and interval); heap: the routers' JS heap after convergence divided by the routes (all routers of the run, --expose-gc).\n\n${head}\n${body}`
  );
}

// ---------- reroute (namespaces) ----------

interface Diamond {
  lab: NetnsLab;
  A: DaemonNode;
  B: DaemonNode;
  C: DaemonNode;
  D: DaemonNode;
}

async function diamond(svp: string[], hello: string): Promise<Diamond> {
  const lab = new NetnsLab(svp);
  labs.push(lab);
  const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => lab.ns(`r${n}`)) as [string, string, string, string];
  lab.link(a, "10.234.1.1/24", b, "10.234.1.2/24");
  lab.link(a, "10.234.2.1/24", c, "10.234.2.2/24");
  lab.link(b, "10.234.3.1/24", d, "10.234.3.2/24");
  lab.link(c, "10.234.4.1/24", d, "10.234.4.2/24");
  const h = ["--hello-interval", hello];
  const A = await lab.daemon("A", a, [...h, "--peer", "10.234.1.2:4111", "--peer", "10.234.2.2:4111"]);
  const B = await lab.daemon("B", b, [...h, "--peer", "10.234.3.2:4111"]);
  const C = await lab.daemon("C", c, [...h, "--peer", "10.234.4.2:4111"]);
  const D = await lab.daemon("D", d, h);
  return { lab, A, B, C, D };
}

interface Reroute {
  routeMs: number;
  trafficMs: number;
}

async function reroute(svp: string[], hello: string, how: "stop" | "kill"): Promise<Reroute> {
  const { lab, A, B, C, D } = await diamond(svp, hello);
  const ta = await api(A.home);
  const td = await api(D.home);
  try {
    const dSid = fromHex(D.sid)!;
    const next = async () => (await ta.status()).routes?.find((r) => r.sid === D.sid && r.hops === 2)?.nextHop;
    await until(async () => (await next()) !== undefined, "A's 2-hop route to D", 120_000, 50);
    // Both middle nodes must be neighbours of D (links come up at the next hello after a
    // daemon starts), then a moment for the announcements: a mesh in use, not one starting.
    for (const m of [B, C]) {
      const tm = await api(m.home);
      try {
        await until(async () => (await tm.status()).routes?.some((r) => r.sid === D.sid && r.hops === 1) ?? false, `${m.name}'s link to D`, 60_000, 50);
      } finally {
        tm.close();
      }
    }
    await sleep(500);
    const via = (await next())!;
    const [gone, stays] = via === B.sid ? [B, C] : [C, B];
    // A datagram A -> D every 10 ms, numbered with the time it was sent.
    const rx = await td.bind(77);
    const tx = await ta.bind(0);
    let lastArrivalSentAt = 0;
    rx.on("message", (p) => (lastArrivalSentAt = Math.max(lastArrivalSentAt, new DataView(p.buffer, p.byteOffset).getFloat64(0))));
    let pinging = true;
    const pinger = (async () => {
      while (pinging) {
        const b = new Uint8Array(8);
        new DataView(b.buffer).setFloat64(0, performance.now());
        tx.send({ sid: dSid, port: 77 }, b);
        await sleep(10);
      }
    })();
    await until(() => lastArrivalSentAt > 0, "datagrams flowing", 10_000);
    // The stop request goes straight to the daemon's local API (as `svp daemon stop` sends
    // it, without the CLI's start-up time in the figure).
    const tg = how === "stop" ? await api(gone.home) : undefined;
    const t0 = performance.now();
    if (tg) {
      await tg.shutdownDaemon();
      tg.close();
    } else gone.proc.child.kill("SIGKILL");
    let routeMs = NaN;
    let trafficMs = NaN;
    await until(
      async () => {
        if (Number.isNaN(routeMs) && (await next()) === stays.sid) routeMs = performance.now() - t0;
        if (Number.isNaN(trafficMs) && lastArrivalSentAt > t0 && !Number.isNaN(routeMs)) trafficMs = lastArrivalSentAt - t0;
        return !Number.isNaN(routeMs) && !Number.isNaN(trafficMs);
      },
      `the reroute (${how}, hello ${hello})`,
      60_000,
      5,
    );
    pinging = false;
    await pinger;
    return { routeMs, trafficMs };
  } finally {
    ta.close();
    td.close();
    await lab.close();
    labs.splice(labs.indexOf(lab), 1);
  }
}

async function rerouteSection(svp: string[]): Promise<string> {
  const rows: string[] = [];
  for (const hello of ["5s", "1s"]) {
    for (const how of ["stop", "kill"] as const) {
      const rs: Reroute[] = [];
      const rounds = how === "kill" && hello === "5s" ? 1 : Math.min(ROUNDS, 2);
      for (let i = 0; i < rounds; i++) {
        log(`reroute after ${how === "stop" ? "svp daemon stop" : "kill -9"}, hello ${hello}, round ${i + 1}/${rounds}`);
        rs.push(await reroute(svp, hello, how));
      }
      const timeout = hello === "5s" ? 17_500 : 3_500;
      rows.push(
        `| ${how === "stop" ? "clean stop (`svp daemon stop`)" : "crash (kill -9)"} | ${hello} (peer timeout ${fmt(timeout / 1000, 1)} s) | ${fmt(median(rs.map((r) => r.routeMs)))} ms | ${fmt(median(rs.map((r) => r.trafficMs)))} ms | ${rounds} |`,
      );
    }
  }
  return (
    `### Reroute time (real daemons, network namespaces)\n\n` +
    `A diamond A-B-D, A-C-D of four \`svp daemon run\` in their own network namespaces, veth links, static peers; the middle node A's route to D goes through is stopped: cleanly (the stop request \`svp daemon stop\` sends, over the local API) or with SIGKILL. ` +
    `"Route": from the stop until A's status shows the route to D through the other node; "traffic": until a datagram A sent (one every 10 ms) after the stop arrives at D. Median of the rounds.\n\n` +
    `| how the node goes | hello interval | route moved | traffic flows again | rounds |\n| --- | --- | --- | --- | --- |\n${rows.join("\n")}`
  );
}

// ---------- MSP through hops (namespaces) ----------

type MspMode = "classic" | "extension";

/** User + system CPU seconds of `pid` so far (NaN when gone). */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

interface HopResult {
  hops: number;
  mode: MspMode;
  /** CPU ms per MiB moved: the sending daemon, each forwarding daemon (mean), the receiving daemon, this process (both MSP ends). */
  cpu: { first: number; forwarder: number; last: number; self: number };
  mibps: number;
  firstByteMs: number;
  rttMs: number;
}

async function mspThroughHops(t1: EmbeddedTransport, tn: EmbeddedTransport, hops: number, mode: MspMode, port: number, pids: number[]): Promise<HopResult> {
  const o = mode === "classic" ? { window: 4, extension: false } : { extension: true };
  const l = await listenMsp(tn, port, { ...o, maxConnections: 64 });
  let received = 0;
  l.on("accept", (x: MspStream) => {
    x.on("data", (d) => {
      if (d.length === 1 && d[0] === 0x78) x.write(d.slice());
      else received += d.length;
    });
    x.resume();
  });
  try {
    // First byte: connect, send one byte, wait for its echo (a new stream each time).
    const fb: number[] = [];
    for (let i = 0; i < 9; i++) {
      const t0 = performance.now();
      const s = await within(connectMsp(t1, { sid: tn.localSid, port }, o), 15_000, "MSP connect");
      await within(new Promise<void>((resolve) => (s.once("data", () => resolve()), s.resume(), s.write(new Uint8Array([0x78])))), 15_000, "first byte");
      fb.push(performance.now() - t0);
      s.abort();
    }
    // Bulk, one stream.
    const s = await within(connectMsp(t1, { sid: tn.localSid, port }, o), 15_000, "MSP connect");
    const chunk = new Uint8Array(64 * 1024).fill(0xa5);
    let stop = false;
    const pump = () => {
      while (!stop && s.writable && s.write(chunk));
    };
    s.on("drain", pump);
    s.resume();
    pump();
    await sleep(500);
    const b0 = received;
    const t0 = performance.now();
    const chain = pids.slice(0, hops + 1);
    const c0 = chain.map(cpuOf);
    const s0 = process.cpuUsage();
    await sleep(SECONDS * 1000);
    const bytes = received - b0;
    const wall = (performance.now() - t0) / 1000;
    const c1 = chain.map(cpuOf);
    const s1 = process.cpuUsage(s0);
    const mib = bytes / MiB;
    const per = (i: number) => ((c1[i]! - c0[i]!) * 1000) / mib;
    const middle = chain.slice(1, -1).map((_, k) => per(k + 1));
    const cpu = { first: per(0), forwarder: middle.length ? middle.reduce((x, y) => x + y, 0) / middle.length : NaN, last: per(hops), self: (s1.user + s1.system) / 1000 / mib };
    stop = true;
    const rttMs = s.stats.rttMs ?? NaN;
    s.abort();
    await sleep(200);
    return { hops, mode, mibps: bytes / MiB / wall, firstByteMs: median(fb), rttMs, cpu };
  } finally {
    l.abort();
  }
}

async function hopsSection(svp: string[]): Promise<string> {
  const lab = new NetnsLab(svp);
  labs.push(lab);
  const clients: EmbeddedTransport[] = [];
  try {
    const ns = [1, 2, 3, 4, 5].map((i) => lab.ns(`h${i}`));
    for (let i = 0; i < 4; i++) lab.link(ns[i]!, `10.235.${i}.1/24`, ns[i + 1]!, `10.235.${i}.2/24`);
    const nodes: DaemonNode[] = [];
    for (let i = 0; i < 5; i++) {
      const peers = [...(i > 0 ? ["--peer", `10.235.${i - 1}.1:4111`] : []), ...(i < 4 ? ["--peer", `10.235.${i}.2:4111`] : [])];
      nodes.push(await lab.daemon(`h${i + 1}`, ns[i]!, ["--hello-interval", "1s", ...peers]));
    }
    const t = await Promise.all(nodes.map(async (n) => api(n.home)));
    clients.push(...t);
    await until(() => t[0]!.reachability(fromHex(nodes[4]!.sid)!) === "reachable", "a route over 4 hops", 30_000, 50);
    const results: HopResult[] = [];
    let port = 9000;
    for (const mode of ["classic", "extension"] as const) {
      for (const hops of [1, 2, 4]) {
        const per: HopResult[] = [];
        for (let r = 0; r < ROUNDS; r++) {
          log(`MSP (${mode}) over ${hops} hop(s), round ${r + 1}/${ROUNDS}`);
          per.push(await mspThroughHops(t[0]!, t[hops]!, hops, mode, port++, nodes.map((x) => x.proc.child.pid!)));
        }
        const m = (f: (x: HopResult) => number) => median(per.map(f));
        results.push({ hops, mode, mibps: m((x) => x.mibps), firstByteMs: m((x) => x.firstByteMs), rttMs: m((x) => x.rttMs), cpu: { first: m((x) => x.cpu.first), forwarder: m((x) => x.cpu.forwarder), last: m((x) => x.cpu.last), self: m((x) => x.cpu.self) } });
      }
    }
    const rows = results.map((r) => {
      const one = results.find((x) => x.mode === r.mode && x.hops === 1)!;
      const c = r.cpu;
      return `| ${r.hops} | ${r.mode === "classic" ? "classic (window 4, servald's)" : "svp extension"} | ${fmt(r.mibps, 2)} | ${fmt(r.mibps / one.mibps, 2)}× | ${fmt(r.firstByteMs, 1)} ms | ${fmt(r.rttMs, 1)} ms | ${fmt(c.first)} / ${Number.isFinite(c.forwarder) ? fmt(c.forwarder) : "–"} / ${fmt(c.last)} / ${fmt(c.self)} |`;
    });
    return (
      `### MSP through 1, 2 and 4 hops (real daemons, network namespaces)\n\n` +
      `A chain of five \`svp daemon run\` in network namespaces joined by veth links (path MTU 1160); this process runs both MSP ends over the end daemons' local APIs (as svp connect and svp listen would), so every byte crosses the chain. ` +
      `Bulk: one stream for ${SECONDS} s after 0.5 s of warm-up, median of ${ROUNDS}; first byte: connect, send 1 byte, first byte of its echo back, median of 9 per round; RTT: MSP's smoothed estimate during the bulk run; CPU: user + system time of each process over the bulk run per MiB delivered (all five daemons and this process share the machine's ${availableParallelism()} cores). Target: 2 hops >= 0.7× one hop.\n\n` +
      `| hops | MSP | MiB/s | vs 1 hop | first byte | RTT under load | CPU ms per MiB: sending daemon / each forwarder / receiving daemon / MSP ends |\n| --- | --- | --- | --- | --- | --- | --- |\n${rows.join("\n")}`
    );
  } finally {
    for (const c of clients) c.close();
    await lab.close();
    labs.splice(labs.indexOf(lab), 1);
  }
}

// ---------- main ----------

function machine(): string {
  return `${availableParallelism()} × ${cpus()[0]?.model ?? "unknown CPU"}, Linux ${release()}, Node ${process.versions.node}`;
}

async function main(): Promise<void> {
  const load0 = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  const parts: string[] = [];
  const sim = simSection();
  if (sim) parts.push(sim);
  const wantNs = !skip.has("reroute") || !skip.has("hops");
  if (wantNs) {
    const why = netnsUnavailable();
    if (why) parts.push(`### Reroute and hops\n\nNot measured: ${why}. These need private network namespaces (root); nothing here falls back to the host's network.`);
    else {
      const svp = await svpCommand();
      if (!skip.has("reroute")) parts.push(await rerouteSection(svp));
      if (!skip.has("hops")) parts.push(await hopsSection(svp));
    }
  }
  const load1 = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  process.stdout.write(`Run ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} on ${machine()}; load average ${load0} at the start, ${load1} at the end (other jobs share this machine).\n\n${parts.join("\n\n")}\n`);
}

let cleaning = false;
async function cleanup(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  for (const l of labs) await l.close();
  rmSync(work, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void cleanup().then(() => process.exit(130)));

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench/routing: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup();
    process.exit(1);
  },
);
