/**
 * The embedded node's UDP datagrams (svp's own overlay; not servald's wire format).
 *
 * Every datagram starts with the magic "SV", version 2 and a type:
 *
 * PROBE (type 1, plaintext, padded to PROBE_BYTES so that the sealed HELLO it provokes is
 * never larger than the probe: no amplification)
 *   4  sender SID (32)      36 sender boot (8)      44 zero padding
 *
 * Sealed packets between two neighbours: HELLO (2), DATA (3), ROUTE (4), FLOOD (6)
 *   4  sender SID (32)      36 receiver SID (32)
 *   68 sender boot (8)      76 receiver boot as the sender knows it (8; zero = unknown)
 *   84 counter (uint64 BE, starts at 1 per sender boot)
 *   92 ciphertext + 16-byte ChaCha20-Poly1305 tag
 *
 * The 92-byte header is the AEAD's associated data. The key for one direction is
 * HKDF-SHA256(ikm = X25519(own secret, peer SID), salt = sender boot,
 * info = "svp-overlay-v1" | sender SID | receiver SID); the nonce is 4 zero bytes and
 * the counter. A boot is 8 random bytes chosen when a daemon starts, so a restarted
 * daemon never reuses a (key, nonce) pair, and a packet that carries the receiver's
 * current boot was provably made after the receiver started (no replays across restarts).
 *
 * FORWARD (type 5): a frame for a node further away, carried one hop.
 *   0  the 92-byte header as above (this hop's sender and receiver)
 *   92 TTL (1): hops the frame may still travel (MDP's, at most 31)
 *   93 the inner frame: a complete sealed DATA datagram (magic, version, type 3, 92-byte
 *      header, ciphertext, tag) sealed END TO END between the source and destination SIDs
 *      with the key HKDF-SHA256(X25519, salt = source boot, info = "svp-e2e-v1" | source
 *      SID | destination SID) and the source's end-to-end counter; its "receiver boot" is
 *      the destination's boot as the source's route says
 *   .. 16-byte tag: ChaCha20-Poly1305 of this hop's key over an empty plaintext with
 *      everything before it as associated data (a MAC: the hop proves who sent it, the
 *      TTL is covered, and the inner frame is neither copied nor encrypted twice)
 *
 * Plaintexts:
 *   HELLO = flags (1: REQUEST 0x01, REPLY 0x02, GOODBYE 0x04), ping id (8), echoed ping
 *     id (8), hello number (2), hello interval (2, in 10 ms), IHU (1: the sender's
 *     reception ratio of the receiver's hellos × 254; 255 = not known yet), MTU (2: the
 *     largest MDP payload the sender takes on this link).
 *   DATA = flags (1: BROADCAST 0x01), source MDP port (uint32 BE), destination MDP port
 *     (uint32 BE), MDP payload.
 *   ROUTE = a routing packet (route-packet.ts).
 *   FLOOD = origin SID (32), broadcast id (8, random), TTL (1), source MDP port (4),
 *     destination MDP port (4), MDP payload: an MDP broadcast, relayed hop by hop.
 *
 * Flood resistance (flood-guard.ts): a node under load answers a datagram it will not work
 * for with a COOKIE, and the sender puts the cookie in front of its probes and hellos.
 * COOKIE (type 7, plaintext, 28 bytes)
 *   4  the refused datagram's sender boot (8; the sender ignores cookies not echoing its own)
 *   12 cookie (16): a MAC of the sender's address under the refusing node's secret
 * COOKIE ECHO (type 8, plaintext)
 *   4  cookie (16)          20 a complete PROBE or HELLO datagram
 */

import { SID_BYTES, type Sid } from "../mesh/sid.ts";
import { ROUTE_DROP_REASONS } from "./route-drop-reasons.ts";

export const OVERLAY_MAGIC_0 = 0x53; // 'S'
export const OVERLAY_MAGIC_1 = 0x56; // 'V'
export const OVERLAY_VERSION = 2;

export const PACKET_TYPE = { PROBE: 1, HELLO: 2, DATA: 3, ROUTE: 4, FORWARD: 5, FLOOD: 6, COOKIE: 7, COOKIE_ECHO: 8 } as const;
export type PacketType = (typeof PACKET_TYPE)[keyof typeof PACKET_TYPE];

