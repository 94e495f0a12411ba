/**
 * svp's MSP extension (docs/msp-extension.md) over the in-memory transport on a ManualClock:
 * negotiation and its fallbacks, lossy links, loss recovery timing, flow control, half-close
 * and STOP, sequence wrap, and malformed extension fields.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork, type LinkConditions } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { encodeExtPacket, MSP_EXT, MSP_OFFER, MSP_SEQ } from "../../src/msp/ext-packet.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { MSP_FLAG } from "../../src/msp/packet.ts";
import { concat, equalBytes, patternBytes } from "../helpers/wait.ts";
import { collect, drain, feed, hexOf, mspPair, noLeaks, rawPeer, recordSends, runFor, runUntil, traceSends, utf8 } from "./helpers.ts";

const LOSSY: LinkConditions = { loss: 0.1, duplicate: 0.05, reorder: 0.05, reorderDelayMs: 60, delayMs: 5, jitterMs: 20 };
const flagsOf = (hex: string): number => parseInt(hex.slice(0, 2), 16);

/** Both directions at once, with closeWrite after the data; resolves when both streams closed. */
async function exchange(p: Awaited<ReturnType<typeof mspPair>>, up: Uint8Array, down: Uint8Array, maxMs = 3_600_000) {
  const atServer = collect(p.server);
  const atClient = collect(p.client);
  p.server.resume();
  p.client.resume();
  feed(p.client, up, 64 * 1024, true);
  feed(p.server, down, 50_000, true);
  await runUntil(p.clock, () => atServer.closed && atClient.closed, maxMs, "transfer");
  assert.equal(atServer.error, undefined, `server closed with ${atServer.error?.message}`);
  assert.equal(atClient.error, undefined, `client closed with ${atClient.error?.message}`);
  assert.ok(atServer.ended && atClient.ended, "both saw end");
  assert.ok(equalBytes(concat(atServer.chunks), up), "client→server bytes differ");
  assert.ok(equalBytes(concat(atClient.chunks), down), "server→client bytes differ");
}

