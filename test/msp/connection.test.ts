/** The sans-I/O MSP state machine on its own: packets in and out by hand, time by ManualClock. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import type { SvpError } from "../../src/errors.ts";
import { toHex, fromHex } from "../../src/bytes/hex.ts";
import { MspConnection } from "../../src/msp/connection.ts";
import type { MspRole } from "../../src/msp/connection.ts";
import { decodeMspPacket, encodeMspAck, encodeMspSequenced, MSP_FLAG } from "../../src/msp/packet.ts";
import { resolveMspParams } from "../../src/msp/params.ts";
import type { MspOptions } from "../../src/msp/params.ts";

function make(role: MspRole, options: MspOptions = {}, clock = new ManualClock()) {
  const out: { at: number; bytes: Uint8Array }[] = [];
  const ev = { readable: 0, drain: 0, answered: 0, closed: [] as (SvpError | undefined)[], released: 0 };
  const c = new MspConnection(role, resolveMspParams(options), clock, {
    transmit: (b) => out.push({ at: clock.now(), bytes: b }),
    readable: () => ev.readable++,
    drain: () => ev.drain++,
    answered: () => ev.answered++,
    closed: (e) => ev.closed.push(e),
    released: () => ev.released++,
  });
  const hex = () => out.map((o) => toHex(o.bytes));
  const parsed = () =>
    out.map((o) => {
      const r = decodeMspPacket(o.bytes);
      assert.ok(r.ok, "r.ok");
      return r.packet;
    });
  return { c, out, ev, clock, hex, parsed };
}

/** An answered connector (it heard a packet from the peer). */
function connected(options: MspOptions = {}) {
  const m = make("connector", options);
  m.c.start();
  m.c.receive(fromHex("00ffff")!);
  m.out.length = 0;
  return m;
}

const seqOf = (b: Uint8Array) => b[3]! | (b[4]! << 8);

