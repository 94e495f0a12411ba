/**
 * Route selection for one destination (RFC 8966 section 3.6, with its hysteresis): among
 * the feasible routes, the newest source wins (a restarted node's new boot replaces routes
 * to its old one at once), then the smallest metric, then on a tie the current route or the
 * fewest hops. The current route is kept unless another of the same source is better by
 * more than 1/16 of its metric (at least HYSTERESIS_MIN, at most HYSTERESIS_MAX), so that
 * noisy link costs do not make routes flap. Pure: the router announces what changed.
 */

import { EntryList } from "./entry-list.ts";
import { METRIC_INFINITY } from "./route-packet.ts";
import { isFeasible, type RouteSource } from "./source-table.ts";

export const HYSTERESIS_MIN = 16;
/** Half a perfect hop: a route shorter by a hop always wins. */
export const HYSTERESIS_MAX = 128;

/** What selection needs of a route entry: the neighbour's link cost and what it announced. */
export interface SelectableEntry {
  neighbour: { key: string; cost: number };
  src: RouteSource;
  seqno: number;
  /** The neighbour's metric, without the link. */
  metric: number;
  hops: number;
}

/** The metric through the entry's neighbour: its metric plus the link cost, capped at METRIC_INFINITY. */
export function routeMetric(e: SelectableEntry): number {
  if (e.neighbour.cost >= METRIC_INFINITY) return METRIC_INFINITY;
  const m = e.metric + e.neighbour.cost;
  return m >= METRIC_INFINITY ? METRIC_INFINITY : m;
}

export interface Selection<E> {
  /** The route to use (undefined: none feasible and finite). */
  best: E | undefined;
  /** Its metric (METRIC_INFINITY when none). */
  bestM: number;
  /** Some finite route was left out as unfeasible (a seqno request can make it usable). */
  unfeasible: boolean;
  /** The smallest metric among those (METRIC_INFINITY when none). */
  unfeasibleM: number;
}

/** Pick the route among `entries`, given the `current` selection (for tie-breaking and hysteresis). */
export function selectRoute<E extends SelectableEntry>(entries: EntryList<E>, current: E | undefined): Selection<E> {
  let best: E | undefined;
  let bestM = METRIC_INFINITY;
  let bestSeen = -Infinity;
  let unfeasible = false;
  let unfeasibleM = METRIC_INFINITY;
  for (const e of entries.values()) {
    const m = routeMetric(e);
    if (m >= METRIC_INFINITY) continue;
    if (!isFeasible(e.src, e.seqno, e.metric)) {
      unfeasible = true;
      unfeasibleM = Math.min(unfeasibleM, m);
      continue;
    }
    const seen = e.src.firstSeen;
    if (seen > bestSeen || (seen === bestSeen && (m < bestM || (m === bestM && best && (e === current || (best !== current && e.hops < best.hops)))))) {
      best = e;
      bestM = m;
      bestSeen = seen;
    }
  }
  const cur = current;
  if (best && cur && best !== cur && entries.get(cur.neighbour.key) === cur && cur.src === best.src) {
    const curM = routeMetric(cur);
    if (curM < METRIC_INFINITY && isFeasible(cur.src, cur.seqno, cur.metric) && bestM + Math.max(HYSTERESIS_MIN, Math.min(HYSTERESIS_MAX, curM >> 4)) > curM) {
      best = cur;
      bestM = curM;
    }
  }
  return { best, bestM, unfeasible, unfeasibleM };
}
