/**
 * X25519 agreements between our identities and remote SIDs, computed once per pair and
 * kept in a bounded least-recently-used cache: sessions, throwaway probe replies and
 * end-to-end keys all come here, so a sender that keeps failing to authenticate costs the
 * agreement only once.
 */

import type { Sid } from "../mesh/sid.ts";
import type { Identity } from "./keyring.ts";
import type { NodeCrypto } from "./node-io.ts";
import { sessionKey } from "./peer-session.ts";

/** Cached X25519 results (per pair of our identity and a remote SID). */
export const MAX_SHARED_KEYS = 8192;

export class SharedKeyCache {
  readonly #crypto: NodeCrypto;
  readonly #known: (key: string) => Uint8Array | undefined;
  readonly #max: number;
  #cache = new Map<string, Uint8Array>();

  /** `known(sessionKey)`: an agreement already held elsewhere (a session's), used before computing one. */
  constructor(crypto: NodeCrypto, known: (key: string) => Uint8Array | undefined = () => undefined, max = MAX_SHARED_KEYS) {
    this.#crypto = crypto;
    this.#known = known;
    this.#max = max;
  }

  /** True when the agreement of (local, remote) is cached: no X25519 to pay for it. */
  has(local: Sid, remote: Sid): boolean {
    return this.#cache.has(sessionKey(local, remote));
  }

  /** X25519(local, remote); undefined when the remote key is unusable (low order). */
  get(local: Identity, remote: Sid): Uint8Array | undefined {
    const k = sessionKey(local.sid, remote);
    let shared = this.#cache.get(k);
    if (shared) {
      // Most recently used last, so that eviction takes the oldest.
      this.#cache.delete(k);
      this.#cache.set(k, shared);
      return shared;
    }
    shared = this.#known(k) ?? this.#crypto.x25519(local.secret, remote);
    if (!shared) return undefined;
    if (this.#cache.size >= this.#max) this.#cache.delete(this.#cache.keys().next().value!);
    this.#cache.set(k, shared);
    return shared;
  }
}
