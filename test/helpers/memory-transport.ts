/**
 * An in-memory MDP network: several nodes (each an `MdpTransport`) exchanging datagrams
 * within one program. Tests and benchmarks run MSP, listen, connect and socks on it.
 *
 * - Ports: `bind(0)` allocates the lowest free port from 256 up; a taken port is refused
 *   unless every binding asked for REUSE. A datagram to a port nobody bound is dropped
 *   without an answer (as servald does).
 * - Reachability: every node reaches every other node until `cut(a, b)`; `reachability()`
 *   answers from that (or "unknown" for nodes created with `reachability: "unknown"`, to
 *   mimic a backend that cannot tell).
 * - Broadcast: a datagram to the all-0xFF SID reaches every other reachable node bound on
 *   that port; receivers see the broadcast address as `to`.
 * - Faults: each direction of a link with conditions is a `LinkModel` (link-model.ts: loss,
 *   burst loss, duplication, reordering, delay, jitter, a rate), seeded from the network's
 *   seed; a perfect link skips the model. A `filter` hook sees every datagram (and may drop
 *   it) for scripted tests.
 * - Time: with an injected `clock` every delivery, even with zero delay, is a timer on that
 *   clock, so a `ManualClock` decides exactly when datagrams arrive. Without one, zero-delay
 *   datagrams are delivered from a microtask queue (yielding to the event loop every few
 *   milliseconds of continuous traffic) and delayed ones from real timers.
 *
 * Payloads are copied on `send()` (the sender may reuse its buffer, as with a real socket);
 * receivers must treat the bytes they get as read-only.
 */

import type { Clock } from "../../src/clock.ts";
import { systemClock } from "../../src/clock.ts";
import { Emitter } from "../../src/emitter.ts";
import { SvpError } from "../../src/errors.ts";
import type { Sid } from "../../src/mesh/sid.ts";
import { SID_BYTES, isSidAny, isSidBroadcast, sidEquals, sidShort, sidToHex } from "../../src/mesh/sid.ts";
import { MDP_MTU } from "../../src/mdp/header.ts";
import { SeededRandom } from "./seeded-random.ts";
import { checkLinkParams, LinkModel, type LinkParams } from "./link-model.ts";
import type {
  MdpAddress,
  MdpBindOptions,
  MdpSendOptions,
  MdpSocket,
  MdpSocketEvents,
  MdpTransport,
  MdpTransportEvents,
  Reachability,
} from "../../src/mdp/transport.ts";

/**
 * What one direction of a link does: `LinkParams` of link-model.ts (loss, duplicate, reorder,
 * delayMs, jitterMs, burstLoss, rateBytesPerSec, queueLimit; all off by default), with the
 * hold-back of a reordered datagram named `reorderDelayMs` and defaulting to
 * 2 × (delayMs + jitterMs) + 1 ms, so that it always overtakes. The seed comes from the
 * network's, and what a link holds is unbounded.
 */
export interface LinkConditions extends Omit<LinkParams, "seed" | "reorderExtraMs" | "maxHeld" | "maxHeldBytes"> {
  /** Extra delay of a reordered datagram, ms. Default 2 × (delayMs + jitterMs) + 1. */
  reorderDelayMs?: number;
}

/** What the `filter` hook sees for every datagram sent. */
export interface MemoryDatagram {
  from: MdpAddress;
  to: MdpAddress;
  /** The bytes as sent (read-only). */
  payload: Uint8Array;
  /** `clock.now()` at send time. */
  at: number;
}

export interface MemoryMdpNetworkOptions {
  /** Clock for delays; when given, every delivery is a timer on it (see the module doc). */
  clock?: Clock;
  /** Seed for loss/duplication/delay decisions and generated SIDs. Default 1. */
  seed?: number;
  /** Conditions on every link unless overridden with `setConditions(c, from, to)`. Default: perfect. */
  conditions?: LinkConditions;
  /** Largest payload, bytes. Default 1160 (servald's MDP MTU). */
  mtu?: number;
  /** Whether MSP over these nodes uses svp's extension by default (`MdpTransport.mspExtension`). Default false. */
  mspExtension?: boolean;
}

export interface MemoryNodeOptions {
  /** The node's SID. Default: 32 bytes from the network's seeded RNG. */
  sid?: Sid;
  /** "auto" (default) answers reachability from the network; "unknown" always says "unknown". */
  reachability?: "auto" | "unknown";
}

