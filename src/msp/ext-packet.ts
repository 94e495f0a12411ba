/**
 * The svp MSP extension's packet format (docs/msp-extension.md has the whole design).
 *
 * Negotiation happens in classic packets: a connector that speaks the extension sets
 * `MSP_OFFER` (0x10) in the flags of every packet it sends before it hears from the peer.
 * servald tests the four known flag bits one by one and reads sequenced payloads at byte 5
 * whatever else is set, so it ignores the bit; an svp listener that also speaks the
 * extension answers in the extended format below, and everything either side sends after
 * that is extended. A peer that answers classic (servald, an older svp) gets classic packets
 * for the rest of the connection.
 *
 * Extended packet (flags has `MSP_EXT`, 0x80):
 *
 * | bytes | field |
 * |---|---|
 * | 0     | flags: ACK 0x02 (always), SHUTDOWN 0x01 (with SEQ), SEQ 0x40, EXT 0x80 |
 * | 1–2   | ack: every seq up to and including it has *arrived* (uint16 LE; 0xFFFF before any) |
 * | 3–4   | limit: the highest seq this side will accept now (flow control; uint16 LE) |
 * | 5–8   | pn: packet number of this transmission, 1, 2, … (0 on ack-only packets; uint32 LE) |
 * | 9–12  | largest: the largest pn received from the peer (0 = none yet; uint32 LE) |
 * | 13–14 | delay: how long ago `largest` arrived, in units of 10 µs (uint16 LE, saturating) |
 * | 15    | n: number of ranges that follow (0–16) |
 * | 16–   | n × (first, last): seqs that arrived above `ack`, inclusive, ascending (uint16 LE each) |
 * | then  | with SEQ: seq (uint16 LE), then the data to the end of the packet |
 *
 * A STOP is always the classic 1-byte packet. Pure functions; decoding never throws.
 */

import { MSP_FLAG } from "./packet.ts";

/** On a classic packet: "I speak the extension" (connector, before it has heard the peer). */
export const MSP_OFFER = 0x10;
/** The packet is in the extended format. */
export const MSP_EXT = 0x80;
/** On an extended packet: it carries a sequence number (and possibly data). */
export const MSP_SEQ = 0x40;

export const EXT_FIXED_BYTES = 16;
export const EXT_MAX_RANGES = 16;
/** Header room reserved in front of every extended data packet: fixed part, ranges, seq. */
export const EXT_MAX_HEADER_BYTES = EXT_FIXED_BYTES + 4 * EXT_MAX_RANGES + 2;
/** Unit of the delay field, ms. */
export const EXT_DELAY_UNIT_MS = 0.01;

export interface ExtAckInfo {
  /** Cumulative: every seq up to and including this one arrived. */
  ack: number;
  /** Highest seq the sender of the packet accepts. */
  limit: number;
  /** Largest packet number received (0 = none). */
  largest: number;
  /** How long ago `largest` arrived, ms (multiple of 0.01, at most 655.35). */
  delayMs: number;
  /** Flat list of inclusive (first, last) pairs above `ack`, ascending. */
  ranges: number[];
}

export interface ExtPacket extends ExtAckInfo {
  flags: number;
  pn: number;
  /** The sequence number when the packet has SEQ, else -1. */
  seq: number;
  data: Uint8Array;
}

export type ExtDecodeResult = { ok: true; packet: ExtPacket } | { ok: false; detail: string };

/** Size of the extended header for `ranges` (pairs) and whether it carries a seq. */
export function extHeaderBytes(rangePairs: number, seq: boolean): number {
  return EXT_FIXED_BYTES + 4 * rangePairs + (seq ? 2 : 0);
}

/**
 * Write an extended header so that it ends exactly at `end` in `buf` (the data, if any,
 * follows from `end`); returns the header's first byte offset. `seq` < 0: no SEQ.
 */