export const BOOT_BYTES = 8;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
export const SEALED_HEADER_BYTES = 92;
/** Size of every PROBE datagram (>= the largest HELLO, see above). */
export const PROBE_BYTES = 144;
export const HELLO_PLAIN_BYTES = 24;
export const DATA_PLAIN_HEADER_BYTES = 9;
export const FLOOD_PLAIN_HEADER_BYTES = SID_BYTES + 8 + 1 + 8;
/** Bytes a FORWARD adds around the inner frame (hop header, TTL, hop tag). */
export const FORWARD_OVERHEAD = SEALED_HEADER_BYTES + 1 + TAG_BYTES;
/** Bytes an inner (end-to-end) frame adds around the MDP payload. */
export const E2E_OVERHEAD = SEALED_HEADER_BYTES + DATA_PLAIN_HEADER_BYTES + TAG_BYTES;
/** Largest MDP payload on a link that is not loopback, unless configured (servald's MDP MTU). */
export const OVERLAY_MDP_MTU = 1160;
/** Largest MDP payload on a loopback link, and the largest the overlay carries at all. */
export const MAX_MDP_MTU = 16384;
export const COOKIE_PACKET_BYTES = 4 + 8 + 16;
/** Bytes a COOKIE ECHO adds in front of the datagram it carries. */
export const COOKIE_ECHO_OVERHEAD = 4 + 16;
/** Largest datagram accepted (a FORWARD of a MAX_MDP_MTU payload); anything longer is dropped as oversize. */
export const MAX_DATAGRAM_BYTES = FORWARD_OVERHEAD + E2E_OVERHEAD + MAX_MDP_MTU;

export const HELLO_FLAG = { REQUEST: 0x01, REPLY: 0x02, GOODBYE: 0x04 } as const;
export const DATA_FLAG = { BROADCAST: 0x01 } as const;

