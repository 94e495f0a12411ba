/**
 * Sliding anti-replay window over packet counters (as in IPsec/WireGuard): a counter is
 * fresh if it is above the highest seen, or within the last `size` counters and not yet
 * seen. `check` before authenticating, `accept` only after the packet authenticated, so
 * forged packets cannot move the window.
 */
export class ReplayWindow {
  readonly size: number;
  #highest = 0;
  #bits: Uint8Array;

  /** `size` is rounded up to a multiple of 8. Default 1024 counters. */
  constructor(size = 1024) {
    this.#bits = new Uint8Array(Math.ceil(size / 8));
    this.size = this.#bits.length * 8;
  }

  get highest(): number {
    return this.#highest;
  }

  /** True if `counter` (>= 1) has not been accepted and is not too old. */
  check(counter: number): boolean {
    if (!Number.isSafeInteger(counter) || counter < 1) return false;
    if (counter > this.#highest) return true;
    if (this.#highest - counter >= this.size) return false;
    const i = counter % this.size;
    return (this.#bits[i >> 3]! & (1 << (i & 7))) === 0;
  }

  /** Record `counter` as seen. Call only after `check` returned true and the packet authenticated. */
  accept(counter: number): void {
    if (counter > this.#highest) {
      const gap = counter - this.#highest;
      if (gap >= this.size) this.#bits.fill(0);
      else for (let c = this.#highest + 1; c < counter; c++) this.#clear(c);
      this.#clear(counter);
      this.#highest = counter;
    }
    const i = counter % this.size;
    this.#bits[i >> 3]! |= 1 << (i & 7);
  }

  reset(): void {
    this.#highest = 0;
    this.#bits.fill(0);
  }

  /**
   * Refuse every counter up to `highest` from now on (as if all had been seen): how a window
   * that had to be forgotten resumes safely when only its highest counter was kept.
   */
  startAfter(highest: number): void {
    this.#highest = highest;
    this.#bits.fill(0xff);
  }

  #clear(c: number): void {
    const i = c % this.size;
    this.#bits[i >> 3]! &= ~(1 << (i & 7));
  }
}
