import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { NodeLog, RendezvousRegistry } from "../../src/node/node-io.ts";
import { peerSource, probeTargets } from "../../src/node/probe-targets.ts";

const registry = (ports: number[]): RendezvousRegistry => ({ register() {}, unregister() {}, list: () => ports.map((port) => ({ port })) });

describe("probe targets", () => {
  test("static peers, LAN targets (asked each time), then same-host nodes other than our own ports", () => {
    let asked = 0;
    const lan = () => (asked++, [{ host: "192.168.1.255", port: 4110 }]);
    const o = { staticPeers: [{ host: "10.0.0.1", port: 4110 }], lanTargets: lan, rendezvous: registry([4110, 4111, 4112]) };
    const got = probeTargets(o, new Set([4111]), () => {});
    assert.deepEqual(got, [
      { host: "10.0.0.1", port: 4110 },
      { host: "192.168.1.255", port: 4110 },
      { host: "127.0.0.1", port: 4110 },
      { host: "127.0.0.1", port: 4112 },
    ]);
    probeTargets(o, new Set(), () => {});
    assert.equal(asked, 2);
  });

  test("a failing source is logged and skipped", () => {
    const logged: string[] = [];
    const log: NodeLog = (level, m) => logged.push(`${level}: ${m}`);
    const o = {
      staticPeers: [{ host: "10.0.0.1", port: 1 }],
      lanTargets: () => { throw new Error("no interfaces"); },
      rendezvous: { register() {}, unregister() {}, list: () => { throw new Error("unreadable"); } } as RendezvousRegistry,
    };
    assert.deepEqual(probeTargets(o, new Set(), log), [{ host: "10.0.0.1", port: 1 }]);
    assert.deepEqual(logged, ["warn: LAN discovery: no interfaces", "warn: same-host discovery: unreadable"]);
  });

  test("peer source: static address first, then loopback with rendezvous, LAN with LAN discovery, else incoming", () => {
    const o = { staticPeers: [{ host: "127.0.0.1", port: 5 }], rendezvous: registry([]), lanTargets: [] };
    assert.equal(peerSource({ host: "127.0.0.1", port: 5 }, o), "static");
    assert.equal(peerSource({ host: "127.0.0.1", port: 6 }, o), "local");
    assert.equal(peerSource({ host: "10.0.0.9", port: 6 }, o), "lan");
    assert.equal(peerSource({ host: "127.0.0.1", port: 6 }, {}), "incoming");
    assert.equal(peerSource({ host: "10.0.0.9", port: 6 }, { rendezvous: registry([]) }), "incoming");
  });
});
