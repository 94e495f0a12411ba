/** The MSP receive ring (src/msp/receive-buffer.ts): in-order hand-over, SHUTDOWN marks, growth, and the selective-ack view. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ReceiveBuffer } from "../../src/msp/receive-buffer.ts";

const d = (n: number) => Uint8Array.of(n);

describe("ReceiveBuffer", () => {
  test("out-of-order packets wait; take() hands them over in order and advances next", () => {
    const rx = new ReceiveBuffer(4);
    assert.equal(rx.limit, 3);
    rx.put(2, d(2), false);
    rx.put(1, d(1), false);
    assert.equal(rx.hasNext, false);
    assert.equal(rx.take(), undefined);
    assert.equal(rx.count, 2);
    rx.put(0, d(0), false);
    assert.ok(rx.has(0) && rx.has(1) && rx.has(2) && !rx.has(3));
    assert.deepEqual([rx.take()![0], rx.take()![0], rx.take()![0]], [0, 1, 2]);
    assert.equal(rx.take(), undefined);
    assert.equal(rx.next, 3);
    assert.equal(rx.limit, 6);
    // The ring wraps: offsets stay relative to next.
    rx.put(3, d(6), false);
    rx.put(0, d(3), false);
    assert.equal(rx.take()![0], 3);
    assert.ok(rx.has(2));
  });

  test("SHUTDOWN marks its packet only; clear drops what is held", () => {
    const rx = new ReceiveBuffer(4);
    rx.put(0, d(0), false);
    rx.put(1, d(1), true);
    assert.equal(rx.nextIsShutdown, false);
    rx.take();
    assert.equal(rx.nextIsShutdown, true);
    rx.clear();
    assert.equal(rx.count, 0);
    assert.equal(rx.hasNext, false);
  });

  test("sequence numbers wrap at 16 bits", () => {
    const rx = new ReceiveBuffer(2);
    for (let i = 0; i < 0x10000; i++) {
      rx.put(0, d(i), false);
      rx.take();
    }
    assert.equal(rx.next, 0);
    assert.equal(rx.limit, 1);
  });

  test("grow keeps the held packets at their offsets", () => {
    const rx = new ReceiveBuffer(4);
    rx.put(0, d(0), false);
    rx.take();
    rx.take();
    rx.put(1, d(2), false);
    rx.put(3, d(4), true);
    rx.grow(16);
    assert.equal(rx.size, 16);
    assert.ok(!rx.has(0) && rx.has(1) && !rx.has(2) && rx.has(3));
    rx.grow(8);
    assert.equal(rx.size, 16, "never shrinks");
    rx.put(0, d(1), false);
    rx.put(2, d(3), false);
    assert.deepEqual([1, 2, 3, 4].map(() => rx.take()![0]), [1, 2, 3, 4]);
    assert.equal(rx.next, 5);
  });

  test("tracking: contig, maxOff, the cumulative ack and the ranges above it", () => {
    const rx = new ReceiveBuffer(32);
    rx.put(0, d(0), false);
    rx.put(2, d(2), false); // before tracking: nothing counted
    assert.deepEqual([rx.contig, rx.maxOff], [0, -1]);
    rx.startTracking();
    assert.deepEqual([rx.contig, rx.maxOff], [1, 2]);
    assert.equal(rx.cumulativeAck, 0);
    rx.put(3, d(3), false);
    rx.put(6, d(6), false);
    rx.put(8, d(8), false);
    rx.put(9, d(9), false);
    assert.deepEqual(rx.ackRanges(16), [2, 3, 6, 6, 8, 9]);
    assert.deepEqual(rx.ackRanges(2), [2, 3, 6, 6], "at most maxRanges runs");
    rx.put(1, d(1), false); // fills the gap: contig runs on to 4
    assert.deepEqual([rx.contig, rx.maxOff], [4, 9]);
    assert.equal(rx.cumulativeAck, 3);
    assert.deepEqual(rx.ackRanges(16), [6, 6, 8, 9]);
    rx.take();
    assert.deepEqual([rx.contig, rx.maxOff, rx.cumulativeAck], [3, 8, 3]);
    assert.deepEqual(rx.ackRanges(16), [6, 6, 8, 9], "ranges stay in sequence numbers");
  });
});
