/**
 * Multi-hop over the real overlay (crypto, hellos, routing, forwarding, flooding) on an
 * in-process UDP network with links that come and go, and a manual clock: data across
 * chains and diamonds, reroutes, goodbyes, crashes, broadcasts, path MTU, and what a
 * malicious forwarding node can and cannot do.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SID_BROADCAST, sidEquals } from "../../src/mesh/sid.ts";
import {
  encodeSealedHeader,
  FORWARD_OVERHEAD,
  nonceFor,
  OVERLAY_MDP_MTU,
  PACKET_TYPE,
  parseDatagram,
  SEALED_HEADER_BYTES,
  TAG_BYTES,
} from "../../src/node/overlay-packet.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import { type Datagram, FakeUdpNet, overlayNode, runFor, type TestNode } from "./fake-udp.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

interface Mesh {
  net: FakeUdpNet;
  clock: ManualClock;
  n: Record<string, TestNode>;
}

/** Nodes named by the edges' ends, on 10.0.0.x (or 127.0.0.x with `loopback`), static peers along the edges only. */
function mesh(edges: [string, string][], options: { loopback?: boolean; peerTimeoutMs?: number; hosts?: Record<string, string> } = {}): Mesh {
  const net = new FakeUdpNet();
  const clock = new ManualClock();
  const names = [...new Set(edges.flat())];
  const host = (name: string) => options.hosts?.[name] ?? `${options.loopback ? "127.0.0" : "10.0.0"}.${names.indexOf(name) + 1}`;
  const n: Record<string, TestNode> = {};
  for (const name of names) {
    const peers = edges.filter((e) => e.includes(name)).map((e) => ({ host: host(e[0] === name ? e[1] : e[0]), port: 4111 }));
    n[name] = overlayNode(net, clock, name, host(name), { staticPeers: peers, peerTimeoutMs: options.peerTimeoutMs ?? 3500 });
  }
  for (const [a, b] of edges) net.link(host(a), host(b));
  for (const x of Object.values(n)) x.o.start();
  net.flush();
  runFor(net, clock, 2000);
  return { net, clock, n };
}

/** What a malicious node `evil` can do with its own keys: wrap any inner frame in a valid hop to `to`. */
function rewrap(evil: TestNode, to: TestNode, toBoot: Uint8Array, inner: Uint8Array, ttl: number, counter: number): Uint8Array {
  const identity = evil.keyring.identities[0]!;
  const shared = nodeCrypto.x25519(identity.secret, to.sid)!;
  const info = new Uint8Array([...new TextEncoder().encode("svp-overlay-v1"), ...evil.sid, ...to.sid]);
  const key = nodeCrypto.hkdf(shared, evil.o.boot, info, 32);
  const d = new Uint8Array(SEALED_HEADER_BYTES + 1 + inner.length + TAG_BYTES);
  encodeSealedHeader({ type: PACKET_TYPE.FORWARD, sender: evil.sid, receiver: to.sid, senderBoot: evil.o.boot, receiverBoot: toBoot, counter }, d);
  d[SEALED_HEADER_BYTES] = ttl;
  d.set(inner, SEALED_HEADER_BYTES + 1);
  nodeCrypto.seal(key, nonceFor(counter), d.subarray(0, d.length - TAG_BYTES), new Uint8Array(0), d.subarray(d.length - TAG_BYTES));
  return d;
}

function forwardsBetween(net: FakeUdpNet, from: TestNode, to: TestNode): Datagram[] {
  return net.log.filter((d) => d.from.host === from.local.host && d.to.host === to.local.host && d.data[3] === PACKET_TYPE.FORWARD);
}

