/**
 * The embedded node's routing protocol: a distance-vector protocol after Babel (RFC 8966),
 * sans-I/O. The overlay tells it which neighbours are up and what their links cost, hands
 * it the ROUTE packets neighbours send (see route-packet.ts), and sends the packets it asks
 * for; time comes from the injected clock. Destinations are SIDs.
 *
 * Why Babel's design: it is a proven distance vector that stays loop-free at every instant
 * (not only after convergence) without a global view, needs no flooding of link state
 * (memory and traffic grow with the number of destinations, not links), tolerates lossy
 * links, and its metric composes with an ETX-like link cost. What is taken from it:
 *
 * - Sources and sequence numbers. Each node originates its own SIDs with a 16-bit seqno.
 *   A source is (SID, boot of the node that owns it): a restarted node is a new source, so
 *   nothing it announced before restarting constrains it, and the boot travels with the
 *   route (the sender of an end-to-end sealed frame must name the destination's boot).
 * - Feasibility condition. For every source the node remembers the best (seqno, metric) it
 *   has itself announced (the feasibility distance, FD). An announcement from a neighbour is
 *   usable only if its seqno is newer than the FD's, or equal with a metric strictly below
 *   it. A neighbour that is strictly closer than we ever were cannot be routing through us,
 *   so no loop can form, at any instant, whatever order messages arrive in. This also rules
 *   out counting to infinity.
 * - Starvation is cured with a seqno request: when the selected route is lost and only
 *   unfeasible ones remain, the node asks for a newer seqno (the request travels towards
 *   the origin, at most 31 hops, duplicates suppressed); the origin bumps its seqno and the
 *   new announcement is feasible everywhere.
 * - Retractions (metric 0xFFFF) withdraw a route at once; they are always accepted. A lost
 *   route is announced as retracted for two update intervals.
 * - Triggered updates on every change that matters (a route gained, lost, moved to another
 *   neighbour, a new seqno or source, another hop count or MTU, a metric change over 1/8),
 *   and a full dump to every neighbour each update interval (4 hello intervals); a route
 *   not refreshed for 3.5 of its neighbour's update intervals expires.
 * - Route selection: the smallest metric among feasible routes, preferring the newest
 *   source (a restarted node's new boot wins over routes to its old one at once), with
 *   hysteresis (another neighbour must be better by more than 1/16 of the metric, at least
 *   16) so that noisy link costs do not make routes flap.
 * - Split horizon: a route is not announced to the neighbour it goes through (links are
 *   point to point, so this is safe, and it saves a share of every dump).
 *
 * Bounds: at most `maxDestinations` destinations and as many sources (beyond: dropped and
 * counted as "route-table-full"); each neighbour's route packets pass a token bucket
 * ("route-rate"); seqno requests are answered and forwarded at a bounded rate with a
 * bounded duplicate cache. Announcements that cannot be right (a metric below 256 per hop,
 * hop 0 with a metric, an unusable SID or boot, a tiny MTU, our own SID with a seqno we
 * never used) are dropped and counted as "route-impossible"; undecodable packets as
 * "route-malformed".
 */

import type { Clock, Timer } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { isSidAny, isSidBroadcast, type Sid, sidShort } from "../mesh/sid.ts";
import { bytesKey } from "./bytes-key.ts";
import { LINK_COST_UNIT } from "./link-quality.ts";
import {
  BOOT_LEN,
  decodeRoutePacket,
  MAX_UPDATE_INTERVAL_MS,
  METRIC_INFINITY,
  packRoutePackets,
  PREFIX_BYTES,
  type RouteTlv,
  type SeqnoRequestTlv,
} from "./route-packet.ts";

/** MDP's largest TTL: no route is longer, no frame travels further. */
export const MAX_HOPS = 31;
/** The smallest MTU a route may announce (smaller ones are "route-impossible"). */
export const MIN_ROUTE_MTU = 256;

/** Why a routing message was dropped (merged into the overlay's drop counters). */
export const ROUTE_DROP_REASONS = ["route-malformed", "route-impossible", "route-table-full", "route-rate", "route-not-neighbour"] as const;
export type RouteDropReason = (typeof ROUTE_DROP_REASONS)[number];

