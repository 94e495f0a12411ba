/**
 * The routing protocol (src/node/router.ts) on an in-process network of routers with a
 * manual clock: chains, rings, grids, failures that heal, partitions, restarts, churn with
 * loss; loop-freedom checked after every single packet. Plus hostile input.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { encodeRoutePacket, METRIC_INFINITY } from "../../src/node/route-packet.ts";
import { Router } from "../../src/node/router.ts";
import { seqnoNewer } from "../../src/node/seqno-newer.ts";
import { fakeSid, RouterNet } from "./router-net.ts";

function chain(net: RouterNet, n: number): string[] {
  const names = Array.from({ length: n }, (_, i) => `n${i}`);
  for (const x of names) net.add(x);
  for (let i = 1; i < n; i++) net.link(names[i - 1]!, names[i]!);
  return names;
}

function grid(net: RouterNet, w: number, h: number): string[][] {
  const g = Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => `g${x}.${y}`));
  for (const row of g) for (const x of row) net.add(x);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x + 1 < w) net.link(g[y]![x]!, g[y]![x + 1]!);
      if (y + 1 < h) net.link(g[y]![x]!, g[y + 1]![x]!);
    }
  }
  return g;
}

describe("router: convergence and loop-freedom", () => {
  test("seqno comparison wraps at 16 bits", () => {
    assert.ok(seqnoNewer(1, 0));
    assert.ok(seqnoNewer(0, 0xffff));
    assert.ok(!seqnoNewer(0xffff, 0));
    assert.ok(!seqnoNewer(5, 5));
    assert.ok(seqnoNewer(0x7fff, 0));
    assert.ok(!seqnoNewer(0x8000, 0));
  });

  test("the loop check itself finds a planted cycle (so its silence elsewhere means something)", () => {
    const net = new RouterNet();
    chain(net, 4);
    net.deliver();
    net.checkLoops();
    const n1 = net.node("n1");
    const n2 = net.node("n2");
    const real = n2.router.route.bind(n2.router);
    n2.router.route = (dest) => {
      const r = real(dest);
      return r && dest === net.node("n0").sid ? { ...r, nextHop: net.node("n3").sid } : r;
    };
    const r3 = net.node("n3").router;
    const real3 = r3.route.bind(r3);
    r3.route = (dest) => {
      const r = real3(dest);
      return r && dest === net.node("n0").sid ? { ...r, nextHop: n2.sid } : r;
    };
    assert.throws(() => net.checkLoops(), /routing loop towards n0: n[23] -> n[23] -> n[23]/);
    assert.ok(n1);
  });

  test("a chain of 6 converges on triggered updates alone (no timer fired), with hop counts and next hops right", () => {
    const net = new RouterNet();
    const names = chain(net, 6);
    net.deliver({ checkEach: true });
    assert.deepEqual(net.convergenceProblems(), []);
    const first = net.node("n0");
    const last = net.node("n5");
    const r = first.router.route(last.sid)!;
    assert.equal(r.hops, 5);
    assert.equal(r.metric, 5 * 256);
    assert.deepEqual(r.nextHop, net.node("n1").sid);
    assert.deepEqual(r.boot, last.boot, "the route carries the destination's boot");
    assert.equal(r.mtu, 1160);
    assert.equal(names.length, 6);
  });

  test("a crashed end of a chain is withdrawn everywhere at once (retractions), no counting to infinity", () => {
    const net = new RouterNet();
    chain(net, 6);
    net.deliver();
    const before = net.delivered;
    const gone = net.node("n5").sid;
    net.kill("n5");
    net.deliver({ checkEach: true });
    for (const n of net.nodes.values()) assert.equal(n.router.route(gone), undefined, `${n.name} forgot n5`);
    assert.ok(net.delivered - before < 40, `withdrawal took ${net.delivered - before} packets`);
    assert.deepEqual(net.convergenceProblems(), []);
  });

  for (const sharedPrefix of [false, true]) test(`a ring of 8 reroutes the other way round when a link is cut, and back when it returns${sharedPrefix ? " (SIDs sharing their first 8 bytes)" : ""}`, () => {
    const net = new RouterNet({ sharedPrefix });
    const names = Array.from({ length: 8 }, (_, i) => `r${i}`);
    for (const x of names) net.add(x);
    for (let i = 0; i < 8; i++) net.link(names[i]!, names[(i + 1) % 8]!);
    net.deliver({ checkEach: true });
    assert.deepEqual(net.convergenceProblems(), []);
    assert.equal(net.node("r0").router.route(net.node("r2").sid)!.hops, 2);
    net.cut("r0", "r1");
    net.deliver({ checkEach: true });
    // Some nodes may have to ask for a new seqno (starvation); timers retry.
    net.run(3000, 100, true);
    assert.deepEqual(net.convergenceProblems(), []);
    assert.equal(net.node("r0").router.route(net.node("r2").sid)!.hops, 6);
    assert.deepEqual(net.node("r0").router.route(net.node("r1").sid)!.nextHop, net.node("r7").sid);
    net.link("r0", "r1");
    net.deliver({ checkEach: true });
    // Improvements go out after a short trigger delay (a tenth of the hello interval).
    net.run(500, 50, true);
    assert.deepEqual(net.convergenceProblems(), []);
    assert.equal(net.node("r0").router.route(net.node("r2").sid)!.hops, 2);
  });

  test("a 5x5 grid: a middle node fails (routes go around it) and returns with a new boot (routes use the new boot)", () => {
    const net = new RouterNet();
    const g = grid(net, 5, 5);
    net.deliver({ checkEach: true });
    assert.deepEqual(net.convergenceProblems(), []);
    const mid = net.node(g[2]![2]!);
    const sid = mid.sid;
    const oldBoot = mid.boot;
    net.kill(mid.name);
    net.deliver({ checkEach: true });
    net.run(5000, 100, true);
    assert.deepEqual(net.convergenceProblems(), []);
    assert.equal(net.node(g[2]![1]!).router.route(net.node(g[2]![3]!).sid)!.hops, 4, "around the hole");
    for (const n of net.nodes.values()) assert.equal(n.router.route(sid), undefined);
    const back = net.restart(mid.name, sid);
    assert.notDeepEqual(back.boot, oldBoot);
    net.link(back.name, g[2]![1]!);
    net.link(back.name, g[2]![3]!);
    net.link(back.name, g[1]![2]!);
    net.link(back.name, g[3]![2]!);
    net.deliver({ checkEach: true });
    net.run(500, 50, true);
    assert.deepEqual(net.convergenceProblems(), []);
    for (const n of net.nodes.values()) if (n !== back) assert.deepEqual(n.router.route(sid)!.boot, back.boot, `${n.name} knows the new boot`);
  });

  test("a restarted node is reachable with its new boot at once even where old-boot routes linger", () => {
    const net = new RouterNet();
    chain(net, 4);
    net.deliver();
    const n3 = net.node("n3");
    const sid = n3.sid;
    // n3 restarts without its neighbour noticing a gap: the link stays, the boot changes.
    net.kill("n3");
    const back = net.restart("n3", sid);
    net.link("n2", "n3");
    net.deliver({ checkEach: true });
    for (const x of ["n0", "n1", "n2"]) assert.deepEqual(net.node(x).router.route(sid)!.boot, back.boot);
  });

  test("a partition heals: routes across it are withdrawn and come back", () => {
    const net = new RouterNet();
    const g = grid(net, 4, 4);
    net.deliver();
    for (let y = 0; y < 4; y++) net.cut(g[y]![1]!, g[y]![2]!);
    net.deliver({ checkEach: true });
    net.run(3000, 100, true);
    assert.deepEqual(net.convergenceProblems(), []);
    assert.equal(net.node(g[0]![0]!).router.route(net.node(g[0]![3]!).sid), undefined);
    assert.ok(net.node(g[0]![0]!).router.route(net.node(g[3]![1]!).sid));
    for (let y = 0; y < 4; y++) net.link(g[y]![1]!, g[y]![2]!);
    net.deliver({ checkEach: true });
    net.run(500, 50, true);
    assert.deepEqual(net.convergenceProblems(), []);
    assert.equal(net.node(g[0]![0]!).router.route(net.node(g[0]![3]!).sid)!.hops, 3);
  });

  test("churn with 20% packet loss on a 6x6 grid: never a loop, and it converges once links settle", () => {
    const net = new RouterNet({ seed: 42, loss: 0.2 });
    const g = grid(net, 6, 6);
    net.deliver({ checkEach: true });
    const all = [...net.links.keys()];
    const removed: string[] = [];
    for (let round = 0; round < 40; round++) {
      const k = all[net.rng.int(all.length)]!;
      const [a, b] = k.split("|") as [string, string];
      if (net.links.has(k)) {
        net.cut(a, b);
        removed.push(k);
      } else net.link(a, b, 256 + net.rng.int(512));
      // Deliver only part of what is queued: state changes interleave with messages in flight.
      net.deliver({ max: 1 + net.rng.int(30), checkEach: true });
      net.clock.advance(net.rng.int(300));
      if (round % 10 === 9 && net.links.has(k)) net.setCost(a, b, 300);
    }
    for (const k of removed) {
      const [a, b] = k.split("|") as [string, string];
      if (!net.links.has(k)) net.link(a, b);
    }
    net.loss = 0;
    for (const k of net.links.keys()) {
      const [a, b] = k.split("|") as [string, string];
      net.setCost(a, b, 256);
    }
    for (let i = 0; i < 120; i++) {
      net.run(250, 250);
      net.checkLoops();
    }
    assert.deepEqual(net.convergenceProblems(), []);
  });

  test("link costs steer routes: the cheaper two-hop path beats a lossy direct link, with hysteresis against flapping", () => {
    const net = new RouterNet();
    for (const x of ["a", "b", "c"]) net.add(x);
    net.link("a", "b", 256);
    net.link("b", "c", 256);
    net.link("a", "c", 1024); // lossy direct link
    net.deliver();
    const a = net.node("a");
    const c = net.node("c");
    assert.deepEqual(a.router.route(c.sid)!.nextHop, net.node("b").sid);
    assert.equal(a.router.route(c.sid)!.metric, 512);
    net.setCost("a", "c", 505); // better, but by less than the hysteresis: stay
    net.deliver();
    assert.deepEqual(a.router.route(c.sid)!.nextHop, net.node("b").sid);
    net.setCost("a", "c", 300); // clearly better
    net.deliver();
    assert.deepEqual(a.router.route(c.sid)!.nextHop, c.sid);
    assert.equal(a.router.route(c.sid)!.hops, 1);
  });

  test("the path MTU is the smallest link MTU along the route", () => {
    const net = new RouterNet();
    chain(net, 3);
    net.cut("n1", "n2");
    net.link("n1", "n2", 256, 600);
    net.deliver();
    assert.equal(net.node("n0").router.route(net.node("n2").sid)!.mtu, 600);
    assert.equal(net.node("n0").router.route(net.node("n1").sid)!.mtu, 1160);
  });

  test("routes expire when a neighbour stops refreshing them; periodic dumps keep them otherwise", () => {
    const net = new RouterNet({ helloIntervalMs: 1000 });
    chain(net, 3);
    net.deliver();
    const n0 = net.node("n0");
    const n2sid = net.node("n2").sid;
    net.run(60_000, 500);
    assert.ok(n0.router.route(n2sid), "refreshed by dumps");
    assert.ok(net.delivered > 20, "dumps went out");
    // n1 keeps the link but its packets to n0 are lost from now on.
    net.loss = 1;
    net.run(3.5 * 4000 + 4000, 500);
    assert.equal(n0.router.route(n2sid), undefined, "expired after 3.5 update intervals");
  });

  test("a neighbour that lost its state asks for full updates when refreshes name routes it does not know", () => {
    const net = new RouterNet();
    chain(net, 3);
    net.deliver();
    const n0 = net.node("n0");
    const n2 = net.node("n2");
    // n0 forgets everything from n1 (as after dropping it), but n1 still thinks it sent n0 full updates.
    n0.router.neighbourDown(net.node("n1").sid);
    assert.equal(n0.router.route(n2.sid), undefined);
    net.run(5000, 100);
    // n0 treats n1 as new only when the link comes up again; here the overlay reports it up:
    n0.router.neighbourUp(net.node("n1").sid, 256, 1160);
    net.deliver();
    net.run(5000, 100);
    assert.ok(n0.router.route(n2.sid), "full updates requested and received");
  });
});

describe("router: hostile input", () => {
  function pair(maxDestinations?: number) {
    const clock = new ManualClock();
    const sent: Uint8Array[] = [];
    const drops: Record<string, number> = {};
    const self = fakeSid(1);
    const peer = fakeSid(2);
    const r = new Router({
      clock,
      selfSids: [self],
      selfBoot: new Uint8Array(8).fill(7),
      helloIntervalMs: 1000,
      transmit: (_to, packets) => sent.push(...packets),
      countDrop: (why) => (drops[why] = (drops[why] ?? 0) + 1),
      ...(maxDestinations !== undefined ? { maxDestinations } : {}),
    });
    r.neighbourUp(peer, 256, 1160);
    return { clock, r, sent, drops, self, peer };
  }
  const boot = new Uint8Array(8).fill(3);
  const upd = (dest: Uint8Array, metric: number, hops: number, extra: Partial<{ seqno: number; mtu: number; boot: Uint8Array }> = {}) => ({ kind: "update" as const, dest, boot: extra.boot ?? boot, seqno: extra.seqno ?? 1, metric, hops, mtu: extra.mtu ?? 1160 });

  test("malformed, non-neighbour and impossible announcements are dropped and counted by reason", () => {
    const { r, drops, self, peer } = pair();
    r.receive(peer, new Uint8Array([0, 1, 1, 5, 0])); // TLV runs past the end
    r.receive(peer, new Uint8Array([0])); // shorter than the header
    r.receive(peer, new Uint8Array([0, 0])); // interval 0
    assert.equal(drops["route-malformed"], 3);
    r.receive(fakeSid(99), encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [upd(fakeSid(3), 256, 1)] }));
    assert.equal(drops["route-not-neighbour"], 1);
    const bad = [
      upd(fakeSid(3), 100, 1), // below 256 per hop
      upd(fakeSid(4), 5, 0), // hop 0 with a metric
      upd(new Uint8Array(32), 256, 1), // the "any" SID
      upd(new Uint8Array(32).fill(0xff), 256, 1), // broadcast
      upd(fakeSid(5), 256, 1, { boot: new Uint8Array(8) }), // zero boot
      upd(fakeSid(6), 256, 1, { mtu: 10 }), // tiny MTU
      upd(self, 0, 0, { boot: new Uint8Array(8).fill(7), seqno: 500 }), // our own SID with a seqno we never used
    ];
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: bad }));
    assert.equal(drops["route-impossible"], bad.length);
    assert.equal(r.routes().length, 0);
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [upd(fakeSid(7), 256, 1)] }));
    assert.equal(r.routes().length, 1, "good announcements still work");
    // Unknown TLV types are skipped, not fatal.
    const withUnknown = new Uint8Array([0, 10, 99, 3, 1, 2, 3]);
    r.receive(peer, withUnknown);
    assert.equal(drops["route-malformed"], 3);
  });

  test("the route table is bounded: announcements beyond it are dropped and counted", () => {
    const { r, drops, peer } = pair(50);
    const tlvs = Array.from({ length: 80 }, (_, i) => upd(fakeSid(100 + i), 512, 2));
    for (let i = 0; i < 80; i += 20) r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: tlvs.slice(i, i + 20) }));
    assert.equal(r.size.destinations, 50);
    assert.equal(drops["route-table-full"], 30);
  });

  test("a neighbour flooding announcements is rate-limited; memory stays bounded; it recovers later", () => {
    const { r, drops, peer, clock } = pair(100);
    const pkt = encodeRoutePacket({ updateIntervalMs: 4000, tlvs: Array.from({ length: 20 }, (_, i) => upd(fakeSid(1000 + i), 512, 2, { seqno: 1 })) });
    for (let i = 0; i < 1000; i++) r.receive(peer, pkt);
    assert.ok((drops["route-rate"] ?? 0) > 900, `rate-limited: ${drops["route-rate"]}`);
    assert.ok(r.size.destinations <= 100 && r.size.entries <= 100);
    clock.advance(4000);
    const before = drops["route-rate"];
    r.receive(peer, pkt);
    assert.equal(drops["route-rate"], before, "tokens refill");
  });

  test("a seqno request for our own SID far ahead of our seqno is impossible; a next one bumps it once per interval", () => {
    const { r, drops, peer, self, sent, clock } = pair();
    const own = new Uint8Array(8).fill(7);
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [{ kind: "seqno-request", dest: self, boot: own, seqno: 900, hopCount: 5 }] }));
    assert.equal(drops["route-impossible"], 1);
    assert.equal(r.seqno, 0);
    sent.length = 0;
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [{ kind: "seqno-request", dest: self, boot: own, seqno: 1, hopCount: 5 }] }));
    assert.equal(r.seqno, 1);
    assert.ok(sent.length > 0, "announced at once");
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [{ kind: "seqno-request", dest: self, boot: own, seqno: 2, hopCount: 5 }] }));
    assert.equal(r.seqno, 1, "rate-limited");
    clock.advance(1000);
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [{ kind: "seqno-request", dest: self, boot: own, seqno: 2, hopCount: 0 }] }));
    assert.equal(drops["route-impossible"], 2, "hop count 0");
  });

  test("retractions of unknown routes and announcements beyond 31 hops create nothing", () => {
    const { r, peer } = pair();
    r.receive(peer, encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [upd(fakeSid(9), METRIC_INFINITY, 3), upd(fakeSid(10), 256 * 31, 31)] }));
    assert.equal(r.size.destinations, 0);
    assert.equal(r.routes().length, 0);
  });
});
