/** The routing message codec (src/node/route-packet.ts): vectors, round trips, splits, garbage. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeRoutePacket,
  encodeRoutePacket,
  METRIC_INFINITY,
  packRoutePackets,
  readHops,
  readMetric,
  readMtu,
  readSeqno,
  REFRESH_ROUTE_AT,
  type RouteTlv,
  TLV_BYTES,
  UPDATE_AT,
  walkRoutePacket,
} from "../../src/node/route-packet.ts";

const sid = (b: number) => new Uint8Array(32).fill(b);
const boot = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const all: RouteTlv[] = [
  { kind: "update", dest: sid(0xaa), boot, seqno: 0xfffe, metric: 512, hops: 2, mtu: 1160 },
  { kind: "refresh", prefix: sid(0xbb).subarray(0, 8), seqno: 7, metric: METRIC_INFINITY, hops: 0, mtu: 16384 },
  { kind: "seqno-request", dest: sid(0xcc), boot, seqno: 3, hopCount: 31 },
  { kind: "route-request", prefix: new Uint8Array(8) },
];

describe("route packets", () => {
  test("an UPDATE has this exact layout (big-endian, type and length first)", () => {
    const p = encodeRoutePacket({ updateIntervalMs: 20_000, tlvs: [all[0]!] });
    assert.equal(p.length, 2 + TLV_BYTES.update);
    assert.deepEqual([...p.subarray(0, 4)], [0x07, 0xd0, 1, 47]);
    assert.deepEqual([...p.subarray(4, 36)], [...sid(0xaa)]);
    assert.deepEqual([...p.subarray(36, 44)], [...boot]);
    assert.deepEqual([...p.subarray(44)], [0xff, 0xfe, 0x02, 0x00, 2, 0x04, 0x88]);
  });

  test("every message type round-trips, and the sizes are the documented ones", () => {
    const p = encodeRoutePacket({ updateIntervalMs: 4000, tlvs: all });
    assert.equal(p.length, 2 + TLV_BYTES.update + TLV_BYTES.refresh + TLV_BYTES.seqnoRequest + TLV_BYTES.routeRequest);
    assert.deepEqual([TLV_BYTES.update, TLV_BYTES.refresh, TLV_BYTES.seqnoRequest, TLV_BYTES.routeRequest], [49, 17, 45, 10]);
    const d = decodeRoutePacket(p);
    assert.ok(d.ok);
    assert.equal(d.packet.updateIntervalMs, 4000);
    assert.deepEqual(d.packet.tlvs, all);
    assert.equal(d.skipped, 0);
  });

  test("every truncation is malformed or a shorter valid packet, never a throw", () => {
    const p = encodeRoutePacket({ updateIntervalMs: 4000, tlvs: all });
    const boundaries = new Set([2, 2 + 49, 2 + 49 + 17, 2 + 49 + 17 + 45, p.length]);
    for (let n = 0; n <= p.length; n++) {
      const d = decodeRoutePacket(p.subarray(0, n));
      assert.equal(d.ok, boundaries.has(n), `length ${n}`);
    }
  });

  test("wrong lengths of known types are malformed; unknown types are skipped", () => {
    const p = encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [all[3]!] });
    p[3] = 9;
    const q = new Uint8Array([...p, 0, 0]);
    const d = decodeRoutePacket(q);
    assert.ok(!d.ok);
    assert.match(d.why, /length 9/);
    const withUnknown = new Uint8Array([0, 1, 0xee, 2, 9, 9, ...encodeRoutePacket({ updateIntervalMs: 10, tlvs: [all[3]!] }).subarray(2)]);
    const u = decodeRoutePacket(withUnknown);
    assert.ok(u.ok);
    assert.equal(u.skipped, 1);
    assert.equal(u.packet.tlvs.length, 1);
  });

  test("walking a packet visits what decoding returns, in order; a malformed packet visits nothing", () => {
    const p = encodeRoutePacket({ updateIntervalMs: 4000, tlvs: all });
    const seen: RouteTlv[] = [];
    const route = (d: Uint8Array, o: number) => ({ seqno: readSeqno(d, o), metric: readMetric(d, o), hops: readHops(d, o), mtu: readMtu(d, o) });
    const w = walkRoutePacket(p, {
      update: (d, at) => seen.push({ kind: "update", dest: d.slice(at, at + 32), boot: d.slice(at + UPDATE_AT.boot, at + UPDATE_AT.boot + 8), ...route(d, at + UPDATE_AT.route) }),
      refresh: (d, at) => seen.push({ kind: "refresh", prefix: d.slice(at, at + 8), ...route(d, at + REFRESH_ROUTE_AT) }),
      other: (t) => seen.push(t),
    });
    assert.deepEqual(w, { ok: true, updateIntervalMs: 4000, tlvs: 4, skipped: 0 });
    assert.deepEqual(seen, all);
    let visited = 0;
    const cut = walkRoutePacket(p.subarray(0, p.length - 3), { update: () => visited++, refresh: () => visited++, other: () => visited++ });
    assert.equal(cut.ok, false);
    assert.equal(visited, 0, "nothing of a malformed packet is acted on");
  });

  test("random garbage never throws", () => {
    let x = 12345;
    for (let i = 0; i < 2000; i++) {
      const n = i % 300;
      const b = new Uint8Array(n);
      for (let j = 0; j < n; j++) b[j] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      decodeRoutePacket(b);
      walkRoutePacket(b, { update: () => {}, refresh: () => {}, other: () => {} });
    }
  });

  test("values that do not fit are refused when encoding", () => {
    assert.throws(() => encodeRoutePacket({ updateIntervalMs: 0, tlvs: [] }), RangeError);
    assert.throws(() => encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [{ ...(all[0] as Extract<RouteTlv, { kind: "update" }>), metric: 70000 }] }), RangeError);
    assert.throws(() => encodeRoutePacket({ updateIntervalMs: 4000, tlvs: [{ ...(all[0] as Extract<RouteTlv, { kind: "update" }>), dest: new Uint8Array(31) }] }), RangeError);
  });

  test("packing splits a long list into packets no larger than the limit, in order", () => {
    const tlvs: RouteTlv[] = Array.from({ length: 100 }, (_, i) => ({ kind: "update", dest: sid(i), boot, seqno: i, metric: 256, hops: 1, mtu: 1160 }));
    const packets = packRoutePackets(4000, tlvs, 1160);
    assert.ok(packets.every((p) => p.length <= 1160));
    assert.equal(packets.length, Math.ceil(100 / Math.floor(1158 / 49)));
    const back = packets.flatMap((p) => {
      const d = decodeRoutePacket(p);
      assert.ok(d.ok);
      return d.packet.tlvs;
    });
    assert.deepEqual(back, tlvs);
  });
});