describe("MSP extension: negotiation", () => {
  test("two svp ends: the FIRST carries OFFER, the listener answers extended, then everything is extended", async () => {
    const clock = new ManualClock(1000);
    const net = new MemoryMdpNetwork({ clock, mtu: 16384, mspExtension: true });
    const a = net.addNode();
    const b = net.addNode();
    const fromA = recordSends(net, clock, a);
    const fromB = recordSends(net, clock, b);
    const listener = await listenMsp(b, 80, { clock });
    let server: MspStream | undefined;
    listener.on("accept", (s) => {
      server = s;
      s.resume();
    });
    let client!: MspStream;
    void connectMsp(a, { sid: b.localSid, port: 80 }, { clock }).then((s) => (client = s));
    await drain(clock);
    assert.ok(server && client);
    assert.equal(client.connection.extension, "on");
    assert.equal(server.connection.extension, "on");
    assert.equal(fromA[0]!.hex, "14ffff", "a 3-byte FIRST|OFFER");
    const atServer = collect(server);
    client.write(utf8("ping"));
    client.closeWrite();
    await runUntil(clock, () => atServer.ended, 5000, "request");
    server.closeWrite();
    client.resume();
    await runUntil(clock, () => client.closed && server!.closed, 5000, "close");
    assert.equal(client.connection.closedCleanly, true);
    assert.equal(server.connection.closedCleanly, true);
    assert.deepEqual(new TextDecoder().decode(concat(atServer.chunks)), "ping");
    for (const s of fromB) assert.ok(flagsOf(s.hex) & MSP_EXT, `listener packet ${s.hex} is extended`);
    for (const s of fromA.slice(1)) assert.ok(flagsOf(s.hex) & MSP_EXT, `connector packet ${s.hex} is extended`);
    net.close();
  });

  test("a listener without the extension (an older svp): classic both ways, no OFFER after the answer", async () => {
    const clock = new ManualClock(1000);
    const net = new MemoryMdpNetwork({ clock, mspExtension: true });
    const a = net.addNode();
    const b = net.addNode();
    const fromA = recordSends(net, clock, a);
    const fromB = recordSends(net, clock, b);
    const listener = await listenMsp(b, 80, { clock, extension: false });
    let server: MspStream | undefined;
    listener.on("accept", (s) => {
      server = s;
      s.resume();
    });
    let client!: MspStream;
    void connectMsp(a, { sid: b.localSid, port: 80 }, { clock, data: utf8("x".repeat(3000)), shutdown: true }).then((s) => (client = s));
    await runUntil(clock, () => client !== undefined, 5000, "connect");
    const atClient = collect(client);
    client.resume();
    await runUntil(clock, () => server !== undefined && server.connection.peerShutdown, 5000, "request");
    server!.write(utf8("reply"));
    server!.closeWrite();
    await runUntil(clock, () => client.closed && server!.closed, 10_000, "close");
    assert.equal(client.connection.extension, "off");
    assert.equal(server!.connection.extension, "off");
    assert.equal(client.connection.closedCleanly, true);
    assert.equal(new TextDecoder().decode(concat(atClient.chunks)), "reply");
    // Before the answer (FIRST): the 0-RTT packets offer; after it: nothing but servald's four bits.
    assert.ok(fromA.filter((s) => flagsOf(s.hex) & MSP_FLAG.FIRST).length >= 3, "the 0-RTT packets went before the answer");
    for (const s of fromA) {
      const f = flagsOf(s.hex);
      if (f & MSP_FLAG.FIRST) assert.ok(f & MSP_OFFER, `${s.hex} offers`);
      else assert.equal(f & 0xf0, 0, `${s.hex} after the answer is classic`);
    }
    for (const s of fromB) assert.equal(flagsOf(s.hex) & 0xf0, 0, `${s.hex} from the classic listener`);
    net.close();
  });

  test("against servald's trace: the only difference is OFFER on the packet sent before the answer", async () => {
    const clock = new ManualClock(1000);
    const net = new MemoryMdpNetwork({ clock, mspExtension: true });
    const svp = net.addNode();
    const peer = net.addNode();
    const sent = recordSends(net, clock, svp);
    const server = await rawPeer(peer, clock, 80);
    let stream: MspStream | undefined;
    void connectMsp(svp, { sid: peer.localSid, port: 80 }, { clock, data: utf8("HELLO-MESH"), shutdown: true }).then((s) => (stream = s));
    await drain(clock);
    const from = server.got[0]!.from;
    server.send(from, "020000");
    await drain(clock);
    assert.ok(stream);
    stream.resume();
    server.send(from, "0200000000" + hexOf("RESPONSE:10"));
    await drain(clock);
    server.send(from, "0300000100");
    await drain(clock);
    assert.equal(stream.connection.extension, "off");
    assert.equal(stream.connection.closedCleanly, true);
    const expected = traceSends("basic", "connect").map((t) => t.hex);
    expected[0] = (flagsOf(expected[0]!) | MSP_OFFER).toString(16).padStart(2, "0") + expected[0]!.slice(2);
    assert.deepEqual(
      sent.map((s) => s.hex),
      expected,
    );
    net.close();
  });

  test("a listener with the extension answers a classic connector exactly as servald does", async () => {
    const clock = new ManualClock(1000);
    const net = new MemoryMdpNetwork({ clock, mspExtension: true });
    const svp = net.addNode();
    const peer = net.addNode();
    const sent = recordSends(net, clock, svp);
    const listener = await listenMsp(svp, 80, { clock });
    let s: MspStream | undefined;
    listener.on("accept", (x) => (s = x));
    const client = await rawPeer(peer, clock);
    client.send(listener.local, "05ffff000048454c4c4f2d4d455348");
    await drain(clock);
    assert.ok(s);
    const w = collect(s);
    s.resume();
    await drain(clock);
    s.write(utf8("RESPONSE:10"));
    await drain(clock);
    s.closeWrite();
    await drain(clock);
    client.send(listener.local, "020000");
    client.send(listener.local, "020100");
    await drain(clock);
    assert.equal(s.connection.extension, "off");
    assert.equal(w.closed, true);
    assert.equal(w.error, undefined);
    assert.deepEqual(
      sent.map((x) => x.hex),
      traceSends("basic", "listen").map((t) => t.hex),
    );
    listener.abort();
    net.close();
  });

  test("the FIRST carrying the offer is lost: its retransmission offers again and the extension still comes on", async () => {
    const clock = new ManualClock(1000);
    const net = new MemoryMdpNetwork({ clock, mtu: 16384, mspExtension: true });
    const a = net.addNode();
    const b = net.addNode();
    let dropped = 0;
    net.filter = (d) => {
      if (dropped === 0 && d.payload[0]! & MSP_FLAG.FIRST) {
        dropped++;
        return false;
      }
      return true;
    };
    const listener = await listenMsp(b, 80, { clock });
    let server: MspStream | undefined;
    listener.on("accept", (s) => {
      server = s;
      s.resume();
    });
    let client: MspStream | undefined;
    void connectMsp(a, { sid: b.localSid, port: 80 }, { clock, data: utf8("early") }).then((s) => (client = s));
    await runUntil(clock, () => client !== undefined, 5000, "connect");
    assert.equal(dropped, 1);
    assert.ok(clock.now() >= 2500, "answered only after the 1.5 s retransmission");
    assert.equal(client!.connection.extension, "on");
    assert.equal(server!.connection.extension, "on");
    client!.abort();
    await runFor(clock, 5000);
    net.close();
  });
});

