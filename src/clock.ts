/**
 * Time, injected. Every protocol timer in svp (MSP retransmit, keep-alive, handshake and
 * idle timeouts) goes through a `Clock`, so tests drive time by hand with `ManualClock`
 * and loss/retransmit scenarios run in microseconds.
 */

/** A scheduled callback; `cancel()` is idempotent. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds (not wall-clock time; only differences are meaningful). */
  now(): number;
  /** Run `fn` once after `ms` milliseconds (0 allowed). */
  setTimeout(fn: () => void, ms: number): Timer;
}

/** The real clock: `performance.now()` and the runtime's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const handle = globalThis.setTimeout(fn, Math.max(0, ms));
    return { cancel: () => globalThis.clearTimeout(handle) };
  },
};

interface Pending {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A clock that only moves when told to. Timers fire in time order (ties in scheduling
 * order) during `advance()`/`runUntilIdle()`, each seeing `now()` equal to its due time.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #pending: Pending[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const p: Pending = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#pending.push(p);
    return {
      cancel: () => {
        p.cancelled = true;
      },
    };
  }

  /** Number of timers still scheduled (cancelled ones excluded): a leak check for tests. */
  get pendingCount(): number {
    this.#pending = this.#pending.filter((p) => !p.cancelled);
    return this.#pending.length;
  }

  /** Time of the next live timer, or undefined. */
  nextAt(): number | undefined {
    let best: Pending | undefined;
    for (const p of this.#pending) {
      if (p.cancelled) continue;
      if (!best || p.at < best.at || (p.at === best.at && p.seq < best.seq)) best = p;
    }
    return best?.at;
  }

  /** Move time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      const next = this.#takeNext(target);
      if (!next) break;
      this.#now = next.at;
      next.fn();
    }
    if (target > this.#now) this.#now = target;
  }

  /**
   * Fire timers in order until none is left or `limitMs` of virtual time has passed.
   * Returns the number fired. Bounded so a self-rescheduling timer cannot loop forever.
   */
  runUntilIdle(limitMs = 3_600_000, maxTimers = 10_000_000): number {
    const end = this.#now + limitMs;
    let fired = 0;
    while (fired < maxTimers) {
      const next = this.#takeNext(end);
      if (!next) break;
      this.#now = next.at;
      next.fn();
      fired++;
    }
    return fired;
  }

  #takeNext(limit: number): Pending | undefined {
    let bestIndex = -1;
    for (let i = 0; i < this.#pending.length; i++) {
      const p = this.#pending[i]!;
      if (p.cancelled) continue;
      if (p.at > limit) continue;
      const best = this.#pending[bestIndex];
      if (!best || p.at < best.at || (p.at === best.at && p.seq < best.seq)) bestIndex = i;
    }
    if (bestIndex < 0) {
      if (this.#pending.length > 64) this.#pending = this.#pending.filter((p) => !p.cancelled);
      return undefined;
    }
    const [p] = this.#pending.splice(bestIndex, 1);
    return p;
  }
}
