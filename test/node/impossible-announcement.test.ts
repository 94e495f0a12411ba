import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { impossibleAnnouncement, MIN_ROUTE_MTU, usableId } from "../../src/node/impossible-announcement.ts";
import { METRIC_INFINITY } from "../../src/node/route-packet.ts";

const sid = new Uint8Array(32).fill(7);
const boot = new Uint8Array(8).fill(9);

describe("impossibleAnnouncement", () => {
  test("usableId rejects all-zero and all-0xFF ids, at an offset", () => {
    const b = new Uint8Array(12);
    assert.equal(usableId(b, 2, 8), false);
    b.fill(0xff, 2, 10);
    assert.equal(usableId(b, 2, 8), false);
    b[5] = 0;
    assert.equal(usableId(b, 2, 8), true);
    assert.equal(usableId(b, 6, 4), false, "only the named bytes count");
  });

  test("a plausible route passes; each impossible field fails it", () => {
    assert.equal(impossibleAnnouncement(sid, 0, boot, 0, 512, 2, 1000), false);
    assert.equal(impossibleAnnouncement(new Uint8Array(32), 0, boot, 0, 512, 2, 1000), true, "SID any");
    assert.equal(impossibleAnnouncement(new Uint8Array(32).fill(0xff), 0, boot, 0, 512, 2, 1000), true, "broadcast SID");
    assert.equal(impossibleAnnouncement(sid, 0, new Uint8Array(8), 0, 512, 2, 1000), true, "zero boot");
    assert.equal(impossibleAnnouncement(sid, 0, boot, 0, 511, 2, 1000), true, "below 256 per hop");
    assert.equal(impossibleAnnouncement(sid, 0, boot, 0, 1, 0, 1000), true, "hop 0 with a metric");
    assert.equal(impossibleAnnouncement(sid, 0, boot, 0, 0, 0, 1000), false, "the origin itself");
    assert.equal(impossibleAnnouncement(sid, 0, boot, 0, 512, 2, MIN_ROUTE_MTU - 1), true, "tiny MTU");
  });

  test("a retraction is checked for its ids only", () => {
    assert.equal(impossibleAnnouncement(sid, 0, boot, 0, METRIC_INFINITY, 0, 0), false);
    assert.equal(impossibleAnnouncement(sid, 0, new Uint8Array(8), 0, METRIC_INFINITY, 0, 0), true);
  });
});
