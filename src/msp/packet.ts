/**
 * MSP packets: the payload of an MDP datagram between two MSP endpoints (msp_common.h).
 *
 * | bytes | field |
 * |---|---|
 * | 0   | flags (`MSP_FLAG`) |
 * | 1–2 | ack: the last sequence number consumed, uint16 little-endian (valid with ACK) |
 * | 3–4 | seq: this packet's sequence number, uint16 little-endian |
 * | 5–  | data |
 *
 * Forms: a 1-byte STOP (what servald sends to abort or to answer an unknown connection),
 * a 3-byte ack-only packet (flags + ack; also the connect request and the keep-alive),
 * and a sequenced packet of 5 or more bytes (possibly with no data, e.g. a bare SHUTDOWN).
 * Pure functions; decoding never throws.
 */

export const MSP_FLAG = {
  /** On a sequenced packet: the sender writes nothing after this packet. */
  SHUTDOWN: 0x01,
  /** The ack field is valid: everything up to and including it was consumed. */
  ACK: 0x02,
  /** The sender has not yet received any packet of this connection. */
  FIRST: 0x04,
  /** Abort the connection now (also the answer to a packet for an unknown connection). */
  STOP: 0x08,
} as const;

export const MSP_ACK_BYTES = 3;
export const MSP_PREAMBLE_BYTES = 5;

export type MspPacket =
  /** Any packet with STOP set; other fields are irrelevant to the receiver. */
  | { form: "stop"; flags: number }
  | { form: "ack"; flags: number; ack: number }
  | { form: "sequenced"; flags: number; ack: number; seq: number; data: Uint8Array };

/** Why a datagram was dropped; counted per connection and per endpoint. */
export const MSP_DROP_REASONS = [
  /** Zero bytes. */
  "empty",
  /** 1, 2 or 4 bytes without STOP: no valid form has that length. */
  "truncated",
  /** Longer than the endpoint's packet limit. */
  "oversize",
  /** Acknowledges a sequence number that was never sent. */
  "bad-ack",
  /** A sequence number too far ahead: beyond the receive window. */
  "beyond-window",
  /** A sequence number after the peer's SHUTDOWN. */
  "after-shutdown",
  /** Already received (retransmission or network duplicate); harmless. */
  "duplicate",
  /** A packet from an unknown (SID, port) that is not a connection request; answered with STOP. */
  "unknown-connection",
  /** STOP from an unknown (SID, port); ignored. */
  "stop-unknown",
  /** A connection request the listener refused (not accepting, or at its limit); answered with STOP. */
  "refused",
  /** Addressed to the broadcast SID; MSP is unicast only. */
  "broadcast",
  /** Arrived after the connection closed (answered during linger). */
  "after-close",
  /** An internal error while handling the packet (a bug); the connection was aborted. */
  "internal",
  /** A malformed, out-of-range or unexpected extended packet (docs/msp-extension.md). */
  "bad-ext",
] as const;

export type MspDropReason = (typeof MSP_DROP_REASONS)[number];

export type MspDecodeResult = { ok: true; packet: MspPacket } | { ok: false; reason: MspDropReason; detail: string };

/** servald's MDP MTU: the default limit for a whole MSP packet. */
export const MSP_MAX_PACKET_BYTES = 1160;

/** Parse one MSP packet. `maxBytes` bounds the whole packet (default 1160). */
export function decodeMspPacket(bytes: Uint8Array, maxBytes: number = MSP_MAX_PACKET_BYTES): MspDecodeResult {
  const n = bytes.length;
  if (n === 0) return { ok: false, reason: "empty", detail: "empty MSP packet" };
  if (n > maxBytes) return { ok: false, reason: "oversize", detail: `MSP packet of ${n} bytes exceeds ${maxBytes}` };
  const flags = bytes[0]!;
  if (flags & MSP_FLAG.STOP) return { ok: true, packet: { form: "stop", flags } };
  if (n < MSP_ACK_BYTES || n === MSP_ACK_BYTES + 1) {
    return { ok: false, reason: "truncated", detail: `MSP packet of ${n} bytes: expected 1 (STOP), 3 or at least 5` };
  }
  const ack = bytes[1]! | (bytes[2]! << 8);
  if (n === MSP_ACK_BYTES) return { ok: true, packet: { form: "ack", flags, ack } };
  const seq = bytes[3]! | (bytes[4]! << 8);
  return { ok: true, packet: { form: "sequenced", flags, ack, seq, data: bytes.subarray(MSP_PREAMBLE_BYTES) } };
}

/** The 1-byte STOP packet servald sends. */
export function encodeMspStop(): Uint8Array {
  return Uint8Array.of(MSP_FLAG.STOP);
}

/** A 3-byte packet: flags and ack only. */
export function encodeMspAck(flags: number, ack: number): Uint8Array {
  const out = new Uint8Array(MSP_ACK_BYTES);
  out[0] = flags;
  out[1] = ack & 0xff;
  out[2] = (ack >>> 8) & 0xff;
  return out;
}

/** Write flags, ack and seq into the first 5 bytes of `buf` (which holds the data from byte 5). */
export function writeMspPreamble(buf: Uint8Array, flags: number, ack: number, seq: number): void {
  buf[0] = flags;
  buf[1] = ack & 0xff;
  buf[2] = (ack >>> 8) & 0xff;
  buf[3] = seq & 0xff;
  buf[4] = (seq >>> 8) & 0xff;
}

/** A sequenced packet carrying `data` (may be empty). */
export function encodeMspSequenced(flags: number, ack: number, seq: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(MSP_PREAMBLE_BYTES + data.length);
  writeMspPreamble(out, flags, ack, seq);
  out.set(data, MSP_PREAMBLE_BYTES);
  return out;
}

export function encodeMspPacket(p: MspPacket): Uint8Array {
  switch (p.form) {
    case "stop":
      return Uint8Array.of(p.flags | MSP_FLAG.STOP);
    case "ack":
      return encodeMspAck(p.flags, p.ack);
    case "sequenced":
      return encodeMspSequenced(p.flags, p.ack, p.seq, p.data);
  }
}

/**
 * Signed distance a − b of two 16-bit sequence numbers, in −32768..32767: `(int16)(a - b)`,
 * servald's wrap-around comparison. Positive when `a` is after `b`.
 */
export function seqDiff(a: number, b: number): number {
  return (((a - b) & 0xffff) << 16) >> 16;
}

/** "SHUTDOWN|FIRST", or "0" when no flag is set. */
export function describeMspFlags(flags: number): string {
  const names: string[] = (Object.keys(MSP_FLAG) as (keyof typeof MSP_FLAG)[]).filter((k) => flags & MSP_FLAG[k]);
  const unknown = flags & 0xf0;
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names.length ? names.join("|") : "0";
}
