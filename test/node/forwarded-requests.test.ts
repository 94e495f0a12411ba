import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ForwardedRequests } from "../../src/node/forwarded-requests.ts";

describe("ForwardedRequests", () => {
  test("the same request passes once per hold time; retries after it go through", () => {
    const f = new ForwardedRequests(8, 500);
    assert.ok(f.admit("x", 1000));
    assert.ok(!f.admit("x", 1499));
    assert.ok(f.admit("y", 1499), "another request is independent");
    assert.ok(f.admit("x", 1500));
    assert.ok(!f.admit("x", 1600), "held again from the retry");
  });

  test("bounded: the oldest is forgotten when full; prune drops expired ones", () => {
    const f = new ForwardedRequests(2, 500);
    f.admit("a", 0);
    f.admit("b", 10);
    f.admit("c", 20);
    assert.equal(f.size, 2);
    assert.ok(f.admit("a", 30), "a was evicted, so it passes again");
    assert.ok(!f.admit("c", 30));
    f.prune(520);
    assert.equal(f.size, 2, "c (20) and a (30) are within 500 ms");
    f.prune(531);
    assert.equal(f.size, 0);
  });
});
