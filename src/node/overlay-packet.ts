/**
 * The embedded node's UDP datagrams (svp's own overlay; not servald's wire format).
 *
 * Every datagram starts with the magic "SV", version 1 and a type:
 *
 * PROBE (type 1, plaintext, padded to PROBE_BYTES so that the sealed HELLO it provokes is
 * never larger than the probe: no amplification)
 *   4  sender SID (32)      36 sender boot (8)      44 zero padding
 *
 * Sealed packets, HELLO (type 2) and DATA (type 3)
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
 * Plaintexts: HELLO = flags (1: REQUEST 0x01, REPLY 0x02), ping id (8), echoed ping id (8).
 * DATA = flags (1: BROADCAST 0x01), source MDP port (uint32 BE), destination MDP port
 * (uint32 BE), MDP payload.
 */

import { SID_BYTES, type Sid } from "../mesh/sid.ts";

export const OVERLAY_MAGIC_0 = 0x53; // 'S'
export const OVERLAY_MAGIC_1 = 0x56; // 'V'
export const OVERLAY_VERSION = 1;

export const PACKET_TYPE = { PROBE: 1, HELLO: 2, DATA: 3 } as const;
export type PacketType = (typeof PACKET_TYPE)[keyof typeof PACKET_TYPE];

export const BOOT_BYTES = 8;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
export const SEALED_HEADER_BYTES = 92;
/** Size of every PROBE datagram (>= the largest HELLO, see above). */
export const PROBE_BYTES = 128;
export const HELLO_PLAIN_BYTES = 17;
export const DATA_PLAIN_HEADER_BYTES = 9;
/** Largest MDP payload the overlay carries (servald's MDP MTU). */
export const OVERLAY_MDP_MTU = 1160;
/** Largest datagram accepted; anything longer is dropped as oversize. */
export const MAX_DATAGRAM_BYTES = SEALED_HEADER_BYTES + DATA_PLAIN_HEADER_BYTES + OVERLAY_MDP_MTU + TAG_BYTES;

export const HELLO_FLAG = { REQUEST: 0x01, REPLY: 0x02 } as const;
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
  "no-route", // outgoing: destination is not a live peer
  "client-slow", // a local API client did not read fast enough
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface ProbePacket {
  type: typeof PACKET_TYPE.PROBE;
  sender: Sid;
  senderBoot: Uint8Array;
}

/** The cleartext part of a sealed packet. */
export interface SealedHeader {
  type: typeof PACKET_TYPE.HELLO | typeof PACKET_TYPE.DATA;
  sender: Sid;
  receiver: Sid;
  senderBoot: Uint8Array;
  receiverBoot: Uint8Array;
  counter: number;
}

export type ParsedDatagram =
  | { ok: true; packet: ProbePacket }
  | { ok: true; packet: SealedHeader; aad: Uint8Array; sealed: Uint8Array }
  | { ok: false; reason: DropReason };

export function encodeProbe(sender: Sid, senderBoot: Uint8Array): Uint8Array {
  const out = new Uint8Array(PROBE_BYTES);
  out[0] = OVERLAY_MAGIC_0;
  out[1] = OVERLAY_MAGIC_1;
  out[2] = OVERLAY_VERSION;
  out[3] = PACKET_TYPE.PROBE;
  out.set(sender, 4);
  out.set(senderBoot, 4 + SID_BYTES);
  return out;
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
  if (type !== PACKET_TYPE.HELLO && type !== PACKET_TYPE.DATA) return { ok: false, reason: "bad-type" };
  const minPlain = type === PACKET_TYPE.HELLO ? HELLO_PLAIN_BYTES : DATA_PLAIN_HEADER_BYTES;
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
  return { ok: true, packet, aad: d.subarray(0, SEALED_HEADER_BYTES), sealed: d.subarray(SEALED_HEADER_BYTES) };
}

export interface HelloBody {
  flags: number;
  /** The sender's ping id (0 = none). */
  ping: number;
  /** A ping id of the receiver echoed back (0 = none). */
  echo: number;
}

export function encodeHello(h: HelloBody): Uint8Array {
  const out = new Uint8Array(HELLO_PLAIN_BYTES);
  out[0] = h.flags;
  writeUint64(out, 1, h.ping);
  writeUint64(out, 9, h.echo);
  return out;
}

export function decodeHello(p: Uint8Array): HelloBody | undefined {
  if (p.length !== HELLO_PLAIN_BYTES) return undefined;
  return { flags: p[0]!, ping: readUint64(p, 1), echo: readUint64(p, 9) };
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
  if (p.length < DATA_PLAIN_HEADER_BYTES || p.length > DATA_PLAIN_HEADER_BYTES + OVERLAY_MDP_MTU) return undefined;
  if ((p[0]! & ~DATA_FLAG.BROADCAST) !== 0) return undefined;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { broadcast: (p[0]! & DATA_FLAG.BROADCAST) !== 0, srcPort: v.getUint32(1), dstPort: v.getUint32(5), payload: p.subarray(DATA_PLAIN_HEADER_BYTES) };
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
