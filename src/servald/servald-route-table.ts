/**
 * svp's copy of the daemon's route table, for `reachability()` and `peers()`. The first
 * client bound to SID_INTERNAL:5 gets every change pushed; servald refuses that binding to
 * any other client (its REUSE flag is not honoured on the v2 socket), so those poll the table
 * instead: a request to the daemon's port 5 is answered with one record per node, then CLOSE,
 * and the collected table replaces the old one when the CLOSE arrives.
 */

import { toHex } from "../bytes/hex.ts";
import type { Sid } from "../mesh/sid.ts";
import { MDP_FLAG } from "../mdp/header.ts";
import type { MdpHeader } from "../mdp/header.ts";
import type { Reachability } from "../mdp/transport.ts";
import { REACHABLE, REACHABLE_ROUTABLE, decodeRouteRecord } from "./route-record.ts";
import type { RouteRecord } from "./route-record.ts";

/** What a route datagram did: completed a table, was not a valid record, or neither. */
export type RouteUpdate = "complete" | "malformed" | undefined;

export class ServaldRouteTable {
  readonly #requestTable: () => void;
  #routes = new Map<string, RouteRecord>();
  #complete = false;
  #subscribed: boolean | undefined;
  /** A polled table being collected (replaces `#routes` when its CLOSE arrives). */
  #dump: Map<string, RouteRecord> | undefined;

  /** `requestTable` sends the daemon a route-table request (to its port 5). */
  constructor(requestTable: () => void) {
    this.#requestTable = requestTable;
  }

  /** Whether servald granted this client the route-change subscription (undefined: not yet known). */
  get subscribed(): boolean | undefined {
    return this.#subscribed;
  }

  /** Whether a whole table has arrived (pushed or polled) at least once. */
  get complete(): boolean {
    return this.#complete;
  }

  /** Ask for the whole table; its records replace the current ones once complete. */
  poll(): void {
    this.#dump = new Map();
    this.#requestTable();
  }

  /** Route-table traffic: on the subscription (SID_INTERNAL:5) or answers to a poll. */
  onDatagram(h: MdpHeader, payload: Uint8Array, subscription: boolean): RouteUpdate {
    if (subscription && h.flags & (MDP_FLAG.BIND | MDP_FLAG.ERROR)) {
      if (this.#subscribed === undefined) {
        this.#subscribed = (h.flags & MDP_FLAG.BIND) !== 0;
        if (!this.#subscribed) this.poll(); // another client holds the subscription
      }
      return undefined; // otherwise a probe answer: liveness only
    }
    if (h.flags & MDP_FLAG.ERROR) return undefined;
    if (h.flags & MDP_FLAG.CLOSE) {
      if (!subscription && this.#dump) {
        this.#routes = this.#dump;
        this.#dump = undefined;
      }
      this.#complete = true;
      return "complete";
    }
    const rec = decodeRouteRecord(payload);
    if (!rec) return "malformed";
    (subscription ? this.#routes : (this.#dump ?? this.#routes)).set(toHex(rec.sid), rec);
    return undefined;
  }

  /** What the table says of `sid` ("unknown" until a whole table has arrived). */
  reachability(sid: Sid): Reachability {
    const r = this.#routes.get(toHex(sid));
    if (r) return r.reachable & REACHABLE_ROUTABLE ? "reachable" : "unreachable";
    return this.#complete ? "unreachable" : "unknown";
  }

  /** Nodes the daemon can route to, itself excluded. */
  peers(): Sid[] {
    const out: Sid[] = [];
    for (const r of this.#routes.values()) {
      if (r.reachable & REACHABLE_ROUTABLE && !(r.reachable & REACHABLE.SELF)) out.push(r.sid);
    }
    return out;
  }

  /** Every node the daemon knows (itself included, flagged SELF). */
  records(): RouteRecord[] {
    return [...this.#routes.values()];
  }
}
