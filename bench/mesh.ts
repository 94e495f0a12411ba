/**
 * The mesh part of `npm run bench`: TCP over MSP through two embedded nodes on one machine
 * (two `svp daemon`s talking UDP on loopback), next to direct TCP in the same run.
 *
 *   node --import tsx bench/mesh.ts [--seconds N] [--rounds N] [--svp CMD]
 *
 * Layout: this process is the load generator *and* the target servers (like
 * bench/loadgen.c: both ends in one process, every svp part in its own process). Node B
 * runs `svp listen --forward` in front of four targets (sink, source, small HTTP page,
 * echo); node A runs `svp socks` and `svp connect --forward` for each. Each figure is
 * measured three ways: direct TCP to the target, through svp socks (SOCKS5 with the name
 * `<SID>.serval`), and through svp connect --forward.
 *
 * Measured: bulk throughput (1 stream up, 1 stream down, 8 streams up; MiB/s), time to
 * first byte of a small HTTP request on a new connection, connection setup rate
 * (sequential: connect, 32-byte request, 32-byte answer, close), and the round trip of
 * one small message on an open stream, from which the MSP window limit
 * (window × message size / RTT) is computed. CPU: user + system seconds of all svp
 * processes (daemons included) per MiB moved. Then MSP alone through the same two daemons
 * (both ends in this process, on the daemons' local API): one stream with servald's window
 * of 4 messages and with larger windows (possible between two svp peers), with MSP's own
 * round-trip estimate: where a larger window moves more, the window is the limit.
 *
 * Prints a markdown section on stdout (progress on stderr); bench/run.ts copies it into
 * bench/RESULTS.md. Loopback only; every wait bounded; every process stopped at the end.
 */

import { mkdtempSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectEmbedded } from "../src/platform/embedded-node.ts";
import type { EmbeddedTransport } from "../src/node/embedded-transport.ts";
import { connectMsp } from "../src/msp/connect.ts";
import { listenMsp } from "../src/msp/listener.ts";
import { SvpRunner, builtSvpCommand, keepWriting, median, root, sleep } from "./common.ts";

const { values: opts } = parseArgs({
  options: { seconds: { type: "string", default: "2" }, rounds: { type: "string", default: "3" }, svp: { type: "string" } },
});
const SECONDS = Math.max(0.5, Number(opts.seconds));
const ROUNDS = Math.max(1, Math.floor(Number(opts.rounds)));
const WARMUP_S = 0.5;

const log = (m: string) => process.stderr.write(`bench/mesh: ${m}\n`);
const SVP = builtSvpCommand(opts.svp) ?? [process.execPath, "--import", "tsx", `${root}cli/main.ts`];

const work = mkdtempSync(join(tmpdir(), "svp-bench-mesh-"));
const env = { ...process.env, SVP_DISCOVERY_DIR: join(work, "discovery"), SVP_MESH: "embedded", NO_COLOR: "1" };
const daemonPids: number[] = [];

const svp = new SvpRunner(SVP, work, { env, readyMs: 20_000 });
const svpSync = (args: string[]) => svp.sync(args);
const svpLong = (args: string[], ready: RegExp) => svp.long(args, ready);

/** CPU seconds (user + system) used so far by these processes. */
function cpuSeconds(pids: number[]): number {
  const tck = 100;
  let total = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      total += (Number(f[11]) + Number(f[12])) / tck;
    } catch {
      // gone
    }
  }
  return total;
}

// ---------- targets (in this process) ----------

interface Targets {
  sink: number;
  source: number;
  http: number;
  echo: number;
  received: { bytes: number };
  close(): void;
}

