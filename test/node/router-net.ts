/**
 * An in-process network of `Router`s for tests and the scale benchmark: ROUTE packets go
 * through a queue (optionally lossy, seeded) between nodes joined by links with a cost; a
 * ManualClock drives the timers. `checkLoops()` follows every node's next hops to every
 * destination and throws on a cycle; `deliver()` can run it after every single packet.
 */

import { ManualClock } from "../../src/clock.ts";
import { SeededRandom } from "../helpers/seeded-random.ts";
import type { Sid } from "../../src/mesh/sid.ts";
import { bytesKey } from "../../src/node/bytes-key.ts";
import { Router } from "../../src/node/router.ts";
import type { RouteDropReason } from "../../src/node/route-drop-reasons.ts";

export interface SimNode {
  name: string;
  sid: Sid;
  key: string;
  boot: Uint8Array;
  router: Router;
  drops: Partial<Record<RouteDropReason, number>>;
}

interface Packet {
  from: SimNode;
  to: SimNode;
  data: Uint8Array;
}

export interface RouterNetOptions {
  helloIntervalMs?: number;
  seed?: number;
  /** Probability that a packet is lost. */
  loss?: number;
  maxDestinations?: number;
  /** Give every node a SID with the same first 8 bytes (refreshes by prefix must not be used then). */
  sharedPrefix?: boolean;
}

export class RouterNet {
  readonly clock = new ManualClock();
  readonly nodes = new Map<string, SimNode>();
  readonly bySid = new Map<string, SimNode>();
  readonly links = new Map<string, { cost: number; mtu: number }>();
  readonly rng: SeededRandom;
  queue: Packet[] = [];
  loss: number;
  delivered = 0;
  bytes = 0;
  #o: RouterNetOptions;
  #sidSeq = 0;

  constructor(options: RouterNetOptions = {}) {
    this.#o = options;
    this.rng = new SeededRandom(options.seed ?? 1);
    this.loss = options.loss ?? 0;
  }

  get helloIntervalMs(): number {
    return this.#o.helloIntervalMs ?? 1000;
  }