describe("MSP extension: transfers", () => {
  test("0-RTT packets lost before the switch are recovered by the probe timeout, not left behind", async () => {
    const clock = new ManualClock(1000);
    const net = new MemoryMdpNetwork({ clock, mtu: 16384, mspExtension: true, conditions: { delayMs: 10 } });
    const a = net.addNode();
    const b = net.addNode();
    // The connector's first packet (seq 0, with FIRST|OFFER) arrives; its classic seqs 1-3 are lost once.
    const seen = new Set<string>();
    net.filter = (d) => {
      const p = d.payload;
      if (!sidIs(d.from.sid, a.localSid) || p.length < 5 || p[0]! & MSP_EXT) return true;
      const seq = p[3]! | (p[4]! << 8);
      if (seq >= 1 && seq <= 3 && !seen.has(String(seq))) {
        seen.add(String(seq));
        return false;
      }
      return true;
    };
    const listener = await listenMsp(b, 80, { clock });
    let atServer: ReturnType<typeof collect> | undefined;
    listener.on("accept", (s) => {
      atServer = collect(s);
      s.resume();
    });
    const data = patternBytes(4000, 3);
    let client: MspStream | undefined;
    void connectMsp(a, { sid: b.localSid, port: 80 }, { clock, data, shutdown: true }).then((s) => (client = s));
    await runUntil(clock, () => atServer?.ended === true, 1000, "the lost packets");
    assert.equal(seen.size, 3, "three packets were lost");
    assert.equal(client!.connection.extension, "on");
    assert.ok(equalBytes(concat(atServer!.chunks), data));
    client!.abort();
    net.close();
  });

  test("8 MiB each way over a lossy link (10% loss, 5% duplication, reordering, jitter), 16 KiB messages: intact, clean, nothing leaks", async () => {
    const p = await mspPair({ seed: 1, conditions: LOSSY, mtu: 16384, mspExtension: true });
    assert.equal(p.client.connection.extension, "on");
    await exchange(p, patternBytes(8 << 20, 3), patternBytes(8 << 20, 4));
    const c = p.client.connection.counters;
    assert.ok(c.losses > 10 && c.retransmissions > 10, `losses were detected and repaired (${c.losses} losses, ${c.retransmissions} retransmissions)`);
    assert.ok(p.net.stats.lost > 50 && p.net.stats.duplicated > 20, `the link lost ${p.net.stats.lost} and duplicated ${p.net.stats.duplicated}`);
    assert.ok(p.client.connection.transportInfo.messageSize > 16_000, "large messages");
    await noLeaks(p.clock, p.listener, p.net);
    p.net.close();
  });

  test("2 MiB each way over the same link with servald-sized packets (1160): intact, clean", async () => {
    const p = await mspPair({ seed: 2, conditions: LOSSY, mspExtension: true });
    assert.equal(p.client.connection.extension, "on");
    await exchange(p, patternBytes(2 << 20, 5), patternBytes(2 << 20, 6));
    assert.ok(p.client.connection.transportInfo.messageSize <= 1160);
    await noLeaks(p.clock, p.listener, p.net);
    p.net.close();
  });

  test("a single loss, once the RTT is known, stalls delivery for less than 2 RTTs (no timer wait)", async () => {
    const rtt = 40;
    const p = await mspPair({ seed: 3, conditions: { delayMs: rtt / 2 }, mtu: 16384, mspExtension: true });
    const atServer = collect(p.server);
    const arrivals: number[] = [];
    p.server.on("data", () => arrivals.push(p.clock.now()));
    p.server.resume();
    let dataPackets = 0;
    p.net.filter = (d) => {
      if (d.payload[0]! & MSP_SEQ && d.payload[0]! & MSP_EXT && sidIs(d.from.sid, p.a.localSid) && ++dataPackets === 60) return false;
      return true;
    };
    const data = patternBytes(4 << 20, 7);
    feed(p.client, data, 64 * 1024, true);
    await runUntil(p.clock, () => atServer.ended, 600_000, "transfer");
    assert.ok(equalBytes(concat(atServer.chunks), data));
    const c = p.client.connection.counters;
    assert.equal(c.losses, 1, "exactly the one loss was detected");
    assert.equal(c.probes, 0, "no probe timeout was needed");
    let gap = 0;
    for (let i = 1; i < arrivals.length; i++) gap = Math.max(gap, arrivals[i]! - arrivals[i - 1]!);
    assert.ok(gap < 2 * rtt, `longest pause in delivery ${gap} ms (RTT ${rtt} ms)`);
    p.client.abort();
    p.net.close();
  });

  test("half-close both ways, and STOP from either side: exact in extended mode", async () => {
    const p = await mspPair({ seed: 4, conditions: { delayMs: 5 }, mtu: 16384, mspExtension: true });
    const atServer = collect(p.server);
    const atClient = collect(p.client);
    p.server.on("end", () => {
      p.server.write(utf8("answer after end"));
      p.server.closeWrite();
    });
    p.server.resume();
    p.client.resume();
    p.client.write(patternBytes(100_000, 1));
    p.client.closeWrite();
    await runUntil(p.clock, () => atServer.closed && atClient.closed, 10_000, "close");
    assert.equal(atServer.error, undefined);
    assert.equal(atClient.error, undefined);
    assert.equal(new TextDecoder().decode(concat(atClient.chunks)), "answer after end");
    await noLeaks(p.clock, p.listener, p.net);
    p.net.close();

    for (const side of ["client", "server"] as const) {
      const q = await mspPair({ seed: 5, conditions: { delayMs: 5 }, mtu: 16384, mspExtension: true });
      const sent = recordSends(q.net, q.clock, side === "client" ? q.a : q.b);
      const peer = collect(side === "client" ? q.server : q.client);
      q.server.resume();
      q.client.resume();
      feed(q.client, patternBytes(1 << 20, 2), 65536, false);
      await runFor(q.clock, 30);
      const t = q.clock.now();
      (side === "client" ? q.client : q.server).abort();
      await runUntil(q.clock, () => peer.closed, 1000, "reset");
      assert.ok(isSvpError(peer.error, "ERR_RESET"), `${side} abort: peer closed with ${peer.error?.code}`);
      assert.ok(q.clock.now() - t <= 10, "at once (one-way delay)");
      assert.equal(sent[sent.length - 1]!.hex, "08", "STOP is the classic 1-byte packet");
      q.net.close();
    }
  });

  test("a paused reader holds the sender to the receive window; resuming delivers everything", async () => {
    const p = await mspPair({ seed: 6, conditions: { delayMs: 5 }, mtu: 16384, mspExtension: true });
    const data = patternBytes(10 << 20, 8);
    const atServer = collect(p.server);
    const writer = feed(p.client, data, 64 * 1024, true);
    await runFor(p.clock, 5000);
    const rx = p.server.connection;
    assert.equal(writer.done, false, "the writer is held back");
    assert.equal(atServer.chunks.length, 0, "nothing delivered while paused");
    const slots = Math.ceil((2 * 1024 * 1024) / (16384 - 82));
    assert.ok(rx.bufferedCount <= slots + 1, `receive buffer bounded: ${rx.bufferedCount} packets (window ${slots})`);
    assert.ok(p.client.writableLength <= 128 * 1024 + 64 * 1024, `the sender's queue is bounded (${p.client.writableLength})`);
    p.server.resume();
    await runUntil(p.clock, () => atServer.ended, 600_000, "drain");
    assert.ok(equalBytes(concat(atServer.chunks), data), "data differs");
    p.client.abort();
    p.net.close();
  });

  test("16-bit sequence numbers wrap at a large window (70,000 small messages, reordering)", async () => {
    const p = await mspPair({ seed: 7, conditions: { delayMs: 1, reorder: 0.01, reorderDelayMs: 3 }, mtu: 16384, mspExtension: true }, { extMaxPacketBytes: 146 }, { extMaxPacketBytes: 146 });
    assert.equal(p.client.connection.transportInfo.messageSize, 64);
    const data = patternBytes(70_000 * 64, 9);
    const atServer = collect(p.server);
    p.server.resume();
    feed(p.client, data, 64 * 1024, true);
    await runUntil(p.clock, () => atServer.ended, 3_600_000, "transfer");
    assert.ok(equalBytes(concat(atServer.chunks), data), "data differs after the wrap");
    assert.ok(p.client.stats.packetsOut > 65_536);
    p.client.abort();
    p.net.close();
  });
});