describe("multi-hop mesh (overlay, in-memory UDP, manual clock)", () => {
  test("a chain of 4: the ends reach each other through two forwarders, both ways, with hops, next hop and path MTU known", () => {
    const { net, clock, n } = mesh([["a", "b"], ["b", "c"], ["c", "d"]]);
    const { a, b, c, d } = n as Record<"a" | "b" | "c" | "d", TestNode>;
    assert.equal(a.o.reachability(d.sid), "reachable");
    assert.deepEqual(a.o.reachInfo(d.sid), { hops: 3, mtu: OVERLAY_MDP_MTU });
    assert.equal(a.o.peers().length, 3, "peers() lists routed nodes too");
    const route = a.o.routeInfo().find((r) => sidEquals(r.sid, d.sid))!;
    assert.ok(sidEquals(route.nextHop, b.sid));
    assert.equal(route.metric, 3 * 256);
    assert.ok(a.o.send(a.sid, 5000, d.sid, 80, text("hello d")));
    net.flush();
    assert.deepEqual(d.got.map((g) => [g.port, g.srcPort, str(g.payload), g.broadcast]), [[80, 5000, "hello d", false]]);
    assert.ok(sidEquals(d.got[0]!.from, a.sid), "the source SID is proven end to end");
    assert.ok(d.o.send(d.sid, 80, a.sid, 5000, text("hello a")));
    net.flush();
    assert.deepEqual(a.got.map((g) => str(g.payload)), ["hello a"]);
    assert.equal(b.o.forwarded.packets, 2);
    assert.equal(c.o.forwarded.packets, 2);
    assert.equal(b.got.length + c.got.length, 0, "forwarders deliver nothing");
    // A direct neighbour is still reached directly (one sealing, DATA not FORWARD).
    const before = net.log.length;
    a.o.send(a.sid, 1, b.sid, 2, text("next door"));
    net.flush();
    assert.deepEqual(net.log.slice(before).filter((x) => x.data[3] !== PACKET_TYPE.HELLO && x.data[3] !== PACKET_TYPE.ROUTE).map((x) => x.data[3]), [PACKET_TYPE.DATA]);
    runFor(net, clock, 10_000);
    assert.equal(a.o.reachability(d.sid), "reachable", "routes are kept alive");
  });

  test("a forwarder cannot read, alter, forge or replay; replays fail across route changes and restarts of either end", () => {
    // z: another neighbour of c, malicious too (it replays what it got from mid).
    const { net, clock, n } = mesh([["a", "b"], ["b", "c"], ["a", "e"], ["e", "c"], ["z", "c"]]);
    const { a, b, c, e, z } = n as Record<"a" | "b" | "c" | "e" | "z", TestNode>;
    const secret = "the secret payload 0123456789";
    const viaB = sidEquals(a.o.routeInfo().find((r) => sidEquals(r.sid, c.sid))!.nextHop, b.sid);
    const [mid, other] = viaB ? [b, e] : [e, b];
    // The last hop holds the frame back (as a malicious forwarder would) and plays with it.
    net.filter = (x) => !(x.from.host === mid.local.host && x.to.host === c.local.host && x.data[3] === PACKET_TYPE.FORWARD);
    a.o.send(a.sid, 7, c.sid, 9, text(secret));
    net.flush();
    net.filter = undefined;
    assert.equal(c.got.length, 0);
    // Read: the payload never crosses the wire in the clear.
    const needle = text(secret);
    const contains = (hay: Uint8Array) => hay.some((_, i) => needle.every((x, j) => hay[i + j] === x));
    assert.ok(!net.log.some((x) => contains(x.data)), "no datagram carries the plaintext");
    const captured = forwardsBetween(net, mid, c).at(-1)!;
    const p = parseDatagram(captured.data);
    assert.ok(p.ok && "aad" in p);
    const inner = p.inner!.slice();
    const cBoot = p.packet.receiverBoot.slice();
    let counter = 1_000_000;
    // Alter: one byte of the sealed payload, of the source boot, of the counter.
    for (const at of [inner.length - 20, 70, 91]) {
      const bad = inner.slice();
      bad[at]! ^= 1;
      net.inject(rewrap(mid, c, cBoot, bad, 30, ++counter), mid.local, c.local);
    }
    assert.equal(c.o.drops.forged, 3, `altered frames refused (${JSON.stringify(c.o.drops)})`);
    assert.equal(c.got.length, 0);
    // The genuine frame, passed on late: delivered (a forwarder can delay), once.
    net.inject(rewrap(mid, c, cBoot, inner, 30, ++counter), mid.local, c.local);
    assert.deepEqual(c.got.map((g) => str(g.payload)), [secret]);
    // Forge: a frame that claims to come from a, sealed with what the forwarder has.
    const forged = inner.slice();
    forged.set(mid.sid, 4 + 0); // its own SID where a's was: the seal no longer matches
    net.inject(rewrap(mid, c, cBoot, forged, 30, ++counter), mid.local, c.local);
    assert.equal(c.o.drops.forged, 4, "a forged source SID does not open");
    // Replay, along the same path and along another one. (The hop counters used here are far
    // ahead of the real ones: the real packets on those links now look old, so count deltas.)
    const replays = () => c.o.drops.replay;
    let r0 = replays();
    net.inject(rewrap(mid, c, cBoot, inner, 30, ++counter), mid.local, c.local);
    net.inject(rewrap(z, c, cBoot, inner, 30, ++counter), z.local, c.local);
    assert.equal(replays() - r0, 2, "replays refused whichever path they take");
    assert.equal(c.got.length, 1, "nothing delivered but the original");
    // The route changes (mid goes away): old frames replayed over the new path are still refused.
    net.unlink(a.local.host, mid.local.host);
    net.unlink(mid.local.host, c.local.host);
    runFor(net, clock, 6000);
    assert.ok(sidEquals(a.o.routeInfo().find((r) => sidEquals(r.sid, c.sid))!.nextHop, other.sid), "rerouted");
    r0 = replays();
    net.inject(rewrap(z, c, cBoot, inner, 30, ++counter), z.local, c.local);
    assert.equal(replays() - r0, 1);
    a.o.send(a.sid, 7, c.sid, 9, text("after the reroute"));
    net.flush();
    assert.deepEqual(c.got.map((g) => str(g.payload)), [secret, "after the reroute"]);
    // The source restarts: frames from its previous run are still refused.
    a.o.stop();
    const a2 = overlayNode(net, clock, "a", a.local.host, { staticPeers: [other.local], peerTimeoutMs: 3500 }, a.keyring);
    a2.o.start();
    runFor(net, clock, 3000);
    r0 = replays();
    net.inject(rewrap(z, c, cBoot, inner, 30, ++counter), z.local, c.local);
    assert.equal(replays() - r0, 1);
    a2.o.send(a2.sid, 7, c.sid, 9, text("from the new run"));
    net.flush();
    assert.equal(str(c.got.at(-1)!.payload), "from the new run");
    // The destination restarts: everything made for its previous boot is stale.
    c.o.stop();
    const c2 = overlayNode(net, clock, "c", c.local.host, { staticPeers: [other.local, z.local], peerTimeoutMs: 3500 }, c.keyring);
    c2.o.start();
    runFor(net, clock, 3000);
    net.inject(rewrap(z, c2, c2.o.boot, inner, 30, ++counter), z.local, c2.local);
    assert.equal(c2.o.drops.stale, 1, "made for the old boot");
    assert.equal(c2.got.length, 0);
    a2.o.send(a2.sid, 7, c2.sid, 9, text("to the new c"));
    net.flush();
    assert.deepEqual(c2.got.map((g) => str(g.payload)), ["to the new c"]);
  });

  test("at the destination a frame from the neighbour's address needs only its end-to-end seal; from elsewhere its hop tag too; no session is made from either", () => {
    const { net, n } = mesh([["a", "b"], ["b", "c"]]);
    const { a, b, c } = n as Record<"a" | "b" | "c", TestNode>;
    a.o.send(a.sid, 1, c.sid, 2, text("once"));
    net.flush();
    assert.equal(c.got.length, 1);
    const hop = forwardsBetween(net, b, c).at(-1)!;
    const peersBefore = c.o.peerInfo().length;
    // From b's address: the same datagram, and one with the hop tag zeroed, are end-to-end replays.
    net.inject(hop.data, b.local, c.local);
    const noTag = hop.data.slice();
    noTag.fill(0, noTag.length - 16);
    net.inject(noTag, b.local, c.local);
    assert.equal(c.o.drops.replay, 2);
    // A frame that claims a's SID but was not sealed by a.
    const fake = hop.data.slice();
    fake[fake.length - 30]! ^= 0xff;
    fake[SEALED_HEADER_BYTES + 1 + 91]! ^= 0x40; // a counter a never used
    net.inject(fake, b.local, c.local);
    assert.equal(c.o.drops.forged, 1);
    // From an address nobody knows, the hop is checked first: b's counter was used already.
    const elsewhere = { host: "10.66.66.66", port: 9 };
    for (const d of [hop.data, noTag, fake]) net.inject(d, elsewhere, c.local);
    assert.equal(c.o.drops.replay, 5);
    assert.equal(c.o.drops.forged, 1);
    assert.equal(c.got.length, 1, "nothing more delivered");
    assert.equal(c.o.peerInfo().length, peersBefore, "no session from an unauthenticated hop");
  });

  test("TTL: a frame with one hop left is not passed on, and is counted", () => {
    const { net, n } = mesh([["a", "b"], ["b", "c"], ["c", "d"]]);
    const { a, b, c, d } = n as Record<"a" | "b" | "c" | "d", TestNode>;
    a.o.send(a.sid, 1, d.sid, 2, text("x"));
    const sent = net.queue.find((x) => x.data[3] === PACKET_TYPE.FORWARD)!;
    net.flush();
    const p = parseDatagram(sent.data);
    assert.ok(p.ok && "aad" in p);
    assert.equal(p.ttl, 31);
    const hop = forwardsBetween(net, b, c).at(-1)!;
    assert.equal(parseDatagram(hop.data).ok && (parseDatagram(hop.data) as { ttl: number }).ttl, 30, "decremented per hop");
    const bBootAtC = (parseDatagram(hop.data) as { packet: { receiverBoot: Uint8Array } }).packet.receiverBoot.slice();
    net.inject(rewrap(b, c, bBootAtC, p.inner!, 1, 5_000_000), b.local, c.local);
    assert.equal(c.o.drops["ttl-expired"], 1);
    assert.equal(d.got.length, 1);
  });

  test("routing messages tunnelled end to end are refused: routes come only from neighbours", () => {
    const { net, n } = mesh([["a", "b"], ["b", "c"]]);
    const { a, b, c } = n as Record<"a" | "b" | "c", TestNode>;
    a.o.send(a.sid, 1, c.sid, 2, text("x"));
    net.flush();
    const hop = forwardsBetween(net, b, c).at(-1)!;
    const p = parseDatagram(hop.data) as { packet: { receiverBoot: Uint8Array }; inner: Uint8Array };
    const inner = p.inner.slice();
    inner[3] = PACKET_TYPE.ROUTE;
    net.inject(rewrap(b, c, p.packet.receiverBoot.slice(), inner, 30, 7_000_000), b.local, c.local);
    assert.equal(c.o.drops["route-not-neighbour"], 1);
  });

  test("diamond: a clean stop of one middle node moves traffic to the other at once (goodbye), no timeout", () => {
    const { net, n } = mesh([["a", "b"], ["b", "d"], ["a", "c"], ["c", "d"]]);
    const { a, b, c, d } = n as Record<"a" | "b" | "c" | "d", TestNode>;
    const via = a.o.routeInfo().find((r) => sidEquals(r.sid, d.sid))!.nextHop;
    const [gone, stays] = sidEquals(via, b.sid) ? [b, c] : [c, b];
    const downs: string[] = [];
    a.o.on("peer-down", () => downs.push("down"));
    gone.o.stop();
    net.flush(); // only the goodbyes and the updates they trigger: the clock does not move
    assert.deepEqual(downs, ["down"], "a dropped the stopped node at once");
    assert.ok(sidEquals(a.o.routeInfo().find((r) => sidEquals(r.sid, d.sid))!.nextHop, stays.sid));
    assert.equal(a.o.reachability(gone.sid), "unreachable");
    a.o.send(a.sid, 1, d.sid, 2, text("via the other side"));
    net.flush();
    assert.deepEqual(d.got.map((g) => str(g.payload)), ["via the other side"]);
  });

  test("a crash (no goodbye) is routed around after the peer timeout; a far node that vanishes becomes unreachable", () => {
    const { net, clock, n } = mesh([["a", "b"], ["b", "c"], ["b", "d"], ["d", "c"]], { peerTimeoutMs: 3500 });
    const { a, b, c } = n as Record<"a" | "b" | "c" | "d", TestNode>;
    const events: string[] = [];
    a.o.on("reach", (sid, info) => events.push(`${sidEquals(sid, c.sid) ? "c" : "?"} ${info ? info.hops : "gone"}`));
    // c crashes: its neighbours notice after the peer timeout and withdraw it.
    net.unlink(b.local.host, c.local.host);
    net.unlink(n.d!.local.host, c.local.host);
    c.o.stop();
    runFor(net, clock, 1000);
    assert.equal(a.o.reachability(c.sid), "reachable", "not yet: within the peer timeout");
    runFor(net, clock, 4000);
    assert.equal(a.o.reachability(c.sid), "unreachable");
    assert.ok(events.includes("c gone"));
    assert.equal(a.o.send(a.sid, 1, c.sid, 2, text("x")), false);
    assert.ok(a.o.drops["no-route"] >= 1);
  });

  test("a broadcast floods the whole mesh once per node (duplicates suppressed), with the origin's SID", () => {
    // A ring with a chord: plenty of duplicate paths.
    const { net, n } = mesh([["a", "b"], ["b", "c"], ["c", "d"], ["d", "e"], ["e", "a"], ["a", "c"], ["b", "e"]]);
    n.a!.o.send(n.a!.sid, 11, SID_BROADCAST, 11, text("who is there"));
    net.flush();
    for (const x of ["b", "c", "d", "e"]) {
      assert.deepEqual(n[x]!.got.map((g) => [str(g.payload), g.broadcast, g.port]), [["who is there", true, 11]], x);
      assert.ok(sidEquals(n[x]!.got[0]!.from, n.a!.sid));
    }
    assert.equal(n.a!.got.length, 0, "never back to the origin");
    const floods = net.log.filter((x) => x.data[3] === PACKET_TYPE.FLOOD).length;
    assert.ok(floods <= 2 * 7, `each node relays once over each link at most (${floods} FLOODs)`);
  });

  test("path MTU: loopback links carry 16384-byte payloads, other links 1160, a path the smallest; bigger payloads are refused and counted", () => {
    const { net, n } = mesh([["a", "b"], ["b", "c"]], { hosts: { a: "127.0.0.1", b: "127.0.0.2", c: "10.9.9.9" } });
    const { a, b, c } = n as Record<"a" | "b" | "c", TestNode>;
    assert.equal(a.o.pathMtu(b.sid), 16384);
    assert.equal(a.o.pathMtu(c.sid), 1160);
    assert.equal(a.o.pathMtu(a.sid), 16384, "own SIDs: the largest");
    assert.ok(a.o.send(a.sid, 1, b.sid, 2, new Uint8Array(16384)));
    assert.ok(!a.o.send(a.sid, 1, c.sid, 2, new Uint8Array(1161)));
    assert.equal(a.o.drops["too-big"], 1);
    assert.ok(a.o.send(a.sid, 1, c.sid, 2, new Uint8Array(1160)));
    net.flush();
    assert.equal(b.got[0]!.payload.length, 16384);
    assert.equal(c.got[0]!.payload.length, 1160);
    const fwd = forwardsBetween(net, b, c).at(-1)!;
    assert.equal(fwd.data.length, FORWARD_OVERHEAD + 92 + 9 + 16 + 1160, "the forwarded datagram fits a 1500-byte Ethernet MTU");
    assert.ok(fwd.data.length + 28 <= 1500);
  });

  test("a node that comes up in the middle of a chain joins the two halves; broadcast and unicast then cross it", () => {
    const { net, clock, n } = mesh([["a", "b"], ["c", "d"]]);
    const { a, d } = n as Record<"a" | "b" | "c" | "d", TestNode>;
    assert.equal(a.o.reachability(d.sid), "unreachable");
    const m = overlayNode(net, clock, "m", "10.0.0.50", { staticPeers: [n.b!.local, n.c!.local], peerTimeoutMs: 3500 });
    net.link("10.0.0.50", n.b!.local.host);
    net.link("10.0.0.50", n.c!.local.host);
    m.o.start();
    runFor(net, clock, 2000);
    assert.deepEqual(a.o.reachInfo(d.sid), { hops: 4, mtu: 1160 });
    a.o.send(a.sid, 3, d.sid, 4, text("across"));
    net.flush();
    assert.deepEqual(d.got.map((g) => str(g.payload)), ["across"]);
  });
});