async function startTargets(): Promise<Targets> {
  const received = { bytes: 0 };
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const serve = async (onConn: (s: net.Socket) => void): Promise<number> => {
    const srv = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
      onConn(s);
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    return (srv.address() as net.AddressInfo).port;
  };
  const chunk = new Uint8Array(64 * 1024).fill(0x5a);
  const page = new TextEncoder().encode("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello, mesh\n");
  return {
    sink: await serve((s) => {
      s.on("data", (d: Uint8Array) => (received.bytes += d.length));
      s.on("end", () => s.end());
    }),
    source: await serve((s) => {
      const pump = () => {
        while (!s.destroyed && s.write(chunk));
      };
      s.on("drain", pump);
      s.on("end", () => s.destroy());
      pump();
    }),
    http: await serve((s) => {
      let head = "";
      s.on("data", (d: Uint8Array) => {
        head += new TextDecoder().decode(d);
        if (head.includes("\r\n\r\n")) s.end(page);
      });
    }),
    echo: await serve((s) => {
      s.on("data", (d: Uint8Array) => s.write(d));
      s.on("end", () => s.end());
    }),
    received,
    close() {
      for (const s of sockets) s.destroy();
      for (const srv of servers) srv.close();
    },
  };
}

// ---------- clients ----------

/** How a client reaches a target: a TCP port (direct or a forward) or svp socks with a name. */
type Route = { kind: "tcp"; port: number } | { kind: "socks"; proxyPort: number; host: string; port: number };

function open(route: Route): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const port = route.kind === "tcp" ? route.port : route.proxyPort;
    const s = net.connect({ host: "127.0.0.1", port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(() => (s.destroy(), reject(new Error("connect timed out"))), 15_000);
    s.once("error", (e) => (clearTimeout(timer), reject(e)));
    s.once("connect", () => {
      if (route.kind === "tcp") {
        clearTimeout(timer);
        return resolve(s);
      }
      const h = new TextEncoder().encode(route.host);
      s.write(Uint8Array.of(5, 1, 0, 5, 1, 0, 3, h.length, ...h, route.port >> 8, route.port & 0xff));
      let got = new Uint8Array(0);
      const onData = (d: Uint8Array) => {
        const b = new Uint8Array(got.length + d.length);
        b.set(got);
        b.set(d, got.length);
        got = b;
        if (got.length < 12) return;
        s.off("data", onData);
        s.pause();
        clearTimeout(timer);
        if (got[1] !== 0 || got[3] !== 0) return reject(new Error(`SOCKS5 refused: reply ${got[3]}`));
        if (got.length > 12) s.unshift(got.subarray(12));
        resolve(s);
      };
      s.on("data", onData);
    });
  });
}

/** Bytes per second over the window after the warm-up. */
async function bulk(route: Route, dir: "up" | "down", streams: number, targets: Targets): Promise<number> {
  const socks = await Promise.all(Array.from({ length: streams }, () => open(route)));
  let down = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0xa5);
  let stop = false;
  for (const s of socks) {
    s.on("error", () => {});
    if (dir === "up") {
      const pump = () => {
        while (!stop && !s.destroyed && s.write(chunk));
      };
      s.on("drain", pump);
      pump();
    } else {
      s.on("data", (d: Uint8Array) => (down += d.length));
      s.resume();
    }
  }
  const count = () => (dir === "up" ? targets.received.bytes : down);
  await sleep(WARMUP_S * 1000);
  const b0 = count();
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const bytes = count() - b0;
  const secs = (performance.now() - t0) / 1000;
  stop = true;
  for (const s of socks) s.destroy();
  await sleep(300);
  return bytes / secs;
}

/** Median ms from opening a connection to the first byte of the HTTP answer, over `n` sequential requests. */
async function ttfb(route: Route, n: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const s = await open(route);
    s.write("GET / HTTP/1.0\r\nHost: bench\r\n\r\n");
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no answer within 15 s")), 15_000);
      s.once("data", () => {
        clearTimeout(timer);
        xs.push(performance.now() - t0);
        resolve();
      });
      s.once("error", (e) => (clearTimeout(timer), reject(e)));
      s.resume();
    });
    s.destroy();
  }
  return median(xs);
}

