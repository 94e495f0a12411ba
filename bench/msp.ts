/**
 * MSP throughput over the in-memory MDP network (no loss, zero delay, servald's window of
 * 4 × 1024-byte messages): one stream, and eight streams at once, one direction each.
 * It shows that the protocol code is not the bottleneck (target ≥ 100 MiB/s for one stream).
 *
 *   node --import tsx bench/msp.ts [--mib N] [--rounds N]
 *
 * Prints a small table on stdout (progress on stderr). `runMspBench()` returns the numbers
 * for bench/run.ts. Each figure is the median of the rounds; CPU is this process's user +
 * system time (process.cpuUsage) per MiB moved, both ends of every stream included.
 */

import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { MemoryMdpNetwork } from "../test/helpers/memory-transport.ts";
import { connectMsp } from "../src/msp/connect.ts";
import { listenMsp } from "../src/msp/listener.ts";
import type { MspStream } from "../src/msp/msp-stream.ts";
import { median } from "./common.ts";

export interface MspBenchRow {
  name: string;
  streams: number;
  /** Bytes moved per round, all streams together. */
  bytes: number;
  rounds: number;
  /** Median over the rounds. */
  mibPerSec: number;
  cpuMsPerMiB: number;
}

export interface MspBenchOptions {
  /** MiB moved per round, all streams together. Default 64. */
  mib?: number;
  /** Rounds per configuration. Default 3. */
  rounds?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}


/** Move `totalBytes` split over `streams` streams from node A to node B; returns seconds and CPU ms. */
async function round(streams: number, totalBytes: number): Promise<{ seconds: number; cpuMs: number }> {
  const net = new MemoryMdpNetwork();
  const a = net.addNode();
  const b = net.addNode();
  const listener = await listenMsp(b, 80);
  const perStream = Math.floor(totalBytes / streams);
  let finished = 0;
  let received = 0;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  listener.on("accept", (s) => {
    s.on("data", (c) => (received += c.length));
    s.on("end", () => {
      s.closeWrite();
      if (++finished === streams) allDone();
    });
    s.resume();
  });
  const clients: MspStream[] = [];
  for (let i = 0; i < streams; i++) clients.push(await connectMsp(a, { sid: b.localSid, port: 80 }));
  const chunk = new Uint8Array(64 * 1024).fill(0x5a);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const c of clients) {
    let sent = 0;
    const pump = () => {
      while (sent < perStream) {
        const n = Math.min(chunk.length, perStream - sent);
        sent += n;
        if (!c.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return;
      }
      c.off("drain", pump);
      c.closeWrite();
    };
    c.on("drain", pump);
    c.resume();
    pump();
  }
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  net.close();
  if (received !== perStream * streams) throw new Error(`MSP bench: received ${received} of ${perStream * streams} bytes`);
  return { seconds, cpuMs: (cpu.user + cpu.system) / 1000 };
}

export async function runMspBench(options: MspBenchOptions = {}): Promise<MspBenchRow[]> {
  const mib = options.mib ?? 64;
  const rounds = options.rounds ?? 3;
  const bytes = mib * 1024 * 1024;
  const configs = [
    { name: "1 stream", streams: 1 },
    { name: "8 streams", streams: 8 },
  ];
  await round(1, 4 * 1024 * 1024); // warm-up: JIT, allocation pools
  const samples = configs.map(() => ({ rate: [] as number[], cpu: [] as number[] }));
  // Interleave configurations so drift on a shared machine hits both alike.
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < configs.length; i++) {
      const { seconds, cpuMs } = await round(configs[i]!.streams, bytes);
      samples[i]!.rate.push(mib / seconds);
      samples[i]!.cpu.push(cpuMs / mib);
      options.log?.(`${configs[i]!.name}: round ${r + 1}/${rounds}: ${(mib / seconds).toFixed(1)} MiB/s, ${(cpuMs / mib).toFixed(2)} CPU ms/MiB`);
    }
  }
  return configs.map((c, i) => ({
    name: c.name,
    streams: c.streams,
    bytes,
    rounds,
    mibPerSec: median(samples[i]!.rate),
    cpuMsPerMiB: median(samples[i]!.cpu),
  }));
}

export function formatMspBench(rows: MspBenchRow[]): string {
  const lines = [
    "MSP over the in-memory MDP transport (no loss, zero delay, window 4 × 1024 B), one direction",
    "",
    "| streams   |   MiB/s | CPU ms/MiB |",
    "|-----------|--------:|-----------:|",
  ];
  for (const r of rows) lines.push(`| ${r.name.padEnd(9)} | ${r.mibPerSec.toFixed(1).padStart(7)} | ${r.cpuMsPerMiB.toFixed(2).padStart(10)} |`);
  const first = rows[0];
  if (first) lines.push("", `${first.bytes / 1048576} MiB per round, median of ${first.rounds} rounds; CPU = user+system of the one process running both ends.`);
  return lines.join("\n");
}

function isMain(): boolean {
  const meta = import.meta as ImportMeta & { main?: boolean };
  if (typeof meta.main === "boolean") return meta.main;
  const script = process.argv[1];
  return script !== undefined && import.meta.url === pathToFileURL(script).href;
}

if (isMain()) {
  const { values } = parseArgs({ options: { mib: { type: "string", default: "64" }, rounds: { type: "string", default: "3" } } });
  const mib = Number(values.mib);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(mib) || mib < 1 || mib > 4096 || !Number.isInteger(rounds) || rounds < 1 || rounds > 15) {
    process.stderr.write("usage: node --import tsx bench/msp.ts [--mib 1-4096] [--rounds 1-15]\n");
    process.exit(2);
  }
  runMspBench({ mib, rounds, log: (l) => process.stderr.write(`bench/msp: ${l}\n`) }).then(
    (rows) => process.stdout.write(formatMspBench(rows) + "\n"),
    (err: unknown) => {
      process.stderr.write(`bench/msp: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
