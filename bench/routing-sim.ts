/**
 * In-process scale simulation of the routing protocol (src/node/router.ts): N routers in a
 * random geometric graph (nodes uniform in a unit square, linked when closer than a radius
 * chosen for the wanted mean degree; re-drawn until connected), ROUTE packets carried with
 * a per-packet latency on a simulated clock (an event heap, so 1,000 nodes run in
 * seconds). Links come up at a random moment within the first hello interval (as the first
 * hello exchange would bring them up). Measured:
 *   - convergence: time until every node has a route to every other node, in hello
 *     intervals, and whether all routes then have the shortest hop count;
 *   - routing traffic in steady state: ROUTE bytes per node per second on the wire (plaintext
 *     + the sealed header and tag + UDP/IPv4 headers), over several update intervals;
 *   - memory: JS heap per route (with --expose-gc), whole table per node.
 * Exported for bench/routing.ts; `node --expose-gc --import tsx bench/routing-sim.ts N` runs one.
 */

import type { Clock, Timer } from "../src/clock.ts";
import { SeededRandom } from "../test/helpers/seeded-random.ts";
import { MAX_HOPS } from "../src/node/impossible-announcement.ts";
import { Router } from "../src/node/router.ts";
import { encodeRoutePacket } from "../src/node/route-packet.ts";
import { bytesKey } from "../src/node/bytes-key.ts";

/** Bytes around each ROUTE plaintext on the wire: sealed header (92) and tag (16), UDP (8) and IPv4 (20). */
export const WIRE_OVERHEAD = 92 + 16 + 8 + 20;

/** A clock over a binary heap of timers (ManualClock scans a list: too slow for a million events). */
export class HeapClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: { at: number; seq: number; fn: () => void; dead: boolean }[] = [];

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const e = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, dead: false };
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
    return { cancel: () => void (e.dead = true) };
  }

  /** Run every timer due up to `t`, in order. */
  runUntil(t: number): void {
    const h = this.#heap;
    while (h.length && h[0]!.at <= t) {
      const e = h[0]!;
      const last = h.pop()!;
      if (h.length) {
        h[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < h.length && less(h[l]!, h[m]!)) m = l;
          if (r < h.length && less(h[r]!, h[m]!)) m = r;
          if (m === i) break;
          [h[m], h[i]] = [h[i]!, h[m]!];
          i = m;
        }
      }
      this.#now = e.at;
      if (!e.dead) e.fn();
    }
    this.#now = Math.max(this.#now, t);
  }
}

function less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface SimResult {
  nodes: number;
  links: number;
  meanDegree: number;
  diameter: number;
  helloMs: number;
  updateMs: number;
  /** Time from the first link coming up until every node had a route to every other, ms (NaN: never). */
  convergeMs: number;
  convergeHellos: number;
  shortest: boolean;
  /** Routes (of all pairs) that are not shortest in hops at the end, and their mean excess hops. */
  longer: number;
  meanExtraHops: number;
  /** ROUTE bytes on the wire per node per second, steady state. */
  steadyBytesPerNodePerS: number;
  /** The same from the start until convergence. */
  startBytesPerNodePerS: number;
  /** Hellos on the wire per node per second (request and reply on every link each interval; computed). */
  helloBytesPerNodePerS: number;
  heapPerRouteBytes: number;
  routesPerNode: number;
  /** Pairs further apart than 31 hops (no route by design). */
  beyondTtl: number;
  wallMs: number;
}

/** Sizes of the sealed HELLO on the wire: 92 + 24 + 16 + 8 + 20. */
const HELLO_WIRE = 92 + 24 + 16 + 8 + 20;

