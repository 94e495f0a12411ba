import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MAX_PINGS, PingTracker } from "../../src/node/ping-tracker.ts";

describe("PingTracker", () => {
  test("a reply from the peer pinged gives the RTT once; from another peer, or echo 0, nothing", () => {
    const p = new PingTracker();
    const id = p.next("aa", 100);
    assert.ok(id >= 1);
    assert.equal(p.answer(id, "bb", 130), undefined, "another peer's echo measures nothing");
    assert.equal(p.answer(0, "aa", 130), undefined);
    assert.equal(p.answer(id, "aa", 142), 42);
    assert.equal(p.answer(id, "aa", 150), undefined, "answered once");
  });

  test("ids are distinct and the oldest pings go beyond MAX_PINGS", () => {
    const p = new PingTracker();
    const first = p.next("aa", 0);
    const ids = new Set([first]);
    for (let i = 0; i < MAX_PINGS; i++) ids.add(p.next("aa", 0));
    assert.equal(ids.size, MAX_PINGS + 1);
    assert.equal(p.size, MAX_PINGS);
    assert.equal(p.answer(first, "aa", 5), undefined, "the oldest was forgotten");
    assert.equal(p.answer(first + 1, "aa", 5), 5);
  });
});