export interface RouterOptions {
  clock: Clock;
  /** This node's SIDs: the destinations it originates. */
  selfSids: readonly Sid[];
  /** This node's boot (8 bytes): part of the source of every route it originates. */
  selfBoot: Uint8Array;
  /** Hello interval (ms): the expiry check runs at this period. */
  helloIntervalMs: number;
  /** Full dump period, ms. Default 4 hello intervals (as Babel). */
  updateIntervalMs?: number;
  /** Send these encoded ROUTE packets (plaintexts) to a neighbour. */
  transmit: (neighbour: Sid, packets: Uint8Array[]) => void;
  /** Largest ROUTE packet plaintext to build. Default 1160. */
  maxPacketBytes?: number;
  /** Route table bound (destinations). Default 10,000. */
  maxDestinations?: number;
  /** MTU announced for this node's own SIDs: the largest MDP payload it accepts. Default 16384. */
  ownMtu?: number;
  /** Called for every dropped message with the reason. */
  countDrop?: (reason: RouteDropReason) => void;
  log?: (level: "info" | "debug", message: string) => void;
  /** Uniform [0, 1) for the jitter of the periodic dumps. Default Math.random. */
  random?: () => number;
}

/** The selected route to one destination. */
export interface RouteView {
  dest: Sid;
  nextHop: Sid;
  /** Sum of link costs along the path (256 per perfect hop). */
  metric: number;
  hops: number;
  /** Largest MDP payload the whole path carries. */
  mtu: number;
  /** Boot of the destination node (the route's source). */
  boot: Uint8Array;
  seqno: number;
}

export type RouterEvents = {
  /** The route to `dest` appeared, went away (undefined) or changed next hop, hops, MTU or boot. */
  route: (dest: Sid, route: RouteView | undefined) => void;
};

interface Neighbour {
  sid: Sid;
  key: string;
  cost: number;
  mtu: number;
  /** Its update interval as it announced it (ours until told). */
  updateIntervalMs: number;
  /** Destinations whose full UPDATE we sent it, with the boot key sent. */
  sentFull: Map<string, string>;
  /** Its full UPDATEs we took, by SID prefix: for resolving its REFRESHes. */
  prefixes: Map<string, { destKey: string; boot: Uint8Array; bootKey: string }>;
  /** Queued TLVs for it (sent at the end of the current operation). */
  out: RouteTlv[];
  tokens: number;
  tokensAt: number;
  lastRouteRequestAt: number;
}

interface Entry {
  neighbour: Neighbour;
  boot: Uint8Array;
  bootKey: string;
  seqno: number;
  /** The neighbour's metric (its distance), not including the link. */
  metric: number;
  /** The neighbour's hop count (0: its own SID). */
  hops: number;
  mtu: number;
  expiresAt: number;
}

interface Dest {
  sid: Sid;
  key: string;
  prefixKey: string;
  entries: Map<string, Entry>;
  selected: Entry | undefined;
  view: RouteView | undefined;
  /** What we last announced for it in a triggered update (to decide on the next). */
  announced: { seqno: number; metric: number; hops: number; mtu: number; bootKey: string } | undefined;
  /** Retractions are included in dumps until then (0: none). */
  retractUntil: number;
  retractBoot: Uint8Array | undefined;
  retractSeqno: number;
  requestedAt: number;
  requests: number;
}

interface Source {
  /** Feasibility distance: the best (seqno, metric) we announced (undefined: never). */
  fdSeqno: number | undefined;
  fdMetric: number;
  firstSeen: number;
  usedAt: number;
}

const HYSTERESIS_MIN = 16;
const REQUEST_RETRIES = 3;
const FORWARDED_REQUESTS_MAX = 1024;
const TOKENS_MIN_PER_S = 200;
const ROUTE_REQUEST_MIN_INTERVAL_MS = 1000;

/** True when 16-bit seqno `a` is newer than `b`. */
export function seqnoNewer(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}