export function simulate(n: number, meanDegree: number, helloMs = 5000, seed = 1, measureIntervals = 3): SimResult {
  const wall = performance.now();
  const rng = new SeededRandom(seed);
  // A connected random geometric graph.
  let pos: [number, number][] = [];
  let adj: number[][] = [];
  for (let attempt = 0; attempt < 200; attempt++) {
    pos = Array.from({ length: n }, () => [rng.next(), rng.next()]);
    const r = Math.sqrt(meanDegree / (Math.PI * n));
    adj = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = pos[i]![0] - pos[j]![0];
        const dy = pos[i]![1] - pos[j]![1];
        if (dx * dx + dy * dy <= r * r) {
          adj[i]!.push(j);
          adj[j]!.push(i);
        }
      }
    }
    if (bfs(adj, 0).every((d) => d >= 0)) break;
    if (attempt === 199) throw new Error("no connected graph drawn");
  }
  const links = adj.reduce((s, a) => s + a.length, 0) / 2;
  const dist = adj.map((_, i) => bfs(adj, i));
  const diameter = Math.max(...dist.map((d) => Math.max(...d)));

  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const clock = new HeapClock();
  let bytes = 0;
  const sids = Array.from({ length: n }, (_, i) => {
    const s = rng.bytes(32);
    s[31] = i & 0xff;
    return s;
  });
  const index = new Map(sids.map((s, i) => [bytesKey(s), i]));
  const routers: Router[] = [];
  for (let i = 0; i < n; i++) {
    const boot = rng.bytes(8);
    boot[0]! |= 1;
    routers.push(
      new Router({
        clock,
        selfSids: [sids[i]!],
        selfBoot: boot,
        helloIntervalMs: helloMs,
        random: () => rng.next(),
        transmit: (to, packets) => {
          const j = index.get(bytesKey(to))!;
          for (const p of packets) {
            bytes += p.length + WIRE_OVERHEAD;
            // 1-5 ms per packet: a radio hop with some queueing.
            clock.setTimeout(() => routers[j]!.receive(sids[i]!, p), 1 + rng.next() * 4);
          }
        },
      }),
    );
  }
  for (const r of routers) r.start();
  // Each link comes up once within the first hello interval (both ends at once).
  for (let i = 0; i < n; i++) {
    for (const j of adj[i]!) {
      if (j < i) continue;
      clock.setTimeout(() => {
        routers[i]!.neighbourUp(sids[j]!, 256, 1160);
        routers[j]!.neighbourUp(sids[i]!, 256, 1160);
      }, rng.next() * helloMs);
    }
  }
  // Pairs further apart than MDP's TTL (31 hops) get no route, by design.
  let want = 0;
  for (const d of dist) for (const x of d) if (x > 0 && x <= MAX_HOPS) want++;
  let convergeMs = NaN;
  const step = Math.max(5, helloMs / 200);
  const updateMs = routers[0]!.updateIntervalMs;
  const progress = (what: string) => process.stderr.write(`routing-sim ${n}: ${what} at ${fmtS(clock.now())} simulated, ${fmtS(performance.now() - wall)} wall, ${Math.round(bytes / 1e6)} MB sent\n`);
  let nextProgress = performance.now() + 10_000;
  for (let t = step; t <= 40 * helloMs; t += step) {
    clock.runUntil(t);
    let have = 0;
    for (const r of routers) have += r.routeCount;
    if (performance.now() > nextProgress) {
      nextProgress += 10_000;
      progress(`converging (${have} of ${want} routes)`);
    }
    if (have === want) {
      convergeMs = t;
      break;
    }
  }
  // Convergence traffic: everything sent until then.
  const startBytes = bytes / n / (clock.now() / 1000);
  // Steady state: once every node has done its first periodic dump (at 0.5-1 update
  // intervals), count `measureIntervals` update intervals.
  clock.runUntil(Math.max(clock.now(), 1.2 * updateMs));
  progress("converged; measuring the steady state");
  const b0 = bytes;
  const t0 = clock.now();
  clock.runUntil(t0 + measureIntervals * updateMs);
  progress("measured");
  const steady = (bytes - b0) / n / ((clock.now() - t0) / 1000);
  let longer = 0;
  let extraHops = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const r = routers[i]!.route(sids[j]!);
      if (dist[i]![j]! > MAX_HOPS ? r !== undefined : !r || r.hops !== dist[i]![j]) {
        longer++;
        if (r) extraHops += r.hops - dist[i]![j]!;
      }
    }
  }
  const shortest = longer === 0;
  gc?.();
  const heap1 = process.memoryUsage().heapUsed;
  let entries = 0;
  for (const r of routers) entries += r.size.destinations;
  const meanDeg = (2 * links) / n;
  const result: SimResult = {
    nodes: n,
    links,
    meanDegree: meanDeg,
    diameter,
    helloMs,
    updateMs,
    convergeMs,
    convergeHellos: convergeMs / helloMs,
    shortest,
    longer,
    meanExtraHops: longer ? extraHops / longer : 0,
    steadyBytesPerNodePerS: steady,
    startBytesPerNodePerS: startBytes,
    helloBytesPerNodePerS: (2 * HELLO_WIRE * meanDeg) / (helloMs / 1000),
    heapPerRouteBytes: gc ? (heap1 - heap0) / entries : NaN,
    routesPerNode: entries / n,
    beyondTtl: n * (n - 1) - want,
    wallMs: performance.now() - wall,
  };
  for (const r of routers) r.stop();
  return result;
}

