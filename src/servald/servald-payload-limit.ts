/**
 * How much one datagram through servald may carry: the payload limit per port pair and
 * crypto mode, the transport's MTU, and the MSP window servald's own tools run with.
 */

/**
 * How big a datagram servald can carry. servald wraps the payload in a frame: the two ports
 * (packed, 7 bits per byte) + payload + crypto (nonce and MAC, 24 + 16 bytes, when
 * encrypted; a 64-byte signature when only signed). Two limits, both verified with servald
 * 029adc17 over its file interface (interface MTU 1200):
 * - a frame of 1200 bytes or more makes the daemon abort (FATAL "Queued packet len … is too
 *   big", overlay_queue.c): every client of that daemon loses it;
 * - a frame that fits but does not fit an interface packet together with the overlay headers
 *   is never sent, and it holds up the frames queued behind it until it times out (seconds).
 *   Frames of up to 1187 bytes arrived here, with abbreviated addresses; full SIDs and next
 *   hops make the headers longer.
 * svp therefore never hands servald a frame over FRAME_BUDGET: 50 bytes below what arrived.
 * That still carries MSP's 1024-byte messages (1029-byte packets) with room to spare.
 */
const FRAME_BUDGET = 1150;
const CRYPTO_OVERHEAD = { encrypted: 40, signed: 64, plain: 0 } as const;

/** How a datagram is protected: encrypted (default), only signed, or neither. */
export type ServaldCryptoMode = keyof typeof CRYPTO_OVERHEAD;

function packedLength(v: number): number {
  let n = 1;
  for (let x = v >>> 7; x !== 0; x >>>= 7) n++;
  return n;
}

/** Largest payload svp sends between these ports in the given mode (larger sends throw ERR_LIMIT). */
export function servaldPayloadLimit(dstPort: number, srcPort: number, mode: ServaldCryptoMode = "encrypted"): number {
  const same = dstPort === srcPort;
  const ports = packedLength(((dstPort << 1) | (same ? 1 : 0)) >>> 0) + (same ? 0 : packedLength(srcPort));
  return FRAME_BUDGET - CRYPTO_OVERHEAD[mode] - ports;
}

/** Packets in flight servald's own MSP tools allow (see `ServaldTransport.mspWindow`). */
export const SERVALD_MSP_WINDOW = 5;

/** The encrypted payload limit for any ports (ports take at most 10 bytes): the transport's `mtu`. */
export const SERVALD_MTU = FRAME_BUDGET - CRYPTO_OVERHEAD.encrypted - 10;
