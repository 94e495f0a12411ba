/**
 * The routing messages of the embedded node (the plaintext of a sealed ROUTE packet
 * between two neighbours; see overlay-packet.ts for the envelope and router.ts for the
 * protocol). Pure functions over Uint8Array; all integers big-endian.
 *
 *   0 update interval of the sender, uint16, in units of 10 ms (routes it announces
 *     expire after 3.5 of these without a refresh)
 *   2 TLVs, each: type (1), length of the body (1), body
 *
 * | type | name | body |
 * | --- | --- | --- |
 * | 1 | UPDATE | destination SID (32), origin boot (8), seqno (2), metric (2), hops (1), mtu (2) |
 * | 2 | REFRESH | first 8 bytes of the destination SID, seqno (2), metric (2), hops (1), mtu (2) |
 * | 3 | SEQNO_REQUEST | destination SID (32), origin boot (8), seqno (2), hop count (1) |
 * | 4 | ROUTE_REQUEST | first 8 bytes of a destination SID, or 8 zero bytes for every route |
 *
 * UPDATE announces the sender's selected route to a destination SID: the source is
 * (SID, boot of the node that owns it), seqno is that source's sequence number, metric is
 * the sender's own distance (0xFFFF = retraction), hops the sender's hop count to it (0 for
 * its own SIDs) and mtu the largest MDP payload the sender can carry there. REFRESH is the
 * same for a destination whose full UPDATE (with that boot) the sender already sent on this
 * link: it names the SID by its first 8 bytes and keeps the boot (3x smaller; periodic
 * dumps are mostly these). A receiver that cannot resolve a REFRESH answers with a
 * ROUTE_REQUEST for it. Unknown TLV types are skipped (their length is known), so later
 * versions can add some; a known type with the wrong length makes the packet malformed.
 */

import { SID_BYTES, type Sid } from "../mesh/sid.ts";

/** A metric that means "unreachable" (a retraction). */
export const METRIC_INFINITY = 0xffff;
export const BOOT_LEN = 8;
export const PREFIX_BYTES = 8;
/** Bytes before the first TLV. */
export const ROUTE_HEADER_BYTES = 2;

export const ROUTE_TLV = { UPDATE: 1, REFRESH: 2, SEQNO_REQUEST: 3, ROUTE_REQUEST: 4 } as const;

const BODY = {
  [ROUTE_TLV.UPDATE]: SID_BYTES + BOOT_LEN + 7,
  [ROUTE_TLV.REFRESH]: PREFIX_BYTES + 7,
  [ROUTE_TLV.SEQNO_REQUEST]: SID_BYTES + BOOT_LEN + 3,
  [ROUTE_TLV.ROUTE_REQUEST]: PREFIX_BYTES,
} as const;

/** Encoded size of each message (type and length bytes included). */
export const TLV_BYTES = {
  update: 2 + BODY[ROUTE_TLV.UPDATE],
  refresh: 2 + BODY[ROUTE_TLV.REFRESH],
  seqnoRequest: 2 + BODY[ROUTE_TLV.SEQNO_REQUEST],
  routeRequest: 2 + BODY[ROUTE_TLV.ROUTE_REQUEST],
} as const;

export interface UpdateTlv {
  kind: "update";
  dest: Sid;
  boot: Uint8Array;
  seqno: number;
  metric: number;
  hops: number;
  mtu: number;
}

export interface RefreshTlv {
  kind: "refresh";
  prefix: Uint8Array;
  seqno: number;
  metric: number;
  hops: number;
  mtu: number;
}

export interface SeqnoRequestTlv {
  kind: "seqno-request";
  dest: Sid;
  boot: Uint8Array;
  seqno: number;
  /** How many more hops the request may travel (>= 1). */
  hopCount: number;
}

export interface RouteRequestTlv {
  kind: "route-request";
  /** 8 bytes; all zero = every route. */
  prefix: Uint8Array;
}

export type RouteTlv = UpdateTlv | RefreshTlv | SeqnoRequestTlv | RouteRequestTlv;

export interface RoutePacket {
  /** The sender's update interval, ms (a multiple of 10). */
  updateIntervalMs: number;
  tlvs: RouteTlv[];
}

/** Encoded size of one TLV. */
export function tlvSize(t: RouteTlv): number {
  switch (t.kind) {
    case "update":
      return TLV_BYTES.update;
    case "refresh":
      return TLV_BYTES.refresh;
    case "seqno-request":
      return TLV_BYTES.seqnoRequest;
    case "route-request":
      return TLV_BYTES.routeRequest;
  }
}

/** Largest update interval the header can say (uint16 × 10 ms). */
export const MAX_UPDATE_INTERVAL_MS = 0xffff * 10;

