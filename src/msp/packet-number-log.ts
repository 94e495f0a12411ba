/**
 * Packet numbers of an extended MSP sender and when each was sent, for RTT samples: the
 * peer acknowledges the largest packet number it received, and the time since that
 * transmission is one round trip. Every transmission (a retransmission too) gets a new
 * number, so a sample never mixes up a packet with its resend (Karn's problem).
 *
 * Numbers run 1, 2, … and wrap at 32 bits skipping 0 ("none" on the wire). Only the last
 * `PN_RING` send times are kept: an ack for an older number gives no sample.
 */

/** Send times remembered by packet number. */
export const PN_RING = 8192;

/** Packet numbers wrap at 32 bits (skipping 0, which means "none"): a − b as a signed 32-bit distance. */
export function pnDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export class PacketNumberLog {
  #next = 1;
  readonly #sentAt = new Float64Array(PN_RING);
  readonly #pnOf = new Uint32Array(PN_RING);

  /** The number the next transmission gets (never 0). */
  get next(): number {
    return this.#next;
  }

  /** Number a transmission sent at `now` (ms) and remember when it went. */
  record(now: number): number {
    const pn = this.#next++;
    if (this.#next > 0xffff_ffff) this.#next = 1;
    const slot = pn % PN_RING;
    this.#pnOf[slot] = pn;
    this.#sentAt[slot] = now;
    return pn;
  }

  /** When packet `pn` was sent (ms), or undefined when it is unknown or forgotten. */
  sentAt(pn: number): number | undefined {
    const slot = pn % PN_RING;
    return this.#pnOf[slot] === pn ? this.#sentAt[slot] : undefined;
  }
}