export function writeExtHeader(buf: Uint8Array, end: number, flags: number, pn: number, info: ExtAckInfo, seq: number): number {
  const pairs = info.ranges.length >> 1;
  const start = end - extHeaderBytes(pairs, seq >= 0);
  let o = start;
  buf[o++] = flags | MSP_EXT | MSP_FLAG.ACK | (seq >= 0 ? MSP_SEQ : 0);
  o = put16(buf, o, info.ack);
  o = put16(buf, o, info.limit);
  o = put32(buf, o, pn);
  o = put32(buf, o, info.largest);
  o = put16(buf, o, Math.min(0xffff, Math.max(0, Math.round(info.delayMs / EXT_DELAY_UNIT_MS))));
  buf[o++] = pairs;
  for (let i = 0; i < info.ranges.length; i++) o = put16(buf, o, info.ranges[i]!);
  if (seq >= 0) put16(buf, o, seq);
  return start;
}

/** A whole extended packet (tests, and ack-only packets). */
export function encodeExtPacket(p: { flags: number; pn: number; seq: number; data?: Uint8Array } & ExtAckInfo): Uint8Array {
  const data = p.data ?? new Uint8Array(0);
  const head = extHeaderBytes(p.ranges.length >> 1, p.seq >= 0);
  const out = new Uint8Array(head + data.length);
  writeExtHeader(out, head, p.flags, p.pn, p, p.seq);
  out.set(data, head);
  return out;
}

/**
 * Parse an extended packet (the caller checked `bytes[0] & MSP_EXT`). Structural checks
 * only: that ranges lie above `ack`, ascend and do not overlap; whether the numbers make
 * sense for this connection (sent seqs, sent pns) is the connection's to check.
 */
export function decodeExtPacket(bytes: Uint8Array): ExtDecodeResult {
  const n = bytes.length;
  if (n < EXT_FIXED_BYTES) return { ok: false, detail: `extended MSP packet of ${n} bytes is shorter than its fixed ${EXT_FIXED_BYTES}` };
  const flags = bytes[0]!;
  if (!(flags & MSP_FLAG.ACK)) return { ok: false, detail: "extended MSP packet without ACK" };
  if (flags & (MSP_FLAG.FIRST | MSP_OFFER)) return { ok: false, detail: "extended MSP packet with FIRST or OFFER" };
  const hasSeq = (flags & MSP_SEQ) !== 0;
  if (flags & MSP_FLAG.SHUTDOWN && !hasSeq) return { ok: false, detail: "SHUTDOWN on an extended packet without a sequence number" };
  const pairs = bytes[15]!;
  if (pairs > EXT_MAX_RANGES) return { ok: false, detail: `${pairs} ranges (at most ${EXT_MAX_RANGES})` };
  const head = extHeaderBytes(pairs, hasSeq);
  if (n < head) return { ok: false, detail: `extended MSP packet of ${n} bytes is shorter than its ${head}-byte header` };
  const ack = get16(bytes, 1);
  const ranges: number[] = new Array<number>(pairs * 2);
  let prev = ack; // each range must start at least 2 after the previous end (a gap between)
  for (let i = 0; i < pairs; i++) {
    const first = get16(bytes, 16 + 4 * i);
    const last = get16(bytes, 18 + 4 * i);
    const gap = (first - prev) & 0xffff;
    const len = (last - first) & 0xffff;
    if (gap < 2 || gap >= 0x8000 || len >= 0x8000) return { ok: false, detail: `range ${first}-${last} is not above ${prev} + 1 in order` };
    ranges[2 * i] = first;
    ranges[2 * i + 1] = last;
    prev = last;
  }
  if (pairs > 0 && ((prev - ack) & 0xffff) >= 0x8000) return { ok: false, detail: "ranges span more than half the sequence space" };
  const pn = get32(bytes, 5);
  if (hasSeq && pn === 0) return { ok: false, detail: "sequenced extended packet with packet number 0" };
  if (!hasSeq && pn !== 0) return { ok: false, detail: "ack-only extended packet with a packet number" };
  return {
    ok: true,
    packet: {
      flags,
      ack,
      limit: get16(bytes, 3),
      pn,
      largest: get32(bytes, 9),
      delayMs: get16(bytes, 13) * EXT_DELAY_UNIT_MS,
      ranges,
      seq: hasSeq ? get16(bytes, head - 2) : -1,
      data: bytes.subarray(head),
    },
  };
}

function put16(b: Uint8Array, o: number, v: number): number {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  return o + 2;
}

function put32(b: Uint8Array, o: number, v: number): number {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
  return o + 4;
}

function get16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

function get32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
