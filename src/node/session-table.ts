/**
 * The overlay's peer sessions, by (our identity, remote SID) and by remote SID (a remote
 * node with several identities, or we with several, has several sessions). Bounded: a new
 * authenticated session evicts the longest-silent session that is not live, and is refused
 * when every session is live. Picks the best live session to a remote node (cheapest link).
 */

import type { Sid } from "../mesh/sid.ts";
import { bytesKey } from "./bytes-key.ts";
import { type PeerSession, sessionKey } from "./peer-session.ts";

/** Sessions held at most (and probe replies remembered at most, in the overlay). */
export const MAX_SESSIONS = 4096;

export class SessionTable {
  readonly #max: number;
  #sessions = new Map<string, PeerSession>();
  #byRemote = new Map<string, Set<PeerSession>>();

  constructor(max = MAX_SESSIONS) {
    this.#max = max;
  }

  get size(): number {
    return this.#sessions.size;
  }

  get(local: Sid, remote: Sid): PeerSession | undefined {
    return this.#sessions.get(sessionKey(local, remote));
  }

  /** By `sessionKey(local, remote)`. */
  getByKey(key: string): PeerSession | undefined {
    return this.#sessions.get(key);
  }

  /** [sessionKey, session] pairs; `forget` while iterating is safe. */
  entries(): IterableIterator<[string, PeerSession]> {
    return this.#sessions.entries();
  }

  values(): IterableIterator<PeerSession> {
    return this.#sessions.values();
  }

  /** The sessions to each remote SID, keyed by `bytesKey(remote)`. */
  byRemote(): IterableIterator<[string, Set<PeerSession>]> {
    return this.#byRemote.entries();
  }

  /** Store an authenticated new session, evicting the longest-silent dead one when full; false when all are live. */
  admit(s: PeerSession): boolean {
    if (this.#sessions.size >= this.#max) {
      let victim: [string, PeerSession] | undefined;
      for (const e of this.#sessions) if (!e[1].live && (!victim || (e[1].lastSeen ?? 0) < (victim[1].lastSeen ?? 0))) victim = e;
      if (!victim) return false;
      this.forget(victim[0], victim[1]);
    }
    this.#sessions.set(sessionKey(s.local.sid, s.remote), s);
    const rk = bytesKey(s.remote);
    let set = this.#byRemote.get(rk);
    if (!set) this.#byRemote.set(rk, (set = new Set()));
    set.add(s);
    return true;
  }

  forget(key: string, s: PeerSession): void {
    this.#sessions.delete(key);
    const rk = bytesKey(s.remote);
    const set = this.#byRemote.get(rk);
    set?.delete(s);
    if (set && set.size === 0) this.#byRemote.delete(rk);
  }

  /** The best live session to the remote whose `bytesKey` is `remoteKey` (undefined: none live). */
  live(remoteKey: string): PeerSession | undefined {
    const set = this.#byRemote.get(remoteKey);
    return set ? bestOf(set) : undefined;
  }
}

/** The live session with an address and the cheapest link among `set` (undefined: none). */
export function bestOf(set: Iterable<PeerSession>): PeerSession | undefined {
  let best: PeerSession | undefined;
  for (const s of set) if (s.live && s.address && (!best || s.quality.cost < best.quality.cost)) best = s;
  return best;
}
