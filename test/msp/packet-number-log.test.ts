/** Packet numbers and their send times (src/msp/packet-number-log.ts): numbering, lookup, ring eviction, 32-bit distance. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { PacketNumberLog, PN_RING, pnDiff } from "../../src/msp/packet-number-log.ts";

describe("PacketNumberLog", () => {
  test("numbers transmissions 1, 2, … and remembers when each went", () => {
    const log = new PacketNumberLog();
    assert.equal(log.next, 1);
    assert.equal(log.record(10), 1);
    assert.equal(log.record(12.5), 2);
    assert.equal(log.next, 3);
    assert.equal(log.sentAt(1), 10);
    assert.equal(log.sentAt(2), 12.5);
    assert.equal(log.sentAt(3), undefined, "not sent yet");
  });

  test("only the last PN_RING send times are kept", () => {
    const log = new PacketNumberLog();
    for (let i = 1; i <= PN_RING + 5; i++) log.record(i * 2);
    assert.equal(log.sentAt(5), undefined, "overwritten by pn PN_RING+5");
    assert.equal(log.sentAt(6), 12);
    assert.equal(log.sentAt(PN_RING + 5), (PN_RING + 5) * 2);
  });

  test("pnDiff is a signed 32-bit distance across the wrap", () => {
    assert.equal(pnDiff(5, 3), 2);
    assert.equal(pnDiff(3, 5), -2);
    assert.equal(pnDiff(1, 0xffff_ffff), 2);
    assert.equal(pnDiff(0xffff_ffff, 1), -2);
  });
});