function fmtS(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function bfs(adj: number[][], s: number): number[] {
  const d = new Array<number>(adj.length).fill(-1);
  d[s] = 0;
  const q = [s];
  for (let k = 0; k < q.length; k++) {
    const x = q[k]!;
    for (const y of adj[x]!) {
      if (d[y] === -1) {
        d[y] = d[x]! + 1;
        q.push(y);
      }
    }
  }
  return d;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 100);
  process.stdout.write(JSON.stringify(simulate(n, Number(process.argv[3] ?? 8), Number(process.argv[4] ?? 5000)), null, 2) + "\n");
}

/**
 * Memory of one router's table: `neighbours` neighbours each announce the same `dests`
 * destinations (so every destination has that many alternatives, as in a mesh of that
 * degree). Returns JS heap bytes per destination (needs --expose-gc; NaN without).
 */
export function memoryPerRoute(dests: number, neighbours: number): { bytesPerDestination: number; routes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return { bytesPerDestination: NaN, routes: 0 };
  const rng = new SeededRandom(7);
  const clock = new HeapClock();
  const sids = Array.from({ length: dests }, () => rng.bytes(32));
  const boots = Array.from({ length: dests }, () => rng.bytes(8).map((b) => b | 1));
  const nsids = Array.from({ length: neighbours }, () => rng.bytes(32));
  const packets = nsids.map((_, k) => {
    const out: Uint8Array[] = [];
    for (let i = 0; i < dests; i += 20) {
      const tlvs = [];
      for (let j = i; j < Math.min(dests, i + 20); j++) tlvs.push({ kind: "update" as const, dest: sids[j]!, boot: boots[j]!, seqno: 1, metric: 256 * (2 + k), hops: 2, mtu: 1160 });
      out.push(encodeRoutePacket({ updateIntervalMs: 20_000, tlvs }));
    }
    return out;
  });
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const r = new Router({ clock, selfSids: [rng.bytes(32)], selfBoot: rng.bytes(8).map((b) => b | 1), helloIntervalMs: 5000, transmit: () => {}, maxDestinations: dests + 10 });
  for (const n of nsids) r.neighbourUp(n, 256, 1160);
  for (let k = 0; k < neighbours; k++) for (const p of packets[k]!) r.receive(nsids[k]!, p);
  gc();
  const h1 = process.memoryUsage().heapUsed;
  const routes = r.routeCount;
  r.stop();
  return { bytesPerDestination: (h1 - h0) / dests, routes };
}
