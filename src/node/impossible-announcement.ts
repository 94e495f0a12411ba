/**
 * The sanity check every route announcement passes before the router looks it up: what no
 * honest neighbour can send (an unusable SID or boot, a metric below one perfect hop per
 * hop, hop 0 with a metric, a tiny MTU) is dropped as "route-impossible". Reads the fields
 * in place, without allocating: it runs once per announcement of every dump.
 */

import { LINK_COST_UNIT } from "./link-quality.ts";
import { BOOT_LEN, METRIC_INFINITY } from "./route-packet.ts";

/** MDP's largest TTL: no route is longer, no frame travels further. */
export const MAX_HOPS = 31;
/** The smallest MTU a route may announce (smaller ones are "route-impossible"). */
export const MIN_ROUTE_MTU = 256;

/** The `len` bytes at `o` are not all zero (SID "any", a zero boot) and not all 0xFF (broadcast): checked per announcement, so no allocation. */
export function usableId(b: Uint8Array, o: number, len: number): boolean {
  let or = 0;
  let and = 0xff;
  for (let i = o; i < o + len; i++) {
    or |= b[i]!;
    and &= b[i]!;
  }
  return or !== 0 && and !== 0xff;
}

/**
 * True when an announcement of the destination SID (32 bytes of `db` at `da`) with the boot
 * (8 bytes of `bb` at `ba`) cannot be right. Retractions (METRIC_INFINITY) are only checked
 * for their SID and boot.
 */
export function impossibleAnnouncement(db: Uint8Array, da: number, bb: Uint8Array, ba: number, metric: number, hops: number, mtu: number): boolean {
  if (!usableId(db, da, 32) || !usableId(bb, ba, BOOT_LEN)) return true;
  return metric !== METRIC_INFINITY && (metric < LINK_COST_UNIT * hops || (hops === 0 && metric !== 0) || mtu < MIN_ROUTE_MTU);
}
