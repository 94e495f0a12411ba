/**
 * The bookkeeping of MDP broadcast flooding: each node delivers and relays a broadcast once
 * (origin SID + random id, remembered in a bounded cache), and relays at most
 * FLOOD_RELAY_RATE broadcasts per second with bursts of FLOOD_RELAY_BURST (a token bucket),
 * so that a flood of broadcasts cannot be amplified through the mesh.
 */

import { bytesKey } from "./bytes-key.ts";

/** Broadcast (origin, id) pairs remembered for duplicate suppression. */
export const MAX_FLOOD_IDS = 4096;
/** Broadcasts relayed per second (sustained) and in a burst; more are dropped as "flood-limit". */
export const FLOOD_RELAY_RATE = 200;
export const FLOOD_RELAY_BURST = 400;

export class BroadcastRelay {
  #seen = new Map<string, true>();
  #tokens = FLOOD_RELAY_BURST;
  #at = 0;

  /** True the first time (origin, id) is seen, which it then remembers; false for a duplicate. */
  firstSight(origin: Uint8Array, id: Uint8Array): boolean {
    const key = bytesKey(origin) + bytesKey(id);
    if (this.#seen.has(key)) return false;
    this.#seen.set(key, true);
    if (this.#seen.size > MAX_FLOOD_IDS) this.#seen.delete(this.#seen.keys().next().value!);
    return true;
  }

  /** Take one relay token at clock time `now` (ms); false when the rate limit says drop. */
  takeToken(now: number): boolean {
    this.#tokens = Math.min(FLOOD_RELAY_BURST, this.#tokens + ((now - this.#at) * FLOOD_RELAY_RATE) / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
