/**
 * A UDP link emulator: a relay on loopback that puts an emulated link (link-model.ts:
 * delay, jitter, reordering, loss, duplication, a rate with a drop-tail queue) between two
 * svp nodes' overlay ports, for real-process tests and `npm run bench` (`tc netem` is not
 * available in every kernel, and needs no root here).
 *
 *   node A ──▶ side A ══ A→B model ══▶ side B ──▶ node B (target)
 *   node A ◀── side A ◀══ B→A model ══ side B ◀── node B
 *
 * Node A is given side A's address as its (static) peer. What arrives on side A crosses the
 * A→B model and is sent from the side B socket to node B, so node B sees the relay's side B
 * as its peer and answers there; what node B sends to side B crosses the B→A model and is
 * sent from side A to whoever last sent to side A (node A). Loopback only.
 *
 * In process: `const emu = await startLinkEmulator({ target: { host: "127.0.0.1", port },
 * link: { delayMs: 10 } })`, then `emu.portA`, `emu.stats()`, `await emu.close()`.
 * As a process (a benchmark's own child): see USAGE below; it prints
 * "link-emulator: listening 127.0.0.1:<port A>" once ready, one JSON line of statistics when
 * it ends, and ends by itself after --duration (default 10 min).
 */

import * as dgram from "node:dgram";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Clock, systemClock } from "../../src/clock.ts";
import { SvpError, UsageError } from "../../src/errors.ts";
import { isLoopbackAddress, parseDuration, parseHostPort, parsePositiveInt } from "../../src/options.ts";
import { checkLinkParams, LinkModel, type LinkParams, type LinkStats } from "./link-model.ts";

export interface LinkEmulatorOptions {
  /** Node B's overlay UDP address: a loopback IP literal (127.0.0.0/8 or ::1). */
  target: { host: string; port: number };
  /** Parameters of both directions (each direction gets its own model). */
  link?: LinkParams;
  /** A→B (side A to the target) parameters, field by field over `link`. */
  ab?: LinkParams;
  /** B→A parameters, field by field over `link`. */
  ba?: LinkParams;
  /** Seed of A→B (`ab.seed`, else `link.seed`, else this; default 1); B→A uses `ba.seed`, else that seed + 1. */
  seed?: number;
  /** Side A's port; default 0 (any free one). Side B always gets a free one. */
  portA?: number;
  /** Time source; default the system clock. */
  clock?: Clock;
}

export interface LinkEmulatorStats {
  /** Node A to node B. */
  ab: LinkStats;
  /** Node B to node A. */
  ba: LinkStats;
  /** Where B→A datagrams go: the last sender to side A ("host:port"), null before any. */
  peerA: string | null;
  /** Datagrams that reached side B from anyone but the target (dropped). */
  strayDrops: number;
  /** B→A datagrams that crossed before anyone had sent to side A (dropped). */
  noPeerDrops: number;
  /** Failed sends and socket errors (counted, never fatal; nothing is retried). */
  sendErrors: number;
  /**
   * Datagrams the kernel dropped because the relay's own receive buffers were full (Linux,
   * /proc/net/udp), i.e. loss the relay caused beyond the model; undefined where unreadable.
   */
  kernelDrops: number | undefined;
}

export interface LinkEmulator {
  /** The loopback address both sides are bound on. */
  host: string;
  /** Side A's port: node A's static peer is host:portA. */
  portA: number;
  /** Side B's port: node B sees node A as host:portB. */
  portB: number;
  stats(): LinkEmulatorStats;
  /** Stop relaying, discard what is in flight, close both sockets. Idempotent. */
  close(): Promise<void>;
}

/** Receive and send buffers asked for on both sides, so the relay itself does not drop bursts. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** Refuse anything but a loopback IP literal: the emulator never sends off this host. */
function loopbackIp(host: string, what: string): string {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const literal = /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.includes(":");
  if (!literal || !isLoopbackAddress({ kind: "tcp", host: h, port: 0 })) {
    throw new SvpError("ERR_NOT_ALLOWED", `link-emulator: ${what} "${host}" is not a loopback IP address (it relays only on 127.0.0.0/8 and ::1)`);
  }
  return h;
}