/** Sequential connections per second: connect, 32 bytes each way, close. */
async function setupRate(route: Route): Promise<number> {
  const msg = new Uint8Array(32).fill(0x33);
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  let n = 0;
  while (performance.now() < end) {
    const s = await open(route);
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      const timer = setTimeout(() => reject(new Error("no echo within 15 s")), 15_000);
      s.on("data", (d: Uint8Array) => {
        got += d.length;
        if (got >= 32) {
          clearTimeout(timer);
          resolve();
        }
      });
      s.once("error", (e) => (clearTimeout(timer), reject(e)));
      s.resume();
      s.write(msg);
    });
    s.end();
    s.destroy();
    n++;
  }
  return n / ((performance.now() - t0) / 1000);
}

/** Round trips (ms) of a 1-byte message on one open stream: median and minimum. */
async function rtt(route: Route, n = 200): Promise<{ median: number; min: number }> {
  const s = await open(route);
  const xs: number[] = [];
  s.resume();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no echo within 15 s")), 15_000);
      s.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
      s.write("x");
    });
    xs.push(performance.now() - t0);
  }
  s.destroy();
  return { median: median(xs), min: Math.min(...xs) };
}

/** MSP alone: one stream from A to B through the daemons with `window`; MiB/s and MSP's smoothed RTT. */
async function mspAlone(ta: EmbeddedTransport, tb: EmbeddedTransport, window: number, port: number): Promise<{ mibps: number; rttMs: number }> {
  const l = await listenMsp(tb, port, { window });
  let received = 0;
  l.on("accept", (x) => {
    x.on("data", (d) => (received += d.length));
    x.on("end", () => x.closeWrite());
    x.resume();
  });
  const s = await connectMsp(ta, { sid: tb.localSid, port }, { window });
  s.resume();
  const stopWriting = keepWriting(s);
  await sleep(WARMUP_S * 1000);
  const b0 = received;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const bytes = received - b0;
  const secs = (performance.now() - t0) / 1000;
  stopWriting();
  const rttMs = s.stats.rttMs ?? NaN;
  s.abort();
  l.abort();
  await sleep(300);
  return { mibps: bytes / secs / (1024 * 1024), rttMs };
}

// ---------- main ----------

interface PathRoutes {
  label: string;
  sink: Route;
  source: Route;
  http: Route;
  echo: Route;
}

