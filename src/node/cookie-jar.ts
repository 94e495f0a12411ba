/**
 * Cookies this node was given by peers under load (the client side of flood-guard.ts): a
 * node that refuses our datagram answers with a cookie for our address; we keep it per
 * address and put it in front of our next handshakes (probes, hellos) to that address, so
 * that the loaded node lets them through. A refused node is probed again with the cookie,
 * at most once per RESYNC_MIN_INTERVAL_MS, so a peer that keeps refusing cannot make a loop of us.
 */

import { endpointKey } from "./endpoint-key.ts";
import { COOKIE_USE_MS } from "./flood-guard.ts";
import type { UdpEndpoint } from "./node-io.ts";
import { encodeCookieEcho } from "./overlay-packet.ts";
import { RESYNC_MIN_INTERVAL_MS } from "./peer-session.ts";

/** Cookies held (per address of a node that was under load). */
export const MAX_COOKIES = 1024;

export class CookieJar {
  #cookies = new Map<string, { cookie: Uint8Array; at: number; probedAt: number }>();

  /**
   * Keep `cookie` (copied) for `from`, received at `now`. True when the caller should probe
   * `from` again with it (not within RESYNC_MIN_INTERVAL_MS of the last re-probe).
   */
  store(from: UdpEndpoint, cookie: Uint8Array, now: number): boolean {
    const key = endpointKey(from);
    const had = this.#cookies.get(key);
    this.#cookies.delete(key);
    if (this.#cookies.size >= MAX_COOKIES) this.#cookies.delete(this.#cookies.keys().next().value!);
    const entry = { cookie: cookie.slice(), at: now, probedAt: had?.probedAt ?? -Infinity };
    this.#cookies.set(key, entry);
    if (now - entry.probedAt < RESYNC_MIN_INTERVAL_MS) return false;
    entry.probedAt = now;
    return true;
  }

  /** A handshake datagram for `to`: wrapped in a COOKIE_ECHO while a cookie for `to` is usable, else as is (an expired cookie is dropped). */
  wrap(datagram: Uint8Array, to: UdpEndpoint, now: number): Uint8Array {
    if (this.#cookies.size === 0) return datagram;
    const key = endpointKey(to);
    const c = this.#cookies.get(key);
    if (c && now - c.at < COOKIE_USE_MS) return encodeCookieEcho(c.cookie, datagram);
    if (c) this.#cookies.delete(key);
    return datagram;
  }

  get size(): number {
    return this.#cookies.size;
  }
}
