/**
 * Helpers for MSP tests on a ManualClock: virtual time moves only when a test says so, and
 * microtasks (MspStream's deferred delivery, flush and close) are drained between steps.
 */

import { setImmediate as nextTurn } from "node:timers/promises";
import type { ManualClock } from "../../src/clock.ts";
import type { SvpError } from "../../src/errors.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { toHex } from "../../src/bytes/hex.ts";
import assert from "node:assert/strict";
import { ManualClock as Clock } from "../../src/clock.ts";
import { MemoryMdpNetwork, type MemoryMdpNetworkOptions, type MemoryMdpTransport } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp, type MspListener, type MspListenOptions } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import type { MspConnectOptions } from "../../src/msp/connect.ts";
import type { MdpAddress, MdpSocket } from "../../src/mdp/transport.ts";
import { sidEquals } from "../../src/mesh/sid.ts";
import { decodeMdpDatagram } from "../../src/mdp/header.ts";
import { fromHex } from "../../src/bytes/hex.ts";
import { TRACE_ROWS } from "../mdp/trace-vectors.ts";
import type { TraceRow } from "../mdp/trace-vectors.ts";

/** A stream's received bytes, end and close, collected as they happen (it is not resumed). */
export function collect(s: ByteStream) {
  const r = { chunks: [] as Uint8Array[], ended: false, closed: false, error: undefined as SvpError | undefined };
  s.on("data", (c) => r.chunks.push(c.slice()));
  s.on("end", () => (r.ended = true));
  s.on("close", (err) => {
    r.closed = true;
    r.error = err;
  });
  return r;
}

/** Let every queued microtask run (one event-loop turn; no real waiting). */
export function settle(): Promise<void> {
  return nextTurn();
}

/** Let chains of up to `depth` microtasks run (much cheaper than a whole event-loop turn). */
async function microtasks(depth = 16): Promise<void> {
  for (let i = 0; i < depth; i++) await null;
}

/** Fire timers due now and drain microtasks until nothing more happens at this instant. */
export async function drain(clock: ManualClock, maxRounds = 10_000): Promise<void> {
  for (let i = 0; i < maxRounds; i++) {
    await microtasks();
    let next = clock.nextAt();
    if (next === undefined || next > clock.now()) {
      // Make sure: a full event-loop turn runs every microtask, however deep the chain.
      await settle();
      next = clock.nextAt();
      if (next === undefined || next > clock.now()) return;
    }
    clock.advance(0);
  }
  throw new Error("drain: still busy after many rounds");
}

/** Like `drain` but without the final event-loop turn: for stepping through many timers quickly. */
async function quickDrain(clock: ManualClock): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    await microtasks();
    const next = clock.nextAt();
    if (next === undefined || next > clock.now()) return;
    clock.advance(0);
  }
}

/** Advance virtual time by `ms`, stepping timer by timer with microtasks drained in between. */
export async function runFor(clock: ManualClock, ms: number): Promise<void> {
  const end = clock.now() + ms;
  for (;;) {
    await quickDrain(clock);
    const next = clock.nextAt();
    if (next === undefined || next > end) break;
    clock.advanceTo(next);
  }
  clock.advanceTo(end);
  await drain(clock);
}

/** Step through virtual time until `done()` holds; fails after `maxMs` of virtual time. */
export async function runUntil(clock: ManualClock, done: () => boolean, maxMs: number, what = "condition"): Promise<void> {
  const end = clock.now() + maxMs;
  for (;;) {
    await quickDrain(clock);
    if (done()) return;
    let next = clock.nextAt();
    if (next === undefined || next > end) {
      await drain(clock);
      if (done()) return;
      next = clock.nextAt();
    }
    if (next === undefined) throw new Error(`runUntil(${what}): nothing scheduled at ${clock.now()} ms and not done`);
    if (next > end) throw new Error(`runUntil(${what}): not done after ${maxMs} ms of virtual time`);
    clock.advanceTo(next);
  }
}

