import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BAN_MS, BAN_REFUSALS_PER_S, FILTER_COOKIE_ALLOW_MS, FILTER_SAMPLE_ONE_IN, LoadFilter } from "../../src/node/load-filter.ts";

const peer = { host: "10.0.0.1", port: 1 };
const flooder = { host: "10.0.0.66", port: 2 };
const newcomer = { host: "10.0.0.7", port: 3 };

describe("LoadFilter", () => {
  test("idle without load: nothing to apply, nothing to remove", () => {
    const f = new LoadFilter();
    assert.deepEqual(f.update(0, false, () => assert.fail("live addresses asked without load")), { kind: "idle", remove: false });
    assert.equal(f.on, false);
  });

  test("under load: live peers and cookie holders pass, the rest is sampled; unchanged lists are not re-applied", () => {
    const f = new LoadFilter();
    f.cookieSent(newcomer, 0);
    const s1 = f.update(0, true, () => [peer]);
    assert.equal(s1.kind, "active");
    assert.ok(s1.kind === "active" && s1.first && s1.apply);
    assert.deepEqual(s1.apply, { allow: [peer, newcomer], deny: [], sampleOneIn: FILTER_SAMPLE_ONE_IN });
    assert.equal(f.on, true);
    assert.deepEqual(f.update(100, true, () => [peer]), { kind: "active", apply: undefined, first: false });
    const s3 = f.update(FILTER_COOKIE_ALLOW_MS + 1, true, () => [peer]);
    assert.ok(s3.kind === "active" && !s3.first);
    assert.deepEqual(s3.apply?.allow, [peer], "the cookie's pass ran out");
  });

  test("an address refused BAN_REFUSALS_PER_S times within a second is denied for BAN_MS, and keeps the filter on", () => {
    const f = new LoadFilter();
    for (let i = 0; i < BAN_REFUSALS_PER_S - 1; i++) f.refused(flooder, 0);
    f.refused(flooder, 1000); // a new second: counting starts again
    const s1 = f.update(1000, true, () => []);
    assert.ok(s1.kind === "active");
    assert.deepEqual(s1.apply?.deny, []);
    for (let i = 0; i < BAN_REFUSALS_PER_S; i++) f.refused(flooder, 1500);
    const s2 = f.update(1500, true, () => []);
    assert.ok(s2.kind === "active");
    assert.deepEqual(s2.apply?.deny, [flooder]);
    assert.equal(f.update(2000, false, () => []).kind, "active", "a ban outlasts the load");
    assert.deepEqual(f.update(1500 + BAN_MS, false, () => []), { kind: "idle", remove: true }, "ban over, load gone: off");
    assert.equal(f.on, false);
    assert.deepEqual(f.update(1600 + BAN_MS, false, () => []), { kind: "idle", remove: false }, "removed once");
  });
});