export class Router extends Emitter<RouterEvents> {
  readonly updateIntervalMs: number;
  #o: RouterOptions;
  #clock: Clock;
  #self = new Map<string, Sid>();
  #selfPrefixes = new Map<string, string>();
  #selfBootKey: string;
  /** How many destinations (own SIDs included) share each 8-byte prefix: a shared one is never refreshed by prefix. */
  #prefixCount = new Map<string, number>();
  #seqno = 0;
  #lastSeqnoBump = -Infinity;
  #neighbours = new Map<string, Neighbour>();
  #dests = new Map<string, Dest>();
  #sources = new Map<string, Source>();
  #forwardedRequests = new Map<string, number>();
  #timer: Timer | undefined;
  #nextDumpAt: number;
  #stopped = false;
  #maxDest: number;
  #maxPacket: number;
  #ownMtu: number;
  #random: () => number;
  /** Counters for status and benchmarks. */
  readonly stats = { packetsOut: 0, bytesOut: 0, packetsIn: 0, bytesIn: 0, seqnoRequestsOut: 0 };

  constructor(options: RouterOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock;
    this.updateIntervalMs = Math.min(MAX_UPDATE_INTERVAL_MS, Math.max(10, Math.round((options.updateIntervalMs ?? options.helloIntervalMs * 4) / 10) * 10));
    for (const s of options.selfSids) {
      this.#self.set(bytesKey(s), s.slice());
      this.#selfPrefixes.set(bytesKey(s.subarray(0, PREFIX_BYTES)), bytesKey(s));
      this.#countPrefix(bytesKey(s.subarray(0, PREFIX_BYTES)), 1);
    }
    this.#selfBootKey = bytesKey(options.selfBoot);
    this.#maxDest = options.maxDestinations ?? 10_000;
    this.#maxPacket = options.maxPacketBytes ?? 1160;
    this.#ownMtu = options.ownMtu ?? 16384;
    this.#random = options.random ?? Math.random;
    this.#nextDumpAt = this.#clock.now() + this.updateIntervalMs * (0.5 + 0.5 * this.#random());
  }

