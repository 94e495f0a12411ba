/**
 * What the sockets' kernel filter (socket-filter.ts) should be while the node is under load
 * (flood-guard.ts): live peers' addresses and those just sent a cookie pass, addresses that
 * kept being refused do not (for BAN_MS), and one datagram in FILTER_SAMPLE_ONE_IN of the
 * rest. The overlay reports refusals and cookies sent, and every FILTER_UPDATE_MS while
 * under load asks `update()` what to apply; the filter comes off once the load and the last
 * ban are gone. Sans-I/O: no sockets, no timers.
 */

import { endpointKey } from "./endpoint-key.ts";
import type { UdpEndpoint } from "./node-io.ts";
import type { SocketFilterSpec } from "./socket-filter.ts";

/** Kernel filter under load: one in this many datagrams from other addresses pass. */
export const FILTER_SAMPLE_ONE_IN = 8;
/** How often the filter is brought up to date while under load, ms. */
export const FILTER_UPDATE_MS = 200;
/** An address sent a cookie passes the filter this long (to bring the cookie back), ms. */
export const FILTER_COOKIE_ALLOW_MS = 10_000;
/** Refusals in a second that get an address refused by the filter, and for how long (ms). */
export const BAN_REFUSALS_PER_S = 200;
export const BAN_MS = 60_000;
const MAX_FILTER_COOKIE_ADDRESSES = 256;
const MAX_FILTER_REFUSAL_ADDRESSES = 4096;
const MAX_FILTER_BANNED = 256;

/** What `update()` says to do. */
export type LoadFilterStep =
  /** No load and no ban: stop updating; `remove`: the filter was on and must come off now. */
  | { kind: "idle"; remove: boolean }
  /** Under load (or a ban lasts): update again in FILTER_UPDATE_MS; `apply`: a changed filter to set, `first`: it was off until now. */
  | { kind: "active"; apply: SocketFilterSpec | undefined; first: boolean };

export class LoadFilter {
  #cookieSentTo = new Map<string, { ep: UdpEndpoint; at: number }>();
  #refusals = new Map<string, { since: number; n: number }>();
  #banned = new Map<string, { ep: UdpEndpoint; until: number }>();
  /** The allow and deny lists last applied (undefined: the filter is off). */
  #key: string | undefined;

  /** True while a filter is applied. */
  get on(): boolean {
    return this.#key !== undefined;
  }

  /** A cookie went to `from`: let it through for FILTER_COOKIE_ALLOW_MS, to bring it back. */
  cookieSent(from: UdpEndpoint, now: number): void {
    remember(this.#cookieSentTo, endpointKey(from), { ep: from, at: now }, MAX_FILTER_COOKIE_ADDRESSES);
  }

  /** A datagram from `from` was refused; BAN_REFUSALS_PER_S of them within a second ban the address for BAN_MS. */
  refused(from: UdpEndpoint, now: number): void {
    const key = endpointKey(from);
    let r = this.#refusals.get(key);
    if (!r || now - r.since >= 1000) remember(this.#refusals, key, (r = { since: now, n: 0 }), MAX_FILTER_REFUSAL_ADDRESSES);
    if (++r.n === BAN_REFUSALS_PER_S) remember(this.#banned, key, { ep: from, until: now + BAN_MS }, MAX_FILTER_BANNED);
  }

  /** The filter for now; `liveAddresses` (asked only under load) are the live peers' addresses. */
  update(now: number, underLoad: boolean, liveAddresses: () => UdpEndpoint[]): LoadFilterStep {
    for (const [k, b] of this.#banned) if (b.until <= now) this.#banned.delete(k);
    // A refused address hides its flood from us, so the filter stays while any refusal lasts.
    if (!underLoad && this.#banned.size === 0) {
      const remove = this.#key !== undefined;
      this.#key = undefined;
      this.#cookieSentTo.clear();
      this.#refusals.clear();
      return { kind: "idle", remove };
    }
    for (const [k, c] of this.#cookieSentTo) if (now - c.at > FILTER_COOKIE_ALLOW_MS) this.#cookieSentTo.delete(k);
    const allow = liveAddresses();
    for (const c of this.#cookieSentTo.values()) allow.push(c.ep);
    const spec: SocketFilterSpec = { allow, deny: [...this.#banned.values()].map((b) => b.ep), sampleOneIn: FILTER_SAMPLE_ONE_IN };
    const key = `${spec.allow.map(endpointKey).join(",")}|${spec.deny.map(endpointKey).join(",")}`;
    if (key === this.#key) return { kind: "active", apply: undefined, first: false };
    const first = this.#key === undefined;
    this.#key = key;
    return { kind: "active", apply: spec, first };
  }
}

/** Set `key` in a bounded map: when full, the oldest entry goes. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}