/** Datagram counters of the whole network. */
export interface MemoryNetworkStats {
  /** Datagrams handed to `send()`. */
  sent: number;
  /** Datagrams handed to a bound socket (a broadcast counts once per receiver). */
  delivered: number;
  /** Dropped by simulated loss (or at a full bottleneck queue, with a rate). */
  lost: number;
  /** Extra copies made by simulated duplication. */
  duplicated: number;
  /** Dropped by the `filter` hook. */
  filtered: number;
  /** Arrived at a port nobody bound. */
  unbound: number;
  /** Addressed to an unknown, cut-off or closed node. */
  unreachable: number;
  /** Payload larger than the MTU. */
  oversize: number;
  /** Sent on a closed socket. */
  closedSocket: number;
}

/** Where a datagram goes: the tag a link model carries with it. */
interface Route {
  node: MemoryMdpTransport;
  from: MdpAddress;
  to: MdpAddress;
}

interface Delivery extends Route {
  payload: Uint8Array;
}

/** Link models hold whatever is sent: the network never dropped for want of room. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** Continuous zero-delay delivery yields to the event loop after this long. */
const YIELD_AFTER_MS = 8;

/** Run `fn` after pending I/O: setImmediate where the runtime has it (Node, Deno), else a 0 ms timer. */
const nextTurn: (fn: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === "function"
    ? (fn) => void (globalThis as unknown as { setImmediate: (f: () => void) => unknown }).setImmediate(fn)
    : (fn) => void systemClock.setTimeout(fn, 0);

/** Copies of small payloads are cut from shared slabs: one allocation per slab, not per datagram. */
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_COPY = 2048;

export class MemoryMdpNetwork {
  readonly mtu: number;
  readonly mspExtension: boolean;
  readonly stats: MemoryNetworkStats = {
    sent: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    filtered: 0,
    unbound: 0,
    unreachable: 0,
    oversize: 0,
    closedSocket: 0,
  };
  /** Sees every datagram before the link conditions apply; return false to drop it. */
  filter: ((d: MemoryDatagram) => boolean | void) | undefined;

  readonly #clock: Clock | undefined;
  readonly #seed: number;
  readonly #rng: SeededRandom;
  readonly #nodes: MemoryMdpTransport[] = [];
  readonly #byHex = new Map<string, MemoryMdpTransport>();
  readonly #bySidObject = new WeakMap<Sid, MemoryMdpTransport>();
  #conditions: LinkConditions;
  readonly #linkConditions = new Map<string, LinkConditions>();
  /** The model of each direction ("from>to" SID hex) in use; null: the link is perfect. */
  readonly #models = new Map<string, LinkModel<Route> | null>();
  /** Every model not yet closed, including those replaced by new conditions that still hold datagrams. */
  #liveModels: LinkModel<Route>[] = [];
  #modelCount = 0;
  /** True while a model's `offer()` runs: what it delivers then still goes through `#schedule`. */
  #offering = false;
  readonly #cuts = new Set<string>();
  // Zero-delay delivery queue (no injected clock).
  #queue: (Delivery | undefined)[] = [];
  #queueHead = 0;
  #drainScheduled = false;
  #chainStart = -1;
  #slab = new Uint8Array(0);
  #slabOffset = 0;

  constructor(options: MemoryMdpNetworkOptions = {}) {
    this.#clock = options.clock;
    this.#seed = options.seed ?? 1;
    this.#rng = new SeededRandom(this.#seed);
    this.#conditions = checkConditions(options.conditions ?? {});
    this.mtu = options.mtu ?? MDP_MTU;
    this.mspExtension = options.mspExtension ?? false;
  }

  /** Add a node; its transport is live at once. */
  addNode(options: MemoryNodeOptions = {}): MemoryMdpTransport {
    const sid = options.sid ?? this.#rng.bytes(SID_BYTES);
    if (sid.length !== SID_BYTES || isSidAny(sid) || isSidBroadcast(sid)) throw new SvpError("ERR_BAD_ADDRESS", "a node SID must be 32 bytes, not all-zero or all-0xFF");
    const hex = sidToHex(sid);
    if (this.#byHex.has(hex)) throw new SvpError("ERR_BAD_ADDRESS", `node ${sidShort(sid)} already exists`);
    const node = new MemoryMdpTransport(this, sid, options.reachability ?? "auto", (n) => this.#removeNode(n));
    this.#nodes.push(node);
    this.#byHex.set(hex, node);
    this.#bySidObject.set(node.localSid, node);
    return node;
  }

  get nodes(): readonly MemoryMdpTransport[] {
    return this.#nodes;
  }

  /**
   * Set link conditions: for every link (no SIDs), or for the one direction `from` → `to`.
   * Pass `undefined` as conditions with SIDs to drop a per-link override.
   */
  setConditions(conditions: LinkConditions | undefined, from?: Sid, to?: Sid): void {
    if (from === undefined || to === undefined) {
      this.#conditions = checkConditions(conditions ?? {});
    } else {
      const key = `${sidToHex(from)}>${sidToHex(to)}`;
      if (conditions === undefined) this.#linkConditions.delete(key);
      else this.#linkConditions.set(key, checkConditions(conditions));
    }
    // New datagrams get new models; the old ones still deliver what they hold.
    this.#models.clear();
    this.#liveModels = this.#liveModels.filter((m) => {
      if (m.stats().held > 0) return true;
      m.close();
      return false;
    });
  }

  /** Make `a` and `b` unreachable from each other (both directions). */
  cut(a: Sid, b: Sid): void {
    this.#cuts.add(pairKey(a, b));
  }

  /** Undo `cut(a, b)`. */
  mend(a: Sid, b: Sid): void {
    this.#cuts.delete(pairKey(a, b));
  }

  /** Close every node, and discard what the links still hold. */
  close(): void {
    for (const n of [...this.#nodes]) n.close();
    for (const m of this.#liveModels) m.close();
    this.#liveModels = [];
    this.#models.clear();
  }

  /** @internal */
  isReachable(from: MemoryMdpTransport, sid: Sid): boolean {
    const to = this.#lookup(sid);
    if (!to) return false;
    return to === from || this.#cuts.size === 0 || !this.#cuts.has(pairKey(from.localSid, to.localSid));
  }

  /** @internal Called by sockets. */
  send(node: MemoryMdpTransport, from: MdpAddress, to: MdpAddress, payload: Uint8Array): void {
    const s = this.stats;
    s.sent++;
    if (payload.length > this.mtu) {
      s.oversize++;
      return;
    }
    if (this.filter) {
      let keep: boolean | void;
      try {
        keep = this.filter({ from, to, payload, at: this.#now() });
      } catch {
        keep = false;
      }
      if (keep === false) {
        s.filtered++;
        return;
      }
    }
    if (isSidBroadcast(to.sid)) {
      for (const target of this.#nodes) {
        if (target === node || !this.isReachable(node, target.localSid)) continue;
        this.#transmit(node, target, from, to, payload);
      }
      return;
    }
    const target = this.#lookup(to.sid);
    if (!target || !this.isReachable(node, target.localSid)) {
      s.unreachable++;
      return;
    }
    this.#transmit(node, target, from, to, payload);
  }

  #transmit(source: MemoryMdpTransport, target: MemoryMdpTransport, from: MdpAddress, to: MdpAddress, payload: Uint8Array): void {
    const model = this.#linkConditions.size === 0 && isPerfect(this.#conditions) ? null : this.#model(source, target);
    if (!model) {
      this.#schedule({ node: target, from, to, payload: this.#copy(payload) });
      return;
    }
    const before = model.stats();
    this.#offering = true;
    try {
      model.offer(this.#copy(payload), { node: target, from, to });
    } finally {
      this.#offering = false;
    }
    const after = model.stats();
    this.stats.lost += after.lost - before.lost + after.queueDrops - before.queueDrops;
    this.stats.duplicated += after.duplicated - before.duplicated;
  }

  /** The model of the direction `source` → `target`, made on first use; null for a perfect link. */
  #model(source: MemoryMdpTransport, target: MemoryMdpTransport): LinkModel<Route> | null {
    const key = `${sidToHex(source.localSid)}>${sidToHex(target.localSid)}`;
    let model = this.#models.get(key);
    if (model !== undefined) return model;
    const c = this.#linkConditions.get(key) ?? this.#conditions;
    // Each model draws from its own generator, seeded from the network's seed and the model's number.
    const seed = (Math.imul(0x9e3779b9, ++this.#modelCount) + this.#seed) >>> 0;
    model = isPerfect(c) ? null : new LinkModel<Route>(linkParams(c, seed), this.#clock ?? systemClock, this.#arrive);
    if (model) this.#liveModels.push(model);
    this.#models.set(key, model);
    return model;
  }

  /** A copy left a link model: inside `offer()` it still waits its turn (a timer or the queue). */
  readonly #arrive = (payload: Uint8Array, route: Route): void => {
    const d: Delivery = { node: route.node, from: route.from, to: route.to, payload };
    if (this.#offering) this.#schedule(d);
    else this.#deliver(d);
  };

  #copy(payload: Uint8Array): Uint8Array {
    const n = payload.length;
    if (n > SLAB_MAX_COPY) return payload.slice();
    if (this.#slabOffset + n > this.#slab.length) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#slabOffset = 0;
    }
    const out = this.#slab.subarray(this.#slabOffset, this.#slabOffset + n);
    out.set(payload);
    this.#slabOffset = (this.#slabOffset + n + 7) & ~7;
    return out;
  }

  /** Deliver `d` soon: a zero-delay timer on the injected clock, else from the microtask queue. */
  #schedule(d: Delivery): void {
    if (this.#clock) {
      this.#clock.setTimeout(() => this.#deliver(d), 0);
    } else {
      this.#queue.push(d);
      if (!this.#drainScheduled) this.#scheduleDrain();
    }
  }

  #scheduleDrain(): void {
    this.#drainScheduled = true;
    const now = performance.now();
    if (this.#chainStart < 0) {
      // This timer can only run once the event loop has turned, which ends the chain.
      this.#chainStart = now;
      nextTurn(() => (this.#chainStart = -1));
    }
    if (now - this.#chainStart > YIELD_AFTER_MS) nextTurn(this.#drain);
    else queueMicrotask(this.#drain);
  }

  readonly #drain = (): void => {
    this.#drainScheduled = false;
    const q = this.#queue;
    let n = 0;
    while (this.#queueHead < q.length) {
      const d = q[this.#queueHead]!;
      q[this.#queueHead++] = undefined;
      this.#deliver(d);
      if ((++n & 127) === 0 && this.#chainStart >= 0 && performance.now() - this.#chainStart > YIELD_AFTER_MS) break;
    }
    if (this.#queueHead >= q.length) {
      q.length = 0;
      this.#queueHead = 0;
    } else {
      if (this.#queueHead > 4096) {
        this.#queue = q.slice(this.#queueHead);
        this.#queueHead = 0;
      }
      if (!this.#drainScheduled) this.#scheduleDrain();
    }
  };

  #deliver(d: Delivery): void {
    const n = d.node.deliver(d.from, d.to, d.payload);
    if (n === 0) this.stats.unbound++;
    else this.stats.delivered += n;
  }

  #lookup(sid: Sid): MemoryMdpTransport | undefined {
    const byObject = this.#bySidObject.get(sid);
    if (byObject && !byObject.isClosed) return byObject;
    if (sid.length !== SID_BYTES) return undefined;
    const node = this.#byHex.get(sidToHex(sid));
    if (node) this.#bySidObject.set(sid, node);
    return node && !node.isClosed ? node : undefined;
  }

  #removeNode(node: MemoryMdpTransport): void {
    const i = this.#nodes.indexOf(node);
    if (i >= 0) this.#nodes.splice(i, 1);
    this.#byHex.delete(sidToHex(node.localSid));
  }

  #now(): number {
    return (this.#clock ?? systemClock).now();
  }
}

/** One node of a `MemoryMdpNetwork`: an `MdpTransport`. */
export class MemoryMdpTransport extends Emitter<MdpTransportEvents> implements MdpTransport {
  readonly kind = "memory" as const;
  readonly localSid: Sid;
  readonly network: MemoryMdpNetwork;
  readonly #reachabilityMode: "auto" | "unknown";
  readonly #bindings = new Map<number, MemoryMdpSocket[]>();
  readonly #onClose: (n: MemoryMdpTransport) => void;
  #nextPort = 256;
  #closed = false;

  /** @internal Use `MemoryMdpNetwork.addNode()`. */
  constructor(network: MemoryMdpNetwork, sid: Sid, reachability: "auto" | "unknown", onClose: (n: MemoryMdpTransport) => void) {
    super();
    this.network = network;
    this.localSid = sid.slice();
    this.#reachabilityMode = reachability;
    this.#onClose = onClose;
  }

  get mtu(): number {
    return this.network.mtu;
  }

  get mspExtension(): boolean {
    return this.network.mspExtension;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Ports currently bound (for tests and status). */
  get boundPorts(): number[] {
    return [...this.#bindings.keys()].sort((a, b) => a - b);
  }

  bind(port: number, options: MdpBindOptions = {}): Promise<MdpSocket> {
    try {
      return Promise.resolve(this.bindNow(port, options));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Synchronous `bind()` (the in-memory network needs no round trip). */
  bindNow(port: number, options: MdpBindOptions = {}): MemoryMdpSocket {
    if (this.#closed) throw new SvpError("ERR_MESH_DOWN", "the in-memory MDP node is closed");
    if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) throw new SvpError("ERR_BAD_ADDRESS", `invalid MDP port ${port}`);
    if (options.sid && !isSidAny(options.sid) && !sidEquals(options.sid, this.localSid)) {
      throw new SvpError("ERR_NOT_ALLOWED", `cannot bind ${sidShort(options.sid)}: not an identity of this node`);
    }
    const reuse = options.reuse === true;
    if (port === 0) {
      port = this.#allocatePort();
    } else {
      const existing = this.#bindings.get(port);
      if (existing && (!reuse || existing.some((s) => !s.reuse))) throw new SvpError("ERR_NOT_ALLOWED", `MDP port ${port} is already bound`);
    }
    const socket = new MemoryMdpSocket(this, { sid: this.localSid, port }, reuse);
    const list = this.#bindings.get(port);
    if (list) list.push(socket);
    else this.#bindings.set(port, [socket]);
    return socket;
  }

  reachability(sid: Sid): Reachability {
    if (sidEquals(sid, this.localSid)) return "reachable";
    if (this.#reachabilityMode === "unknown") return "unknown";
    return !this.#closed && this.network.isReachable(this, sid) ? "reachable" : "unreachable";
  }

  peers(): Sid[] {
    if (this.#closed) return [];
    return this.network.nodes.filter((n) => n !== this && this.network.isReachable(this, n.localSid)).map((n) => n.localSid);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const list of [...this.#bindings.values()]) for (const s of [...list]) s.close();
    this.#onClose(this);
  }

  /** Simulate the backend going away: every socket closes with `err`, then `down` fires. */
  fail(err: SvpError = new SvpError("ERR_MESH_DOWN", "in-memory MDP node failed")): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const list of [...this.#bindings.values()]) for (const s of [...list]) s.fail(err);
    this.#onClose(this);
    this.emit("down", err);
  }

  /** @internal Hand a datagram to the sockets bound on `to.port`; returns how many got it. */
  deliver(from: MdpAddress, to: MdpAddress, payload: Uint8Array): number {
    if (this.#closed) return 0;
    const list = this.#bindings.get(to.port);
    if (!list || list.length === 0) return 0;
    if (list.length === 1) {
      list[0]!.receive(payload, from, to);
      return 1;
    }
    for (const s of [...list]) s.receive(payload, from, to);
    return list.length;
  }

  /** @internal */
  unbind(socket: MemoryMdpSocket): void {
    const list = this.#bindings.get(socket.local.port);
    if (!list) return;
    const i = list.indexOf(socket);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#bindings.delete(socket.local.port);
  }

  #allocatePort(): number {
    for (let tries = 0; tries < 1 << 20; tries++) {
      const p = this.#nextPort;
      this.#nextPort = p >= 0xfffffffe ? 256 : p + 1;
      if (!this.#bindings.has(p)) return p;
    }
    throw new SvpError("ERR_LIMIT", "no free MDP port");
  }
}

export class MemoryMdpSocket extends Emitter<MdpSocketEvents> implements MdpSocket {
  readonly local: MdpAddress;
  readonly reuse: boolean;
  readonly #node: MemoryMdpTransport;
  #closed = false;

  /** @internal */
  constructor(node: MemoryMdpTransport, local: MdpAddress, reuse: boolean) {
    super();
    this.#node = node;
    this.local = local;
    this.reuse = reuse;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  send(to: MdpAddress, payload: Uint8Array, _options?: MdpSendOptions): void {
    if (this.#closed) {
      this.#node.network.stats.closedSocket++;
      return;
    }
    this.#node.network.send(this.#node, this.local, to, payload);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#node.unbind(this);
    this.emit("close");
  }

  /** @internal */
  fail(err: SvpError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#node.unbind(this);
    this.emit("close", err);
  }

  /** @internal */
  receive(payload: Uint8Array, from: MdpAddress, to: MdpAddress): void {
    if (!this.#closed) this.emit("message", payload, from, to);
  }
}

function pairKey(a: Sid, b: Sid): string {
  const x = sidToHex(a);
  const y = sidToHex(b);
  return x < y ? `${x}|${y}` : `${y}|${x}`;
}

/** Validate (a UsageError, ERR_USAGE, names a bad field) and copy. */
function checkConditions(c: LinkConditions): LinkConditions {
  checkLinkParams(linkParams(c, 1));
  return { ...c };
}

function linkParams(c: LinkConditions, seed: number): LinkParams {
  const { reorderDelayMs, ...rest } = c;
  const reorderExtraMs = reorderDelayMs ?? 2 * ((c.delayMs ?? 0) + (c.jitterMs ?? 0)) + 1;
  return { ...rest, reorderExtraMs, seed, maxHeld: UNBOUNDED, maxHeldBytes: UNBOUNDED };
}

function isPerfect(c: LinkConditions): boolean {
  return !(c.loss || c.burstLoss || c.duplicate || c.reorder || c.delayMs || c.jitterMs || c.rateBytesPerSec);
}