  /** Start the timers (expiry, periodic dumps, request retries). */
  start(): void {
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** The selected route to `dest`, or undefined. */
  route(dest: Sid): RouteView | undefined {
    return this.#dests.get(bytesKey(dest))?.view;
  }

  /** Every selected route. */
  routes(): RouteView[] {
    const out: RouteView[] = [];
    for (const d of this.#dests.values()) if (d.view) out.push(d.view);
    return out;
  }

  /** Destinations in the table (selected or not) and route entries: for bounds and benchmarks. */
  get size(): { destinations: number; entries: number; sources: number } {
    let entries = 0;
    for (const d of this.#dests.values()) entries += d.entries.size;
    return { destinations: this.#dests.size, entries, sources: this.#sources.size };
  }

  get seqno(): number {
    return this.#seqno;
  }

  isNeighbour(sid: Sid): boolean {
    return this.#neighbours.has(bytesKey(sid));
  }

  /** A neighbour came up (a live, authenticated session) with this link cost and MTU. */
  neighbourUp(sid: Sid, cost: number, mtu: number): void {
    const key = bytesKey(sid);
    if (this.#neighbours.has(key)) return this.neighbourChanged(sid, cost, mtu);
    const n: Neighbour = { sid: sid.slice(), key, cost, mtu, updateIntervalMs: this.updateIntervalMs, sentFull: new Map(), prefixes: new Map(), out: [], tokens: this.#bucketSize, tokensAt: this.#clock.now(), lastRouteRequestAt: -Infinity };
    this.#neighbours.set(key, n);
    this.#o.log?.("debug", `routing: neighbour ${sidShort(sid)} up (cost ${cost}, mtu ${mtu})`);
    this.#dumpTo(n);
    this.#flush();
  }

  /** The link to a neighbour now costs `cost` and carries `mtu`. */
  neighbourChanged(sid: Sid, cost: number, mtu: number): void {
    const n = this.#neighbours.get(bytesKey(sid));
    if (!n || (n.cost === cost && n.mtu === mtu)) return;
    n.cost = cost;
    n.mtu = mtu;
    for (const d of this.#dests.values()) if (d.entries.has(n.key)) this.#select(d);
    this.#flush();
  }

  /** A neighbour is gone (goodbye, timeout, restart): its routes go at once. */
  neighbourDown(sid: Sid): void {
    const n = this.#neighbours.get(bytesKey(sid));
    if (!n) return;
    this.#neighbours.delete(n.key);
    this.#o.log?.("debug", `routing: neighbour ${sidShort(sid)} down`);
    for (const d of [...this.#dests.values()]) {
      if (d.entries.delete(n.key)) this.#select(d);
      this.#maybeDelete(d);
    }
    this.#flush();
  }

  /** A ROUTE packet plaintext from neighbour `from`. Never throws; bad input is counted. */
  receive(from: Sid, data: Uint8Array): void {
    if (this.#stopped) return;
    const n = this.#neighbours.get(bytesKey(from));
    if (!n) return this.#drop("route-not-neighbour");
    const dec = decodeRoutePacket(data);
    if (!dec.ok) return this.#drop("route-malformed");
    const now = this.#clock.now();
    // Token bucket in TLVs: a full table dump per update interval (twice over), at least TOKENS_MIN_PER_S.
    const rate = Math.max(TOKENS_MIN_PER_S / 1000, this.#bucketSize / this.updateIntervalMs);
    n.tokens = Math.min(this.#bucketSize, n.tokens + (now - n.tokensAt) * rate);
    n.tokensAt = now;
    const cost = Math.max(1, dec.packet.tlvs.length);
    if (n.tokens < cost) return this.#drop("route-rate");
    n.tokens -= cost;
    this.stats.packetsIn++;
    this.stats.bytesIn += data.length;
    n.updateIntervalMs = dec.packet.updateIntervalMs;
    const unknown: Uint8Array[] = [];
    for (const t of dec.packet.tlvs) {
      switch (t.kind) {
        case "update":
          this.#onUpdate(n, t.dest, t.boot, t.seqno, t.metric, t.hops, t.mtu, now, true);
          break;
        case "refresh": {
          const pk = bytesKey(t.prefix);
          const p = n.prefixes.get(pk);
          if (p) {
            const d = this.#dests.get(p.destKey);
            if (d) this.#onUpdate(n, d.sid, p.boot, t.seqno, t.metric, t.hops, t.mtu, now, false);
            else if (t.metric !== METRIC_INFINITY) unknown.push(t.prefix);
          } else if (!this.#selfPrefixes.has(pk) && t.metric !== METRIC_INFINITY) unknown.push(t.prefix);
          break;
        }
        case "seqno-request":
          this.#onSeqnoRequest(n, t, now);
          break;
        case "route-request":
          this.#onRouteRequest(n, t.prefix);
          break;
      }
    }
    // Refreshes we cannot resolve (we lost or never got their full update): ask for those
    // in full, or for everything when there are many (at most once a second).
    if (unknown.length > 0 && unknown.length <= 8) for (const prefix of unknown) n.out.push({ kind: "route-request", prefix });
    else if (unknown.length > 8 && now - n.lastRouteRequestAt >= ROUTE_REQUEST_MIN_INTERVAL_MS) {
      n.lastRouteRequestAt = now;
      n.out.push({ kind: "route-request", prefix: new Uint8Array(PREFIX_BYTES) });
    }
    this.#flush();
  }

  get #bucketSize(): number {
    return 2 * this.#maxDest + 256;
  }

  #countPrefix(pk: string, delta: number): void {
    const c = (this.#prefixCount.get(pk) ?? 0) + delta;
    if (c > 0) this.#prefixCount.set(pk, c);
    else this.#prefixCount.delete(pk);
  }

  /** A refresh names its destination by prefix: only when that prefix is ours alone. */
  #unique(pk: string): boolean {
    return (this.#prefixCount.get(pk) ?? 0) <= 1;
  }

  #drop(reason: RouteDropReason): void {
    this.#o.countDrop?.(reason);
  }

  #onUpdate(n: Neighbour, dest: Sid, boot: Uint8Array, seqno: number, metric: number, hops: number, mtu: number, now: number, full: boolean): void {
    if (isSidAny(dest) || isSidBroadcast(dest) || boot.every((b) => b === 0)) return this.#drop("route-impossible");
    if (metric !== METRIC_INFINITY && (metric < LINK_COST_UNIT * hops || (hops === 0 && metric !== 0) || mtu < MIN_ROUTE_MTU)) return this.#drop("route-impossible");
    const destKey = bytesKey(dest);
    if (this.#self.has(destKey)) {
      // Our own SID coming back: normal. With our boot and a seqno we never used it is forged.
      if (metric !== METRIC_INFINITY && bytesKey(boot) === this.#selfBootKey && seqnoNewer(seqno, this.#seqno)) this.#drop("route-impossible");
      return;
    }
    const bootKey = bytesKey(boot);
    let d = this.#dests.get(destKey);
    if (!d) {
      if (metric === METRIC_INFINITY) return; // a retraction of something we do not know
      if (this.#dests.size >= this.#maxDest) return this.#drop("route-table-full");
      d = { sid: dest.slice(), key: destKey, prefixKey: bytesKey(dest.subarray(0, PREFIX_BYTES)), entries: new Map(), selected: undefined, view: undefined, announced: undefined, retractUntil: 0, retractBoot: undefined, retractSeqno: 0, requestedAt: -Infinity, requests: 0 };
      this.#dests.set(destKey, d);
      this.#countPrefix(d.prefixKey, 1);
    }
    const srcKey = destKey + bootKey;
    if (metric !== METRIC_INFINITY && !this.#sources.has(srcKey)) {
      if (this.#sources.size >= 2 * this.#maxDest) {
        this.#maybeDelete(d);
        return this.#drop("route-table-full");
      }
      this.#sources.set(srcKey, { fdSeqno: undefined, fdMetric: METRIC_INFINITY, firstSeen: now, usedAt: now });
    }
    if (full) {
      if (n.prefixes.size < this.#maxDest || n.prefixes.has(d.prefixKey)) n.prefixes.set(d.prefixKey, { destKey, boot: boot.slice(), bootKey });
    }
    // Beyond the TTL: unusable, as a retraction.
    const m = hops + 1 > MAX_HOPS ? METRIC_INFINITY : metric;
    if (m === METRIC_INFINITY) {
      if (d.entries.delete(n.key)) this.#select(d);
      this.#maybeDelete(d);
      return;
    }
    const e = d.entries.get(n.key);
    const expiresAt = now + 3.5 * n.updateIntervalMs;
    if (e) {
      e.boot = bootKey === e.bootKey ? e.boot : boot.slice();
      e.bootKey = bootKey;
      e.seqno = seqno;
      e.metric = m;
      e.hops = hops;
      e.mtu = mtu;
      e.expiresAt = expiresAt;
    } else {
      d.entries.set(n.key, { neighbour: n, boot: boot.slice(), bootKey, seqno, metric: m, hops, mtu, expiresAt });
    }
    this.#sources.get(srcKey)!.usedAt = now;
    this.#select(d);
  }

  #feasible(d: Dest, e: Entry): boolean {
    const s = this.#sources.get(d.key + e.bootKey);
    if (!s || s.fdSeqno === undefined) return true;
    return seqnoNewer(e.seqno, s.fdSeqno) || (e.seqno === s.fdSeqno && e.metric < s.fdMetric);
  }

  #routeMetric(e: Entry): number {
    if (e.neighbour.cost >= METRIC_INFINITY) return METRIC_INFINITY;
    const m = e.metric + e.neighbour.cost;
    return m >= METRIC_INFINITY ? METRIC_INFINITY : m;
  }

  /** Pick the route for `d` and announce what changed. */
  #select(d: Dest): void {
    const now = this.#clock.now();
    let best: Entry | undefined;
    let bestM = METRIC_INFINITY;
    let bestSeen = -Infinity;
    let unfeasible = false;
    for (const e of d.entries.values()) {
      const m = this.#routeMetric(e);
      if (m >= METRIC_INFINITY) continue;
      if (!this.#feasible(d, e)) {
        unfeasible = true;
        continue;
      }
      const seen = this.#sources.get(d.key + e.bootKey)?.firstSeen ?? 0;
      if (seen > bestSeen || (seen === bestSeen && (m < bestM || (m === bestM && best && (e === d.selected || (best !== d.selected && e.hops < best.hops)))))) {
        best = e;
        bestM = m;
        bestSeen = seen;
      }
    }
    const cur = d.selected;
    if (best && cur && best !== cur && d.entries.get(cur.neighbour.key) === cur && cur.bootKey === best.bootKey) {
      const curM = this.#routeMetric(cur);
      if (curM < METRIC_INFINITY && this.#feasible(d, cur) && bestM + Math.max(HYSTERESIS_MIN, curM >> 4) > curM) best = cur;
    }
    d.selected = best;
    const old = d.view;
    const view: RouteView | undefined = best
      ? { dest: d.sid, nextHop: best.neighbour.sid, metric: this.#routeMetric(best), hops: best.hops + 1, mtu: Math.min(best.mtu, best.neighbour.mtu), boot: best.boot, seqno: best.seqno }
      : undefined;
    d.view = view;
    if (!view) {
      if (old) {
        // Lost: retract at once (and in dumps for a while); ask for a newer seqno if only unfeasible routes remain.
        d.retractUntil = now + 2 * this.updateIntervalMs;
        d.retractBoot = old.boot;
        d.retractSeqno = old.seqno;
        d.announced = undefined;
        d.requests = 0;
        for (const n of this.#neighbours.values()) this.#queueRoute(n, d, true);
      }
      if (unfeasible) this.#requestSeqno(d, now);
    } else {
      d.retractUntil = 0;
      d.requests = 0;
      const a = d.announced;
      const significant =
        !a || a.bootKey !== best!.bootKey || a.seqno !== view.seqno || a.hops !== view.hops || a.mtu !== view.mtu || Math.abs(a.metric - view.metric) * 8 > a.metric || (old && old.nextHop !== view.nextHop);
      if (significant) for (const n of this.#neighbours.values()) this.#queueRoute(n, d, true);
    }
    if (!old !== !view || (old && view && (old.nextHop !== view.nextHop || old.hops !== view.hops || old.mtu !== view.mtu || old.boot !== view.boot))) this.emit("route", d.sid, view);
  }

  #requestSeqno(d: Dest, now: number): void {
    if (d.requests >= REQUEST_RETRIES || now - d.requestedAt < Math.min(1000, this.#o.helloIntervalMs)) return;
    // Ask the neighbours holding unfeasible routes, for the newest source among them.
    let src: Entry | undefined;
    let seen = -Infinity;
    for (const e of d.entries.values()) {
      const s = this.#sources.get(d.key + e.bootKey);
      if (s && s.firstSeen > seen) {
        seen = s.firstSeen;
        src = e;
      }
    }
    if (!src) return;
    const s = this.#sources.get(d.key + src.bootKey)!;
    const seqno = ((s.fdSeqno ?? src.seqno) + 1) & 0xffff;
    d.requestedAt = now;
    d.requests++;
    for (const e of d.entries.values()) {
      if (e.bootKey !== src.bootKey) continue;
      e.neighbour.out.push({ kind: "seqno-request", dest: d.sid, boot: src.boot, seqno, hopCount: MAX_HOPS });
      this.stats.seqnoRequestsOut++;
    }
  }

  #onSeqnoRequest(n: Neighbour, t: SeqnoRequestTlv, now: number): void {
    if (t.hopCount < 1 || t.hopCount > MAX_HOPS || isSidAny(t.dest) || isSidBroadcast(t.dest)) return this.#drop("route-impossible");
    const destKey = bytesKey(t.dest);
    const bootKey = bytesKey(t.boot);
    if (this.#self.has(destKey)) {
      if (bootKey !== this.#selfBootKey) return; // an old boot of ours: our announcements carry the new one
      const d = (t.seqno - this.#seqno) & 0xffff;
      if (d === 0 || d >= 0x8000) {
        this.#queueOwn(n, true);
        return;
      }
      if (d > 1) return this.#drop("route-impossible"); // nobody can have seen a seqno we never used
      if (now - this.#lastSeqnoBump < Math.min(1000, this.#o.helloIntervalMs)) return;
      this.#lastSeqnoBump = now;
      this.#seqno = (this.#seqno + 1) & 0xffff;
      this.#o.log?.("debug", `routing: seqno ${this.#seqno} on request from ${sidShort(n.sid)}`);
      for (const x of this.#neighbours.values()) this.#queueOwn(x, true);
      return;
    }
    const d = this.#dests.get(destKey);
    if (!d) return;
    const sel = d.selected;
    if (sel) {
      const newerSource = sel.bootKey !== bootKey && (this.#sources.get(destKey + sel.bootKey)?.firstSeen ?? 0) > (this.#sources.get(destKey + bootKey)?.firstSeen ?? Infinity);
      if (newerSource || (sel.bootKey === bootKey && !seqnoNewer(t.seqno, sel.seqno))) {
        if (sel.neighbour !== n) this.#queueRoute(n, d, true);
        return;
      }
      if (t.hopCount > 1 && sel.neighbour !== n) {
        const key = destKey + bootKey + t.seqno;
        const last = this.#forwardedRequests.get(key);
        if (last !== undefined && now - last < 2000) return;
        if (this.#forwardedRequests.size >= FORWARDED_REQUESTS_MAX) this.#forwardedRequests.delete(this.#forwardedRequests.keys().next().value!);
        this.#forwardedRequests.set(key, now);
        sel.neighbour.out.push({ kind: "seqno-request", dest: d.sid, boot: t.boot, seqno: t.seqno, hopCount: t.hopCount - 1 });
        this.stats.seqnoRequestsOut++;
      }
    }
  }

  #onRouteRequest(n: Neighbour, prefix: Uint8Array): void {
    if (prefix.every((b) => b === 0)) {
      n.sentFull.clear();
      this.#dumpTo(n);
      return;
    }
    const pk = bytesKey(prefix);
    if (this.#selfPrefixes.has(pk)) {
      n.sentFull.delete(this.#selfPrefixes.get(pk)!);
      return this.#queueOwn(n, false);
    }
    for (const d of this.#dests.values()) {
      if (d.prefixKey !== pk) continue;
      n.sentFull.delete(d.key);
      this.#queueRoute(n, d, false);
    }
  }

  /** Queue our own SIDs for `n`. */
  #queueOwn(n: Neighbour, _triggered: boolean): void {
    for (const [key, sid] of this.#self) {
      const full = n.sentFull.get(key) !== this.#selfBootKey || !this.#unique(bytesKey(sid.subarray(0, PREFIX_BYTES)));
      if (full) n.sentFull.set(key, this.#selfBootKey);
      n.out.push(full ? { kind: "update", dest: sid, boot: this.#o.selfBoot, seqno: this.#seqno, metric: 0, hops: 0, mtu: this.#ownMtu } : { kind: "refresh", prefix: sid.subarray(0, PREFIX_BYTES), seqno: this.#seqno, metric: 0, hops: 0, mtu: this.#ownMtu });
    }
  }

  /** Queue our route (or retraction) for `d` to `n`; records what was announced and the FD. */
  #queueRoute(n: Neighbour, d: Dest, triggered: boolean): void {
    const v = d.view;
    const sel = d.selected;
    if (v && sel) {
      if (triggered) d.announced = { seqno: v.seqno, metric: v.metric, hops: v.hops, mtu: v.mtu, bootKey: sel.bootKey };
      this.#updateFd(d, sel.bootKey, v.seqno, v.metric);
      // Split horizon: never announce a route to the neighbour it goes through. That
      // neighbour must still hear when it is gone (it may have kept ours as a fallback), so
      // a route that moved onto it is retracted towards it.
      if (sel.neighbour === n) {
        if (triggered && n.sentFull.has(d.key)) this.#push(n, d, sel.boot, sel.bootKey, v.seqno, METRIC_INFINITY, 0, this.#ownMtu);
        return;
      }
      this.#push(n, d, sel.boot, sel.bootKey, v.seqno, v.metric, v.hops, v.mtu);
    } else if (d.retractBoot) {
      this.#push(n, d, d.retractBoot, bytesKey(d.retractBoot), d.retractSeqno, METRIC_INFINITY, 0, this.#ownMtu);
    }
  }

  #push(n: Neighbour, d: Dest, boot: Uint8Array, bootKey: string, seqno: number, metric: number, hops: number, mtu: number): void {
    const full = n.sentFull.get(d.key) !== bootKey || !this.#unique(d.prefixKey);
    if (full) {
      if (metric === METRIC_INFINITY && !n.sentFull.has(d.key)) return; // never told it: nothing to retract
      n.sentFull.set(d.key, bootKey);
    }
    n.out.push(full ? { kind: "update", dest: d.sid, boot, seqno, metric, hops, mtu } : { kind: "refresh", prefix: d.sid.subarray(0, PREFIX_BYTES), seqno, metric, hops, mtu });
  }

  #updateFd(d: Dest, bootKey: string, seqno: number, metric: number): void {
    const s = this.#sources.get(d.key + bootKey);
    if (!s || metric >= METRIC_INFINITY) return;
    s.usedAt = this.#clock.now();
    if (s.fdSeqno === undefined || seqnoNewer(seqno, s.fdSeqno)) {
      s.fdSeqno = seqno;
      s.fdMetric = metric;
    } else if (seqno === s.fdSeqno && metric < s.fdMetric) s.fdMetric = metric;
  }

  /** A full dump to `n`: our SIDs, every selected route, recent retractions. */
  #dumpTo(n: Neighbour): void {
    this.#queueOwn(n, false);
    const now = this.#clock.now();
    for (const d of this.#dests.values()) {
      if (d.view || d.retractUntil > now) this.#queueRoute(n, d, false);
    }
  }

  #maybeDelete(d: Dest): void {
    if (d.entries.size > 0 || d.retractUntil > this.#clock.now()) return;
    this.#dests.delete(d.key);
    this.#countPrefix(d.prefixKey, -1);
    for (const n of this.#neighbours.values()) {
      n.sentFull.delete(d.key);
      const p = n.prefixes.get(d.prefixKey);
      if (p && p.destKey === d.key) n.prefixes.delete(d.prefixKey);
    }
  }

  /** Send what is queued, packed into packets of at most maxPacketBytes. */
  #flush(): void {
    for (const n of this.#neighbours.values()) {
      if (n.out.length === 0) continue;
      const packets = packRoutePackets(this.updateIntervalMs, n.out, this.#maxPacket);
      n.out = [];
      for (const p of packets) {
        this.stats.packetsOut++;
        this.stats.bytesOut += p.length;
      }
      this.#o.transmit(n.sid, packets);
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => this.#tick(), this.#o.helloIntervalMs);
  }

  /** Expiry, request retries, garbage collection, and the periodic dump when due. */
  #tick(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    for (const d of [...this.#dests.values()]) {
      let changed = false;
      for (const [k, e] of d.entries) {
        if (e.expiresAt <= now) {
          d.entries.delete(k);
          changed = true;
        }
      }
      if (changed) this.#select(d);
      else if (!d.view && d.entries.size > 0) this.#requestSeqno(d, now);
      this.#maybeDelete(d);
    }
    // Sources not used for a while (no route refers to them): their FD may go.
    const gcAfter = 8 * this.updateIntervalMs;
    for (const [k, s] of this.#sources) {
      if (now - s.usedAt < gcAfter) continue;
      const d = this.#dests.get(k.slice(0, 16));
      if (d && [...d.entries.values()].some((e) => d.key + e.bootKey === k)) continue;
      this.#sources.delete(k);
    }
    for (const [k, t] of this.#forwardedRequests) if (now - t > 2000) this.#forwardedRequests.delete(k);
    if (now >= this.#nextDumpAt) {
      this.#nextDumpAt = now + this.updateIntervalMs * (0.9 + 0.2 * this.#random());
      for (const n of this.#neighbours.values()) this.#dumpTo(n);
    }
    this.#flush();
    this.#schedule();
  }
}

/** Exported for tests: an 8-byte boot of zeros is never a valid source. */
export const ZERO_BOOT = new Uint8Array(BOOT_LEN);
