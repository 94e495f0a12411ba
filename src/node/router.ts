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
 * - Triggered updates on every change that matters: at once for news and bad news (a route
 *   gained or lost, a new seqno or source, a longer, costlier (over 1/8) or narrower path),
 *   after a short delay (200 ms, or a tenth of the hello interval) for improvements (so
 *   that a burst of them, as links come up, goes out as one); and a full dump to every neighbour each update interval (4 hello intervals); a route
 *   not refreshed for 3.5 of its neighbour's update intervals expires.
 * - Route selection: the smallest metric among feasible routes, preferring the newest
 *   source (a restarted node's new boot wins over routes to its old one at once), with
 *   hysteresis (another neighbour must be better by more than 1/16 of the metric, at least
 *   16, at most half a perfect hop) so that noisy link costs do not make routes flap. When
 *   a route better by a whole hop is known but unfeasible, a seqno request is sent too (the
 *   feasibility distance would otherwise keep a node on the longer route indefinitely).
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
import { bytesKey, bytesKeyAt } from "./bytes-key.ts";
import { EntryList } from "./entry-list.ts";
import { ForwardedRequests } from "./forwarded-requests.ts";
import { impossibleAnnouncement, MAX_HOPS } from "./impossible-announcement.ts";
import { LINK_COST_UNIT } from "./link-quality.ts";
import type { RouteDropReason } from "./route-drop-reasons.ts";
import { seqnoNewer } from "./seqno-newer.ts";
import { selectRoute, routeMetric } from "./select-route.ts";
import { type RouteSource, SourceTable, updateFd } from "./source-table.ts";
import {
  BOOT_LEN,
  MAX_UPDATE_INTERVAL_MS,
  METRIC_INFINITY,
  packRoutePackets,
  PREFIX_BYTES,
  type RouteTlv,
  type SeqnoRequestTlv,
  walkRoutePacket,
  UPDATE_AT,
  REFRESH_ROUTE_AT,
  readSeqno,
  readMetric,
  readHops,
  readMtu,
  TLV_BYTES,
} from "./route-packet.ts";

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
  /** Our own SIDs whose full UPDATE we sent it (other destinations keep this in `Dest.fullTo`). */
  sentFull: Map<string, string>;
  /** Queued TLVs for it (sent at the end of the current operation). */
  out: RouteTlv[];
  tokens: number;
  tokensAt: number;
  lastRouteRequestAt: number;
}

interface Entry {
  neighbour: Neighbour;
  /** The source (destination SID and its owner's boot) this route is for. */
  src: RouteSource;
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
  entries: EntryList<Entry>;
  selected: Entry | undefined;
  view: RouteView | undefined;
  /** What we last announced for it in a triggered update (to decide on the next); fields, not an object, per destination. */
  announced: boolean;
  annSeqno: number;
  annMetric: number;
  annHops: number;
  annMtu: number;
  annBootKey: string;
  /** Neighbours that got a full UPDATE of it with source `fullBootKey` (they take REFRESHes). */
  fullTo: Neighbour[];
  fullBootKey: string;
  /** Retractions are included in dumps until then (0: none). */
  retractUntil: number;
  retractBoot: Uint8Array | undefined;
  retractSeqno: number;
  requestedAt: number;
  requests: number;
  /** When we last asked for a newer seqno because an unfeasible route was better (once per update interval). */
  betterAskedAt: number;
  /** Neighbours that asked us for a newer seqno we could not give yet: they get it as soon as we have it. */
  askers: { n: Neighbour; seqno: number; at: number }[] | undefined;
}

/** Longest wait before an improved route is announced (a tenth of the hello interval when shorter). */
const TRIGGER_DELAY_MS = 200;
const FORWARDED_REQUESTS_MAX = 1024;
/** Neighbours remembered per destination as waiting for a newer seqno, and for how long. */
const MAX_ASKERS = 8;
const ASKER_HOLD_MS = 5000;
/** The same request (destination, source, seqno) is forwarded once in this time (retries come later). */
const FORWARDED_REQUEST_HOLD_MS = 500;
const TOKENS_MIN_PER_S = 200;
const ROUTE_REQUEST_MIN_INTERVAL_MS = 1000;

