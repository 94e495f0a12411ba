/** Extended-mode loss detection (src/msp/loss-detector.ts): packet and time thresholds, lossTime, adaptive reordering tolerance. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EXT_MAX_PACKET_THRESHOLD, EXT_MAX_TIME_THRESHOLD, LossDetector } from "../../src/msp/loss-detector.ts";
import { RttEstimator } from "../../src/msp/rtt-estimator.ts";
import { newTxPacket, type TxPacket } from "../../src/msp/send-queue.ts";

function sent(pn: number, sentAt: number, extra: Partial<TxPacket> = {}): TxPacket {
  return Object.assign(newTxPacket(new Uint8Array(0), 0, 0, 0, 0), { pn, sentAt }, extra);
}

function rtt100(): RttEstimator {
  const r = new RttEstimator(333);
  r.update(100, 0, 0);
  return r;
}

describe("LossDetector", () => {
  test("nothing acknowledged yet: nothing is lost and no loss timer", () => {
    const d = new LossDetector();
    const lost: TxPacket[] = [];
    d.lossTime = 5;
    d.detect([sent(1, 0)], 0, 0, 1000, rtt100(), (p) => lost.push(p));
    assert.deepEqual(lost, []);
    assert.equal(d.lossTime, Infinity);
  });

  test("a packet overtaken by 3 acknowledged ones is lost; a younger one waits for the time threshold", () => {
    const d = new LossDetector();
    const list = [sent(1, 0), sent(2, 1), sent(3, 2), sent(5, 4)];
    const lost: number[] = [];
    // largest acked 5: pn 1 and 2 are 4 and 3 behind (lost), pn 3 only 2 (waits), pn 5 itself is not older.
    d.detect(list, 0, 5, 10, rtt100(), (p) => lost.push(p.pn));
    assert.deepEqual(lost, [1, 2]);
    assert.equal(d.lossTime, 2 + (9 / 8) * 100);
    // Once that time has passed it is lost too.
    d.detect(list, 2, 5, 2 + (9 / 8) * 100, rtt100(), (p) => lost.push(p.pn));
    assert.deepEqual(lost, [1, 2, 3]);
  });

  test("sacked, already lost and classic-sent packets: skipped, skipped, always old enough", () => {
    const d = new LossDetector();
    const list = [sent(0, 0), sent(1, 0, { sacked: true }), sent(2, 0, { lost: true }), sent(9, 0)];
    const lost: number[] = [];
    d.detect(list, 0, 9, 1, rtt100(), (p) => lost.push(p.pn));
    assert.deepEqual(lost, [0]);
    assert.equal(d.lossTime, Infinity);
  });

  test("spurious losses raise the tolerance, up to its bounds", () => {
    const d = new LossDetector();
    d.onSpuriousLoss(20, 10);
    assert.equal(d.packetThreshold, 11);
    assert.equal(d.timeThreshold, 9 / 8 + 1 / 8);
    d.onSpuriousLoss(20, 18); // a smaller distance never lowers it
    assert.equal(d.packetThreshold, 11);
    d.onSpuriousLoss(1000, 1);
    assert.equal(d.packetThreshold, EXT_MAX_PACKET_THRESHOLD);
    for (let i = 0; i < 20; i++) d.onSpuriousLoss(20, 0);
    assert.equal(d.timeThreshold, EXT_MAX_TIME_THRESHOLD);
    // With the larger tolerance a packet 4 behind is no longer lost at once.
    const lost: number[] = [];
    d.detect([sent(1, 0), sent(5, 1)], 0, 5, 10, rtt100(), (p) => lost.push(p.pn));
    assert.deepEqual(lost, []);
    assert.equal(d.lossTime, 0 + EXT_MAX_TIME_THRESHOLD * 100);
  });
});