function bind(sock: dgram.Socket, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new SvpError((err as NodeJS.ErrnoException).code === "EADDRINUSE" ? "ERR_BUSY" : "ERR_INTERNAL", `link-emulator: cannot bind UDP ${host}:${port}: ${err.message}`));
    sock.once("error", onError);
    sock.bind(port, host, () => {
      sock.off("error", onError);
      resolve();
    });
  });
}

/** Receive-buffer drops of the sockets bound on these local ports (Linux /proc/net/udp{,6}). */
function kernelDrops(ports: number[], v6: boolean): number | undefined {
  let text: string;
  try {
    text = readFileSync(v6 ? "/proc/net/udp6" : "/proc/net/udp", "utf8");
  } catch {
    return undefined;
  }
  const wanted = new Set(ports.map((p) => p.toString(16).toUpperCase().padStart(4, "0")));
  let drops = 0;
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    if (!local || !wanted.has(local.slice(local.lastIndexOf(":") + 1))) continue;
    drops += Number(f[f.length - 1]) || 0;
  }
  return drops;
}

export async function startLinkEmulator(options: LinkEmulatorOptions): Promise<LinkEmulator> {
  const targetHost = loopbackIp(options.target.host, "target");
  const targetPort = options.target.port;
  if (!Number.isInteger(targetPort) || targetPort < 1 || targetPort > 65535) throw new UsageError(`link-emulator: invalid target port ${targetPort}: expected 1-65535`);
  // Each direction draws its own random sequence unless told otherwise.
  const seed = options.ab?.seed ?? options.link?.seed ?? options.seed ?? 1;
  const abParams: LinkParams = { ...options.link, ...options.ab, seed };
  const baParams: LinkParams = { ...options.link, ...options.ba, seed: options.ba?.seed ?? (seed + 1) | 0 };
  checkLinkParams(abParams);
  checkLinkParams(baParams);
  const v6 = targetHost.includes(":");
  const host = targetHost;
  const type = v6 ? "udp6" : "udp4";
  const sideA = dgram.createSocket({ type, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
  const sideB = dgram.createSocket({ type, recvBufferSize: SOCKET_BUFFER_BYTES, sendBufferSize: SOCKET_BUFFER_BYTES });
  try {
    await bind(sideA, options.portA ?? 0, host);
    await bind(sideB, 0, host);
  } catch (err) {
    sideA.close();
    sideB.close();
    throw err;
  }
  const clock = options.clock ?? systemClock;
  let peerA: { address: string; port: number } | undefined;
  let strayDrops = 0;
  let noPeerDrops = 0;
  let sendErrors = 0;
  let closed = false;
  const send = (sock: dgram.Socket, data: Uint8Array, port: number, address: string) => {
    try {
      // Without a callback (cheaper per datagram) a failed send is an 'error' event, counted below.
      sock.send(data, port, address);
    } catch {
      sendErrors++;
    }
  };
  const ab = new LinkModel(abParams, clock, (d) => send(sideB, d, targetPort, targetHost));
  const ba = new LinkModel(baParams, clock, (d) => {
    if (peerA) send(sideA, d, peerA.port, peerA.address);
    else noPeerDrops++;
  });
  // Socket errors (e.g. ICMP port unreachable reported on a later receive) are counted, never fatal.
  sideA.on("error", () => sendErrors++);
  sideB.on("error", () => sendErrors++);
  sideA.on("message", (msg, rinfo) => {
    if (!peerA || peerA.port !== rinfo.port || peerA.address !== rinfo.address) peerA = { address: rinfo.address, port: rinfo.port };
    ab.offer(msg);
  });
  sideB.on("message", (msg, rinfo) => {
    if (rinfo.port !== targetPort || rinfo.address !== targetHost) strayDrops++;
    else ba.offer(msg);
  });
  const portA = sideA.address().port;
  const portB = sideB.address().port;
  return {
    host,
    portA,
    portB,
    stats: () => ({
      ab: ab.stats(),
      ba: ba.stats(),
      peerA: peerA ? (peerA.address.includes(":") ? `[${peerA.address}]:${peerA.port}` : `${peerA.address}:${peerA.port}`) : null,
      strayDrops,
      noPeerDrops,
      sendErrors,
      kernelDrops: kernelDrops([portA, portB], v6),
    }),
    close: async () => {
      if (closed) return;
      closed = true;
      ab.close();
      ba.close();
      await Promise.all([sideA, sideB].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

// ---------------------------------------------------------------- command line

export const USAGE = `usage: node --import tsx test/helpers/link-emulator.ts --target HOST:PORT [options]

Relays UDP between node A (which is given 127.0.0.1:<port A> as its peer) and node B at
--target, through an emulated link. Loopback only. Prints "link-emulator: listening
HOST:PORT" (side A) on stdout when ready, one JSON line of statistics when it ends
(SIGTERM, SIGINT or --duration), and exits 0.

  --target HOST:PORT      node B's overlay address (required; loopback)
  --port N                side A's port (default: any free port)
  --duration D            exit after this long (default 10m)
  --seed N                seed of the random decisions (default 1; B→A uses N+1)
link, both directions (prefix ab- or ba- for one direction only, e.g. --ab-loss 0.1):
  --delay D               one-way delay (e.g. 10ms)
  --jitter D              extra delay uniform in [0, D)
  --reorder P             probability a datagram is held back --reorder-extra (default 10ms)
  --reorder-extra D
  --loss P                independent loss probability (0.03 or 3%)
  --burst-loss E,X[,L]    Gilbert-Elliott: enter bad state with E, leave with X, lose L (default 1) there
  --dup P                 duplication probability
  --rate R                bottleneck rate: 2MiB/s, 500KB/s, 16Mbit/s, or bytes per second
  --queue N               bottleneck drop-tail queue in datagrams (default 100)
`;

const LINK_FLAGS = ["delay", "jitter", "reorder", "reorder-extra", "loss", "burst-loss", "dup", "rate", "queue"] as const;

/** A probability: 0.03 or 3%. */
export function parseProbability(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  const p = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
  if (!(p >= 0 && p <= 1)) throw new UsageError(`invalid ${what} "${text}": expected a probability 0-1 or 0%-100%`);
  return p;
}

const RATE_UNITS = { "": 1, b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3, kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8 } as const;

/** A rate in bytes per second: `2MiB/s`, `500KB/s`, `16Mbit/s`, `100000`. */
export function parseRate(text: string, what = "--rate"): number {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)(\/s)?$/.exec(text.trim());
  const unit = (m?.[2] ?? "").toLowerCase();
  if (!m || !(unit in RATE_UNITS)) throw new UsageError(`invalid ${what} "${text}": expected e.g. 2MiB/s, 500KB/s, 16Mbit/s or bytes per second`);
  const r = Number(m[1]) * RATE_UNITS[unit as keyof typeof RATE_UNITS];
  if (!(r > 0 && Number.isFinite(r))) throw new UsageError(`invalid ${what} "${text}": must be more than 0`);
  return r;
}

/** Durations may be fractional milliseconds here ("0.5ms"); parseDuration rounds to whole ones. */
function parseMs(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)ms$/.exec(text.trim());
  return m ? Number(m[1]) : parseDuration(text, what);
}

function linkParamsFrom(values: Record<string, string | boolean | undefined>, prefix: string): LinkParams {
  const p: LinkParams = {};
  const get = (name: string) => {
    const v = values[prefix + name];
    return typeof v === "string" ? v : undefined;
  };
  const flag = (name: string) => `--${prefix}${name}`;
  let v: string | undefined;
  if ((v = get("delay")) !== undefined) p.delayMs = parseMs(v, flag("delay"));
  if ((v = get("jitter")) !== undefined) p.jitterMs = parseMs(v, flag("jitter"));
  if ((v = get("reorder")) !== undefined) p.reorder = parseProbability(v, flag("reorder"));
  if ((v = get("reorder-extra")) !== undefined) p.reorderExtraMs = parseMs(v, flag("reorder-extra"));
  if ((v = get("loss")) !== undefined) p.loss = parseProbability(v, flag("loss"));
  if ((v = get("dup")) !== undefined) p.duplicate = parseProbability(v, flag("dup"));
  if ((v = get("rate")) !== undefined) p.rateBytesPerSec = parseRate(v, flag("rate"));
  if ((v = get("queue")) !== undefined) p.queueLimit = /^0$/.test(v) ? 0 : parsePositiveInt(v, flag("queue"));
  if ((v = get("burst-loss")) !== undefined) {
    const parts = v.split(",");
    if (parts.length < 2 || parts.length > 3) throw new UsageError(`invalid ${flag("burst-loss")} "${v}": expected ENTER,EXIT[,LOSS] probabilities`);
    const [enter, exit, lossInBurst] = parts.map((x) => parseProbability(x, flag("burst-loss")));
    p.burstLoss = { enter: enter!, exit: exit!, ...(lossInBurst !== undefined ? { lossInBurst } : {}) };
  }
  return p;
}

/** Parse the command line into emulator options and a lifetime (ms). */
export function parseLinkEmulatorArgs(argv: string[]): { options: LinkEmulatorOptions; durationMs: number } | "help" {
  const spec: Record<string, { type: "string" } | { type: "boolean" }> = {
    target: { type: "string" },
    port: { type: "string" },
    duration: { type: "string" },
    seed: { type: "string" },
    help: { type: "boolean" },
  };
  for (const f of LINK_FLAGS) for (const prefix of ["", "ab-", "ba-"]) spec[prefix + f] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return "help";
  if (typeof values.target !== "string") throw new UsageError("--target HOST:PORT is required (node B's overlay address)");
  const target = parseHostPort(values.target, "--target", "127.0.0.1");
  if (target.port === 0) throw new UsageError(`invalid --target "${values.target}": port 0`);
  const options: LinkEmulatorOptions = { target, link: linkParamsFrom(values, ""), ab: linkParamsFrom(values, "ab-"), ba: linkParamsFrom(values, "ba-") };
  if (typeof values.seed === "string") {
    if (!/^\d{1,10}$/.test(values.seed) || Number(values.seed) > 0xffffffff) throw new UsageError(`invalid --seed "${values.seed}": expected a whole number 0-4294967295`);
    options.seed = Number(values.seed);
  }
  if (typeof values.port === "string") {
    if (!/^\d{1,5}$/.test(values.port) || Number(values.port) > 65535) throw new UsageError(`invalid --port "${values.port}": expected 0-65535`);
    options.portA = Number(values.port);
  }
  const durationMs = typeof values.duration === "string" ? parseDuration(values.duration, "--duration") : 600_000;
  if (durationMs <= 0) throw new UsageError("--duration must be more than 0");
  return { options, durationMs };
}

async function main(argv: string[]): Promise<void> {
  let parsed: ReturnType<typeof parseLinkEmulatorArgs>;
  let emu: LinkEmulator;
  try {
    parsed = parseLinkEmulatorArgs(argv);
    if (parsed === "help") {
      process.stdout.write(USAGE);
      return;
    }
    emu = await startLinkEmulator(parsed.options);
  } catch (err) {
    const msg = (err as Error).message;
    process.stderr.write(`${msg.startsWith("link-emulator: ") ? msg : `link-emulator: ${msg}`}\n${err instanceof UsageError ? "(--help for usage)\n" : ""}`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
    return;
  }
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  let ending = false;
  const end = (why: string) => {
    if (ending) return;
    ending = true;
    clearTimeout(lifetime);
    const cpu = process.cpuUsage(cpuAtStart);
    process.stdout.write(JSON.stringify({ event: "stats", why, runMs: Math.round(performance.now() - started), cpuMs: Math.round((cpu.user + cpu.system) / 1000), ...emu.stats() }) + "\n");
    void emu.close().then(() => process.exit(0));
  };
  // The hard bound: whatever the parent does, this process ends.
  const lifetime = setTimeout(() => end("duration"), parsed.durationMs);
  process.on("SIGTERM", () => end("SIGTERM"));
  process.on("SIGINT", () => end("SIGINT"));
  process.stdout.write(`link-emulator: listening ${emu.host.includes(":") ? `[${emu.host}]` : emu.host}:${emu.portA}\n`);
}

const entry = process.argv[1];
if (entry !== undefined && resolve(entry) === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
