/**
 * The answer to MDP_SEARCH_IDS: the daemon's unlocked identities, one per datagram, then a
 * CLOSE (or ERROR) whose local SID is the primary identity — servald puts it where the
 * request said "any". The list is taken once, at connect.
 */

import type { MdpHeader } from "../mdp/header.ts";
import { MDP_FLAG } from "../mdp/header.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_BYTES, sidEquals } from "../mesh/sid.ts";

export class IdentitySearch {
  #found: Sid[] = [];
  #primary: Sid | undefined;
  #identities: Sid[] = [];
  #done = false;

  /** Whether the answer is complete. */
  get done(): boolean {
    return this.#done;
  }

  /** The daemon's primary identity, once done. */
  get primary(): Sid | undefined {
    return this.#primary;
  }

  /** Every unlocked identity, the primary first (each once); empty until done. */
  get identities(): Sid[] {
    return this.#identities;
  }

  /** Whether the daemon has `sid` unlocked (as far as known). */
  has(sid: Sid): boolean {
    return this.#identities.some((s) => sidEquals(s, sid));
  }

  /** One datagram of the answer. True when it completed the search. */
  onDatagram(h: MdpHeader, payload: Uint8Array): boolean {
    if (this.#done) return false;
    if (h.flags & MDP_FLAG.CLOSE || h.flags & MDP_FLAG.ERROR) {
      const primary = h.local.sid.slice();
      this.#primary = primary;
      this.#identities = [primary, ...this.#found.filter((s) => !sidEquals(s, primary))];
      this.#done = true;
      return true;
    }
    if (payload.length >= SID_BYTES) this.#found.push(payload.slice(0, SID_BYTES));
    return false;
  }
}
