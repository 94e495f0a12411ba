/**
 * Why the router dropped a routing message: the reasons it counts, merged into the overlay's
 * drop counters (see overlay-packet.ts) so that `svp status` shows them beside the others.
 */

/** Why a routing message was dropped (merged into the overlay's drop counters). */
export const ROUTE_DROP_REASONS = ["route-malformed", "route-impossible", "route-table-full", "route-rate", "route-not-neighbour"] as const;
export type RouteDropReason = (typeof ROUTE_DROP_REASONS)[number];
