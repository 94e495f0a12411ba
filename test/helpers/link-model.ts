/**
 * One direction of an emulated network link, sans-I/O: datagrams go in with `offer()` and
 * come out through the `deliver` callback when the injected clock says they have crossed.
 * The relay in link-emulator.ts puts two of these between two svp nodes' overlay ports;
 * tests drive one with `ManualClock`, so a minute of link time runs in milliseconds.
 *
 * The path a datagram takes, in this order (every stage optional, all off by default):
 *
 *   offer → bottleneck (drop-tail queue of `queueLimit` datagrams, sent one after the other
 *   at `rateBytesPerSec`) → the wire, where it may be lost (`loss`, `burstLoss`), duplicated
 *   (`duplicate`) or held back (`reorder`) → propagation (`delayMs` + uniform `jitterMs`) →
 *   deliver.
 *
 * Loss and duplication happen on the wire, after the bottleneck, as on a radio link: a lost
 * datagram used its share of the rate, a duplicate (a link-layer retransmission whose
 * acknowledgement was lost) does not. Each copy draws its own jitter and reorder delay.
 * With every parameter at zero the link is a FIFO that delivers at once.
 *
 * Every decision is drawn from a `SeededRandom` in offer order, so the same seed and the
 * same offers at the same (virtual) times give the same outcome. What the link holds is
 * bounded (`maxHeld`, `maxHeldBytes`); one clock timer is armed at a time.
 */

import type { Clock, Timer } from "../../src/clock.ts";
import { UsageError } from "../../src/errors.ts";
import { SeededRandom } from "./seeded-random.ts";

/**
 * Gilbert-Elliott burst loss: a two-state chain stepped once per datagram on the wire.
 * In the good state datagrams are lost with probability `loss` (LinkParams), in the bad
 * state with `lossInBurst`. Mean burst length is 1/`exit` datagrams.
 */
export interface BurstLoss {
  /** Probability per datagram of going from the good to the bad state (0-1). */
  enter: number;
  /** Probability per datagram of going from the bad back to the good state (0-1, > 0). */
  exit: number;
  /** Loss probability in the bad state (0-1). Default 1. */
  lossInBurst?: number;
}

/** What one direction of the link does. Every field optional; the defaults change nothing. */
export interface LinkParams {
  /** One-way propagation delay, milliseconds. Default 0. */
  delayMs?: number;
  /** Extra delay drawn uniformly from [0, jitterMs) per copy, milliseconds. Reorders datagrams closer together than this. Default 0. */
  jitterMs?: number;
  /** Probability (0-1) that a copy is held back `reorderExtraMs` more, so later ones overtake it. Default 0. */
  reorder?: number;
  /** The hold-back of a reordered copy, milliseconds. Default 10. */
  reorderExtraMs?: number;
  /** Probability (0-1) that a datagram is lost on the wire, independently of the others (the good state's loss with `burstLoss`). Default 0. */
  loss?: number;
  /** Correlated loss on top of (instead of, in the bad state) `loss`. Default none. */
  burstLoss?: BurstLoss;
  /** Probability (0-1) that a datagram that crossed the wire arrives twice. Default 0. */
  duplicate?: number;
  /** Bottleneck rate in bytes of datagram payload per second; 0 or absent: unlimited. */
  rateBytesPerSec?: number;
  /** Datagrams that may wait at the bottleneck (not counting the one being sent); more are dropped at the tail. Only with a rate. Default 100. */
  queueLimit?: number;
  /** Seed of the random decisions (any 32-bit integer). Default 1. */
  seed?: number;
  /** At most this many datagrams inside the link (queued or propagating); more are dropped and counted as overflow. Default 65536. */
  maxHeld?: number;
  /** At most this many bytes inside the link; more are dropped and counted as overflow. Default 64 MiB. */
  maxHeldBytes?: number;
}

/** Counters of one direction. Bytes are datagram payload bytes. */
export interface LinkStats {
  offered: number;
  offeredBytes: number;
  /** Copies handed to `deliver` (duplicates included). */
  delivered: number;
  deliveredBytes: number;
  /** Lost on the wire (independent and burst loss). */
  lost: number;
  /** Extra copies made by `duplicate`. */
  duplicated: number;
  /** Copies held back by `reorder`. */
  reorderHeld: number;
  /** Copies delivered after a datagram that was offered later (measured at delivery, whatever caused it). */
  reordered: number;
  /** Dropped at the tail of a full bottleneck queue. */
  queueDrops: number;
  /** Dropped because the link already held `maxHeld` datagrams or `maxHeldBytes` bytes. */
  overflowDrops: number;
  /** Still inside the link when it was closed, or offered after. */
  discarded: number;
  /** Copies inside the link now. */
  held: number;
  /** Longest wait at the bottleneck before sending began, milliseconds. */
  maxQueueDelayMs: number;
  /** Mean wait at the bottleneck over the datagrams admitted to the link, milliseconds (0 without a rate). */
  meanQueueDelayMs: number;
}

