/**
 * The router's sources and their feasibility distances (RFC 8966 sections 2.4 and 3.5.1).
 *
 * A source is (destination SID, boot of the node that owns it): a restarted node is a new
 * source, unconstrained by what it announced before. For each source the table keeps the
 * feasibility distance (FD), the best (seqno, metric) this node has itself announced. An
 * announcement is feasible, and may be selected, only if its seqno is newer than the FD's,
 * or equal with a strictly smaller metric: a neighbour strictly closer than we ever were
 * cannot be routing through us, so no loop can form at any instant.
 *
 * Bounded (the router allows two sources per destination); sources no route has used for a
 * while are swept, and with them their FD.
 */

import { METRIC_INFINITY } from "./route-packet.ts";
import { seqnoNewer } from "./seqno-newer.ts";

export interface RouteSource {
  /** destKey + bootKey. */
  key: string;
  destKey: string;
  /** One copy per source, shared by every entry and view (routes to 1,000 nodes from 10 neighbours would hold 10,000 otherwise). */
  boot: Uint8Array;
  bootKey: string;
  /** Feasibility distance: the best (seqno, metric) we announced (undefined: never). */
  fdSeqno: number | undefined;
  fdMetric: number;
  /** When the source was first heard of (ms): the newest source of a destination wins. */
  firstSeen: number;
  /** When a route last referred to it or we last announced it (ms): for the sweep. */
  usedAt: number;
}

/** An announcement of source `s` with this seqno and (neighbour's) metric satisfies the feasibility condition. */
export function isFeasible(s: RouteSource, seqno: number, metric: number): boolean {
  if (s.fdSeqno === undefined) return true;
  return seqnoNewer(seqno, s.fdSeqno) || (seqno === s.fdSeqno && metric < s.fdMetric);
}

/** We announced `s` with this seqno and metric at `now`: lower its FD accordingly (retractions leave it alone). */
export function updateFd(s: RouteSource, seqno: number, metric: number, now: number): void {
  if (metric >= METRIC_INFINITY) return;
  s.usedAt = now;
  if (s.fdSeqno === undefined || seqnoNewer(seqno, s.fdSeqno)) {
    s.fdSeqno = seqno;
    s.fdMetric = metric;
  } else if (seqno === s.fdSeqno && metric < s.fdMetric) s.fdMetric = metric;
}

export class SourceTable {
  readonly max: number;
  #m = new Map<string, RouteSource>();

  /** At most `max` sources. */
  constructor(max: number) {
    this.max = max;
  }

  get size(): number {
    return this.#m.size;
  }

  get full(): boolean {
    return this.#m.size >= this.max;
  }

  get(destKey: string, bootKey: string): RouteSource | undefined {
    return this.#m.get(destKey + bootKey);
  }

  /** A new source, without FD, first seen `now`; its boot is copied from the 8 bytes of `bb` at `ba`. The caller checks `full` first. */
  add(destKey: string, bootKey: string, bb: Uint8Array, ba: number, bootLen: number, now: number): RouteSource {
    const src: RouteSource = { key: destKey + bootKey, destKey, boot: bb.slice(ba, ba + bootLen), bootKey, fdSeqno: undefined, fdMetric: METRIC_INFINITY, firstSeen: now, usedAt: now };
    this.#m.set(src.key, src);
    return src;
  }

  /** Forget sources unused for `maxIdleMs` that no route refers to (`inUse`): their FD no longer constrains anything. */
  sweep(now: number, maxIdleMs: number, inUse: (s: RouteSource) => boolean): void {
    for (const [k, s] of this.#m) {
      if (now - s.usedAt < maxIdleMs) continue;
      if (inUse(s)) continue;
      this.#m.delete(k);
    }
  }
}
