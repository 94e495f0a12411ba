/**
 * The soak part of `npm run bench` (`-- --soak MINUTES`), or alone:
 *
 *   node --import tsx bench/soak.ts [--minutes 30] [--sample 60] [--warmup 5] [--svp CMD]
 *                                   [--heap-snapshots DIR] [--socks-args "ARGS"]
 *
 * Two embedded nodes as `svp daemon`s on loopback; node B runs `svp listen --forward` in
 * front of an HTTP server (a 1 MiB file and a small page) and a stream sink, node A runs
 * `svp socks`. Through the proxy (SOCKS5, `<SID>.serval`), for the whole run: one fetcher
 * getting the 1 MiB file over and over, two fetching the small page, and one long stream
 * writing 100 KiB/s to the sink. Every body is checked (length and SHA-256), the stream's
 * bytes too at the end. RSS and open descriptors of every svp process (socks, both listens,
 * both daemons) are sampled every `--sample` seconds; the result is their growth after the
 * first `--warmup` minutes (the target: at most 5 MB each, nothing failed, every byte intact).
 *
 * Fetchers pause between requests (100 ms after a small page, 250 ms after the big file), so
 * the load is a busy user's, not a flood: about 20 pages/s and 3 MiB/s.
 *
 * `--heap-snapshots DIR`: every svp process runs with `--heapsnapshot-signal=SIGUSR2` (in
 * NODE_OPTIONS, with `$SOAK_NODE_OPTIONS` added; its cwd is DIR) and gets that signal at
 * the end of the warm-up and at the end of the run: two snapshots each in DIR
 * (Heap.<date>.<pid>.…), to compare what grew. Needs svp run by Node itself (not the single
 * binary). Writing a snapshot itself leaves the process's RSS some 40 MB higher: judge
 * growth from a run without them.
 *
 * Prints a markdown section on stdout (progress on stderr). Loopback only; every wait
 * bounded; every process stopped at the end.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SvpRunner, builtSvpCommand, root, sleep } from "./common.ts";

const { values: opts } = parseArgs({
  options: {
    minutes: { type: "string", default: "30" },
    sample: { type: "string", default: "60" },
    warmup: { type: "string", default: "5" },
    svp: { type: "string" },
    "heap-snapshots": { type: "string" },
    // more arguments for `svp socks`, split on spaces (e.g. "--workers 1")
    "socks-args": { type: "string", default: "" },
  },
});
const MINUTES = Math.max(0.2, Number(opts.minutes));
const SAMPLE_S = Math.max(1, Number(opts.sample));
const WARMUP_MIN = Math.min(Math.max(0, Number(opts.warmup)), MINUTES / 2);
const HEAP_DIR = opts["heap-snapshots"] ? resolve(opts["heap-snapshots"]) : undefined;
const BIG = 1024 * 1024;
const STREAM_RATE = 100 * 1024; // bytes per second
const LIMIT_MB = 5;

const log = (m: string) => process.stderr.write(`bench/soak: ${m}\n`);
// (Paths made absolute: svp socks may run in the snapshot directory.)
const SVP = (builtSvpCommand(opts.svp) ?? [process.execPath, "--import", "tsx", `${root}cli/main.ts`]).map((a) => (!a.startsWith("-") && existsSync(resolve(a)) ? resolve(a) : a));
if (HEAP_DIR && !/node$/.test(SVP[0]!.split("/").pop()!)) throw new Error("--heap-snapshots needs svp run by node (give --svp 'node dist/svp.cjs')");

const work = mkdtempSync(join(tmpdir(), "svp-bench-soak-"));
const env: NodeJS.ProcessEnv = { ...process.env, SVP_DISCOVERY_DIR: join(work, "discovery"), SVP_MESH: "embedded", NO_COLOR: "1" };
if (HEAP_DIR) mkdirSync(HEAP_DIR, { recursive: true });
// $SOAK_NODE_OPTIONS: more Node flags for every svp process (e.g. `--import` a memory logger).
env.NODE_OPTIONS = [process.env.NODE_OPTIONS, HEAP_DIR ? "--heapsnapshot-signal=SIGUSR2" : "", process.env.SOAK_NODE_OPTIONS].filter(Boolean).join(" ") || undefined;
if (env.NODE_OPTIONS === undefined) delete env.NODE_OPTIONS;
const cwd = HEAP_DIR ?? work;

const svp = new SvpRunner(SVP, work, { env, cwd, readyMs: 30_000 });
const svpSync = (args: string[]) => svp.sync(args);
const svpLong = (args: string[], ready: RegExp) => svp.long(args, ready);

/** RSS (KiB) and open descriptors of a process; undefined once it is gone. */
function sample(pid: number): { rssKiB: number; fds: number } | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return { rssKiB: Number(m?.[1] ?? NaN), fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

// ---------- targets (in this process) ----------

const bigBody = pattern(BIG, 1);
const smallBody = new TextEncoder().encode(`<!doctype html><title>svp soak</title><p>${"small page ".repeat(180)}</p>\n`);
const BIG_SHA = sha(bigBody);
const SMALL_SHA = sha(smallBody);

async function startTargets(): Promise<{ http: number; sink: number; sinkHash: ReturnType<typeof createHash>; sunk: { bytes: number }; close(): void }> {
  const server = http.createServer((req, res) => {
    const body = req.url === "/big" ? bigBody : smallBody;
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const sinkHash = createHash("sha256");
  const sunk = { bytes: 0 };
  const sink = net.createServer((s) => {
    s.on("data", (d: Uint8Array) => {
      sunk.bytes += d.length;
      sinkHash.update(d);
    });
    s.on("error", () => {});
    s.on("end", () => s.end());
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", () => r()));
  return {
    http: (server.address() as net.AddressInfo).port,
    sink: (sink.address() as net.AddressInfo).port,
    sinkHash,
    sunk,
    close() {
      server.closeAllConnections();
      server.close();
      sink.close();
    },
  };
}

// ---------- SOCKS5 client ----------

/** A SOCKS5 CONNECT through svp socks to `host`:`port`; resolves with the tunnel. */
function socks5(proxyPort: number, host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: proxyPort, host: "127.0.0.1", allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("SOCKS5 handshake timed out"));
    }, 30_000);
    let buf = new Uint8Array(0);
    let stage = 0;
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("connect", () => s.write(Uint8Array.of(5, 1, 0)));
    const onData = (d: Uint8Array) => {
      const b = new Uint8Array(buf.length + d.length);
      b.set(buf);
      b.set(d, buf.length);
      buf = b;
      if (stage === 0 && buf.length >= 2) {
        if (buf[1] !== 0) return reject(new Error("SOCKS5: no acceptable auth method"));
        buf = buf.subarray(2);
        stage = 1;
        const name = new TextEncoder().encode(host);
        const req = new Uint8Array(7 + name.length);
        req.set([5, 1, 0, 3, name.length]);
        req.set(name, 5);
        req[5 + name.length] = port >> 8;
        req[6 + name.length] = port & 0xff;
        s.write(req);
      }
      if (stage === 1 && buf.length >= 10) {
        clearTimeout(timer);
        s.off("data", onData);
        if (buf[1] !== 0) {
          s.destroy();
          return reject(new Error(`SOCKS5 reply ${buf[1]}`));
        }
        resolve(s);
      }
    };
    s.on("data", onData);
  });
}