describe("MSP extension: bad input", () => {
  test("malformed, contradictory or out-of-range extension fields are dropped and counted; the stream goes on", async () => {
    const p = await mspPair({ seed: 8, conditions: { delayMs: 5 }, mtu: 16384, mspExtension: true });
    const atServer = collect(p.server);
    p.server.resume();
    p.client.write(patternBytes(40_000, 1));
    await runFor(p.clock, 100);
    const c = p.client.connection;
    const base = { flags: 0, pn: 0, seq: -1, ack: 2, limit: 130, largest: 1, delayMs: 0, ranges: [] as number[] };
    const bad: [string, Uint8Array, "bad-ext" | "bad-ack"][] = [
      ["ack beyond what was sent", encodeExtPacket({ ...base, ack: 500 }), "bad-ack"],
      ["a range beyond what was sent", encodeExtPacket({ ...base, ranges: [400, 410] }), "bad-ack"],
      ["a packet number never sent", encodeExtPacket({ ...base, largest: 999_999 }), "bad-ack"],
      ["limit below the ack", encodeExtPacket({ ...base, limit: 1 }), "bad-ext"],
      ["a window of 60,000 packets", encodeExtPacket({ ...base, limit: 60_000 }), "bad-ext"],
      ["truncated", encodeExtPacket(base).subarray(0, 12), "bad-ext"],
      ["17 ranges", Uint8Array.of(...encodeExtPacket(base).subarray(0, 15), 17, ...new Uint8Array(68)), "bad-ext"],
      ["ranges out of order", encodeExtPacket({ ...base, ack: 0, ranges: [5, 6, 3, 3] }), "bad-ext"],
      ["SHUTDOWN without a sequence number", Uint8Array.of(MSP_EXT | MSP_FLAG.ACK | MSP_FLAG.SHUTDOWN, ...new Uint8Array(15)), "bad-ext"],
      ["FIRST on an extended packet", Uint8Array.of(MSP_EXT | MSP_FLAG.ACK | MSP_FLAG.FIRST, ...new Uint8Array(15)), "bad-ext"],
      ["a sequenced packet with packet number 0", encodeExtPacket({ ...base, seq: 0, data: utf8("x") }), "bad-ext"],
      ["a classic packet after the extended answer", Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x41), "bad-ext"],
    ];
    for (const [what, bytes, reason] of bad) {
      const before = c.counters.drops[reason] ?? 0;
      const inBefore = c.counters.packetsIn;
      c.receive(bytes);
      assert.equal(c.counters.drops[reason], before + 1, `${what}: counted as ${reason}`);
      assert.equal(c.counters.packetsIn, inBefore, `${what}: not taken`);
    }
    assert.equal(c.closed, false);
    p.client.write(patternBytes(40_000, 2));
    p.client.closeWrite();
    await runUntil(p.clock, () => atServer.ended, 10_000, "rest");
    assert.ok(equalBytes(concat(atServer.chunks), concat([patternBytes(40_000, 1), patternBytes(40_000, 2)])));
    // A receiver drops what lies beyond the window it offered.
    const rx = p.server.connection;
    const far = encodeExtPacket({ flags: 0, pn: 50, seq: 5000, ack: 0xffff, limit: 0xffff + 130, largest: 0, delayMs: 0, ranges: [], data: utf8("far") });
    const before = rx.counters.drops["beyond-window"] ?? 0;
    rx.receive(far);
    assert.equal(rx.counters.drops["beyond-window"], before + 1);
    p.client.abort();
    p.net.close();
  });

  test("a huge advertised window does not make the sender hold more than its own cap", async () => {
    const p = await mspPair({ seed: 9, conditions: { delayMs: 10 }, mtu: 16384, mspExtension: true }, { extReceiveBytes: 1 << 30 }, { extMaxWindow: 16 });
    p.server.resume();
    feed(p.client, patternBytes(32 << 20, 3), 64 * 1024, false);
    let most = 0;
    for (let i = 0; i < 200; i++) {
      await runFor(p.clock, 1);
      most = Math.max(most, p.client.connection.inflightCount);
    }
    assert.ok(most > 0 && most <= 16, `at most 16 packets in flight (saw ${most})`);
    assert.ok(p.client.writableLength <= 128 * 1024 + 64 * 1024);
    p.client.abort();
    p.net.close();
  });
});

function sidIs(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