/** Why a datagram was dropped; these are the keys of the drop counters in `svp status`. */
export const DROP_REASONS = [
  "oversize", // longer than MAX_DATAGRAM_BYTES
  "truncated", // shorter than its type's fixed part
  "garbage", // wrong magic
  "bad-version",
  "bad-type",
  "bad-sid", // sender SID unusable (own, zero, broadcast, low order)
  "not-for-us", // receiver SID is none of our identities
  "forged", // did not authenticate
  "replay", // counter already seen or too old, or a retired boot
  "stale", // authentic but not addressed to our current boot (older than our start)
  "bad-payload", // authentic but malformed plaintext
  "unbound", // MDP port nobody has bound
  "no-route", // destination is neither a live neighbour nor in the route table
  "client-slow", // a local API client did not read fast enough
  "ttl-expired", // a forwarded frame or broadcast ran out of hops
  "too-big", // an MDP payload larger than the path (or link) MTU
  "flood-limit", // broadcasts relayed beyond the rate limit
  "overload", // unearned work refused while under load (see flood-guard.ts)
  ...ROUTE_DROP_REASONS, // routing messages (see router.ts)
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface ProbePacket {
  type: typeof PACKET_TYPE.PROBE;
  sender: Sid;
  senderBoot: Uint8Array;
}

/** The cleartext part of a sealed packet. */
export interface SealedHeader {
  type: typeof PACKET_TYPE.HELLO | typeof PACKET_TYPE.DATA | typeof PACKET_TYPE.ROUTE | typeof PACKET_TYPE.FORWARD | typeof PACKET_TYPE.FLOOD;
  sender: Sid;
  receiver: Sid;
  senderBoot: Uint8Array;
  receiverBoot: Uint8Array;
  counter: number;
}

/**
 * A parsed datagram. For sealed types `aad` is what the AEAD authenticates and `sealed`
 * the ciphertext and tag; for FORWARD, `aad` is everything but the 16-byte tag (`sealed`),
 * and `ttl` and `inner` are set.
 */
export type ParsedDatagram =
  | { ok: true; packet: ProbePacket }
  | { ok: true; packet: SealedHeader; aad: Uint8Array; sealed: Uint8Array; ttl?: number; inner?: Uint8Array }
  | { ok: false; reason: DropReason };

export function encodeProbe(sender: Sid, senderBoot: Uint8Array): Uint8Array {
  const out = header(new Uint8Array(PROBE_BYTES), PACKET_TYPE.PROBE);
  out.set(sender, 4);
  out.set(senderBoot, 4 + SID_BYTES);
  return out;
}

function header(out: Uint8Array, type: number): Uint8Array {
  out[0] = OVERLAY_MAGIC_0;
  out[1] = OVERLAY_MAGIC_1;
  out[2] = OVERLAY_VERSION;
  out[3] = type;
  return out;
}

export function encodeCookie(echoBoot: Uint8Array, cookie: Uint8Array): Uint8Array {
  const out = header(new Uint8Array(COOKIE_PACKET_BYTES), PACKET_TYPE.COOKIE);
  out.set(echoBoot.subarray(0, BOOT_BYTES), 4);
  out.set(cookie.subarray(0, 16), 12);
  return out;
}

/** A COOKIE's parts, or undefined when `d` (a datagram of type COOKIE) has the wrong size. */
export function decodeCookie(d: Uint8Array): { echoBoot: Uint8Array; cookie: Uint8Array } | undefined {
  if (d.length !== COOKIE_PACKET_BYTES) return undefined;
  return { echoBoot: d.subarray(4, 12), cookie: d.subarray(12, 28) };
}

export function encodeCookieEcho(cookie: Uint8Array, datagram: Uint8Array): Uint8Array {
  const out = header(new Uint8Array(COOKIE_ECHO_OVERHEAD + datagram.length), PACKET_TYPE.COOKIE_ECHO);
  out.set(cookie.subarray(0, 16), 4);
  out.set(datagram, COOKIE_ECHO_OVERHEAD);
  return out;
}

/** A COOKIE ECHO's cookie and the datagram it carries (only a PROBE or a HELLO), or why it is dropped. */
export function decodeCookieEcho(d: Uint8Array): { ok: true; cookie: Uint8Array; inner: Uint8Array } | { ok: false; reason: DropReason } {
  if (d.length < COOKIE_ECHO_OVERHEAD + 4) return { ok: false, reason: "truncated" };
  const inner = d.subarray(COOKIE_ECHO_OVERHEAD);
  if (inner[0] !== OVERLAY_MAGIC_0 || inner[1] !== OVERLAY_MAGIC_1 || inner[2] !== OVERLAY_VERSION) return { ok: false, reason: "garbage" };
  if (inner[3] !== PACKET_TYPE.PROBE && inner[3] !== PACKET_TYPE.HELLO) return { ok: false, reason: "bad-type" };
  return { ok: true, cookie: d.subarray(4, 20), inner };
}

/**
 * The 92-byte header of a sealed packet (also its associated data). With `into`, it is
 * written at the start of `into` (the whole datagram) and a view of it returned.
 */
export function encodeSealedHeader(h: SealedHeader, into?: Uint8Array): Uint8Array {
  const out = into ? into.subarray(0, SEALED_HEADER_BYTES) : new Uint8Array(SEALED_HEADER_BYTES);
  out[0] = OVERLAY_MAGIC_0;
  out[1] = OVERLAY_MAGIC_1;
  out[2] = OVERLAY_VERSION;
  out[3] = h.type;
  out.set(h.sender, 4);
  out.set(h.receiver, 36);
  out.set(h.senderBoot, 68);
  out.set(h.receiverBoot, 76);
  writeUint64(out, 84, h.counter);
  return out;
}

/** The AEAD nonce for a counter: 4 zero bytes and the counter (uint64 BE); written into `into` when given. */
export function nonceFor(counter: number, into?: Uint8Array): Uint8Array {
  const n = into ?? new Uint8Array(NONCE_BYTES);
  n[0] = n[1] = n[2] = n[3] = 0;
  writeUint64(n, 4, counter);
  return n;
}

/**
 * Classify and split one received datagram. Never throws. The SIDs, boots, `aad` and
 * `sealed` are views into `d` (no copies per packet): copy what is kept.
 */
export function parseDatagram(d: Uint8Array): ParsedDatagram {
  if (d.length > MAX_DATAGRAM_BYTES) return { ok: false, reason: "oversize" };
  if (d.length < 4) return { ok: false, reason: d.length >= 2 && d[0] === OVERLAY_MAGIC_0 && d[1] === OVERLAY_MAGIC_1 ? "truncated" : "garbage" };
  if (d[0] !== OVERLAY_MAGIC_0 || d[1] !== OVERLAY_MAGIC_1) return { ok: false, reason: "garbage" };
  if (d[2] !== OVERLAY_VERSION) return { ok: false, reason: "bad-version" };
  const type = d[3];
  if (type === PACKET_TYPE.PROBE) {
    if (d.length < PROBE_BYTES) return { ok: false, reason: "truncated" };
    if (d.length > PROBE_BYTES) return { ok: false, reason: "oversize" };
    return { ok: true, packet: { type, sender: d.subarray(4, 36), senderBoot: d.subarray(36, 44) } };
  }
  if (type !== PACKET_TYPE.HELLO && type !== PACKET_TYPE.DATA && type !== PACKET_TYPE.ROUTE && type !== PACKET_TYPE.FORWARD && type !== PACKET_TYPE.FLOOD) return { ok: false, reason: "bad-type" };
  const minPlain = MIN_PLAIN[type];
  if (d.length < SEALED_HEADER_BYTES + minPlain + TAG_BYTES) return { ok: false, reason: "truncated" };
  const counter = readUint64(d, 84);
  const packet: SealedHeader = {
    type,
    sender: d.subarray(4, 36),
    receiver: d.subarray(36, 68),
    senderBoot: d.subarray(68, 76),
    receiverBoot: d.subarray(76, 84),
    counter,
  };
  if (type === PACKET_TYPE.FORWARD) {
    const tagAt = d.length - TAG_BYTES;
    return { ok: true, packet, aad: d.subarray(0, tagAt), sealed: d.subarray(tagAt), ttl: d[SEALED_HEADER_BYTES]!, inner: d.subarray(SEALED_HEADER_BYTES + 1, tagAt) };
  }
  return { ok: true, packet, aad: d.subarray(0, SEALED_HEADER_BYTES), sealed: d.subarray(SEALED_HEADER_BYTES) };
}

/** Smallest plaintext of each sealed type (FORWARD: TTL and the smallest inner frame, before the hop tag). */
const MIN_PLAIN = {
  [PACKET_TYPE.HELLO]: HELLO_PLAIN_BYTES,
  [PACKET_TYPE.DATA]: DATA_PLAIN_HEADER_BYTES,
  [PACKET_TYPE.ROUTE]: 2,
  [PACKET_TYPE.FORWARD]: 1 + E2E_OVERHEAD,
  [PACKET_TYPE.FLOOD]: FLOOD_PLAIN_HEADER_BYTES,
} as const;

export interface HelloBody {
  flags: number;
  /** The sender's ping id (0 = none). */
  ping: number;
  /** A ping id of the receiver echoed back (0 = none). */
  echo: number;
  /** The sender's hello number (counts its periodic hellos on this session; replies repeat it). */
  seq: number;
  /** The sender's hello interval, ms (a multiple of 10). */
  intervalMs: number;
  /** The sender's reception ratio of the receiver's hellos × 254 (255: not known yet). */
  ihu: number;
  /** Largest MDP payload the sender takes on this link. */
  mtu: number;
}

export function encodeHello(h: HelloBody): Uint8Array {
  const out = new Uint8Array(HELLO_PLAIN_BYTES);
  out[0] = h.flags;
  writeUint64(out, 1, h.ping);
  writeUint64(out, 9, h.echo);
  out[17] = (h.seq >>> 8) & 0xff;
  out[18] = h.seq & 0xff;
  const iv = Math.min(0xffff, Math.max(1, Math.round(h.intervalMs / 10)));
  out[19] = iv >>> 8;
  out[20] = iv & 0xff;
  out[21] = h.ihu;
  const mtu = Math.min(0xffff, h.mtu);
  out[22] = mtu >>> 8;
  out[23] = mtu & 0xff;
  return out;
}

export function decodeHello(p: Uint8Array): HelloBody | undefined {
  if (p.length !== HELLO_PLAIN_BYTES) return undefined;
  const intervalMs = ((p[19]! << 8) | p[20]!) * 10;
  if (intervalMs === 0 || (p[0]! & ~(HELLO_FLAG.REQUEST | HELLO_FLAG.REPLY | HELLO_FLAG.GOODBYE)) !== 0) return undefined;
  return { flags: p[0]!, ping: readUint64(p, 1), echo: readUint64(p, 9), seq: (p[17]! << 8) | p[18]!, intervalMs, ihu: p[21]!, mtu: (p[22]! << 8) | p[23]! };
}

export interface DataBody {
  broadcast: boolean;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** The DATA plaintext; with `into` (a scratch buffer large enough) it is written there and a view returned. */
export function encodeData(b: DataBody, into?: Uint8Array): Uint8Array {
  const n = DATA_PLAIN_HEADER_BYTES + b.payload.length;
  const out = into ? into.subarray(0, n) : new Uint8Array(n);
  out[0] = b.broadcast ? DATA_FLAG.BROADCAST : 0;
  writeUint32(out, 1, b.srcPort);
  writeUint32(out, 5, b.dstPort);
  out.set(b.payload, DATA_PLAIN_HEADER_BYTES);
  return out;
}

function writeUint32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

export function decodeData(p: Uint8Array): DataBody | undefined {
  if (p.length < DATA_PLAIN_HEADER_BYTES || p.length > DATA_PLAIN_HEADER_BYTES + MAX_MDP_MTU) return undefined;
  if ((p[0]! & ~DATA_FLAG.BROADCAST) !== 0) return undefined;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { broadcast: (p[0]! & DATA_FLAG.BROADCAST) !== 0, srcPort: v.getUint32(1), dstPort: v.getUint32(5), payload: p.subarray(DATA_PLAIN_HEADER_BYTES) };
}

export interface FloodBody {
  origin: Sid;
  /** 8 random bytes chosen by the origin: (origin, id) names the broadcast for duplicate suppression. */
  id: Uint8Array;
  ttl: number;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export function encodeFlood(b: FloodBody): Uint8Array {
  const out = new Uint8Array(FLOOD_PLAIN_HEADER_BYTES + b.payload.length);
  out.set(b.origin, 0);
  out.set(b.id, SID_BYTES);
  out[SID_BYTES + 8] = b.ttl;
  writeUint32(out, SID_BYTES + 9, b.srcPort);
  writeUint32(out, SID_BYTES + 13, b.dstPort);
  out.set(b.payload, FLOOD_PLAIN_HEADER_BYTES);
  return out;
}

/** Views into `p` (copy what is kept). */
export function decodeFlood(p: Uint8Array): FloodBody | undefined {
  if (p.length < FLOOD_PLAIN_HEADER_BYTES || p.length > FLOOD_PLAIN_HEADER_BYTES + MAX_MDP_MTU) return undefined;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { origin: p.subarray(0, SID_BYTES), id: p.subarray(SID_BYTES, SID_BYTES + 8), ttl: p[SID_BYTES + 8]!, srcPort: v.getUint32(SID_BYTES + 9), dstPort: v.getUint32(SID_BYTES + 13), payload: p.subarray(FLOOD_PLAIN_HEADER_BYTES) };
}

/** uint64 BE limited to 2^53 - 1 (JavaScript's exact integers; counters never get there). */
export function writeUint64(out: Uint8Array, offset: number, value: number): void {
  // Byte by byte: a DataView per call showed up in profiles of the per-datagram path.
  const hi = Math.floor(value / 0x1_0000_0000);
  const lo = value >>> 0;
  out[offset] = hi >>> 24;
  out[offset + 1] = (hi >>> 16) & 0xff;
  out[offset + 2] = (hi >>> 8) & 0xff;
  out[offset + 3] = hi & 0xff;
  out[offset + 4] = lo >>> 24;
  out[offset + 5] = (lo >>> 16) & 0xff;
  out[offset + 6] = (lo >>> 8) & 0xff;
  out[offset + 7] = lo & 0xff;
}

/** Reads a uint64 BE; values above 2^53 - 1 come back as Infinity (never valid here). */
export function readUint64(d: Uint8Array, offset: number): number {
  const hi = ((d[offset]! << 24) | (d[offset + 1]! << 16) | (d[offset + 2]! << 8) | d[offset + 3]!) >>> 0;
  if (hi > 0x1f_ffff) return Infinity;
  const lo = ((d[offset + 4]! << 24) | (d[offset + 5]! << 16) | (d[offset + 6]! << 8) | d[offset + 7]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}