describe("MSP connection state machine", () => {
  test("a write larger than a message is split; small writes keep their boundaries", () => {
    const { c, out } = connected({ window: 16 });
    c.write(new Uint8Array(3000));
    c.write(new Uint8Array(10));
    c.write(new Uint8Array(20));
    assert.deepEqual(out.map((o) => o.bytes.length - 5), [1024, 1024, 952, 10, 20]);
    assert.deepEqual(out.map((o) => seqOf(o.bytes)), [0, 1, 2, 3, 4]);
  });

  test("at most `window` packets in flight; an ack lets the next ones go", () => {
    const { c, out, clock } = connected();
    assert.equal(c.write(new Uint8Array(10 * 1024)), true);
    assert.equal(out.length, 4);
    assert.equal(c.inflightCount, 4);
    assert.equal(c.pendingBytes, 6 * 1024);
    clock.advance(50);
    c.receive(encodeMspAck(MSP_FLAG.ACK, 1)); // seq 0 and 1 consumed
    assert.equal(out.length, 6);
    assert.deepEqual(out.slice(4).map((o) => seqOf(o.bytes)), [4, 5]);
    assert.equal(c.counters.rttMs, 50);
  });

  test("write() returns false at the high-water mark and drain follows when half of it is sent", () => {
    const { c, ev } = connected({ highWaterMark: 4096 });
    assert.equal(c.write(new Uint8Array(4096)), true, "the window takes 4 KiB at once");
    assert.equal(c.write(new Uint8Array(4096)), false);
    assert.equal(ev.drain, 0);
    c.receive(encodeMspAck(MSP_FLAG.ACK, 0));
    assert.equal(ev.drain, 0, "3 KiB still waiting");
    c.receive(encodeMspAck(MSP_FLAG.ACK, 1));
    assert.equal(ev.drain, 1, "2 KiB waiting = half the mark");
  });

  test("unacknowledged packets are resent after 1.5 s, acknowledged ones are not", () => {
    const { c, out, clock } = connected();
    c.write(new Uint8Array(6 * 1024));
    clock.advance(100);
    c.receive(encodeMspAck(MSP_FLAG.ACK, 1)); // frees 0,1; sends 4,5 at t=100
    out.length = 0;
    clock.advance(1399);
    assert.equal(out.length, 0);
    clock.advance(1); // t=1500: 2 and 3 are due
    assert.deepEqual(out.map((o) => seqOf(o.bytes)), [2, 3]);
    clock.advance(100); // t=1600: 4 and 5
    assert.deepEqual(out.map((o) => seqOf(o.bytes)), [2, 3, 4, 5]);
    assert.equal(c.counters.retransmissions, 4);
    // A retransmission carries the current ack state and is a fresh buffer.
    c.receive(encodeMspSequenced(MSP_FLAG.ACK, 1, 0, Uint8Array.of(1)));
    c.read();
    c.flushAck();
    out.length = 0;
    clock.advance(1500);
    assert.ok(out.every((o) => o.bytes[0] === MSP_FLAG.ACK && o.bytes[1] === 0), "resent with ACK 0");
  });

  test("an ack is sent only when the application consumed the data", () => {
    const { c, out, ev } = connected();
    c.receive(encodeMspSequenced(0, 0xffff, 0, Uint8Array.of(1, 2, 3)));
    c.receive(encodeMspSequenced(0, 0xffff, 1, Uint8Array.of(4)));
    assert.equal(ev.readable, 1);
    assert.equal(out.length, 0, "nothing consumed, nothing acknowledged");
    assert.deepEqual([...c.read()!], [1, 2, 3]);
    c.flushAck();
    assert.deepEqual(out.map((o) => toHex(o.bytes)), ["020000"]);
    assert.deepEqual([...c.read()!], [4]);
    assert.equal(c.read(), undefined);
    c.flushAck();
    assert.deepEqual(out.map((o) => toHex(o.bytes)), ["020000", "020100"]);
    c.flushAck();
    assert.equal(out.length, 2, "no ack when none is due");
    assert.equal(c.counters.bytesIn, 4);
  });

  test("out-of-order packets wait for the gap; duplicates and old packets are ignored (old ones re-acked)", () => {
    const { c, out, ev } = connected();
    c.receive(encodeMspSequenced(0, 0xffff, 2, Uint8Array.of(2)));
    c.receive(encodeMspSequenced(0, 0xffff, 1, Uint8Array.of(1)));
    assert.equal(ev.readable, 0);
    assert.equal(c.read(), undefined);
    c.receive(encodeMspSequenced(0, 0xffff, 1, Uint8Array.of(9))); // duplicate of a buffered one
    c.receive(encodeMspSequenced(0, 0xffff, 0, Uint8Array.of(0)));
    assert.equal(ev.readable, 1);
    const got: number[] = [];
    for (let d = c.read(); d; d = c.read()) got.push(...d);
    assert.deepEqual(got, [0, 1, 2]);
    c.flushAck();
    assert.deepEqual(out.map((o) => toHex(o.bytes)), ["020200"]);
    c.receive(encodeMspSequenced(0, 0xffff, 1, Uint8Array.of(1))); // old: our ack was lost?
    assert.deepEqual(out.map((o) => toHex(o.bytes)), ["020200", "020200"]);
    assert.equal(c.read(), undefined);
    assert.deepEqual(c.counters.drops, { duplicate: 2 });
  });

  test("bounded memory: packets beyond the receive window are dropped", () => {
    const { c } = connected({ window: 4 }); // receive window 8
    for (let s = 0; s < 200; s++) c.receive(encodeMspSequenced(0, 0xffff, (s * 7919) % 32000, new Uint8Array(1000)));
    for (let s = 0; s < 8; s++) c.receive(encodeMspSequenced(0, 0xffff, s, new Uint8Array(1000)));
    assert.equal(c.bufferedCount, 8);
    const beyond = c.counters.drops["beyond-window"] ?? 0;
    assert.ok(beyond >= 190, `${beyond} dropped beyond the window`);
  });

  test("an ack for data never sent is dropped whole and changes nothing", () => {
    const { c, out } = connected();
    c.write(new Uint8Array(10));
    c.receive(encodeMspSequenced(MSP_FLAG.ACK, 5, 0, Uint8Array.of(1)));
    assert.equal(c.inflightCount, 1);
    assert.equal(c.read(), undefined, "its data was dropped too");
    assert.deepEqual(c.counters.drops, { "bad-ack": 1 });
    assert.equal(out.length, 1);
  });

  test("packets after the peer's SHUTDOWN are dropped; SHUTDOWN is seen after the data before it", () => {
    const { c } = connected();
    c.receive(encodeMspSequenced(MSP_FLAG.SHUTDOWN, 0xffff, 1, new Uint8Array(0)));
    c.receive(encodeMspSequenced(0, 0xffff, 2, Uint8Array.of(2)));
    assert.deepEqual(c.counters.drops, { "after-shutdown": 1 });
    assert.equal(c.peerShutdown, false);
    c.receive(encodeMspSequenced(0, 0xffff, 0, Uint8Array.of(0)));
    assert.deepEqual([...c.read()!], [0]);
    assert.equal(c.peerShutdown, false);
    assert.equal(c.read()!.length, 0);
    assert.equal(c.peerShutdown, true);
    assert.equal(c.state, "remote-shutdown");
  });

  test("clean close: both SHUTDOWNs acknowledged and the last ack sent; a lost last ack is repeated while lingering", () => {
    const { c, out, ev, clock } = connected({ lingerMs: 3000 });
    c.write(Uint8Array.of(7));
    c.shutdown();
    assert.throws(() => c.write(Uint8Array.of(1)), (e: unknown) => isSvpError(e, "ERR_ABORTED"));
    assert.equal(c.state, "local-shutdown");
    c.receive(encodeMspSequenced(MSP_FLAG.ACK | MSP_FLAG.SHUTDOWN, 1, 0, Uint8Array.of(9)));
    assert.equal(c.state, "local-shutdown", "the peer's SHUTDOWN counts once consumed");
    c.read();
    assert.equal(c.state, "closing");
    c.flushAck();
    assert.equal(ev.closed.length, 1);
    assert.equal(ev.closed[0], undefined);
    assert.equal(c.state, "closed");
    out.length = 0;
    clock.advance(1500);
    c.receive(encodeMspSequenced(MSP_FLAG.ACK | MSP_FLAG.SHUTDOWN, 1, 0, Uint8Array.of(9))); // the peer resends
    assert.deepEqual(out.map((o) => toHex(o.bytes)), ["020000"]);
    assert.equal(ev.released, 0);
    clock.advance(2999);
    assert.equal(ev.released, 0);
    clock.advance(1);
    assert.equal(ev.released, 1);
    assert.equal(clock.pendingCount, 0);
  });

  test("STOP: refusal before an answer, reset after; a local abort sends STOP and repeats it while lingering", () => {
    const refused = make("connector");
    refused.c.start();
    refused.c.receive(Uint8Array.of(8));
    assert.ok(isSvpError(refused.ev.closed[0], "ERR_REFUSED"), "isSvpError(refused.ev.closed[0], \"ERR_REFUSED\")");
    assert.equal(refused.ev.released, 1, "nothing to linger for");

    const reset = connected();
    reset.c.receive(Uint8Array.of(8));
    assert.ok(isSvpError(reset.ev.closed[0], "ERR_RESET"), "isSvpError(reset.ev.closed[0], \"ERR_RESET\")");
    assert.equal(reset.c.state, "failed");

    const aborted = connected();
    aborted.c.write(new Uint8Array(100));
    aborted.out.length = 0;
    aborted.c.abort();
    assert.deepEqual(aborted.hex(), ["08"]);
    assert.equal(aborted.ev.closed[0], undefined);
    aborted.c.receive(encodeMspAck(0, 0xffff));
    assert.deepEqual(aborted.hex(), ["08", "08"]);
    aborted.c.receive(Uint8Array.of(8)); // the peer's STOP ends the linger, unanswered
    assert.deepEqual(aborted.hex(), ["08", "08"]);
    assert.equal(aborted.ev.released, 1);
  });

  test("STOP answering our retransmitted bare SHUTDOWN after both sides shut down is a clean end (servald forgot us)", () => {
    const { c, ev, clock } = connected();
    c.receive(encodeMspSequenced(MSP_FLAG.SHUTDOWN, 0xffff, 0, Uint8Array.of(1)));
    c.read();
    c.flushAck();
    c.shutdown(); // a bare SHUTDOWN: the peer's final ack for it is lost
    clock.advance(1500);
    c.receive(Uint8Array.of(8)); // servald closed and answers the retransmission with STOP
    assert.equal(ev.closed.length, 1);
    assert.equal(ev.closed[0], undefined, "clean");
    const other = connected();
    other.c.write(Uint8Array.of(1)); // data outstanding: a STOP now is a reset
    other.c.receive(Uint8Array.of(8));
    assert.ok(isSvpError(other.ev.closed[0], "ERR_RESET"), "reset");
  });

  test("a listener sends nothing before accept(); then it answers and keeps alive", () => {
    const { c, out, clock } = make("listener");
    c.receive(fromHex("04ffff")!);
    clock.advance(5000);
    assert.equal(out.length, 0, "no keep-alive for an unanswered connection");
    c.accept();
    c.flushAck();
    assert.deepEqual(out.map((o) => toHex(o.bytes)), ["00ffff"]);
    clock.advance(1500);
    assert.deepEqual(out.map((o) => [o.at, toHex(o.bytes)]), [
      [5000, "00ffff"],
      [6500, "00ffff"],
    ]);
  });

  test("an unanswered listener connection still times out 10 s after the connector fell silent", () => {
    const { c, ev, clock } = make("listener");
    c.receive(fromHex("04ffff")!);
    clock.advance(9999);
    assert.equal(ev.closed.length, 0);
    clock.advance(1);
    assert.ok(isSvpError(ev.closed[0], "ERR_TIMEOUT"), "isSvpError(ev.closed[0], \"ERR_TIMEOUT\")");
    assert.equal(clock.pendingCount, 0);
  });

  test("a connector without data sends a 3-byte FIRST; with queued data and shutdown, FIRST|SHUTDOWN rides on the data", () => {
    const bare = make("connector");
    bare.c.start();
    assert.deepEqual(bare.hex(), ["04ffff"]);
    const piped = make("connector");
    piped.c.write(new TextEncoder().encode("hi"));
    piped.c.shutdown();
    assert.equal(piped.out.length, 0, "nothing before start()");
    piped.c.start();
    assert.deepEqual(piped.hex(), ["05ffff00006869"]);
  });

  test("transport loss finishes with ERR_MESH_DOWN and releases at once", () => {
    const { c, ev, clock } = connected();
    c.transportLost();
    assert.ok(isSvpError(ev.closed[0], "ERR_MESH_DOWN"), "isSvpError(ev.closed[0], \"ERR_MESH_DOWN\")");
    assert.equal(ev.released, 1);
    assert.equal(clock.pendingCount, 0);
  });

  test("parameters are validated", () => {
    for (const bad of [{ window: 0 }, { window: 1.5 }, { messageSize: 2000 }, { retransmitMs: 0 }, { timeoutMs: Number.NaN }, { lingerMs: -1 }, { receiveWindow: 2, window: 4 }]) {
      assert.throws(() => resolveMspParams(bad), (e: unknown) => isSvpError(e, "ERR_USAGE"), JSON.stringify(bad));
    }
    const d = resolveMspParams();
    assert.deepEqual(
      [d.window, d.messageSize, d.retransmitMs, d.keepaliveMs, d.timeoutMs, d.receiveWindow, d.maxPacketBytes],
      [4, 1024, 1500, 1500, 10_000, 8, 1160],
    );
  });
});