interface Pending<Tag> {
  at: number;
  seq: number;
  /** Offer order, to measure reordering. */
  id: number;
  data: Uint8Array;
  tag: Tag;
}

const DEFAULTS = { reorderExtraMs: 10, queueLimit: 100, seed: 1, maxHeld: 65_536, maxHeldBytes: 64 * 1024 * 1024 } as const;

/** Validate `p`; a bad value is a UsageError naming it, so a CLI can print it as is. */
export function checkLinkParams(p: LinkParams): void {
  const num = (name: string, v: number | undefined, max = Number.MAX_SAFE_INTEGER) => {
    if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= max)) {
      throw new UsageError(`invalid link parameter ${name}=${String(v)}: expected a number 0-${max}`);
    }
  };
  const int = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new UsageError(`invalid link parameter ${name}=${String(v)}: expected a whole number ≥ ${min}`);
  };
  num("delayMs", p.delayMs, 3_600_000);
  num("jitterMs", p.jitterMs, 3_600_000);
  num("reorderExtraMs", p.reorderExtraMs, 3_600_000);
  num("reorder", p.reorder, 1);
  num("loss", p.loss, 1);
  num("duplicate", p.duplicate, 1);
  num("rateBytesPerSec", p.rateBytesPerSec);
  int("queueLimit", p.queueLimit, 0);
  int("maxHeld", p.maxHeld, 1);
  int("maxHeldBytes", p.maxHeldBytes, 1);
  if (p.seed !== undefined && !(Number.isInteger(p.seed) && Math.abs(p.seed) <= 0xffffffff)) throw new UsageError(`invalid link parameter seed=${String(p.seed)}: expected a 32-bit whole number`);
  if (p.burstLoss) {
    num("burstLoss.enter", p.burstLoss.enter, 1);
    num("burstLoss.exit", p.burstLoss.exit, 1);
    num("burstLoss.lossInBurst", p.burstLoss.lossInBurst, 1);
    if (p.burstLoss.exit === 0) throw new UsageError("invalid link parameter burstLoss.exit=0: a burst would never end");
  }
}

/**
 * `Tag` is whatever the user wants back with each delivered copy (the memory network's
 * addressing, say); the link never looks at it.
 */