/** Encode one packet. Throws RangeError on values that do not fit their fields. */
export function encodeRoutePacket(p: RoutePacket): Uint8Array {
  let n = ROUTE_HEADER_BYTES;
  for (const t of p.tlvs) n += tlvSize(t);
  const out = new Uint8Array(n);
  const interval = Math.round(p.updateIntervalMs / 10);
  if (!(interval >= 1 && interval <= 0xffff)) throw new RangeError(`update interval ${p.updateIntervalMs} ms out of range`);
  put16(out, 0, interval);
  let o = ROUTE_HEADER_BYTES;
  for (const t of p.tlvs) {
    switch (t.kind) {
      case "update":
        out[o] = ROUTE_TLV.UPDATE;
        out[o + 1] = BODY[ROUTE_TLV.UPDATE];
        putBytes(out, o + 2, t.dest, SID_BYTES);
        putBytes(out, o + 2 + SID_BYTES, t.boot, BOOT_LEN);
        putRoute(out, o + 2 + SID_BYTES + BOOT_LEN, t);
        break;
      case "refresh":
        out[o] = ROUTE_TLV.REFRESH;
        out[o + 1] = BODY[ROUTE_TLV.REFRESH];
        putBytes(out, o + 2, t.prefix, PREFIX_BYTES);
        putRoute(out, o + 2 + PREFIX_BYTES, t);
        break;
      case "seqno-request":
        out[o] = ROUTE_TLV.SEQNO_REQUEST;
        out[o + 1] = BODY[ROUTE_TLV.SEQNO_REQUEST];
        putBytes(out, o + 2, t.dest, SID_BYTES);
        putBytes(out, o + 2 + SID_BYTES, t.boot, BOOT_LEN);
        put16(out, o + 2 + SID_BYTES + BOOT_LEN, check16(t.seqno, "seqno"));
        out[o + 4 + SID_BYTES + BOOT_LEN] = check8(t.hopCount, "hop count");
        break;
      case "route-request":
        out[o] = ROUTE_TLV.ROUTE_REQUEST;
        out[o + 1] = BODY[ROUTE_TLV.ROUTE_REQUEST];
        putBytes(out, o + 2, t.prefix, PREFIX_BYTES);
        break;
    }
    o += tlvSize(t);
  }
  return out;
}

export type RouteDecode = { ok: true; packet: RoutePacket; skipped: number } | { ok: false; why: string };

/**
 * Decode a packet. Never throws. Byte fields are copies (they are kept in route tables).
 * Only the layout is checked here; whether values make sense is the router's call.
 */
export function decodeRoutePacket(d: Uint8Array): RouteDecode {
  if (d.length < ROUTE_HEADER_BYTES) return { ok: false, why: "shorter than the header" };
  const interval = get16(d, 0);
  if (interval === 0) return { ok: false, why: "update interval 0" };
  const tlvs: RouteTlv[] = [];
  let skipped = 0;
  let o = ROUTE_HEADER_BYTES;
  while (o < d.length) {
    if (d.length - o < 2) return { ok: false, why: `truncated TLV header at ${o}` };
    const type = d[o]!;
    const len = d[o + 1]!;
    const b = o + 2;
    if (d.length - b < len) return { ok: false, why: `TLV type ${type} at ${o} runs past the end` };
    if (type in BODY && len !== BODY[type as keyof typeof BODY]) return { ok: false, why: `TLV type ${type} with length ${len} (expected ${BODY[type as keyof typeof BODY]})` };
    switch (type) {
      case ROUTE_TLV.UPDATE:
        tlvs.push({ kind: "update", dest: d.slice(b, b + SID_BYTES), boot: d.slice(b + SID_BYTES, b + SID_BYTES + BOOT_LEN), ...getRoute(d, b + SID_BYTES + BOOT_LEN) });
        break;
      case ROUTE_TLV.REFRESH:
        tlvs.push({ kind: "refresh", prefix: d.slice(b, b + PREFIX_BYTES), ...getRoute(d, b + PREFIX_BYTES) });
        break;
      case ROUTE_TLV.SEQNO_REQUEST:
        tlvs.push({ kind: "seqno-request", dest: d.slice(b, b + SID_BYTES), boot: d.slice(b + SID_BYTES, b + SID_BYTES + BOOT_LEN), seqno: get16(d, b + SID_BYTES + BOOT_LEN), hopCount: d[b + SID_BYTES + BOOT_LEN + 2]! });
        break;
      case ROUTE_TLV.ROUTE_REQUEST:
        tlvs.push({ kind: "route-request", prefix: d.slice(b, b + PREFIX_BYTES) });
        break;
      default:
        skipped++;
    }
    o = b + len;
  }
  return { ok: true, packet: { updateIntervalMs: interval * 10, tlvs }, skipped };
}

/** What `walkRoutePacket` calls: UPDATE and REFRESH with the packet and their body's offset (no allocation), others decoded. */
export interface RouteTlvVisitor {
  /** Body at `at`: destination SID (32), boot (8), seqno, metric, hops, mtu (see `readRoute`). */
  update(d: Uint8Array, at: number): void;
  /** Body at `at`: SID prefix (8), seqno, metric, hops, mtu (see `readRoute`). */
  refresh(d: Uint8Array, at: number): void;
  other(t: SeqnoRequestTlv | RouteRequestTlv): void;
}

export type RouteWalk = { ok: true; updateIntervalMs: number; tlvs: number; skipped: number } | { ok: false; why: string };