/** GET `path` through the proxy; checks status, length and hash; resolves with the body length. */
async function fetchChecked(proxyPort: number, host: string, path: string, expectLen: number, expectSha: string): Promise<number> {
  const s = await socks5(proxyPort, host, 80);
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let n = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`GET ${path}: no complete answer within 60 s`));
    }, 60_000);
    s.on("data", (d: Uint8Array) => {
      chunks.push(d);
      n += d.length;
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on("end", () => {
      clearTimeout(timer);
      s.destroy();
      const all = Buffer.concat(chunks, n);
      const head = all.indexOf("\r\n\r\n");
      const status = all.subarray(0, 12).toString();
      const body = all.subarray(head + 4);
      if (!status.startsWith("HTTP/1.1 200") || body.length !== expectLen || sha(body) !== expectSha) reject(new Error(`GET ${path}: bad answer (${status.trim()}, ${body.length} bytes)`));
      else resolve(body.length);
    });
    s.end(`GET ${path} HTTP/1.0\r\nHost: soak\r\n\r\n`);
  });
}

// ---------- the run ----------

interface Proc {
  name: string;
  pid: number;
  samples: { t: number; rssKiB: number; fds: number }[];
}

async function main(): Promise<string> {
  log(`svp: ${SVP.join(" ")}; ${MINUTES} min, sample every ${SAMPLE_S} s, warm-up ${WARMUP_MIN} min`);
  const targets = await startTargets();
  const homeA = join(work, "a");
  const homeB = join(work, "b");
  const pidOf = (out: string) => Number(/started \(pid (\d+)\)/.exec(out)![1]);
  const daemonA = pidOf(svpSync(["daemon", "start", "--home", homeA, "--port", "0"]));
  const daemonB = pidOf(svpSync(["daemon", "start", "--home", homeB, "--port", "0"]));
  const sidB = svpSync(["id", "--home", homeB]).trim().split("\n")[0]!.trim();
  const listenHttp = await svpLong(["listen", "--home", homeB, "--forward", String(targets.http), "80"], /listening on/);
  const listenSink = await svpLong(["listen", "--home", homeB, "--forward", String(targets.sink), "81"], /listening on/);
  const socks = await svpLong(["socks", "--home", homeA, "--listen", "127.0.0.1:0", ...opts["socks-args"].split(" ").filter(Boolean)], /listening on 127\.0\.0\.1:(\d+)/);
  const proxyPort = Number(socks.match[1]);
  const host = `${sidB}.serval`;
  const procs: Proc[] = [
    { name: "svp socks (node A)", pid: socks.child.pid!, samples: [] },
    { name: "svp daemon A", pid: daemonA, samples: [] },
    { name: "svp listen --forward (HTTP, node B)", pid: listenHttp.child.pid!, samples: [] },
    { name: "svp listen --forward (stream sink, node B)", pid: listenSink.child.pid!, samples: [] },
    { name: "svp daemon B", pid: daemonB, samples: [] },
  ];
  // Until B is a reachable peer of A, mesh requests are refused: wait for the first page.
  for (let i = 0; ; i++) {
    try {
      await fetchChecked(proxyPort, host, "/small", smallBody.length, SMALL_SHA);
      break;
    } catch (err) {
      if (i >= 100) throw err;
      await sleep(200);
    }
  }
  const start = Date.now();
  const end = start + MINUTES * 60_000;
  const counts = { big: 0, small: 0, failures: 0, failureText: [] as string[] };
  const fail = (what: string, err: unknown) => {
    counts.failures++;
    if (counts.failureText.length < 10) counts.failureText.push(`${what}: ${(err as Error).message}`);
  };
  const fetcher = async (path: string, len: number, digest: string, key: "big" | "small", pauseMs: number) => {
    while (Date.now() < end) {
      try {
        await fetchChecked(proxyPort, host, path, len, digest);
        counts[key]++;
      } catch (err) {
        fail(`GET ${path}`, err);
      }
      await sleep(pauseMs);
    }
  };
  const snapshot = (what: string) => {
    for (const p of procs) {
      try {
        process.kill(p.pid, "SIGUSR2");
      } catch {
        // gone
      }
    }
    log(`heap snapshots (${what}) of ${procs.map((p) => `${p.name}: pid ${p.pid}`).join(", ")}`);
  };
  // The long stream: 10 KiB every 100 ms, the pattern continued; hashed here and at the sink.
  const streamHash = createHash("sha256");
  let streamed = 0;
  const stream = await socks5(proxyPort, host, 81);
  stream.on("error", (e) => fail("stream", e));
  const streamDone = (async () => {
    let seed = 1000;
    let next = Date.now();
    while (Date.now() < end && !stream.destroyed) {
      const chunk = pattern(STREAM_RATE / 10, seed++);
      streamHash.update(chunk);
      streamed += chunk.length;
      if (!stream.write(chunk)) await new Promise((r) => stream.once("drain", r));
      next += 100;
      await sleep(Math.max(0, next - Date.now()));
    }
    await new Promise<void>((r) => {
      stream.once("close", () => r());
      stream.end();
      setTimeout(r, 15_000);
    });
  })();
  const sampler = (async () => {
    let snapshotDone = false;
    for (let t = 0; ; t += SAMPLE_S) {
      const now = Date.now();
      for (const p of procs) {
        const s = sample(p.pid);
        if (s) p.samples.push({ t, ...s });
      }
      if (HEAP_DIR && !snapshotDone && t >= WARMUP_MIN * 60) {
        snapshotDone = true;
        snapshot("end of warm-up");
      }
      const line = procs.map((p) => `${p.name.split(" (")[0]} ${((p.samples.at(-1)?.rssKiB ?? NaN) / 1024).toFixed(1)} MB/${p.samples.at(-1)?.fds ?? "?"} fds`).join("; ");
      log(`${(t / 60).toFixed(1)} min: ${line}; fetched ${counts.big} big, ${counts.small} small, ${counts.failures} failed`);
      if (now >= end) break;
      await sleep(Math.max(0, Math.min(SAMPLE_S * 1000, end - now) - (Date.now() - now)));
    }
  })();
  await Promise.all([fetcher("/big", BIG, BIG_SHA, "big", 250), fetcher("/small", smallBody.length, SMALL_SHA, "small", 100), fetcher("/small", smallBody.length, SMALL_SHA, "small", 100), streamDone, sampler]);
  if (HEAP_DIR) {
    snapshot("end of run");
    await sleep(5000);
  }
  for (let i = 0; i < 100 && targets.sunk.bytes < streamed; i++) await sleep(100);
  const intact = targets.sunk.bytes === streamed && targets.sinkHash.digest("hex") === streamHash.digest("hex");
  targets.close();

  const rows = procs.map((p) => {
    const warm = p.samples.find((s) => s.t >= WARMUP_MIN * 60) ?? p.samples[0]!;
    const last = p.samples.at(-1)!;
    const growth = (last.rssKiB - warm.rssKiB) / 1024;
    return { p, first: p.samples[0]!, warm, last, growth, ok: growth <= LIMIT_MB };
  });
  const out: string[] = [];
  out.push(`${MINUTES} minutes (samples every ${SAMPLE_S} s; growth counted after the first ${WARMUP_MIN} min): one fetcher of a 1 MiB file, two of a small page (${smallBody.length} B), all through \`svp socks\` to \`svp listen --forward\` on another node, and one stream at ${STREAM_RATE / 1024} KiB/s; every body checked (length, SHA-256).`);
  out.push("");
  out.push(`| process | RSS at start | after warm-up | at end | growth after warm-up | fds start → end |`);
  out.push(`|---|---|---|---|---|---|`);
  for (const r of rows) out.push(`| ${r.p.name} | ${(r.first.rssKiB / 1024).toFixed(1)} MB | ${(r.warm.rssKiB / 1024).toFixed(1)} MB | ${(r.last.rssKiB / 1024).toFixed(1)} MB | **${r.growth >= 0 ? "+" : ""}${r.growth.toFixed(1)} MB**${r.ok ? "" : ` (over ${LIMIT_MB} MB)`} | ${r.first.fds} → ${r.last.fds} |`);
  out.push("");
  out.push(`Fetched ${counts.big} × 1 MiB and ${counts.small} small pages, ${counts.failures} failed${counts.failureText.length ? ` (${counts.failureText.join("; ")})` : ""}; the stream carried ${(streamed / BIG).toFixed(1)} MiB, ${intact ? "every byte intact" : `**NOT intact** (${targets.sunk.bytes} of ${streamed} bytes arrived)`}.`);
  const verdict = rows.every((r) => r.ok) && counts.failures === 0 && intact;
  out.push(`Target (growth ≤ ${LIMIT_MB} MB after warm-up for each process, nothing failed, every byte intact): **${verdict ? "met" : "NOT met"}**.`);
  return out.join("\n") + "\n";
}

const cleanup = () => svp.cleanup([join(work, "a"), join(work, "b")]);

main().then(
  async (md) => {
    process.stdout.write(md);
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    process.stderr.write(`bench/soak: ${(err as Error).stack ?? String(err)}\n`);
    await cleanup();
    process.exit(1);
  },
);
