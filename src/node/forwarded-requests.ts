/**
 * Duplicate suppression for forwarded seqno requests (RFC 8966 section 3.8.1.2): the same
 * request (destination, source, seqno) is forwarded once per hold time, however many
 * neighbours pass it on; retries come later and go through. Bounded: when full, the oldest
 * key is forgotten first.
 */
export class ForwardedRequests {
  readonly max: number;
  readonly holdMs: number;
  #m = new Map<string, number>();

  constructor(max: number, holdMs: number) {
    this.max = max;
    this.holdMs = holdMs;
  }

  get size(): number {
    return this.#m.size;
  }

  /** True (and remembered at `now`) when request `key` was not forwarded within the hold time. */
  admit(key: string, now: number): boolean {
    const last = this.#m.get(key);
    if (last !== undefined && now - last < this.holdMs) return false;
    if (this.#m.size >= this.max) this.#m.delete(this.#m.keys().next().value!);
    this.#m.set(key, now);
    return true;
  }

  /** Forget requests older than the hold time. */
  prune(now: number): void {
    for (const [k, t] of this.#m) if (now - t > this.holdMs) this.#m.delete(k);
  }
}