/**
 * Check a packet's layout (as `decodeRoutePacket`) and, only when all of it is well formed,
 * visit its TLVs in order. The receive path of a router: dumps are mostly UPDATEs and
 * REFRESHes that change nothing, so they are not turned into objects first. Never throws.
 */
export function walkRoutePacket(d: Uint8Array, visit: RouteTlvVisitor): RouteWalk {
  if (d.length < ROUTE_HEADER_BYTES) return { ok: false, why: "shorter than the header" };
  const interval = get16(d, 0);
  if (interval === 0) return { ok: false, why: "update interval 0" };
  let tlvs = 0;
  let skipped = 0;
  for (let o = ROUTE_HEADER_BYTES; o < d.length; ) {
    if (d.length - o < 2) return { ok: false, why: `truncated TLV header at ${o}` };
    const type = d[o]!;
    const len = d[o + 1]!;
    if (d.length - o - 2 < len) return { ok: false, why: `TLV type ${type} at ${o} runs past the end` };
    if (type in BODY && len !== BODY[type as keyof typeof BODY]) return { ok: false, why: `TLV type ${type} with length ${len} (expected ${BODY[type as keyof typeof BODY]})` };
    if (type in BODY) tlvs++;
    else skipped++;
    o += 2 + len;
  }
  for (let o = ROUTE_HEADER_BYTES; o < d.length; o += 2 + d[o + 1]!) {
    const b = o + 2;
    switch (d[o]) {
      case ROUTE_TLV.UPDATE:
        visit.update(d, b);
        break;
      case ROUTE_TLV.REFRESH:
        visit.refresh(d, b);
        break;
      case ROUTE_TLV.SEQNO_REQUEST:
        visit.other({ kind: "seqno-request", dest: d.slice(b, b + SID_BYTES), boot: d.slice(b + SID_BYTES, b + SID_BYTES + BOOT_LEN), seqno: get16(d, b + SID_BYTES + BOOT_LEN), hopCount: d[b + SID_BYTES + BOOT_LEN + 2]! });
        break;
      case ROUTE_TLV.ROUTE_REQUEST:
        visit.other({ kind: "route-request", prefix: d.slice(b, b + PREFIX_BYTES) });
        break;
    }
  }
  return { ok: true, updateIntervalMs: interval * 10, tlvs, skipped };
}

/** Offsets of an UPDATE's fields from its body (`walkRoutePacket`'s `at`). */
export const UPDATE_AT = { dest: 0, boot: SID_BYTES, route: SID_BYTES + BOOT_LEN } as const;
/** Offset of a REFRESH's route fields from its body. */
export const REFRESH_ROUTE_AT = PREFIX_BYTES;

/** seqno, metric, hops, mtu at offset `o`. */
export function readSeqno(d: Uint8Array, o: number): number {
  return get16(d, o);
}
export function readMetric(d: Uint8Array, o: number): number {
  return get16(d, o + 2);
}
export function readHops(d: Uint8Array, o: number): number {
  return d[o + 4]!;
}
export function readMtu(d: Uint8Array, o: number): number {
  return get16(d, o + 5);
}

/**
 * Split `tlvs` into packets whose encoding is at most `maxBytes` each (at least one TLV per
 * packet), in order.
 */
export function packRoutePackets(updateIntervalMs: number, tlvs: RouteTlv[], maxBytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let batch: RouteTlv[] = [];
  let size = ROUTE_HEADER_BYTES;
  for (const t of tlvs) {
    const s = tlvSize(t);
    if (batch.length > 0 && size + s > maxBytes) {
      out.push(encodeRoutePacket({ updateIntervalMs, tlvs: batch }));
      batch = [];
      size = ROUTE_HEADER_BYTES;
    }
    batch.push(t);
    size += s;
  }
  if (batch.length) out.push(encodeRoutePacket({ updateIntervalMs, tlvs: batch }));
  return out;
}

function putRoute(out: Uint8Array, o: number, r: { seqno: number; metric: number; hops: number; mtu: number }): void {
  put16(out, o, check16(r.seqno, "seqno"));
  put16(out, o + 2, check16(r.metric, "metric"));
  out[o + 4] = check8(r.hops, "hops");
  put16(out, o + 5, check16(r.mtu, "mtu"));
}

function getRoute(d: Uint8Array, o: number): { seqno: number; metric: number; hops: number; mtu: number } {
  return { seqno: get16(d, o), metric: get16(d, o + 2), hops: d[o + 4]!, mtu: get16(d, o + 5) };
}

function putBytes(out: Uint8Array, o: number, b: Uint8Array, len: number): void {
  if (b.length !== len) throw new RangeError(`field of ${b.length} bytes where ${len} are needed`);
  out.set(b, o);
}

function check16(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${what} ${v} does not fit 16 bits`);
  return v;
}

function check8(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`${what} ${v} does not fit 8 bits`);
  return v;
}

function put16(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 8;
  out[o + 1] = v & 0xff;
}

function get16(d: Uint8Array, o: number): number {
  return (d[o]! << 8) | d[o + 1]!;
}