export interface Sent {
  at: number;
  hex: string;
  from: MdpAddress;
  to: MdpAddress;
}

/** Record every datagram a node sends (MSP payloads as hex), via the network's filter hook. */
export function recordSends(net: MemoryMdpNetwork, clock: ManualClock, node: MemoryMdpTransport): Sent[] {
  const out: Sent[] = [];
  const previous = net.filter;
  net.filter = (d) => {
    if (sidEquals(d.from.sid, node.localSid)) out.push({ at: clock.now(), hex: toHex(d.payload), from: d.from, to: d.to });
    return previous ? previous(d) : true;
  };
  return out;
}

/** A raw MDP socket that plays servald's part: it sends hand-made MSP packets and records what it gets. */
export interface RawPeer {
  socket: MdpSocket;
  got: { at: number; hex: string; from: MdpAddress }[];
  send(to: MdpAddress, hex: string): void;
}

export async function rawPeer(node: MemoryMdpTransport, clock: ManualClock, port = 0): Promise<RawPeer> {
  const socket = await node.bind(port);
  const got: RawPeer["got"] = [];
  socket.on("message", (payload, from) => got.push({ at: clock.now(), hex: toHex(payload), from }));
  return { socket, got, send: (to, hex) => socket.send(to, fromHex(hex)!) };
}

/** The MSP packets (hex) one process sent in one trace scenario, in order. */
export function traceSends(scenario: TraceRow["scenario"], process: TraceRow["process"]): { ms: number; hex: string }[] {
  const out: { ms: number; hex: string }[] = [];
  for (const row of TRACE_ROWS) {
    if (row.scenario !== scenario || row.process !== process || row.dir !== "sends") continue;
    const r = decodeMdpDatagram(fromHex(row.hex)!);
    if (!r.ok || r.payload.length === 0) continue; // bind/close requests to the daemon
    out.push({ ms: row.ms, hex: toHex(r.payload) });
  }
  return out;
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const hexOf = (s: string): string => toHex(utf8(s));

/** Write `data` honouring backpressure (synchronously from drain events), then optionally closeWrite. */
export function feed(s: MspStream, data: Uint8Array, chunk: number, end: boolean): { done: boolean } {
  const state = { done: false };
  let o = 0;
  const pump = () => {
    while (o < data.length) {
      const piece = data.subarray(o, o + chunk);
      o += piece.length;
      if (!s.write(piece)) return;
    }
    s.off("drain", pump);
    if (end) s.closeWrite();
    state.done = true;
  };
  s.on("drain", pump);
  pump();
  return state;
}

/** Two nodes on a seeded in-memory network (ManualClock), a listener on B port 80 and a connected stream from A. */
export async function mspPair(net: Omit<MemoryMdpNetworkOptions, "clock">, listen: MspListenOptions = {}, connect: MspConnectOptions = {}) {
  const clock = new Clock();
  const network = new MemoryMdpNetwork({ ...net, clock });
  const a = network.addNode();
  const b = network.addNode();
  const listener = await listenMsp(b, 80, { clock, ...listen });
  let server: MspStream | undefined;
  listener.on("accept", (s) => {
    server = s;
    s.accept();
  });
  let client: MspStream | undefined;
  connectMsp(a, { sid: b.localSid, port: 80 }, { clock, ...connect }).then((s) => (client = s));
  await runUntil(clock, () => client !== undefined && server !== undefined, 60_000, "connect");
  return { clock, net: network, a, b, listener, client: client!, server: server! };
}

/** After the streams finished: every connection and port is released and no timer is left. */
export async function noLeaks(clock: ManualClock, listener: MspListener, net: MemoryMdpNetwork): Promise<void> {
  await runFor(clock, 30_000);
  assert.equal(listener.connectionCount, 0, "the listener forgot every connection");
  assert.deepEqual(net.nodes[0]!.boundPorts, [], "the connector's port was released");
  listener.close();
  await drain(clock);
  assert.equal(listener.closed, true, "the listener released its port");
  assert.equal(clock.pendingCount, 0, "no timer left");
}