export class Router extends Emitter<RouterEvents> {
  readonly updateIntervalMs: number;
  #o: RouterOptions;
  #clock: Clock;
  #self = new Map<string, Sid>();
  #selfPrefixes = new Map<string, string>();
  #selfBootKey: string;
  /** How many destinations (own SIDs included) share each 8-byte prefix: a shared one is never refreshed by prefix. */
  #prefixCount = new Map<string, number>();
  /** Destinations by the prefix refreshes name them with (only prefixes no two destinations share). */
  #byPrefix = new Map<string, Dest>();
  #seqno = 0;
  #lastSeqnoBump = -Infinity;
  #neighbours = new Map<string, Neighbour>();
  #dests = new Map<string, Dest>();
  /** Destinations with a selected route (kept up to date by #select). */
  #selectedCount = 0;
  #sources: SourceTable;
  #forwardedRequests = new ForwardedRequests(FORWARDED_REQUESTS_MAX, FORWARDED_REQUEST_HOLD_MS);
  /** Destinations without a route that have unfeasible ones: their seqno requests are retried. */
  #starving = new Set<Dest>();
  #retryTimer: Timer | undefined;
  #retryAt = Infinity;
  /** Improvements to announce when the trigger delay is over. */
  #delayed = new Set<Dest>();
  #delayTimer: Timer | undefined;
  #timer: Timer | undefined;
  #nextDumpAt: number;
  #nextScanAt = 0;
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
    this.#sources = new SourceTable(2 * this.#maxDest);
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
    this.#retryTimer?.cancel();
    this.#retryTimer = undefined;
    this.#delayTimer?.cancel();
    this.#delayTimer = undefined;
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

