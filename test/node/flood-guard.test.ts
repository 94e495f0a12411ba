/**
 * Flood resistance: the guard's budgets (pure, manual clock) and the overlay under a flood of
 * forged datagrams at a rate the test sets (in-memory network, manual clock).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { COOKIE_SECRET_MS, FloodGuard, WORK_COST } from "../../src/node/flood-guard.ts";
import type { NodeCrypto, UdpEndpoint } from "../../src/node/node-io.ts";
import { encodeCookieEcho, encodeProbe, encodeSealedHeader, PACKET_TYPE, SEALED_HEADER_BYTES, TAG_BYTES } from "../../src/node/overlay-packet.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import { FakeUdpNet, overlayNode, runFor, type TestNode } from "./fake-udp.ts";

const addr = (host: string, port = 4111): UdpEndpoint => ({ host, port });

/** nodeCrypto that counts X25519 agreements (the work a flood of unknown senders buys). */
function countingCrypto(): NodeCrypto & { agreements: number } {
  const c = {
    ...nodeCrypto,
    agreements: 0,
    x25519(secret: Uint8Array, peer: Uint8Array) {
      c.agreements++;
      return nodeCrypto.x25519(secret, peer);
    },
  };
  return c;
}

describe("flood guard (budgets, manual clock)", () => {
  test("unearned work is bounded by the budget, however much is asked; a valid cookie draws on its address's own budget", () => {
    const clock = new ManualClock(0);
    const g = new FloodGuard({ clock, crypto: nodeCrypto, rate: 1000, burst: 200, addressRate: 400 });
    const spoofed = (i: number) => addr(`10.1.${(i >> 8) & 255}.${i & 255}`, 1000 + (i % 50_000));
    let spent = 0;
    for (let ms = 0; ms < 2000; ms++) {
      for (let i = 0; i < 20; i++) if (g.admit(WORK_COST.handshake, spoofed(ms * 20 + i), undefined)) spent += WORK_COST.handshake;
      clock.advance(1);
    }
    assert.ok(spent <= 200 + 1000 * 2, `spent ${spent} units in 2 s, budget 2200`);
    assert.ok(spent >= 200, "the budget is used, not refused outright");
    assert.ok(g.underLoad);
    // Under load: nothing unearned, but a sender that returns the cookie of its own address is served.
    const real = addr("10.9.9.9", 5000);
    assert.equal(g.admit(WORK_COST.handshake, real, undefined), false);
    const cookie = g.cookieReply(real)!;
    assert.equal(cookie.length, 16);
    assert.equal(g.admit(WORK_COST.handshake, real, cookie), true);
    assert.equal(g.admit(WORK_COST.handshake, addr("10.9.9.9", 5001), cookie), false, "the cookie is bound to the address and port");
    assert.equal(g.stats.badCookies, 1);
    // The address's own budget is bounded too (400 units/s, bucket 100).
    let served = 1;
    for (let i = 0; i < 100; i++) if (g.admit(WORK_COST.handshake, real, cookie)) served++;
    assert.equal(served, 2);
    clock.advance(1000);
    assert.equal(g.admit(WORK_COST.handshake, real, cookie), true, "refilled after a second");
  });

  test("load ends once the budget has refilled to half, even while a trickle of unearned work goes on", () => {
    const clock = new ManualClock(0);
    const g = new FloodGuard({ clock, crypto: nodeCrypto, rate: 1000, burst: 200 });
    const from = addr("10.2.0.1");
    while (g.admit(WORK_COST.handshake, from, undefined));
    assert.ok(g.underLoad);
    // One datagram every 50 ms: refused while the bucket refills (20 units), admitted once it is half full.
    let firstAdmitted: number | undefined;
    for (let ms = 50; ms <= 1000 && firstAdmitted === undefined; ms += 50) {
      clock.advance(50);
      if (g.admit(WORK_COST.check, from, undefined)) firstAdmitted = ms;
    }
    assert.equal(firstAdmitted, 100, "100 units refilled at 1,000 units/s");
    assert.equal(g.underLoad, false);
  });

  test("cookies outlive one change of secret, not two; cookie replies are rate-limited", () => {
    const clock = new ManualClock(0);
    const g = new FloodGuard({ clock, crypto: nodeCrypto, rate: 10, burst: 10, cookieReplyRate: 5 });
    const a = addr("10.0.0.1");
    const cookie = g.cookieReply(a)!;
    clock.advance(COOKIE_SECRET_MS + 1);
    assert.equal(g.admit(WORK_COST.check, a, cookie), true);
    assert.deepEqual([g.stats.cookieAdmitted, g.stats.badCookies], [1, 0], "previous secret still accepted");
    clock.advance(COOKIE_SECRET_MS + 1);
    g.admit(WORK_COST.check, a, cookie);
    assert.deepEqual([g.stats.cookieAdmitted, g.stats.badCookies], [1, 1], "two secrets later it is not");
    let replies = 0;
    for (let i = 0; i < 100; i++) if (g.cookieReply(addr("10.0.0.2", i + 1))) replies++;
    assert.equal(replies, 5);
  });
});

