/**
 * Admission control for overlay work that a sender has not earned yet (sans-I/O, injected clock).
 *
 * A datagram from a live peer at the address it was last heard from is served at once. Any
 * other datagram (a new or unknown sender, a known SID from another address, a probe) costs
 * crypto before it can be told from a forgery: an AEAD check, or an X25519 agreement and two
 * HKDFs for a sender without a session. That work is paid from a token bucket, so a flood of
 * forgeries can take at most a bounded share of the CPU, and the node's live streams keep the
 * rest.
 *
 * Once the bucket is empty the node is "under load" and stops doing unpaid work for senders
 * that have not shown they can receive at their address, in the spirit of WireGuard's cookie
 * replies: a dropped datagram is answered (at a bounded rate, never with more bytes than it
 * had) by a COOKIE, a MAC of its source address under a secret that changes every two
 * minutes. A genuine sender keeps that cookie and puts it in front of its probes and hellos to
 * that address; those are then paid from a small budget of their own address, not from the
 * shared bucket. A flood from spoofed addresses never sees its cookies, so it can drain the
 * shared bucket but not the budgets of real addresses.
 *
 * Costs are in "units": one unit is about one AEAD check of a small datagram.
 */

import type { Clock } from "../clock.ts";
import type { NodeCrypto, UdpEndpoint } from "./node-io.ts";

/** What each kind of unearned work costs, in units. */
export const WORK_COST = {
  /** An AEAD check (and maybe an HKDF) for a known SID heard from another address. */
  check: 1,
  /** A sender without a session: X25519, two HKDFs and the AEAD check (or a probe's sealed reply). */
  handshake: 40,
} as const;

export interface FloodGuardOptions {
  clock: Clock;
  crypto: NodeCrypto;
  /** Units per second for all senders together. Default 5000 (about 5% of a core). */
  rate?: number;
  /** Bucket size in units. Default 1000 (25 handshakes at once). */
  burst?: number;
  /** Units per second for one address that returned a valid cookie. Default 400 (10 handshakes a second). */
  addressRate?: number;
  /** COOKIE replies per second at most. Default 1000. */
  cookieReplyRate?: number;
}

export const COOKIE_BYTES = 16;
/** A cookie's secret is replaced this often; cookies made under the previous one are accepted too. */
export const COOKIE_SECRET_MS = 120_000;
/** A sender uses a cookie this long after receiving it (a little less than it stays valid). */
export const COOKIE_USE_MS = 110_000;
/** The node counts as under load until this long after the bucket last ran dry (or until it refills to half). */
const LOAD_HOLD_MS = 1000;
/** Addresses with a budget of their own (cookie holders) remembered at most. */
const MAX_ADDRESS_BUDGETS = 1024;

const COOKIE_LABEL = new TextEncoder().encode("svp-cookie-v1");

class Bucket {
  tokens: number;
  #at: number;
  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.#at = now;
  }
  refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = now;
  }
  take(cost: number, now: number): boolean {
    this.refill(now);
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }
}

export class FloodGuard {
  readonly #clock: Clock;
  readonly #crypto: NodeCrypto;
  readonly #shared: Bucket;
  readonly #addressRate: number;
  readonly #cookieReplies: Bucket;
  readonly #byAddress = new Map<string, Bucket>();
  #dryAt = -Infinity;
  #secret: Uint8Array;
  #previous: Uint8Array | undefined;
  #secretAt: number;
  /** What the guard did, for status and tests. */
  readonly stats = { admitted: 0, refused: 0, cookieAdmitted: 0, cookiesSent: 0, badCookies: 0 };

  constructor(o: FloodGuardOptions) {
    this.#clock = o.clock;
    this.#crypto = o.crypto;
    const now = o.clock.now();
    this.#shared = new Bucket(o.rate ?? 5000, o.burst ?? 1000, now);
    this.#addressRate = o.addressRate ?? 400;
    this.#cookieReplies = new Bucket(o.cookieReplyRate ?? 1000, o.cookieReplyRate ?? 1000, now);
    this.#secret = o.crypto.randomBytes(32);
    this.#secretAt = now;
  }

  /** True while unknown senders must return a cookie before the node works for them. */
  get underLoad(): boolean {
    return this.#clock.now() - this.#dryAt < LOAD_HOLD_MS;
  }

  /**
   * May the node spend `cost` units on a datagram from `from`? `cookie` is the one the
   * datagram carried (undefined: none). A valid cookie is paid from the address's own
   * budget; anything else from the shared bucket, which refuses everything while under load.
   */
  admit(cost: number, from: UdpEndpoint, cookie: Uint8Array | undefined): boolean {
    const now = this.#clock.now();
    if (cookie) {
      if (this.#cookieValid(cookie, from)) {
        const key = addressKey(from);
        let b = this.#byAddress.get(key);
        if (!b) {
          if (this.#byAddress.size >= MAX_ADDRESS_BUDGETS) this.#byAddress.delete(this.#byAddress.keys().next().value!);
          b = new Bucket(this.#addressRate, Math.max(this.#addressRate / 4, WORK_COST.handshake), now);
          this.#byAddress.set(key, b);
        }
        if (b.take(cost, now)) {
          this.stats.cookieAdmitted++;
          return true;
        }
        this.stats.refused++;
        return false;
      }
      this.stats.badCookies++;
    }
    if (this.underLoad) {
      // Load ends early once the bucket has refilled to half: a trickle after a flood must not keep it.
      this.#shared.refill(now);
      if (this.#shared.tokens >= this.#shared.burst / 2) this.#dryAt = -Infinity;
    }
    if (!this.underLoad && this.#shared.take(cost, now)) {
      this.stats.admitted++;
      return true;
    }
    if (this.#shared.tokens < cost) this.#dryAt = now;
    this.stats.refused++;
    return false;
  }

  /** The cookie to send back to a refused sender at `from`, or undefined when replies are over their rate. */
  cookieReply(from: UdpEndpoint): Uint8Array | undefined {
    if (!this.#cookieReplies.take(1, this.#clock.now())) return undefined;
    this.stats.cookiesSent++;
    return this.#mac(this.#current(), from);
  }

  #current(): Uint8Array {
    const now = this.#clock.now();
    if (now - this.#secretAt >= COOKIE_SECRET_MS) {
      this.#previous = now - this.#secretAt < 2 * COOKIE_SECRET_MS ? this.#secret : undefined;
      this.#secret = this.#crypto.randomBytes(32);
      this.#secretAt = now;
    }
    return this.#secret;
  }

  #cookieValid(cookie: Uint8Array, from: UdpEndpoint): boolean {
    if (cookie.length !== COOKIE_BYTES) return false;
    const current = this.#current();
    return equal(cookie, this.#mac(current, from)) || (this.#previous !== undefined && equal(cookie, this.#mac(this.#previous, from)));
  }

  #mac(secret: Uint8Array, from: UdpEndpoint): Uint8Array {
    const addr = new TextEncoder().encode(addressKey(from));
    const info = new Uint8Array(COOKIE_LABEL.length + addr.length);
    info.set(COOKIE_LABEL, 0);
    info.set(addr, COOKIE_LABEL.length);
    return this.#crypto.hkdf(secret, new Uint8Array(0), info, COOKIE_BYTES);
  }
}

function addressKey(e: UdpEndpoint): string {
  return `${e.host}|${e.port}`;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}