  /** Number of destinations with a route (cheap: for convergence checks). */
  get routeCount(): number {
    return this.#selectedCount;
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
    const n: Neighbour = { sid: sid.slice(), key, cost, mtu, updateIntervalMs: this.updateIntervalMs, sentFull: new Map(), out: [], tokens: this.#bucketSize, tokensAt: this.#clock.now(), lastRouteRequestAt: -Infinity };
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
      unfull(d, n);
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
    const now = this.#clock.now();
    // Token bucket in TLVs: a full table dump per update interval (twice over), at least
    // TOKENS_MIN_PER_S. Packets are charged before they are looked at (a count of TLVs is
    // an upper bound from the length alone).
    const rate = Math.max(TOKENS_MIN_PER_S / 1000, this.#bucketSize / this.updateIntervalMs);
    n.tokens = Math.min(this.#bucketSize, n.tokens + (now - n.tokensAt) * rate);
    n.tokensAt = now;
    const cost = Math.max(1, Math.ceil((data.length - 2) / TLV_BYTES.refresh));
    if (n.tokens < cost) return this.#drop("route-rate");
    const unknown: Uint8Array[] = [];
    const w = walkRoutePacket(data, {
      update: (d, at) => {
        const r = at + UPDATE_AT.route;
        this.#onUpdate(n, d, at, d, at + UPDATE_AT.boot, readSeqno(d, r), readMetric(d, r), readHops(d, r), readMtu(d, r), now);
      },
      refresh: (d, at) => {
        // A refresh names a route this neighbour sent us in full before: the destination
        // with that prefix, and the source of our entry from it.
        const pk = bytesKeyAt(d, at, PREFIX_BYTES);
        const r = at + REFRESH_ROUTE_AT;
        const dest = this.#byPrefix.get(pk);
        const e = dest?.entries.get(n.key);
        if (dest && e) this.#onUpdate(n, dest.sid, 0, e.src.boot, 0, readSeqno(d, r), readMetric(d, r), readHops(d, r), readMtu(d, r), now);
        else if (!this.#selfPrefixes.has(pk) && readMetric(d, r) !== METRIC_INFINITY) unknown.push(d.slice(at, at + PREFIX_BYTES));
      },
      other: (t) => {
        if (t.kind === "seqno-request") this.#onSeqnoRequest(n, t, now);
        else this.#onRouteRequest(n, t.prefix);
      },
    });
    if (!w.ok) return this.#drop("route-malformed");
    n.tokens -= Math.max(1, w.tlvs);
    this.stats.packetsIn++;
    this.stats.bytesIn += data.length;
    n.updateIntervalMs = w.updateIntervalMs;
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

  /** An announcement of (the 32 bytes of `db` at `da`, the 8 of `bb` at `ba`): views are never kept, copies are made when needed. */
  #onUpdate(n: Neighbour, db: Uint8Array, da: number, bb: Uint8Array, ba: number, seqno: number, metric: number, hops: number, mtu: number, now: number): void {
    if (impossibleAnnouncement(db, da, bb, ba, metric, hops, mtu)) return this.#drop("route-impossible");
    const destKey = bytesKeyAt(db, da, 32);
    const bootKey = bytesKeyAt(bb, ba, BOOT_LEN);
    if (this.#self.has(destKey)) {
      // Our own SID coming back: normal. With our boot and a seqno we never used it is forged.
      if (metric !== METRIC_INFINITY && bootKey === this.#selfBootKey && seqnoNewer(seqno, this.#seqno)) this.#drop("route-impossible");
      return;
    }
    let d = this.#dests.get(destKey);
    if (!d) {
      if (metric === METRIC_INFINITY) return; // a retraction of something we do not know
      if (this.#dests.size >= this.#maxDest) return this.#drop("route-table-full");
      d = { sid: db.slice(da, da + 32), key: destKey, prefixKey: bytesKeyAt(db, da, PREFIX_BYTES), entries: new EntryList(), selected: undefined, view: undefined, announced: false, annSeqno: 0, annMetric: 0, annHops: 0, annMtu: 0, annBootKey: "", fullTo: [], fullBootKey: "", retractUntil: 0, retractBoot: undefined, retractSeqno: 0, requestedAt: -Infinity, requests: 0, betterAskedAt: -Infinity, askers: undefined };
      this.#dests.set(destKey, d);
      this.#countPrefix(d.prefixKey, 1);
      // A prefix two destinations share resolves to neither (refreshes for it are asked again in full).
      if (!this.#byPrefix.has(d.prefixKey) && this.#unique(d.prefixKey)) this.#byPrefix.set(d.prefixKey, d);
      else this.#byPrefix.delete(d.prefixKey);
    }
    let src: RouteSource | undefined;
    if (metric !== METRIC_INFINITY) {
      src = this.#sources.get(destKey, bootKey);
      if (!src) {
        if (this.#sources.full) {
          this.#maybeDelete(d);
          return this.#drop("route-table-full");
        }
        src = this.#sources.add(destKey, bootKey, bb, ba, BOOT_LEN, now);
      }
    }
    // Beyond the TTL: unusable, as a retraction.
    const m = hops + 1 > MAX_HOPS ? METRIC_INFINITY : metric;
    if (m === METRIC_INFINITY || !src) {
      if (d.entries.delete(n.key)) this.#select(d);
      this.#maybeDelete(d);
      return;
    }
    const e = d.entries.get(n.key);
    const expiresAt = now + 3.5 * n.updateIntervalMs;
    if (e && e.src === src && e.seqno === seqno && e.metric === m && e.hops === hops && e.mtu === mtu) {
      // A refresh of what we have (most of every periodic dump): nothing to reselect.
      e.expiresAt = expiresAt;
      src.usedAt = now;
      return;
    }
    if (e) {
      e.src = src;
      e.seqno = seqno;
      e.metric = m;
      e.hops = hops;
      e.mtu = mtu;
      e.expiresAt = expiresAt;
    } else {
      d.entries.set(n.key, { neighbour: n, src, seqno, metric: m, hops, mtu, expiresAt });
    }
    src.usedAt = now;
    this.#select(d);
  }

  /** Pick the route for `d` and announce what changed. */
  #select(d: Dest): void {
    const now = this.#clock.now();
    const { best, bestM, unfeasible, unfeasibleM } = selectRoute(d.entries, d.selected);
    d.selected = best;
    const old = d.view;
    const view: RouteView | undefined = best
      ? { dest: d.sid, nextHop: best.neighbour.sid, metric: routeMetric(best), hops: best.hops + 1, mtu: Math.min(best.mtu, best.neighbour.mtu), boot: best.src.boot, seqno: best.seqno }
      : undefined;
    d.view = view;
    if (!old !== !view) this.#selectedCount += view ? 1 : -1;
    if (!view) {
      if (old) {
        // Lost: retract at once (and in dumps for a while); ask for a newer seqno if only unfeasible routes remain.
        d.retractUntil = now + 2 * this.updateIntervalMs;
        d.retractBoot = old.boot;
        d.retractSeqno = old.seqno;
        d.announced = false;
        d.requests = 0;
        for (const n of this.#neighbours.values()) this.#queueRoute(n, d, true);
      }
      if (unfeasible) this.#requestSeqno(d, now);
    } else {
      d.retractUntil = 0;
      this.#starving.delete(d);
      if (!old || old.seqno !== view.seqno || old.boot !== view.boot) d.requests = 0;
      // A route better by a whole hop is known but unfeasible (our own FD holds it back): a
      // newer seqno from the origin makes it usable. Babel would stay on the worse route.
      if (unfeasibleM + LINK_COST_UNIT <= bestM && now - d.betterAskedAt >= this.updateIntervalMs) {
        d.betterAskedAt = now;
        const requests = d.requests;
        d.requests = 0;
        this.#requestSeqno(d, now);
        d.requests = requests;
      }
      if (d.askers) this.#answerAskers(d, now);
      const a = d.announced ? d : undefined;
      // Urgent: anything that is news or bad news (a new route or source, a longer or narrower
      // path). An improvement of a route neighbours already have can wait a moment
      // (TRIGGER_DELAY): while links come up, routes improve many times in a row, and one
      // announcement of the result replaces many. A new seqno alone goes to the neighbours
      // that asked for it (askers) at once and to the others with the next dump: announcing
      // every seqno change to everyone would flood the whole mesh for each one.
      const urgent = !a || a.annBootKey !== best!.src.bootKey || view.metric > a.annMetric + (a.annMetric >> 3) || view.hops > a.annHops || view.mtu < a.annMtu;
      const better = !urgent && (view.metric * 8 < a!.annMetric * 7 || view.hops < a!.annHops || view.mtu > a!.annMtu || (old !== undefined && old.nextHop !== view.nextHop));
      if (urgent) {
        this.#delayed.delete(d);
        for (const n of this.#neighbours.values()) this.#queueRoute(n, d, true);
      } else if (better) {
        // The neighbour the route used to go through had not heard of it (split horizon):
        // to it this is a new alternative, worth having at once should its own route fail.
        const was = old && old.nextHop !== view.nextHop ? this.#neighbours.get(bytesKey(old.nextHop)) : undefined;
        if (was) this.#queueRoute(was, d, false);
        this.#delay(d);
      }
    }
    if (!old !== !view || (old && view && (old.nextHop !== view.nextHop || old.hops !== view.hops || old.mtu !== view.mtu || old.boot !== view.boot))) {
      if (this.#o.log) this.#o.log("debug", view ? `routing: ${sidShort(d.sid)} via ${sidShort(view.nextHop)} (${view.hops} hops, metric ${view.metric}, seqno ${view.seqno})` : `routing: ${sidShort(d.sid)} unreachable${unfeasible ? " (only unfeasible routes left)" : ""}`);
      this.emit("route", d.sid, view);
    }
  }

  /** Delay before the next seqno request for `d`: doubling from min(1 s, hello) up to the update interval. */
  #retryDelay(d: Dest): number {
    const base = Math.min(1000, this.#o.helloIntervalMs);
    return Math.min(this.updateIntervalMs, base * 2 ** Math.max(0, d.requests - 1));
  }

  /** Ask for a newer seqno of `d`'s newest source (rate-limited per destination, with backoff). */
  #requestSeqno(d: Dest, now: number): void {
    if (d.requests > 0 && now - d.requestedAt < this.#retryDelay(d)) return;
    // Ask the neighbours holding routes from the newest source we know for it.
    let src: RouteSource | undefined;
    for (const e of d.entries.values()) if (!src || e.src.firstSeen > src.firstSeen) src = e.src;
    if (!src) return;
    let newest: number | undefined;
    let bestMetric = METRIC_INFINITY;
    for (const e of d.entries.values()) {
      if (e.src !== src) continue;
      if (newest === undefined || seqnoNewer(e.seqno, newest)) newest = e.seqno;
      bestMetric = Math.min(bestMetric, e.metric);
    }
    let seqno: number;
    if (src.fdSeqno === undefined || (newest !== undefined && seqnoNewer(newest, src.fdSeqno))) seqno = (newest! + 1) & 0xffff;
    // Some neighbour is closer than our feasibility distance but only lags behind its seqno
    // (new seqnos travel with the dumps): catching it up needs no new seqno from the origin.
    else if (bestMetric < src.fdMetric) seqno = src.fdSeqno;
    else seqno = (src.fdSeqno + 1) & 0xffff;
    d.requestedAt = now;
    d.requests++;
    this.#o.log?.("debug", `routing: asking for seqno ${seqno} of ${sidShort(d.sid)}`);
    for (const e of d.entries.values()) {
      if (e.src !== src) continue;
      e.neighbour.out.push({ kind: "seqno-request", dest: d.sid, boot: src.boot, seqno, hopCount: MAX_HOPS });
      this.stats.seqnoRequestsOut++;
    }
    if (!d.view) {
      this.#starving.add(d);
      this.#scheduleRetry(now + this.#retryDelay(d));
    }
  }

  /** Announce `d`'s improved route after TRIGGER_DELAY (collecting further changes meanwhile). */
  #delay(d: Dest): void {
    this.#delayed.add(d);
    if (this.#delayTimer || this.#stopped) return;
    this.#delayTimer = this.#clock.setTimeout(() => {
      this.#delayTimer = undefined;
      const list = [...this.#delayed];
      this.#delayed.clear();
      for (const x of list) {
        if (!x.view || this.#dests.get(x.key) !== x) continue;
        for (const n of this.#neighbours.values()) this.#queueRoute(n, x, true);
      }
      this.#flush();
    }, Math.min(TRIGGER_DELAY_MS, this.#o.helloIntervalMs / 10));
  }

  /** A timer for the next retry of a starving destination's request (the hello tick is too coarse). */
  #scheduleRetry(at: number): void {
    if (this.#stopped || (this.#retryTimer && this.#retryAt <= at)) return;
    this.#retryTimer?.cancel();
    this.#retryAt = at;
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#retryAt = Infinity;
      const now = this.#clock.now();
      let next = Infinity;
      for (const d of [...this.#starving]) {
        if (d.view || d.entries.size === 0 || this.#dests.get(d.key) !== d) {
          this.#starving.delete(d);
          continue;
        }
        this.#requestSeqno(d, now);
        next = Math.min(next, d.requestedAt + this.#retryDelay(d));
      }
      this.#flush();
      if (next < Infinity) this.#scheduleRetry(next);
    }, Math.max(0, at - this.#clock.now()));
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
      // At most one new seqno a second (a neighbour cannot make us burn through them); the
      // requester retries, and the current one is announced meanwhile.
      if (now - this.#lastSeqnoBump < Math.min(1000, this.#o.helloIntervalMs)) return this.#queueOwn(n, true);
      this.#lastSeqnoBump = now;
      this.#seqno = (this.#seqno + 1) & 0xffff;
      this.#o.log?.("debug", `routing: seqno ${this.#seqno} on request from ${sidShort(n.sid)}`);
      // To the one that asked (it passes it back along the request's path); everyone else with the next dump.
      this.#queueOwn(n, true);
      return;
    }
    const d = this.#dests.get(destKey);
    if (!d) return;
    const sel = d.selected;
    if (sel) {
      const newerSource = sel.src.bootKey !== bootKey && sel.src.firstSeen > (this.#sources.get(destKey, bootKey)?.firstSeen ?? Infinity);
      if (newerSource || (sel.src.bootKey === bootKey && !seqnoNewer(t.seqno, sel.seqno))) {
        if (sel.neighbour !== n) this.#queueRoute(n, d, true);
        return;
      }
    }
    // Remember who asked, so that the newer seqno goes back to it as soon as we have it.
    const askers = (d.askers ??= []);
    const i = askers.findIndex((x) => x.n === n);
    if (i >= 0) askers[i] = { n, seqno: t.seqno, at: now };
    else if (askers.length < MAX_ASKERS) askers.push({ n, seqno: t.seqno, at: now });
    if (sel) {
      if (t.hopCount > 1 && sel.neighbour !== n) {
        if (!this.#forwardedRequests.admit(destKey + bootKey + t.seqno, now)) return;
        sel.neighbour.out.push({ kind: "seqno-request", dest: d.sid, boot: t.boot, seqno: t.seqno, hopCount: t.hopCount - 1 });
        this.stats.seqnoRequestsOut++;
      }
    }
  }

  /** Give neighbours that asked for a newer seqno of `d` our route once it is new enough. */
  #answerAskers(d: Dest, now: number): void {
    const sel = d.selected;
    const left: NonNullable<Dest["askers"]> = [];
    for (const a of d.askers ?? []) {
      if (now - a.at > ASKER_HOLD_MS || !this.#neighbours.has(a.n.key)) continue;
      if (sel && sel.neighbour !== a.n && !seqnoNewer(a.seqno, sel.seqno)) this.#queueRoute(a.n, d, true);
      else left.push(a);
    }
    d.askers = left.length ? left : undefined;
  }

  #onRouteRequest(n: Neighbour, prefix: Uint8Array): void {
    if (prefix.every((b) => b === 0)) {
      n.sentFull.clear();
      for (const d of this.#dests.values()) unfull(d, n);
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
      unfull(d, n);
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
      if (triggered) {
        d.announced = true;
        d.annSeqno = v.seqno;
        d.annMetric = v.metric;
        d.annHops = v.hops;
        d.annMtu = v.mtu;
        d.annBootKey = sel.src.bootKey;
      }
      updateFd(sel.src, v.seqno, v.metric, this.#clock.now());
      // Split horizon: never announce a route to the neighbour it goes through. That
      // neighbour must still hear when it is gone (it may have kept ours as a fallback), so
      // a route that moved onto it is retracted towards it.
      if (sel.neighbour === n) {
        if (triggered && d.fullTo.includes(n)) this.#push(n, d, sel.src.boot, sel.src.bootKey, v.seqno, METRIC_INFINITY, 0, this.#ownMtu);
        return;
      }
      this.#push(n, d, sel.src.boot, sel.src.bootKey, v.seqno, v.metric, v.hops, v.mtu);
    } else if (d.retractBoot) {
      this.#push(n, d, d.retractBoot, bytesKey(d.retractBoot), d.retractSeqno, METRIC_INFINITY, 0, this.#ownMtu);
    }
  }

  #push(n: Neighbour, d: Dest, boot: Uint8Array, bootKey: string, seqno: number, metric: number, hops: number, mtu: number): void {
    if (d.fullBootKey !== bootKey) {
      // Another source: every neighbour gets it in full first.
      d.fullBootKey = bootKey;
      d.fullTo = [];
    }
    const told = d.fullTo.includes(n);
    const full = !told || !this.#unique(d.prefixKey);
    if (full) {
      if (metric === METRIC_INFINITY && !told) return; // never told it: nothing to retract
      if (!told) d.fullTo.push(n);
    }
    n.out.push(full ? { kind: "update", dest: d.sid, boot, seqno, metric, hops, mtu } : { kind: "refresh", prefix: d.sid.subarray(0, PREFIX_BYTES), seqno, metric, hops, mtu });
    // A retraction removes the receiver's entry, and a refresh can only renew an entry: announce in full next time.
    if (metric === METRIC_INFINITY) unfull(d, n);
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
    this.#starving.delete(d);
    this.#delayed.delete(d);
    this.#countPrefix(d.prefixKey, -1);
    if (this.#byPrefix.get(d.prefixKey) === d) this.#byPrefix.delete(d.prefixKey);
    else if (this.#unique(d.prefixKey)) {
      // The one left with this prefix is unambiguous again.
      for (const x of this.#dests.values()) if (x.prefixKey === d.prefixKey) this.#byPrefix.set(x.prefixKey, x);
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
    // Expiry is a backstop (withdrawals are explicit): a scan every half update interval is enough.
    const scan = now >= this.#nextScanAt;
    if (scan) this.#nextScanAt = now + this.updateIntervalMs / 2;
    for (const d of scan ? [...this.#dests.values()] : []) {
      let changed = false;
      for (const e of [...d.entries.values()]) {
        if (e.expiresAt <= now) {
          d.entries.delete(e.neighbour.key);
          changed = true;
        }
      }
      if (changed) this.#select(d);
      else if (!d.view && d.entries.size > 0) this.#requestSeqno(d, now);
      this.#maybeDelete(d);
    }
    // Sources not used for a while (no route refers to them): their FD may go.
    if (scan)
      this.#sources.sweep(now, 8 * this.updateIntervalMs, (s) => {
        const d = this.#dests.get(s.destKey);
        return d !== undefined && d.entries.values().some((e) => e.src === s);
      });
    this.#forwardedRequests.prune(now);
    if (now >= this.#nextDumpAt) {
      this.#nextDumpAt = now + this.updateIntervalMs * (0.9 + 0.2 * this.#random());
      for (const n of this.#neighbours.values()) this.#dumpTo(n);
    }
    this.#flush();
    this.#schedule();
  }
}

/** `n` no longer has our full UPDATE of `d` (it must get one before REFRESHes again). */
function unfull(d: Dest, n: Neighbour): void {
  const i = d.fullTo.indexOf(n);
  if (i >= 0) {
    d.fullTo[i] = d.fullTo[d.fullTo.length - 1]!;
    d.fullTo.pop();
  }
}