/** A sealed datagram for `to` that claims to come from `sender` and cannot authenticate. */
function forged(sender: Uint8Array, to: Uint8Array, counter: number): Uint8Array {
  const d = new Uint8Array(SEALED_HEADER_BYTES + 40 + TAG_BYTES);
  encodeSealedHeader({ type: PACKET_TYPE.DATA, sender, receiver: to, senderBoot: nodeCrypto.randomBytes(8), receiverBoot: nodeCrypto.randomBytes(8), counter }, d);
  d.set(nodeCrypto.randomBytes(40 + TAG_BYTES), SEALED_HEADER_BYTES);
  return d;
}

function pair(bCrypto = nodeCrypto) {
  const clock = new ManualClock(1_000_000);
  const net = new FakeUdpNet(false);
  net.keepLog = false;
  const b = overlayNode(net, clock, "b", "10.0.0.2", { crypto: bCrypto });
  const a = overlayNode(net, clock, "a", "10.0.0.1", { staticPeers: [b.local] });
  a.o.start();
  b.o.start();
  runFor(net, clock, 300, 10);
  assert.equal(a.o.reachability(b.sid), "reachable");
  return { clock, net, a, b };
}

const dropsOf = (n: TestNode) => ({ ...n.o.drops });

describe("overlay under a forged-packet flood (in-memory network, manual clock)", () => {
  test("20,000 forged datagrams a second (random SIDs and spoofed addresses, or a's SID from elsewhere): a's traffic keeps flowing, agreements stay within budget, every forgery is counted", () => {
    const crypto = countingCrypto();
    const { clock, net, a, b } = pair(crypto);
    const agreementsBefore = crypto.agreements;
    const before = dropsOf(b);
    let sent = 0;
    let injected = 0;
    const seconds = 3;
    for (let ms = 0; ms < seconds * 1000; ms += 10) {
      // a's stream: 10 datagrams per 10 ms, all of which must arrive.
      for (let i = 0; i < 10; i++) a.o.send(a.sid, 7, b.sid, 80, new TextEncoder().encode(String(sent++)));
      for (let i = 0; i < 200; i++, injected++) {
        const spoof = addr(`10.66.${i & 255}.${(ms / 10) & 255}`, 1 + (injected % 60_000));
        const d = i % 2 ? forged(nodeCrypto.randomBytes(32), b.sid, injected + 1) : forged(a.sid, b.sid, 2 ** 40 + injected);
        net.inject(d, spoof, b.local);
      }
      clock.advance(10);
      net.flush();
      // Progress, every step: what a sent so far has arrived.
      assert.equal(b.got.length, sent, `step ${ms} ms: ${b.got.length} of ${sent} arrived`);
    }
    assert.deepEqual(b.got.map((g) => new TextDecoder().decode(g.payload)), Array.from({ length: sent }, (_, i) => String(i)), "in order, none lost");
    // Every forgery was dropped and counted: by the kernel filter b asked for, refused before any crypto, or failed it.
    const d = b.o.drops;
    const counted = d.overload - before.overload + (d.forged - before.forged) + (d.replay - before.replay) + (d["bad-sid"] - before["bad-sid"]);
    assert.equal(counted + net.filtered, injected);
    assert.ok(net.filtered > injected * 0.8, `most dropped by the kernel filter (${net.filtered} of ${injected})`);
    // What passed the filter was refused or paid from the budget (5,000 units/s, a check 1, an agreement 40).
    assert.ok(d.overload - before.overload > 0);
    assert.ok(d.forged - before.forged <= 1000 + 5000 * seconds, `${d.forged - before.forged} AEAD checks failed`);
    // At 5,000 units/s and 40 units per agreement: at most 25 + 125 per second.
    const agreements = crypto.agreements - agreementsBefore;
    assert.ok(agreements <= 25 + 125 * seconds, `${agreements} X25519 agreements in ${seconds} s`);
    assert.equal(a.o.reachability(b.sid), "reachable");
    assert.equal(b.o.peerInfo().length, 1, "no session from a forgery");
  });

  test("a new peer joins a node under flood: its probe passes the kernel filter's sample, is refused with a cookie, and the cookie brings it in", () => {
    const { clock, net, b } = pair();
    const c = overlayNode(net, clock, "c", "10.0.0.3", { staticPeers: [b.local] });
    let injected = 0;
    const flood = () => {
      for (let i = 0; i < 100; i++, injected++) net.inject(encodeProbe(nodeCrypto.randomBytes(32), nodeCrypto.randomBytes(8)), addr(`10.77.0.${i}`, 1 + (injected % 60_000)), b.local);
    };
    // Drain the budget first, so that b is under load when c arrives.
    for (let i = 0; i < 10 && !b.o.guard.underLoad; i++) flood();
    assert.ok(b.o.guard.underLoad);
    const cookiesBefore = b.o.guard.stats.cookiesSent;
    c.o.start();
    let upAt: number | undefined;
    const t0 = clock.now();
    for (let ms = 0; ms < 60_000 && upAt === undefined; ms += 10) {
      flood();
      clock.advance(10);
      net.flush();
      if (b.o.reachability(c.sid) === "reachable" && c.o.reachability(b.sid) === "reachable") upAt = clock.now() - t0;
    }
    assert.ok(upAt !== undefined, "c became b's peer while the flood went on");
    assert.ok(b.o.guard.stats.cookiesSent > cookiesBefore);
    assert.ok(b.o.guard.stats.cookieAdmitted >= 2, "c's probe and hello were paid by its cookie");
    assert.ok(b.o.drops.overload > 0);
    assert.ok(net.filtered > 0, "the kernel filter was on");
    // A cookie-wrapped datagram with a stale or foreign cookie is no way around the budget.
    const before = b.o.drops.overload;
    net.inject(encodeCookieEcho(new Uint8Array(16), encodeProbe(nodeCrypto.randomBytes(32), nodeCrypto.randomBytes(8))), addr("10.77.1.1"), b.local);
    assert.equal(b.o.drops.overload, before + 1);
  });

  test("a flood from one address is refused by the kernel filter within a second, for a minute; then the filter goes", () => {
    const { clock, net, a, b } = pair();
    const attacker = addr("10.66.0.1", 9);
    let sent = 0;
    const stepAndSend = () => {
      for (let i = 0; i < 10; i++) a.o.send(a.sid, 7, b.sid, 80, new TextEncoder().encode(String(sent++)));
      clock.advance(10);
      net.flush();
    };
    for (let ms = 0; ms < 1000; ms += 10) {
      for (let i = 0; i < 200; i++) net.inject(forged(nodeCrypto.randomBytes(32), b.sid, 1), attacker, b.local);
      stepAndSend();
    }
    const filter = net.socketFilters.get(`${b.local.host}:${b.local.port}`);
    assert.ok(filter, "b asked for a kernel filter");
    assert.ok(filter.spec.deny.some((e) => e.host === attacker.host && e.port === attacker.port), "the attacker's address is refused");
    assert.ok(filter.spec.allow.some((e) => e.host === a.local.host && e.port === a.local.port), "a's address passes");
    const seen = b.o.drops.overload + b.o.drops.forged;
    for (let ms = 0; ms < 1000; ms += 10) {
      for (let i = 0; i < 200; i++) net.inject(forged(nodeCrypto.randomBytes(32), b.sid, 1), attacker, b.local);
      stepAndSend();
    }
    assert.equal(b.o.drops.overload + b.o.drops.forged, seen, "nothing from the attacker reaches the node any more");
    assert.equal(b.got.length, sent, "a's datagrams all arrived");
    runFor(net, clock, 3000, 100);
    assert.equal(b.o.guard.underLoad, false);
    assert.ok(net.socketFilters.size > 0, "the refusal of the attacker's address lasts");
    runFor(net, clock, 60_000, 200);
    assert.equal(net.socketFilters.size, 0, "filter removed once the refusal is over and no flood is seen");
  });

  test("a cookie is taken only as an answer to us, and cookie echoes carry only probes and hellos", () => {
    const { net, a, b } = pair();
    const before = { ...a.o.drops };
    // A COOKIE echoing someone else's boot.
    const stray = new Uint8Array(28);
    stray.set([0x53, 0x56, 2, PACKET_TYPE.COOKIE]);
    net.inject(stray, b.local, a.local);
    assert.equal(a.o.drops.forged, before.forged + 1);
    // A cookie echo around a DATA datagram, and a short one.
    net.inject(encodeCookieEcho(new Uint8Array(16), forged(b.sid, a.sid, 5)), b.local, a.local);
    assert.equal(a.o.drops["bad-type"], before["bad-type"] + 1);
    net.inject(stray.subarray(0, 22).map((x, i) => (i === 3 ? PACKET_TYPE.COOKIE_ECHO : x)), b.local, a.local);
    assert.equal(a.o.drops.truncated, before.truncated + 1);
  });
});
