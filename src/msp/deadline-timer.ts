/**
 * The one timer of an MSP connection. Every deadline (retransmit, keep-alive, timeout,
 * probe, loss, pacing, delayed ack, linger) shares it: `arm()` keeps it at the earliest
 * deadline asked for, and the owner works out the later ones when it fires. One timer per
 * connection keeps thousands of idle streams cheap.
 */

import type { Clock, Timer } from "../clock.ts";

export class DeadlineTimer {
  readonly #clock: Clock;
  readonly #onFire: () => void;
  #timer: Timer | undefined;
  #at = Infinity;

  /** `onFire` runs when the deadline passes; the timer is disarmed by then, so it may `arm()` again. */
  constructor(clock: Clock, onFire: () => void) {
    this.#clock = clock;
    this.#onFire = onFire;
  }

  /** The deadline armed now (ms on the clock), Infinity when disarmed. */
  get at(): number {
    return this.#at;
  }

  /** Fire at `at` (ms on the clock), unless an earlier deadline is armed already. */
  arm(at: number): void {
    if (this.#timer !== undefined && this.#at <= at) return;
    this.#timer?.cancel();
    this.#at = at;
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, at - this.#clock.now()));
  }

  /** Disarm. */
  cancel(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#at = Infinity;
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#at = Infinity;
    this.#onFire();
  };
}
