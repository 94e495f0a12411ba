/**
 * End-to-end keys of multi-hop datagrams (see overlay.ts): the key we seal with towards a
 * SID (per our boot, cached), and per (our SID, source SID, source boot) the key and replay
 * window of what we receive. Receive states are bounded: the least recently used goes, and
 * its highest counter is kept as a floor, so that a state made again for that source starts
 * after it and an evicted window cannot be replayed into.
 */

import { concatBytes } from "../bytes/concat.ts";
import type { Sid } from "../mesh/sid.ts";
import { bytesKey } from "./bytes-key.ts";
import type { Identity } from "./keyring.ts";
import type { NodeCrypto } from "./node-io.ts";
import { ReplayWindow } from "./replay-window.ts";
import type { SharedKeyCache } from "./shared-key-cache.ts";

/** End-to-end receive states ((our SID, source SID, source boot): key and replay window). */
export const MAX_E2E_STATES = 4096;
/** Highest counters of evicted end-to-end states, so that an evicted window resumes safely. */
export const MAX_E2E_FLOORS = 65536;
/** Cached end-to-end send keys. */
export const MAX_E2E_KEYS = 4096;

const E2E_LABEL = new TextEncoder().encode("svp-e2e-v1");

/** What we hold about one source's frames to one of our SIDs. */
export interface E2eRecv {
  key: Uint8Array;
  window: ReplayWindow;
  usedAt: number;
}

/** Key of an end-to-end receive state: our SID, the source SID and the source's boot. */
export function e2eKey(local: Sid, source: Uint8Array, sourceBoot: Uint8Array): string {
  return bytesKey(local) + bytesKey(source) + bytesKey(sourceBoot);
}

export class E2eKeys {
  readonly #crypto: NodeCrypto;
  readonly #boot: Uint8Array;
  readonly #shared: SharedKeyCache;
  readonly #maxStates: number;
  #sendKeys = new Map<string, Uint8Array>();
  #recv = new Map<string, E2eRecv>();
  #floors = new Map<string, number>();

  /** `boot`: ours (send keys are per boot). */
  constructor(crypto: NodeCrypto, boot: Uint8Array, shared: SharedKeyCache, maxStates = MAX_E2E_STATES) {
    this.#crypto = crypto;
    this.#boot = boot;
    this.#shared = shared;
    this.#maxStates = maxStates;
  }

  /** The key `local` seals frames for `dst` with; undefined when `dst` is not a usable key. */
  sendKey(local: Identity, dst: Sid): Uint8Array | undefined {
    const k = bytesKey(local.sid) + bytesKey(dst);
    let key = this.#sendKeys.get(k);
    if (!key) {
      const shared = this.#shared.get(local, dst);
      if (!shared) return undefined;
      key = this.#crypto.hkdf(shared, this.#boot, concatBytes([E2E_LABEL, local.sid, dst]), 32);
      if (this.#sendKeys.size >= MAX_E2E_KEYS) this.#sendKeys.delete(this.#sendKeys.keys().next().value!);
      this.#sendKeys.set(k, key);
    }
    return key;
  }

  /** True when frames under `key` (an e2eKey) are known: they need no X25519. */
  has(key: string): boolean {
    return this.#recv.has(key);
  }

  /** The stored state under `key`. */
  get(key: string): E2eRecv | undefined {
    return this.#recv.get(key);
  }

  /**
   * A state for frames from `source` (in its run `sourceBoot`) to `local`, not stored yet
   * (only an authentic frame should store it, with `store`); its window starts after the
   * floor of an evicted one. Undefined when `source` is not a usable key.
   */
  create(local: Identity, source: Sid, sourceBoot: Uint8Array, key: string): E2eRecv | undefined {
    const shared = this.#shared.get(local, source);
    if (!shared) return undefined;
    const window = new ReplayWindow(1024);
    const floor = this.#floors.get(key);
    if (floor !== undefined) window.startAfter(floor);
    return { key: this.#crypto.hkdf(shared, sourceBoot, concatBytes([E2E_LABEL, source, local.sid]), 32), window, usedAt: 0 };
  }

  /** Store a state made by `create`; when full, the least recently used goes and its highest counter is kept. */
  store(key: string, st: E2eRecv): void {
    if (this.#recv.size >= this.#maxStates) this.#evict();
    this.#recv.set(key, st);
  }

  get size(): number {
    return this.#recv.size;
  }

  #evict(): void {
    let victim: [string, E2eRecv] | undefined;
    for (const e of this.#recv) if (!victim || e[1].usedAt < victim[1].usedAt) victim = e;
    if (!victim) return;
    this.#recv.delete(victim[0]);
    this.#floors.delete(victim[0]);
    this.#floors.set(victim[0], victim[1].window.highest);
    if (this.#floors.size > MAX_E2E_FLOORS) this.#floors.delete(this.#floors.keys().next().value!);
  }
}
