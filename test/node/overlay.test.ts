/**
 * The overlay over an in-memory datagram network with a ManualClock: session set-up,
 * MDP delivery, broadcast, expiry, restarts, and hostile datagrams (dropped and counted).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { sidEquals, SID_BROADCAST } from "../../src/mesh/sid.ts";
import { addIdentity, createIdentity, type Keyring } from "../../src/node/keyring.ts";
import type { RendezvousRegistry, UdpEndpoint } from "../../src/node/node-io.ts";
import { Overlay, type OverlayOptions } from "../../src/node/overlay.ts";
import { encodeProbe, MAX_DATAGRAM_BYTES, PACKET_TYPE, parseDatagram, PROBE_BYTES } from "../../src/node/overlay-packet.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import { FakeUdpNet } from "./fake-udp.ts";
import { patternBytes } from "../helpers/wait.ts";

const keyring = (): Keyring => addIdentity(undefined, createIdentity(nodeCrypto));

function node(net: FakeUdpNet, clock: ManualClock, port: number, extra: Partial<OverlayOptions> = {}, k = keyring()) {
  const o = new Overlay({ keyring: k, crypto: nodeCrypto, clock, helloIntervalMs: 1000, ...extra });
  const local = { host: "127.0.0.1", port };
  o.attachSocket(net.socket(local, (d, from) => o.receive(d, from)));
  const got: { port: number; from: Uint8Array; srcPort: number; payload: string; broadcast: boolean }[] = [];
  o.on("data", (_l, dstPort, from, srcPort, payload, broadcast) => got.push({ port: dstPort, from, srcPort, payload: new TextDecoder().decode(payload), broadcast }));
  return { o, local, got, keyring: k, sid: k.identities[0]!.sid };
}

const text = (s: string) => new TextEncoder().encode(s);
const ep = (port: number): UdpEndpoint => ({ host: "127.0.0.1", port });

describe("overlay (in-memory network, manual clock)", () => {
  test("a static peer address is enough: both sides authenticate each other and exchange MDP both ways", () => {
    const net = new FakeUdpNet(false);
    const clock = new ManualClock();
    const a = node(net, clock, 1, { staticPeers: [ep(2)] });
    const b = node(net, clock, 2);
    a.o.start();
    b.o.start();
    net.flush();
    assert.equal(a.o.reachability(b.sid), "reachable");
    assert.equal(b.o.reachability(a.sid), "reachable");
    assert.equal(a.o.peerInfo()[0]!.source, "static");
    assert.equal(a.o.peerInfo()[0]!.rttMs, 0, "RTT measured from the hello exchange");
    assert.ok(a.o.send(a.sid, 5000, b.sid, 80, text("ping")));
    net.flush();
    assert.deepEqual(b.got.map((g) => [g.port, g.srcPort, g.payload, g.broadcast]), [[80, 5000, "ping", false]]);
    assert.ok(sidEquals(b.got[0]!.from, a.sid));
    assert.ok(b.o.send(b.sid, 80, a.sid, 5000, text("pong")));
    net.flush();
    assert.deepEqual(a.got.map((g) => g.payload), ["pong"]);
    const info = a.o.peerInfo()[0]!;
    assert.ok(info.packetsIn > 0 && info.packetsOut > 0 && info.bytesIn > 0 && info.bytesOut > 0);
  });

  test("same-host rendezvous entries are probed; the own entry is skipped", () => {
    const net = new FakeUdpNet(false);
    const clock = new ManualClock();
    const entries = [{ port: 1 }, { port: 2 }, { port: 3 }];
    const registry: RendezvousRegistry = { register() {}, unregister() {}, list: () => entries };
    const n = [1, 2, 3].map((p) => node(net, clock, p, { rendezvous: registry }));
    for (const x of n) x.o.start();
    net.flush();
    for (const x of n) assert.equal(x.o.peers().length, 2);
    assert.equal(n[0]!.o.peerInfo()[0]!.source, "local");
    assert.ok(!net.log.some((d) => d.from.port === d.to.port), "nobody probes itself");
    // Broadcast reaches every live peer, never the sender.
    n[0]!.o.send(n[0]!.sid, 7, SID_BROADCAST, 9, text("all"));
    net.flush();
    assert.deepEqual(n[1]!.got.map((g) => [g.payload, g.broadcast]), [["all", true]]);
    assert.deepEqual(n[2]!.got.map((g) => [g.payload, g.broadcast]), [["all", true]]);
    assert.equal(n[0]!.got.length, 0);
  });

  test("a silent peer expires; it is found again when it comes back", () => {
    const net = new FakeUdpNet(false);
    const clock = new ManualClock();
    const a = node(net, clock, 1, { staticPeers: [ep(2)], peerTimeoutMs: 3500 });
    const b = node(net, clock, 2, { peerTimeoutMs: 3500 });
    const downs: string[] = [];
    a.o.on("peer-down", () => downs.push("down"));
    a.o.start();
    b.o.start();
    net.flush();
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      net.flush();
    }
    assert.equal(a.o.reachability(b.sid), "reachable", "keep-alives keep it live");
    b.o.stop();
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      net.flush();
    }
    assert.equal(a.o.reachability(b.sid), "unreachable");
    assert.deepEqual(downs, ["down"]);
    assert.equal(a.o.peerInfo()[0]!.live, false);
    assert.equal(a.o.send(a.sid, 1, b.sid, 1, text("x")), false);
    assert.equal(a.o.drops["no-route"], 1);
    // b restarts with the same keyring and a new boot at the same address.
    const b2 = node(net, clock, 2, {}, b.keyring);
    b2.o.start();
    clock.advance(1000);
    net.flush();
    assert.equal(a.o.reachability(b.sid), "reachable");
    assert.equal(b2.o.reachability(a.sid), "reachable");
    a.o.send(a.sid, 1, b.sid, 2, text("again"));
    net.flush();
    assert.deepEqual(b2.got.map((g) => g.payload), ["again"]);
  });

  test("forged, replayed, truncated, oversize, garbage and misaddressed datagrams are dropped and counted; service goes on", () => {
    const net = new FakeUdpNet(false);
    const clock = new ManualClock();
    const a = node(net, clock, 1, { staticPeers: [ep(2)] });
    const b = node(net, clock, 2);
    const c = node(net, clock, 3);
    a.o.start();
    b.o.start();
    net.flush();
    a.o.send(a.sid, 1, b.sid, 80, text("genuine"));
    const i = net.queue.findIndex((d) => d.to.port === 2 && d.data[3] === PACKET_TYPE.DATA);
    const sent = net.queue.splice(i, 1)[0]!;
    const atk = ep(666);
    const to = ep(2);
    // Tampered copies of a packet b has not seen yet.
    const flipped = sent.data.slice();
    flipped[flipped.length - 20]! ^= 1;
    net.inject(flipped, atk, to);
    const headerFlip = sent.data.slice();
    headerFlip[80]! ^= 1; // receiver boot: authenticated as associated data
    net.inject(headerFlip, atk, to);
    net.inject(sent.data.subarray(0, sent.data.length - 1), atk, to);
    assert.deepEqual(b.o.drops, { ...b.o.drops, forged: 3 }, "forged");
    net.inject(sent.data.subarray(0, 100), atk, to);
    assert.equal(b.o.drops.truncated, 1);
    assert.equal(b.got.length, 0);
    // The genuine packet still goes through (tampering did not poison the replay window), once.
    net.inject(sent.data, sent.from, to);
    assert.equal(b.got.length, 1);
    net.inject(sent.data, sent.from, to);
    net.inject(sent.data, atk, to);
    assert.equal(b.o.drops.replay, 2, "replayed");
    net.flush();
    net.inject(new Uint8Array(MAX_DATAGRAM_BYTES + 1), atk, to);
    assert.equal(b.o.drops.oversize, 1);
    for (let i = 0; i < 50; i++) {
      const junk = patternBytes(1 + ((i * 37) % 1200), i + 1);
      junk[0] = 0x47; // never the magic
      net.inject(junk, atk, to);
    }
    assert.equal(b.o.drops.garbage, 50);
    // A packet from c (a genuine node) addressed to b but sealed for nobody b knows: wrong receiver SID.
    const misaddressed = sent.data.slice();
    misaddressed.set(c.sid, 36);
    net.inject(misaddressed, atk, to);
    assert.equal(b.o.drops["not-for-us"], 1);
    // Someone claims to be b itself, or the broadcast SID.
    net.inject(encodeProbe(b.sid, new Uint8Array(8).fill(1)), atk, to);
    net.inject(encodeProbe(SID_BROADCAST, new Uint8Array(8).fill(1)), atk, to);
    assert.equal(b.o.drops["bad-sid"], 2);
    assert.equal(net.queue.length, 0, "nothing answered any of it");
    assert.equal(b.got.length, 1, "nothing delivered");
    assert.equal(b.o.peerInfo()[0]!.address?.port, 1, "the peer's address did not move to the attacker");
    a.o.send(a.sid, 1, b.sid, 80, text("still works"));
    net.flush();
    assert.deepEqual(b.got.map((g) => g.payload), ["genuine", "still works"]);
  });

  test("packets from before a restart are not accepted after it (either side)", () => {
    const net = new FakeUdpNet(false);
    const clock = new ManualClock();
    const a = node(net, clock, 1, { staticPeers: [ep(2)] });
    const b = node(net, clock, 2);
    a.o.start();
    b.o.start();
    net.flush();
    a.o.send(a.sid, 1, b.sid, 80, text("old a->b"));
    b.o.send(b.sid, 80, a.sid, 1, text("old b->a"));
    const oldAB = net.queue.find((d) => d.to.port === 2)!;
    const oldBA = net.queue.find((d) => d.to.port === 1)!;
    net.flush();
    assert.equal(a.got.length, 1);
    // b restarts (same identity, new boot); sessions re-form.
    b.o.stop();
    const b2 = node(net, clock, 2, {}, b.keyring);
    b2.o.start();
    clock.advance(1000);
    net.flush();
    clock.advance(1000);
    net.flush();
    assert.equal(b2.o.reachability(a.sid), "reachable");
    // The old a->b packet was made for b's previous boot: authentic but stale.
    net.inject(oldAB.data, ep(666), ep(2));
    assert.equal(b2.o.drops.stale, 1);
    assert.equal(b2.got.length, 0);
    // b's previous boot is retired at a: its packets count as replays.
    net.inject(oldBA.data, ep(666), ep(1));
    assert.equal(a.o.drops.replay, 1);
    assert.equal(a.got.length, 1);
    net.flush();
    a.o.send(a.sid, 1, b.sid, 80, text("new"));
    net.flush();
    assert.deepEqual(b2.got.map((g) => g.payload), ["new"]);
  });

  test("a probe from an unknown address creates no peer until the prober proves its SID", () => {
    const net = new FakeUdpNet(false);
    const clock = new ManualClock();
    const b = node(net, clock, 2);
    b.o.start();
    const stranger = keyring().identities[0]!.sid;
    net.inject(encodeProbe(stranger, new Uint8Array(8).fill(5)), ep(9), ep(2));
    assert.equal(net.queue.length, 1, "one sealed hello in reply");
    assert.ok(net.queue[0]!.data.length <= PROBE_BYTES, "reply no larger than the probe");
    net.queue = [];
    assert.equal(b.o.peers().length, 0);
    assert.equal(b.o.peerInfo().length, 0);
    net.inject(encodeProbe(stranger, new Uint8Array(8).fill(5)), ep(9), ep(2));
    assert.equal(net.queue.length, 0, "probe replies are rate-limited per address");
  });
});
