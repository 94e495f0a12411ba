/**
 * Congestion control for extended MSP streams: NewReno as RFC 9002 section 7 specifies it
 * for QUIC (bytes in flight against a congestion window; slow start, congestion avoidance,
 * one window reduction per recovery period, persistent congestion), plus a pacer.
 *
 * Why NewReno: a mesh stream shares Wi-Fi links with other streams of the same kind, where
 * AIMD's fairness between flows of similar RTT is what matters, and RFC 9002 gives it in a
 * form written for a userspace transport with packet numbers and time-based loss detection
 * (which this extension has). CUBIC helps on long fat paths a mesh does not have; BBR keeps
 * queues shorter but needs delivery-rate sampling and careful model tuning to be fair.
 * Pacing spreads each window over the RTT so that a window does not arrive as one burst at
 * a slow link's queue.
 *
 * All sizes in bytes, times in ms.
 */

export class NewReno {
  /** Largest packet sent (data and header). */
  readonly maxDatagram: number;
  /** Congestion window. */
  cwnd: number;
  /** Slow-start threshold; Infinity until the first loss. */
  ssthresh = Infinity;
  /** Congestion events (window reductions). */
  events = 0;
  #recoveryStart = -Infinity;
  /** The window before the current recovery period and the send time of the loss that started it. */
  #undo: { trigger: number; cwnd: number; ssthresh: number } | undefined;

  constructor(maxDatagram: number) {
    this.maxDatagram = maxDatagram;
    this.cwnd = Math.min(10 * maxDatagram, Math.max(14_720, 2 * maxDatagram));
  }

  get minWindow(): number {
    return 2 * this.maxDatagram;
  }

  get inSlowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  /**
   * `bytes` of a packet sent at `sentAt` were acknowledged. `limited`: the sender did not
   * fill the window lately (application- or flow-control-limited), so the ack says nothing
   * about the path and the window does not grow.
   */
  onAcked(bytes: number, sentAt: number, limited: boolean): void {
    if (sentAt <= this.#recoveryStart || limited) return;
    if (this.inSlowStart) this.cwnd += bytes;
    else this.cwnd += (this.maxDatagram * bytes) / this.cwnd;
  }

  /** A packet sent at `sentAt` was lost: halve the window once per recovery period. */
  onLoss(sentAt: number, now: number): void {
    if (sentAt <= this.#recoveryStart) return;
    this.#undo = { trigger: sentAt, cwnd: this.cwnd, ssthresh: this.ssthresh };
    this.#recoveryStart = now;
    this.events++;
    this.ssthresh = Math.max(this.cwnd / 2, this.minWindow);
    this.cwnd = this.ssthresh;
  }

  /**
   * The packet sent at `sentAt`, declared lost, arrived after all (the path reordered it).
   * If its loss started the current recovery period, undo that reduction (as TCP's Eifel
   * and F-RTO do): reordering is not congestion.
   */
  onSpuriousLoss(sentAt: number): void {
    const u = this.#undo;
    if (!u || u.trigger !== sentAt) return;
    this.#undo = undefined;
    this.cwnd = Math.max(this.cwnd, u.cwnd);
    this.ssthresh = u.ssthresh;
    this.events--;
  }

  /** Every packet over a long stretch was lost (repeated probe timeouts): start again from the minimum. */
  onPersistentCongestion(now: number): void {
    this.#undo = undefined;
    this.#recoveryStart = now;
    this.events++;
    this.ssthresh = Math.max(this.cwnd / 2, this.minWindow);
    this.cwnd = this.minWindow;
  }

  /** Pacing rate in bytes per ms for a smoothed RTT: 2× the window per RTT in slow start, 1.25× after. */
  pacingRate(srttMs: number): number {
    return ((this.inSlowStart ? 2 : 1.25) * this.cwnd) / Math.max(srttMs, 0.01);
  }
}

/**
 * A token bucket in bytes: `take()` succeeds while tokens last; `waitMs()` says when the
 * next packet may go. The bucket holds at most `burst` bytes, so an idle sender can start
 * with a small burst and then sends at `rate`.
 */
export class Pacer {
  #tokens: number;
  #at: number;

  constructor(now: number, initialBurst: number) {
    this.#tokens = initialBurst;
    this.#at = now;
  }

  /** Refill for the time since the last call, at `rate` bytes/ms, up to `burst`. */
  refill(now: number, rate: number, burst: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(burst, this.#tokens + (now - this.#at) * rate);
      this.#at = now;
    } else if (this.#tokens > burst) {
      this.#tokens = burst;
    }
  }

  /** Whether a packet may go now (tokens left); it is charged `bytes` (the bucket may go negative). */
  take(bytes: number): boolean {
    if (this.#tokens <= 0) return false;
    this.#tokens -= bytes;
    return true;
  }

  /** ms until `take()` can succeed again at `rate`. */
  waitMs(rate: number): number {
    return this.#tokens > 0 ? 0 : (-this.#tokens + 1) / rate;
  }
}
