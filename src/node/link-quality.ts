/**
 * Link quality of one neighbour session, from its hellos (the ETX-like cost of RFC 8966
 * appendix A, with the RTT term of RFC 9616). Sans-I/O: the overlay feeds it the hellos it
 * receives and the clock; it answers the cost the router uses for this link.
 *
 * - Each side numbers its periodic hellos (16-bit). The receiver keeps a 16-bit history of
 *   which of the last 16 expected hellos arrived: a gap in the numbers shifts in zeros, and
 *   so does silence (one zero per peer hello interval once 1.5 intervals have passed
 *   without one, so a dead link degrades before the peer timeout expires it). A hello
 *   that arrives after it was counted as lost is put back.
 * - rx = the fraction of the peer's hellos we got (of the last up to 16); the peer tells us
 *   its own rx for our hellos in every hello (the "IHU" byte), which is our tx.
 * - cost = 256 / (rx × tx), plus an RTT penalty (0 below 10 ms, rising linearly to
 *   RTT_MAX_PENALTY at 120 ms and above) from the smoothed hello RTT. 256 is a perfect
 *   link. rx or tx of 0 makes the link unusable (METRIC_INFINITY).
 */

import { METRIC_INFINITY } from "./route-packet.ts";

/** Cost of a perfect link (one hop). */
export const LINK_COST_UNIT = 256;
/** Largest finite link cost. */
export const MAX_LINK_COST = METRIC_INFINITY - 1;
const RTT_MIN_MS = 10;
const RTT_MAX_MS = 120;
export const RTT_MAX_PENALTY = 96;
/** "I have no figure yet" in the IHU byte. */
export const IHU_UNKNOWN = 255;
const HISTORY_BITS = 16;

export class LinkQuality {
  #history = 0;
  /** How many of the history's bits are real (up to 16). */
  #expected = 0;
  /** Number of the newest hello the history accounts for (received, or counted as lost). */
  #lastSeq: number | undefined;
  /** When the last hello arrived. */
  #lastAt = 0;
  #peerIntervalMs = 0;
  /** Hellos counted as lost for silence since the last one arrived. */
  #silent = 0;
  /** The peer's reception ratio of our hellos, 0..1 (undefined: not told yet). */
  #tx: number | undefined;
  #srtt: number | undefined;

  /** A hello from the peer: its sequence number, its hello interval (ms) and its IHU byte. */
  onHello(seq: number, intervalMs: number, ihu: number, now: number): void {
    this.#peerIntervalMs = intervalMs;
    this.#tx = ihu === IHU_UNKNOWN ? undefined : Math.min(1, ihu / 254);
    if (this.#lastSeq === undefined) {
      this.#history = 1;
      this.#expected = 1;
      this.#lastSeq = seq;
    } else {
      // Signed 16-bit distance from the newest hello accounted for.
      const d = (((seq - this.#lastSeq) & 0xffff) << 16) >> 16;
      if (d > 0 && d <= HISTORY_BITS) {
        this.#shift(d, true);
        this.#lastSeq = seq;
      } else if (d <= 0 && -d < this.#expected) {
        // A reply (same number), or a hello that was counted as lost and arrived late.
        this.#history |= 1 << -d;
      } else {
        // A jump (the peer restarted its numbering): start again.
        this.#history = 1;
        this.#expected = 1;
        this.#lastSeq = seq;
      }
    }
    this.#silent = 0;
    this.#lastAt = now;
  }

  /** Call now and then (each hello tick): silence longer than 1.5 peer intervals counts as lost hellos. */
  tick(now: number): void {
    if (this.#lastSeq === undefined || this.#peerIntervalMs <= 0) return;
    const missed = Math.floor((now - this.#lastAt - this.#peerIntervalMs / 2) / this.#peerIntervalMs);
    if (missed > this.#silent) {
      const n = missed - this.#silent;
      this.#shift(Math.min(n, HISTORY_BITS), false);
      this.#lastSeq = (this.#lastSeq + n) & 0xffff;
      this.#silent = missed;
    }
  }

  /** A measured round trip (ms). */
  onRtt(ms: number): void {
    this.#srtt = this.#srtt === undefined ? ms : this.#srtt * 0.75 + ms * 0.25;
  }

  /** Fraction of the peer's hellos received, 0..1 (undefined before the first). */
  get rx(): number | undefined {
    if (this.#expected === 0) return undefined;
    return popcount(this.#history) / this.#expected;
  }

  /** The peer's reception ratio of our hellos (undefined: not told). */
  get tx(): number | undefined {
    return this.#tx;
  }

  get srttMs(): number | undefined {
    return this.#srtt;
  }

  /** The byte to send the peer as its tx (our rx of its hellos). */
  get ihu(): number {
    const rx = this.rx;
    return rx === undefined ? IHU_UNKNOWN : Math.round(rx * 254);
  }

  /** The link's cost (LINK_COST_UNIT for a perfect link; METRIC_INFINITY when unusable). */
  get cost(): number {
    return linkCost(this.rx ?? 1, this.#tx ?? 1, this.#srtt);
  }

  #shift(n: number, lastReceived: boolean): void {
    this.#history = n >= HISTORY_BITS ? 0 : (this.#history << n) & 0xffff;
    if (lastReceived) this.#history |= 1;
    this.#expected = Math.min(HISTORY_BITS, this.#expected + n);
  }
}

/** The ETX-like cost from the two delivery ratios and the RTT (see the module comment). */
export function linkCost(rx: number, tx: number, rttMs: number | undefined): number {
  if (!(rx > 0) || !(tx > 0)) return METRIC_INFINITY;
  const etx = Math.ceil(LINK_COST_UNIT / (Math.min(rx, 1) * Math.min(tx, 1)));
  const rtt = rttMs === undefined || rttMs <= RTT_MIN_MS ? 0 : rttMs >= RTT_MAX_MS ? RTT_MAX_PENALTY : Math.round((RTT_MAX_PENALTY * (rttMs - RTT_MIN_MS)) / (RTT_MAX_MS - RTT_MIN_MS));
  return Math.min(MAX_LINK_COST, etx + rtt);
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v; v &= v - 1) n++;
  return n;
}
