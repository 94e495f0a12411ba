/** Link cost from hellos (src/node/link-quality.ts): loss both ways, silence, late hellos, RTT. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { IHU_UNKNOWN, LINK_COST_UNIT, LinkQuality, linkCost, RTT_MAX_PENALTY } from "../../src/node/link-quality.ts";
import { METRIC_INFINITY } from "../../src/node/route-packet.ts";

describe("link quality", () => {
  test("a perfect link costs 256; unknown figures count as perfect", () => {
    const q = new LinkQuality();
    assert.equal(q.ihu, IHU_UNKNOWN);
    assert.equal(q.cost, LINK_COST_UNIT);
    for (let s = 1; s <= 20; s++) q.onHello(s, 1000, 254, s * 1000);
    assert.equal(q.rx, 1);
    assert.equal(q.ihu, 254);
    assert.equal(q.cost, 256);
  });

  test("every other hello lost one way doubles the cost; lost both ways, quadruples it", () => {
    const q = new LinkQuality();
    for (let s = 1; s <= 33; s += 2) q.onHello(s, 1000, 254, s * 1000);
    assert.equal(q.rx, 0.5);
    assert.equal(q.cost, 512);
    q.onHello(35, 1000, 127, 35_000);
    assert.equal(q.cost, linkCost(q.rx!, 0.5, undefined));
    assert.ok(q.cost >= 1000 && q.cost <= 1100, `cost ${q.cost}`);
  });

  test("silence counts as loss before the peer timeout; a peer that hears nothing of us makes the link unusable", () => {
    const q = new LinkQuality();
    for (let s = 1; s <= 16; s++) q.onHello(s, 1000, 254, s * 1000);
    q.tick(16_000 + 1400);
    assert.equal(q.rx, 1, "within 1.5 intervals nothing is lost yet");
    q.tick(16_000 + 4600);
    assert.equal(q.rx, 12 / 16);
    // The missing hellos arrive late after all: put back.
    q.onHello(17, 1000, 254, 20_700);
    q.onHello(18, 1000, 254, 20_700);
    assert.equal(q.rx, 14 / 16);
    q.onHello(19, 1000, 0, 20_800);
    assert.equal(q.cost, METRIC_INFINITY);
  });

  test("a reply carries the same number and changes nothing; a restart of the numbering starts afresh", () => {
    const q = new LinkQuality();
    q.onHello(100, 1000, 254, 0);
    q.onHello(100, 1000, 254, 10);
    assert.equal(q.rx, 1);
    q.onHello(102, 1000, 254, 2000);
    assert.equal(q.rx, 2 / 3);
    q.onHello(9000, 1000, 254, 3000);
    assert.equal(q.rx, 1);
  });

  test("RTT adds nothing below 10 ms and at most RTT_MAX_PENALTY from 120 ms", () => {
    assert.equal(linkCost(1, 1, 5), 256);
    assert.equal(linkCost(1, 1, 65), 256 + RTT_MAX_PENALTY / 2);
    assert.equal(linkCost(1, 1, 500), 256 + RTT_MAX_PENALTY);
    const q = new LinkQuality();
    q.onRtt(200);
    assert.equal(q.cost, 256 + RTT_MAX_PENALTY);
    assert.equal(linkCost(0, 1, 0), METRIC_INFINITY);
  });
});