async function main(): Promise<void> {
  log(`svp: ${SVP.join(" ")}; ${SECONDS} s per measurement, ${ROUNDS} rounds`);
  const targets = await startTargets();
  const homeA = join(work, "a");
  const homeB = join(work, "b");
  for (const home of [homeA, homeB]) {
    const out = svpSync(["daemon", "start", "--home", home]);
    const pid = Number(/pid (\d+)/.exec(out)?.[1]);
    if (pid) daemonPids.push(pid);
  }
  const sidB = svpSync(["id", "--home", homeB]).trim();
  for (let i = 0; ; i++) {
    if (svpSync(["status", "--home", homeA, "--json"]).includes(`"sid": "${sidB}"`)) break;
    if (i > 100) throw new Error("node A does not see node B");
    await sleep(100);
  }
  const mdp = { sink: 1001, source: 1002, http: 80, echo: 1003 } as const;
  const ready = /listening on [0-9A-F]{64}:\d+/;
  await Promise.all(
    (Object.keys(mdp) as (keyof typeof mdp)[]).map((k) => svpLong(["listen", "--home", homeB, "--forward", String(targets[k]), String(mdp[k])], ready)),
  );
  const socks = await svpLong(["socks", "--home", homeA, "--listen", "127.0.0.1:0"], /listening on 127\.0\.0\.1:(\d+)/);
  const socksPort = Number(socks.match[1]);
  const forwards: Record<string, number> = {};
  for (const k of Object.keys(mdp) as (keyof typeof mdp)[]) {
    const f = await svpLong(["connect", "--home", homeA, "--forward", "127.0.0.1:0", sidB, String(mdp[k])], /listening on 127\.0\.0\.1:(\d+)/);
    forwards[k] = Number(f.match[1]);
  }
  const svpPids = [...daemonPids, ...svp.children.map((c) => c.pid!).filter(Boolean)];
  const host = `${sidB}.serval`;
  const paths: PathRoutes[] = [
    { label: "direct TCP", sink: { kind: "tcp", port: targets.sink }, source: { kind: "tcp", port: targets.source }, http: { kind: "tcp", port: targets.http }, echo: { kind: "tcp", port: targets.echo } },
    {
      label: "svp socks → MSP",
      sink: { kind: "socks", proxyPort: socksPort, host, port: mdp.sink },
      source: { kind: "socks", proxyPort: socksPort, host, port: mdp.source },
      http: { kind: "socks", proxyPort: socksPort, host, port: mdp.http },
      echo: { kind: "socks", proxyPort: socksPort, host, port: mdp.echo },
    },
    {
      label: "svp connect --forward → MSP",
      sink: { kind: "tcp", port: forwards.sink! },
      source: { kind: "tcp", port: forwards.source! },
      http: { kind: "tcp", port: forwards.http! },
      echo: { kind: "tcp", port: forwards.echo! },
    },
  ];

  const rows: { key: string; label: string; unit: string; digits: number }[] = [
    { key: "up1", label: "bulk 1 stream up", unit: "MiB/s", digits: 2 },
    { key: "down1", label: "bulk 1 stream down", unit: "MiB/s", digits: 2 },
    { key: "up8", label: "bulk 8 streams up", unit: "MiB/s", digits: 2 },
    { key: "ttfb", label: "time to first byte, small HTTP request on a new connection", unit: "ms", digits: 1 },
    { key: "rate", label: "connection setup, sequential (32 B each way)", unit: "conn/s", digits: 0 },
    { key: "rtt", label: "round trip of 1 byte on an open stream (median)", unit: "ms", digits: 2 },
    { key: "rttMin", label: "round trip of 1 byte on an open stream (fastest)", unit: "ms", digits: 2 },
    { key: "cpu", label: "CPU of all svp processes per MiB (bulk 1 stream up)", unit: "ms/MiB", digits: 0 },
  ];
  const samples = new Map<string, number[]>();
  const add = (path: string, key: string, v: number) => samples.set(`${path}/${key}`, [...(samples.get(`${path}/${key}`) ?? []), v]);
  const MiB = 1024 * 1024;
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of paths) {
      const mesh = p.label !== "direct TCP";
      log(`round ${round + 1}/${ROUNDS}: ${p.label}`);
      const c0 = cpuSeconds(svpPids);
      const up1 = await bulk(p.sink, "up", 1, targets);
      const c1 = cpuSeconds(svpPids);
      add(p.label, "up1", up1 / MiB);
      if (mesh) add(p.label, "cpu", ((c1 - c0) * 1000) / ((up1 * (SECONDS + WARMUP_S)) / MiB));
      add(p.label, "down1", (await bulk(p.source, "down", 1, targets)) / MiB);
      add(p.label, "up8", (await bulk(p.sink, "up", 8, targets)) / MiB);
      add(p.label, "ttfb", await ttfb(p.http, 10));
      const r = await rtt(p.echo, 100);
      add(p.label, "rtt", r.median);
      add(p.label, "rttMin", r.min);
      add(p.label, "rate", await setupRate(p.echo));
    }
  }
  const get = (path: string, key: string) => median(samples.get(`${path}/${key}`) ?? []);
  const fmt = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : "–");
  const head = ["", ...paths.map((p) => p.label)];
  const body = rows.map((r) => [
    `${r.label}, ${r.unit}`,
    ...paths.map((p) => {
      const v = get(p.label, r.key);
      const d = get("direct TCP", r.key);
      const ratio = p.label !== "direct TCP" && Number.isFinite(v) && Number.isFinite(d) && d > 0 && r.key !== "cpu" ? ` (${(v / d).toFixed(r.key === "ttfb" || r.key.startsWith("rtt") ? 1 : 3)}×)` : "";
      return `${fmt(v, r.digits)}${ratio}`;
    }),
  ]);
  const table = [head, head.map(() => "---"), ...body].map((r) => `| ${r.join(" | ")} |`).join("\n");
  const lines: string[] = [];
  const cores = availableParallelism();
  for (const p of paths.slice(1)) {
    const cpuLimit = (cores * 1000) / get(p.label, "cpu");
    const up1 = get(p.label, "up1");
    const up8 = get(p.label, "up8");
    lines.push(
      `- ${p.label}: one stream ${fmt(up1, 2)} MiB/s, eight streams ${fmt(up8, 2)} MiB/s (${fmt(up8 / up1, 1)}× one); the svp processes need ${fmt(get(p.label, "cpu"), 0)} ms of CPU per MiB, so ${cores} cores allow about ${fmt(cpuLimit, 1)} MiB/s in all${up8 > 0.6 * cpuLimit ? " (eight streams come close: CPU is the limit)" : ""}.`,
    );
  }
  // MSP alone through the same daemons, servald's window and larger ones.
  const ta = await connectEmbedded({ home: homeA, autostart: false, name: "bench/mesh" });
  const tb = await connectEmbedded({ home: homeB, autostart: false, name: "bench/mesh" });
  const windows = [4, 8, 16, 32];
  const alone = new Map<number, { mibps: number[]; rtt: number[] }>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const w of windows) {
      log(`round ${round + 1}/${ROUNDS}: MSP alone, window ${w}`);
      const r = await mspAlone(ta, tb, w, 2000 + round * 10 + w);
      const e = alone.get(w) ?? { mibps: [], rtt: [] };
      e.mibps.push(r.mibps);
      e.rtt.push(r.rttMs);
      alone.set(w, e);
    }
  }
  ta.close();
  tb.close();
  const aloneRows = windows.map((w) => {
    const e = alone.get(w)!;
    const m = median(e.mibps);
    const r = median(e.rtt);
    return `| ${w} × 1024 B${w === 4 ? " (servald's)" : ""} | ${fmt(m, 2)} | ${fmt(r, 2)} | ${fmt((w * 1024) / (r / 1000) / MiB, 2)} |`;
  });
  const w4 = median(alone.get(4)!.mibps);
  const w32 = median(alone.get(32)!.mibps);
  const loadavg = readFileSync("/proc/loadavg", "utf8").split(" ")[0];
  process.stdout.write(
    [
      `Two embedded nodes (\`svp daemon\`, UDP on loopback, sealed datagrams) on one machine; node B runs \`svp listen --forward\` in front of the targets, node A \`svp socks\` and \`svp connect --forward\`. Load generator and targets: bench/mesh.ts (Node) in one process, every svp part in its own. Median of ${ROUNDS} rounds of ${SECONDS} s (after ${WARMUP_S} s warm-up); ratios are to direct TCP measured by the same generator in the same run. Load average ${loadavg} at the end.`,
      "",
      table,
      "",
      "Streams and CPU (servald's MSP window: 4 unacknowledged messages of 1024 bytes, acknowledged only once the reader consumed them):",
      ...lines,
      "",
      `MSP alone through the same two daemons (one stream A → B, both ends in the bench process on the daemons' local API, no TCP): servald's window against larger ones (svp ↔ svp only; against servald the window must stay 4). "RTT" is MSP's own smoothed estimate under load; "window / RTT" is what that window allows.`,
      "",
      "| window | MiB/s | MSP RTT, ms | window / RTT, MiB/s |",
      "| --- | --- | --- | --- |",
      ...aloneRows,
      "",
      `A window of 32 moved ${fmt(w32 / w4, 1)}× what servald's 4 moved: ${w32 > 1.5 * w4 ? "one stream with servald's window is limited by the window (4 KiB per round trip through two daemons)" : "the window is not what limits one stream here; the daemons' CPU per packet is"}.`,
    ].join("\n") + "\n",
  );
  targets.close();
}

const cleanup = () => svp.cleanup([join(work, "a"), join(work, "b")]);

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench/mesh: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup();
    process.exit(1);
  },
);
