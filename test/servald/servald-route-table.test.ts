/** ServaldRouteTable: pushed changes, polled tables replacing the old one, reachability and peers. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MDP_FLAG } from "../../src/mdp/header.ts";
import type { MdpHeader } from "../../src/mdp/header.ts";
import { SID_ANY, sidToHex } from "../../src/mesh/sid.ts";
import { SID_INTERNAL } from "../../src/servald/mdp-command.ts";
import { REACHABLE } from "../../src/servald/route-record.ts";
import { ServaldRouteTable } from "../../src/servald/servald-route-table.ts";
import { routeRecord, sidOf } from "./fake-servald.ts";

const sub = (flags = 0): MdpHeader => ({ local: { sid: SID_INTERNAL, port: 5 }, remote: { sid: SID_ANY, port: 5 }, flags, qos: 0, ttl: 0 });
const polled = (flags = 0): MdpHeader => ({ local: { sid: SID_ANY, port: 0 }, remote: { sid: SID_ANY, port: 5 }, flags, qos: 0, ttl: 0 });
const none = new Uint8Array(0);
const self = sidOf(0xa1);
const peer = sidOf(0xb1);
const gone = sidOf(0xb2);

describe("ServaldRouteTable", () => {
  test("subscribed: records are pushed; the CLOSE completes the table", () => {
    let requests = 0;
    const t = new ServaldRouteTable(() => requests++);
    assert.equal(t.onDatagram(sub(MDP_FLAG.BIND), none, true), undefined);
    assert.equal(t.subscribed, true);
    assert.equal(requests, 0, "granted: no polling");
    assert.equal(t.reachability(peer), "unknown", "nothing is unreachable before a whole table");
    t.onDatagram(sub(), routeRecord(self, REACHABLE.SELF), true);
    t.onDatagram(sub(), routeRecord(peer, REACHABLE.UNICAST), true);
    t.onDatagram(sub(), routeRecord(gone, REACHABLE.NONE), true);
    assert.equal(t.onDatagram(sub(MDP_FLAG.CLOSE), none, true), "complete");
    assert.equal(t.complete, true);
    assert.equal(t.reachability(peer), "reachable");
    assert.equal(t.reachability(gone), "unreachable");
    assert.equal(t.reachability(sidOf(0xcc)), "unreachable");
    assert.deepEqual(t.peers().map(sidToHex), [sidToHex(peer)], "itself and unreachable nodes are not peers");
    assert.equal(t.records().length, 3);
    // A later push updates one node in place.
    t.onDatagram(sub(), routeRecord(peer, REACHABLE.NONE), true);
    assert.equal(t.reachability(peer), "unreachable");
  });

  test("refused the subscription: polls, and a polled table replaces the old one at its CLOSE", () => {
    let requests = 0;
    const t = new ServaldRouteTable(() => requests++);
    t.onDatagram(sub(MDP_FLAG.ERROR), none, true);
    assert.equal(t.subscribed, false);
    assert.equal(requests, 1, "another client holds it: poll instead");
    t.onDatagram(polled(), routeRecord(peer, REACHABLE.UNICAST), false);
    t.onDatagram(polled(), routeRecord(gone, REACHABLE.INDIRECT), false);
    assert.equal(t.onDatagram(polled(MDP_FLAG.CLOSE), none, false), "complete");
    assert.deepEqual(t.peers().map(sidToHex), [peer, gone].map(sidToHex));
    t.poll();
    assert.equal(requests, 2);
    t.onDatagram(polled(), routeRecord(peer, REACHABLE.UNICAST), false);
    assert.equal(t.peers().length, 2, "the old table holds until the new one is complete");
    t.onDatagram(polled(MDP_FLAG.CLOSE), none, false);
    assert.deepEqual(t.peers().map(sidToHex), [sidToHex(peer)], "a node missing from the new table is forgotten");
  });

  test("later BIND answers are probe answers; malformed records and ERRORs are reported, not stored", () => {
    let requests = 0;
    const t = new ServaldRouteTable(() => requests++);
    t.onDatagram(sub(MDP_FLAG.BIND), none, true);
    t.onDatagram(sub(MDP_FLAG.ERROR), none, true);
    assert.equal(t.subscribed, true, "the first answer decides");
    assert.equal(requests, 0);
    assert.equal(t.onDatagram(polled(), Uint8Array.of(1, 2), false), "malformed");
    assert.equal(t.onDatagram(polled(MDP_FLAG.ERROR), none, false), undefined);
    assert.equal(t.records().length, 0);
  });
});