export class LinkModel<Tag = undefined> {
  readonly #clock: Clock;
  readonly #deliver: (datagram: Uint8Array, tag: Tag) => void;
  readonly #random: SeededRandom;
  readonly #p: Required<Omit<LinkParams, "burstLoss" | "seed">> & { burstLoss: BurstLoss | undefined };
  /** Deliveries in (at, seq) order: a binary min-heap. */
  readonly #heap: Pending<Tag>[] = [];
  #heldBytes = 0;
  #seq = 0;
  #nextId = 0;
  #maxDeliveredId = -1;
  /** When the bottleneck finishes sending what it has admitted. */
  #busyUntil = -Infinity;
  /** Send start times of admitted datagrams, ascending; those still in the future are the queue. */
  #starts: number[] = [];
  #startsHead = 0;
  #inBurst = false;
  #timer: Timer | undefined;
  #timerAt = Infinity;
  #flushing = false;
  #closed = false;
  #queueDelaySum = 0;
  #admitted = 0;
  readonly #stats: Omit<LinkStats, "held" | "meanQueueDelayMs"> = {
    offered: 0,
    offeredBytes: 0,
    delivered: 0,
    deliveredBytes: 0,
    lost: 0,
    duplicated: 0,
    reorderHeld: 0,
    reordered: 0,
    queueDrops: 0,
    overflowDrops: 0,
    discarded: 0,
    maxQueueDelayMs: 0,
  };

  constructor(params: LinkParams, clock: Clock, deliver: (datagram: Uint8Array, tag: Tag) => void) {
    checkLinkParams(params);
    this.#clock = clock;
    this.#deliver = deliver;
    this.#random = new SeededRandom(params.seed ?? DEFAULTS.seed);
    this.#p = {
      delayMs: params.delayMs ?? 0,
      jitterMs: params.jitterMs ?? 0,
      reorder: params.reorder ?? 0,
      reorderExtraMs: params.reorderExtraMs ?? DEFAULTS.reorderExtraMs,
      loss: params.loss ?? 0,
      burstLoss: params.burstLoss,
      duplicate: params.duplicate ?? 0,
      rateBytesPerSec: params.rateBytesPerSec ?? 0,
      queueLimit: params.queueLimit ?? DEFAULTS.queueLimit,
      maxHeld: params.maxHeld ?? DEFAULTS.maxHeld,
      maxHeldBytes: params.maxHeldBytes ?? DEFAULTS.maxHeldBytes,
    };
  }

  /**
   * A datagram enters the link now. The link keeps a reference (it does not copy), and a
   * duplicated datagram is delivered twice as the same array: neither side may change it.
   * `tag` comes back with every copy. Delivery may happen inside this call (nothing delays it).
   */
  offer(datagram: Uint8Array, tag: Tag = undefined as Tag): void {
    const s = this.#stats;
    s.offered++;
    s.offeredBytes += datagram.length;
    const id = this.#nextId++;
    if (this.#closed) {
      s.discarded++;
      return;
    }
    if (this.#heap.length >= this.#p.maxHeld || this.#heldBytes + datagram.length > this.#p.maxHeldBytes) {
      s.overflowDrops++;
      return;
    }
    const now = this.#clock.now();
    let onWire = now;
    if (this.#p.rateBytesPerSec > 0) {
      // Drop-tail: the datagrams admitted whose sending has not begun are the queue.
      while (this.#startsHead < this.#starts.length && this.#starts[this.#startsHead]! <= now) this.#startsHead++;
      if (this.#startsHead > 1024 && this.#startsHead * 2 > this.#starts.length) {
        this.#starts = this.#starts.slice(this.#startsHead);
        this.#startsHead = 0;
      }
      if (this.#starts.length - this.#startsHead >= this.#p.queueLimit && this.#busyUntil > now) {
        s.queueDrops++;
        return;
      }
      const start = Math.max(now, this.#busyUntil);
      this.#busyUntil = start + (datagram.length * 1000) / this.#p.rateBytesPerSec;
      if (start > now) this.#starts.push(start);
      onWire = this.#busyUntil;
      this.#noteQueueDelay(start - now);
    } else {
      this.#noteQueueDelay(0);
    }
    if (this.#lostOnWire()) {
      s.lost++;
      return;
    }
    this.#schedule(onWire, id, datagram, tag);
    if (this.#p.duplicate > 0 && this.#random.next() < this.#p.duplicate) {
      if (this.#heap.length >= this.#p.maxHeld || this.#heldBytes + datagram.length > this.#p.maxHeldBytes) s.overflowDrops++;
      else {
        s.duplicated++;
        this.#schedule(onWire, id, datagram, tag);
      }
    }
    this.#arm();
  }

  /** A snapshot of the counters. */
  stats(): LinkStats {
    return { ...this.#stats, held: this.#heap.length, meanQueueDelayMs: this.#admitted ? this.#queueDelaySum / this.#admitted : 0 };
  }

  /** Stop: cancel the timer and discard (count) what the link still holds. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#stats.discarded += this.#heap.length;
    this.#heap.length = 0;
    this.#heldBytes = 0;
    this.#starts = [];
    this.#startsHead = 0;
  }

  #noteQueueDelay(ms: number): void {
    this.#admitted++;
    this.#queueDelaySum += ms;
    if (ms > this.#stats.maxQueueDelayMs) this.#stats.maxQueueDelayMs = ms;
  }

  #lostOnWire(): boolean {
    const b = this.#p.burstLoss;
    let p = this.#p.loss;
    if (b) {
      this.#inBurst = this.#inBurst ? this.#random.next() >= b.exit : this.#random.next() < b.enter;
      if (this.#inBurst) p = b.lossInBurst ?? 1;
    }
    return p > 0 && this.#random.next() < p;
  }

  /** One copy leaves the wire at `onWire`; add its propagation delay and queue it for delivery. */
  #schedule(onWire: number, id: number, data: Uint8Array, tag: Tag): void {
    let at = onWire + this.#p.delayMs;
    if (this.#p.jitterMs > 0) at += this.#random.next() * this.#p.jitterMs;
    if (this.#p.reorder > 0 && this.#random.next() < this.#p.reorder) {
      at += this.#p.reorderExtraMs;
      this.#stats.reorderHeld++;
    }
    this.#push({ at, seq: this.#seq++, id, data, tag });
    this.#heldBytes += data.length;
  }

  /** Deliver everything due, then keep one timer armed for the next. */
  #arm(): void {
    if (this.#flushing || this.#closed) return;
    const next = this.#heap[0];
    if (next && next.at <= this.#clock.now()) this.#flush();
    else this.#armTimer();
  }

  #armTimer(): void {
    if (this.#closed) return;
    const next = this.#heap[0];
    const at = next ? next.at : Infinity;
    if (at === this.#timerAt) return;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = at;
    if (next) {
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        this.#flush();
      }, at - this.#clock.now());
    }
  }

  #flush(): void {
    this.#flushing = true;
    try {
      // A timer may fire late, never early: whatever is due by now goes, in (at, seq) order.
      while (!this.#closed && this.#heap.length && this.#heap[0]!.at <= this.#clock.now()) {
        const p = this.#pop();
        this.#heldBytes -= p.data.length;
        const s = this.#stats;
        s.delivered++;
        s.deliveredBytes += p.data.length;
        if (p.id < this.#maxDeliveredId) s.reordered++;
        else this.#maxDeliveredId = p.id;
        this.#deliver(p.data, p.tag);
      }
    } finally {
      this.#flushing = false;
      this.#armTimer();
    }
  }

  #before(a: Pending<Tag>, b: Pending<Tag>): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(p: Pending<Tag>): void {
    const h = this.#heap;
    h.push(p);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  #pop(): Pending<Tag> {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.#before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
