/**
 * The records servald sends on its local MDP_ROUTE_TABLE port (overlay_mdp.c send_route):
 * one node per datagram, in answer to a route-table request and, for a client bound to
 * SID_INTERNAL:5, whenever a node's reachability changes.
 *
 *   sid[32] idFlags u8 [signingKey[32] if idFlags & 1] reachable u8
 *   then, when the node is reachable or the record describes a local interface:
 *     hopCount u8; hopCount > 1: nextHop[32] (hopCount > 2: priorHop[32])
 *                  else:         interface u8, interfaceState u8, interfaceName (NUL-terminated)
 */

import type { Sid } from "../mesh/sid.ts";

/** servald's REACHABLE_* bits (overlay_address.h). */
export const REACHABLE = { NONE: 0, SELF: 0x01, BROADCAST: 0x02, UNICAST: 0x04, INDIRECT: 0x08, ASSUMED: 0x10 } as const;
/** Any of these bits means packets can be routed to the node. */
export const REACHABLE_ROUTABLE = REACHABLE.BROADCAST | REACHABLE.UNICAST | REACHABLE.INDIRECT;

export interface RouteRecord {
  sid: Sid;
  /** REACHABLE_* bits. */
  reachable: number;
  hopCount?: number;
  nextHop?: Sid;
  priorHop?: Sid;
  interfaceName?: string;
}

/** Parses one record; undefined when the datagram is malformed (it is then ignored). */
export function decodeRouteRecord(b: Uint8Array): RouteRecord | undefined {
  let o = 0;
  const take = (n: number): Uint8Array | undefined => {
    if (o + n > b.length) return undefined;
    const r = b.slice(o, o + n);
    o += n;
    return r;
  };
  const sid = take(32);
  const idFlags = take(1)?.[0];
  if (!sid || idFlags === undefined) return undefined;
  if (idFlags & 1 && !take(32)) return undefined;
  const reachable = take(1)?.[0];
  if (reachable === undefined) return undefined;
  const rec: RouteRecord = { sid, reachable };
  if (o === b.length) return rec;
  const hopCount = take(1)![0]!;
  rec.hopCount = hopCount;
  if (hopCount > 1) {
    const next = take(32);
    if (!next) return undefined;
    rec.nextHop = next;
    if (hopCount > 2) {
      const prior = take(32);
      if (!prior) return undefined;
      rec.priorHop = prior;
    }
  } else {
    if (!take(2)) return undefined; // interface index and state
    const end = b.indexOf(0, o);
    if (end < 0) return undefined;
    rec.interfaceName = new TextDecoder().decode(b.subarray(o, end));
  }
  return rec;
}