  /** A node; `sid` is derived from a counter (routing never looks inside SIDs). */
  add(name: string, sid?: Sid): SimNode {
    const s = sid ?? fakeSid(++this.#sidSeq, this.#o.sharedPrefix);
    const boot = this.rng.bytes(8);
    boot[0] = boot[0]! | 1;
    const node: SimNode = { name, sid: s, key: bytesKey(s), boot, router: undefined as unknown as Router, drops: {} };
    node.router = new Router({
      clock: this.clock,
      selfSids: [s],
      selfBoot: boot,
      helloIntervalMs: this.helloIntervalMs,
      transmit: (to, packets) => {
        const peer = this.bySid.get(bytesKey(to));
        if (!peer) return;
        for (const data of packets) this.queue.push({ from: node, to: peer, data });
      },
      countDrop: (r) => (node.drops[r] = (node.drops[r] ?? 0) + 1),
      random: () => this.rng.next(),
      ...(this.#o.maxDestinations !== undefined ? { maxDestinations: this.#o.maxDestinations } : {}),
    });
    this.nodes.set(name, node);
    this.bySid.set(node.key, node);
    node.router.start();
    return node;
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  linkKey(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  link(a: string, b: string, cost = 256, mtu = 1160): void {
    this.links.set(this.linkKey(a, b), { cost, mtu });
    this.node(a).router.neighbourUp(this.node(b).sid, cost, mtu);
    this.node(b).router.neighbourUp(this.node(a).sid, cost, mtu);
  }

  setCost(a: string, b: string, cost: number): void {
    const l = this.links.get(this.linkKey(a, b));
    if (!l) throw new Error(`no link ${a}-${b}`);
    l.cost = cost;
    this.node(a).router.neighbourChanged(this.node(b).sid, cost, l.mtu);
    this.node(b).router.neighbourChanged(this.node(a).sid, cost, l.mtu);
  }

  cut(a: string, b: string): void {
    if (!this.links.delete(this.linkKey(a, b))) return;
    this.node(a).router.neighbourDown(this.node(b).sid);
    this.node(b).router.neighbourDown(this.node(a).sid);
  }

  /** Remove a node as if it crashed: its neighbours notice (as the peer timeout would). */
  kill(name: string): void {
    const n = this.node(name);
    for (const k of [...this.links.keys()]) {
      const [a, b] = k.split("|") as [string, string];
      if (a === name || b === name) {
        this.links.delete(k);
        this.node(a === name ? b : a).router.neighbourDown(n.sid);
      }
    }
    n.router.stop();
    this.nodes.delete(name);
    this.bySid.delete(n.key);
    this.queue = this.queue.filter((p) => p.from !== n && p.to !== n);
  }

  /** Restart a killed node with the same SID and a new boot. */
  restart(name: string, sid: Sid): SimNode {
    return this.add(name, sid);
  }

  neighboursOf(name: string): string[] {
    const out: string[] = [];
    for (const k of this.links.keys()) {
      const [a, b] = k.split("|") as [string, string];
      if (a === name) out.push(b);
      else if (b === name) out.push(a);
    }
    return out;
  }

  /**
   * Deliver queued packets (those sent meanwhile too) until none is left (throws when that
   * takes over a million) or, with `max`, at most that many; with `checkEach`, loop-freedom is checked after every packet. Returns the number delivered.
   */
  deliver(options: { max?: number; checkEach?: boolean } = {}): number {
    const max = options.max ?? 1_000_000;
    let n = 0;
    while (this.queue.length && n < max) {
      const p = this.queue.shift()!;
      n++;
      if (!this.nodes.has(p.to.name) || this.nodes.get(p.to.name) !== p.to) continue;
      if (!this.links.has(this.linkKey(p.from.name, p.to.name))) continue;
      if (this.loss > 0 && this.rng.next() < this.loss) continue;
      this.delivered++;
      this.bytes += p.data.length;
      p.to.router.receive(p.from.sid, p.data);
      if (options.checkEach) this.checkLoops();
    }
    if (options.max === undefined && this.queue.length && n >= max) throw new Error(`network did not settle within ${max} packets`);
    return n;
  }

  /** Advance time in steps of `stepMs`, delivering everything after each step. */
  run(ms: number, stepMs = 100, checkEach = false): void {
    for (let t = 0; t < ms; t += stepMs) {
      this.clock.advance(stepMs);
      this.deliver({ checkEach });
    }
  }

  /** Throws when some node's next hops towards some destination form a cycle. */
  checkLoops(): void {
    const nodes = [...this.nodes.values()];
    const index = new Map<string, number>();
    nodes.forEach((n, i) => index.set(n.key, i));
    const next = new Int32Array(nodes.length);
    const state = new Uint8Array(nodes.length);
    for (const dest of nodes) {
      for (let i = 0; i < nodes.length; i++) {
        const r = nodes[i] === dest ? undefined : nodes[i]!.router.route(dest.sid);
        next[i] = r ? (index.get(bytesKey(r.nextHop)) ?? -1) : -1;
      }
      state.fill(0); // 0 new, 1 on the current walk, 2 known to end
      for (let s = 0; s < nodes.length; s++) {
        let i = s;
        while (i >= 0 && state[i] === 0) {
          state[i] = 1;
          i = next[i]!;
        }
        if (i >= 0 && state[i] === 1) {
          const cycle = [nodes[i]!.name];
          for (let j = next[i]!; j !== i; j = next[j]!) cycle.push(nodes[j]!.name);
          throw new Error(`routing loop towards ${dest.name}: ${cycle.join(" -> ")} -> ${nodes[i]!.name}`);
        }
        for (let j = s; j >= 0 && state[j] === 1; j = next[j]!) state[j] = 2;
      }
    }
  }

  /** Hop distances from `from` over the current links (BFS). */
  hopDistances(from: string): Map<string, number> {
    const dist = new Map<string, number>([[from, 0]]);
    const q = [from];
    while (q.length) {
      const x = q.shift()!;
      for (const y of this.neighboursOf(x)) {
        if (!dist.has(y)) {
          dist.set(y, dist.get(x)! + 1);
          q.push(y);
        }
      }
    }
    return dist;
  }

  /** Every node has a shortest-hop route to every node it is connected to, and none to the others. Returns problems. */
  convergenceProblems(): string[] {
    const problems: string[] = [];
    for (const a of this.nodes.values()) {
      const dist = this.hopDistances(a.name);
      for (const b of this.nodes.values()) {
        if (a === b) continue;
        const r = a.router.route(b.sid);
        const d = dist.get(b.name);
        if (d === undefined) {
          if (r) problems.push(`${a.name} still routes to unreachable ${b.name}`);
        } else if (!r) problems.push(`${a.name} has no route to ${b.name}`);
        else if (r.hops !== d) problems.push(`${a.name} -> ${b.name}: ${r.hops} hops, shortest ${d}`);
      }
    }
    return problems;
  }
}

/** A SID made from a counter; with `sharedPrefix`, every such SID has the same first 8 bytes. */
export function fakeSid(n: number, sharedPrefix = false): Sid {
  const s = new Uint8Array(32);
  s[sharedPrefix ? 8 : 0] = 0x5a;
  new DataView(s.buffer).setUint32(sharedPrefix ? 28 : 4, n);
  return s;
}
