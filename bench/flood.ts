/**
 * The flood part of `npm run bench`: one MSP stream from node A to node B (two `svp daemon`s
 * on loopback; both stream ends in this process, on the daemons' local API) while a forged-
 * packet flood hits B's overlay port from one process (test/helpers/udp-flooder.ts: half
 * random sender SIDs, half A's SID from the flooder's address), next to the same stream
 * without a flood, in interleaved rounds.
 *
 *   node --import tsx bench/flood.ts [--seconds N] [--rounds N] [--svp CMD]
 *
 * Reported per arm: the stream's MiB/s and its ratio to the no-flood arm of the same round
 * (median of the per-round ratios), the flood's send rate, what B read and dropped per second
 * (its drop counters), what the kernel dropped on B's socket (receive buffer full), and B's
 * CPU. Prints a markdown section on stdout (progress on stderr). Loopback only; every wait
 * bounded; every process stopped at the end.
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectEmbedded } from "../src/platform/embedded-node.ts";
import type { EmbeddedTransport } from "../src/node/embedded-transport.ts";
import { connectMsp } from "../src/msp/connect.ts";
import { listenMsp } from "../src/msp/listener.ts";
import { builtSvpCommand, keepWriting, median, root, sleep } from "./common.ts";

const { values: opts } = parseArgs({ options: { seconds: { type: "string", default: "4" }, rounds: { type: "string", default: "3" }, svp: { type: "string" } } });
const SECONDS = Math.max(1, Number(opts.seconds));
const ROUNDS = Math.max(1, Math.floor(Number(opts.rounds)));
const log = (m: string) => process.stderr.write(`bench/flood: ${m}\n`);
const SVP = builtSvpCommand(opts.svp) ?? [process.execPath, "--import", "tsx", `${root}cli/main.ts`];
const work = mkdtempSync(join(tmpdir(), "svp-bench-flood-"));
const env = { ...process.env, SVP_DISCOVERY_DIR: join(work, "discovery"), SVP_MESH: "embedded", NO_COLOR: "1" };

function svpSync(args: string[]): string {
  const r = spawnSync(SVP[0]!, [...SVP.slice(1), ...args], { env, encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`svp ${args.join(" ")} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout + r.stderr;
}

interface Status {
  drops: Record<string, number>;
  daemon: { pid: number; udp: string[] };
}
const status = (home: string) => JSON.parse(svpSync(["status", "--home", home, "--json"])) as Status;
const readDrops = (s: Status) => Object.values(s.drops).reduce((a, b) => a + b, 0);

function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

function kernelDrops(port: number): number {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const line = readFileSync("/proc/net/udp", "utf8").split("\n").find((l) => l.trim().split(/\s+/)[1] === hex);
  return line ? Number(line.trim().split(/\s+/).at(-1)) : 0;
}

interface Arm {
  label: string;
  rate: number | undefined;
  mibps: number[];
  ratio: number[];
  sentPerS: number[];
  readPerS: number[];
  kernelPerS: number[];
  cpuB: number[];
}

async function streamFor(ta: EmbeddedTransport, tb: EmbeddedTransport, port: number): Promise<number> {
  const l = await listenMsp(tb, port);
  let received = 0;
  l.on("accept", (x) => {
    x.on("data", (d) => (received += d.length));
    x.on("end", () => x.closeWrite());
    x.resume();
  });
  const s = await connectMsp(ta, { sid: tb.localSid, port });
  s.resume();
  const stopWriting = keepWriting(s);
  await sleep(500);
  const b0 = received;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  const mibps = (received - b0) / ((performance.now() - t0) / 1000) / (1024 * 1024);
  stopWriting();
  s.abort();
  l.abort();
  await sleep(300);
  return mibps;
}

async function main(): Promise<void> {
  log(`svp: ${SVP.join(" ")}; ${SECONDS} s per measurement, ${ROUNDS} rounds`);
  const homeA = join(work, "a");
  const homeB = join(work, "b");
  for (const home of [homeA, homeB]) svpSync(["daemon", "start", "--home", home]);
  const sidA = svpSync(["id", "--home", homeA]).trim();
  const sidB = svpSync(["id", "--home", homeB]).trim();
  for (let i = 0; !svpSync(["status", "--home", homeA, "--json"]).includes(`"sid": "${sidB}"`); i++) {
    if (i > 100) throw new Error("node A does not see node B");
    await sleep(100);
  }
  const sb = status(homeB);
  const pidB = sb.daemon.pid;
  const portB = Number(sb.daemon.udp.find((u) => u.startsWith("127.0.0.1:"))!.split(":")[1]);
  const ta = await connectEmbedded({ home: homeA, autostart: false, name: "bench/flood" });
  const tb = await connectEmbedded({ home: homeB, autostart: false, name: "bench/flood" });
  const arms: Arm[] = [
    { label: "no flood", rate: undefined },
    { label: "flood, 20,000/s", rate: 20_000 },
    { label: "flood, as fast as one core sends", rate: 0 },
  ].map((a) => ({ ...a, mibps: [], ratio: [], sentPerS: [], readPerS: [], kernelPerS: [], cpuB: [] }));
  let port = 2000;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const arm of arms) {
        let flooder: ReturnType<typeof spawn> | undefined;
        let out = "";
        if (arm.rate !== undefined) {
          flooder = spawn(process.execPath, ["--import", "tsx", `${root}test/helpers/udp-flooder.ts`, "--port", String(portB), "--victim", sidB, "--peer", sidA, "--rate", String(arm.rate), "--seconds", String(SECONDS + 10)], { stdio: ["ignore", "pipe", "inherit"] });
          flooder.stdout!.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
          await sleep(1000); // the flood is on, and B under load, before the stream starts
        }
        const d0 = readDrops(status(homeB));
        const k0 = kernelDrops(portB);
        const c0 = cpuSeconds(pidB);
        const t0 = performance.now();
        const mibps = await streamFor(ta, tb, port++);
        const secs = (performance.now() - t0) / 1000;
        arm.mibps.push(mibps);
        arm.cpuB.push((cpuSeconds(pidB) - c0) / secs);
        if (flooder) {
          arm.readPerS.push((readDrops(status(homeB)) - d0) / secs);
          arm.kernelPerS.push((kernelDrops(portB) - k0) / secs);
          const exited = new Promise<void>((r) => flooder.on("close", () => r()));
          flooder.kill("SIGTERM");
          await exited;
          const f = JSON.parse(out) as { sent: number; seconds: number };
          arm.sentPerS.push(f.sent / f.seconds);
          await sleep(1500); // let B leave "under load"
        }
        log(`round ${round + 1}, ${arm.label}: ${mibps.toFixed(2)} MiB/s`);
      }
      const base = arms[0]!.mibps.at(-1)!;
      for (const arm of arms) arm.ratio.push(arm.mibps.at(-1)! / base);
    }
  } finally {
    ta.close();
    tb.close();
    for (const home of [homeA, homeB]) spawnSync(SVP[0]!, [...SVP.slice(1), "daemon", "stop", "--home", home], { env, timeout: 20_000 });
    rmSync(work, { recursive: true, force: true });
  }
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "–");
  const k = (x: number) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)}k` : "–");
  const lines = [
    `${ROUNDS} interleaved rounds of ${SECONDS} s on ${availableParallelism()} cores (load average ${loadavg()[0]!.toFixed(2)} at the end); medians. One MSP stream A → B (both ends in the benchmark process, through the two daemons' local API), the flood from one process on the same machine.`,
    "",
    "| arm | stream MiB/s | ratio to no flood | flood sent/s | B read and dropped/s | kernel dropped/s | B daemon CPU (cores) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...arms.map((a) => `| ${a.label} | ${f(median(a.mibps))} | ${f(median(a.ratio))}× | ${a.rate === undefined ? "–" : k(median(a.sentPerS))} | ${a.rate === undefined ? "–" : k(median(a.readPerS))} | ${a.rate === undefined ? "–" : k(median(a.kernelPerS))} | ${f(median(a.cpuB))} |`),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/flood: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
