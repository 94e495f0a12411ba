/** The MSP send buffer (src/msp/send-queue.ts): classic cutting, extended packing, SHUTDOWN placement, take/compact, re-cutting. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EXT_MAX_HEADER_BYTES } from "../../src/msp/ext-packet.ts";
import { MSP_FLAG, MSP_PREAMBLE_BYTES } from "../../src/msp/packet.ts";
import { SendQueue, type TxPacket } from "../../src/msp/send-queue.ts";

const bytes = (n: number, from = 0) => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);
const dataOf = (p: TxPacket) => p.buf.subarray(p.room, p.room + p.len);

function drain(q: SendQueue): TxPacket[] {
  const out: TxPacket[] = [];
  let seq = 0;
  while (!q.empty) out.push(q.take(seq++));
  q.compact();
  return out;
}

describe("SendQueue", () => {
  test("classic: a write is cut into messages of at most `size`, small writes keep their boundaries", () => {
    const q = new SendQueue();
    q.queueClassic(bytes(2500), 1024);
    q.queueClassic(bytes(10, 7), 1024);
    assert.equal(q.bytes, 2510);
    const ps = drain(q);
    assert.deepEqual(ps.map((p) => p.len), [1024, 1024, 452, 10]);
    assert.ok(ps.every((p) => p.room === MSP_PREAMBLE_BYTES && p.cap === 0));
    assert.deepEqual(Array.from(dataOf(ps[1]!)), Array.from(bytes(1024, 1024)));
    assert.deepEqual(Array.from(dataOf(ps[3]!)), Array.from(bytes(10, 7)));
    assert.deepEqual(ps.map((p) => p.seq), [0, 1, 2, 3]);
    assert.equal(q.bytes, 0);
  });

  test("extended: consecutive writes are packed up to `size`", () => {
    const q = new SendQueue();
    q.queueExt(bytes(10), 100);
    q.queueExt(bytes(30, 10), 100);
    q.queueExt(bytes(150, 40), 100);
    assert.equal(q.bytes, 190);
    const ps = drain(q);
    assert.deepEqual(ps.map((p) => p.len), [100, 90]);
    assert.ok(ps.every((p) => p.room === EXT_MAX_HEADER_BYTES));
    assert.deepEqual(Array.from(dataOf(ps[0]!)), Array.from(bytes(100)));
    assert.deepEqual(Array.from(dataOf(ps[1]!)), Array.from(bytes(90, 100)));
  });

  test("a taken packet no longer grows: the next write starts a new one", () => {
    const q = new SendQueue();
    q.queueExt(bytes(10), 100);
    const first = q.take(0);
    q.queueExt(bytes(10, 10), 100);
    assert.equal(first.len, 10);
    assert.equal(q.take(1).len, 10);
  });

  test("SHUTDOWN rides on the last queued packet, or on a bare one; nothing joins a packet after it", () => {
    const q = new SendQueue();
    q.queueShutdown(MSP_PREAMBLE_BYTES);
    const [bare] = drain(q);
    assert.equal(bare!.len, 0);
    assert.equal(bare!.flags, MSP_FLAG.SHUTDOWN);
    assert.equal(bare!.buf.length, MSP_PREAMBLE_BYTES);

    q.queueExt(bytes(10), 100);
    q.queueShutdown(EXT_MAX_HEADER_BYTES);
    q.queueExt(bytes(5), 100);
    const ps = drain(q);
    assert.deepEqual(ps.map((p) => [p.len, p.flags]), [[10, MSP_FLAG.SHUTDOWN], [5, 0]]);
  });

  test("recutExt packs unsent classic messages to the extended size and keeps the SHUTDOWN at the end", () => {
    const q = new SendQueue();
    q.queueClassic(bytes(300), 100);
    q.queueClassic(bytes(50, 300), 100);
    q.queueShutdown(MSP_PREAMBLE_BYTES);
    q.take(0); // already sent classic
    q.recutExt(1000);
    assert.equal(q.bytes, 250);
    const ps = drain(q);
    assert.equal(ps.length, 1);
    assert.equal(ps[0]!.room, EXT_MAX_HEADER_BYTES);
    assert.equal(ps[0]!.flags, MSP_FLAG.SHUTDOWN);
    assert.deepEqual(Array.from(dataOf(ps[0]!)), Array.from(bytes(250, 100)));

    const bareOnly = new SendQueue();
    bareOnly.queueShutdown(MSP_PREAMBLE_BYTES);
    bareOnly.recutExt(1000);
    const [b] = drain(bareOnly);
    assert.deepEqual([b!.len, b!.flags, b!.room], [0, MSP_FLAG.SHUTDOWN, EXT_MAX_HEADER_BYTES]);
  });

  test("clear forgets everything; compact after many takes keeps the rest in order", () => {
    const q = new SendQueue();
    for (let i = 0; i < 3000; i++) q.queueClassic(bytes(1, i), 10);
    for (let i = 0; i < 2000; i++) q.take(i);
    q.compact();
    assert.equal(q.bytes, 1000);
    assert.equal(dataOf(q.take(2000))[0], 2000 & 0xff);
    q.clear();
    assert.ok(q.empty);
    assert.equal(q.bytes, 0);
  });
});
