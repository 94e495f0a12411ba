/**
 * Round-trip time estimation as RFC 9002 section 5 (RFC 6298's SRTT/RTTVAR with the
 * peer's acknowledgement delay taken out), and the timeouts derived from it. All values
 * in ms.
 */

/** Timer granularity assumed for loss and probe timers, ms. */
export const RTT_GRANULARITY_MS = 1;

export class RttEstimator {
  /** Smoothed RTT; `initialMs` until the first sample. */
  srtt: number;
  /** RTT variation; `initialMs / 2` until the first sample. */
  rttvar: number;
  /** Smallest sample seen (Infinity before any). */
  minRtt = Infinity;
  /** The most recent sample (unadjusted). */
  latest = 0;
  /** Samples taken. */
  samples = 0;

  constructor(initialMs: number) {
    this.srtt = initialMs;
    this.rttvar = initialMs / 2;
  }

  /**
   * Take one sample: `rttMs` from sending a packet to the ack that first covered it, and
   * the peer's reported delay before acking (capped at `maxAckDelayMs`).
   */
  update(rttMs: number, ackDelayMs: number, maxAckDelayMs: number): void {
    if (!(rttMs >= 0) || !Number.isFinite(rttMs)) return;
    this.latest = rttMs;
    if (this.samples++ === 0) {
      this.minRtt = rttMs;
      this.srtt = rttMs;
      this.rttvar = rttMs / 2;
      return;
    }
    this.minRtt = Math.min(this.minRtt, rttMs);
    const delay = Math.min(Math.max(0, ackDelayMs), maxAckDelayMs);
    const adjusted = rttMs - delay >= this.minRtt ? rttMs - delay : rttMs;
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - adjusted);
    this.srtt = 0.875 * this.srtt + 0.125 * adjusted;
  }

  /** Probe timeout before backoff: SRTT + max(4·RTTVAR, granularity) + the peer's max ack delay, at least `floorMs`. */
  pto(maxAckDelayMs: number, floorMs: number): number {
    return Math.max(floorMs, this.srtt + Math.max(4 * this.rttvar, RTT_GRANULARITY_MS) + maxAckDelayMs);
  }

  /** How long after sending an unacknowledged packet that was overtaken counts as lost: `factor` (RFC 9002: 9/8) of the RTT. */
  lossDelay(factor = 9 / 8): number {
    return Math.max(RTT_GRANULARITY_MS, factor * Math.max(this.srtt, this.latest));
  }
}
