import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { BroadcastRelay, FLOOD_RELAY_BURST, FLOOD_RELAY_RATE, MAX_FLOOD_IDS } from "../../src/node/broadcast-relay.ts";

const origin = new Uint8Array(32).fill(7);
const id = (n: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setUint32(0, n); return b; };

describe("BroadcastRelay", () => {
  test("each (origin, id) is new once; the cache forgets the oldest beyond MAX_FLOOD_IDS", () => {
    const r = new BroadcastRelay();
    assert.equal(r.firstSight(origin, id(1)), true);
    assert.equal(r.firstSight(origin, id(1)), false);
    assert.equal(r.firstSight(new Uint8Array(32).fill(8), id(1)), true, "another origin, same id: another broadcast");
    for (let i = 2; i <= MAX_FLOOD_IDS; i++) r.firstSight(origin, id(i));
    assert.equal(r.firstSight(origin, id(1)), true, "evicted, so seen as new again");
    assert.equal(r.firstSight(origin, id(MAX_FLOOD_IDS)), false, "recent ones are still remembered");
  });

  test("relays a burst, then at the sustained rate", () => {
    const r = new BroadcastRelay();
    let n = 0;
    while (r.takeToken(0)) n++;
    assert.equal(n, FLOOD_RELAY_BURST);
    assert.equal(r.takeToken(1), false, "a fifth of a token after 1 ms");
    let later = 0;
    for (let i = 0; i < 1000; i++) if (r.takeToken(1000)) later++;
    assert.equal(later, FLOOD_RELAY_RATE, "one second refills the rate's worth");
  });
});
