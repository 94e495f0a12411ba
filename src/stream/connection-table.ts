/**
 * The connection lifecycle the SOCKS server and the bridge share: the set of live
 * connections, the `maxConns` slots (counted alone, or across event loops through
 * `sharedCounts()`), graceful close, and the per-connection record finished once.
 *
 * What a connection is doing (handshake, dial, open, relay) is its owner's business: the
 * table only asks the owner, through hooks, to stop a pending one or cut a live one.
 */

import type { Clock, Timer } from "../clock.ts";
import type { SvpError } from "../errors.ts";

/** Slots of the shared counts: connections being served, and those of them within `maxConns`. */
const LIVE = 0;
const COUNTED = 1;

/** Counts for `ConnectionTableOptions.shared`, to hand to every event loop of one proxy or service. */
export function sharedCounts(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
}

/** The part of a per-connection record the table fills in when the connection finishes. */
export interface FinishedRecord {
  /** Left as the owner set it on success; the error's code on failure. */
  outcome: string;
  /** The error's message on failure. */
  message?: string;
  /** From admission to finish, ms of the injected clock. */
  durationMs: number;
}

/** The fields the table keeps on each connection (set by `admit`). */
export interface TableSlot {
  /** `clock.now()` at admission. */
  readonly startedAt: number;
  /** Holds one of the `maxConns` slots; false: over the limit (the owner refuses it). */
  readonly counted: boolean;
  /** Finished and reported; set once by `finish`. */
  finished: boolean;
}

export interface TableEntry extends TableSlot {
  record: FinishedRecord;
}

export interface ConnectionTableOptions<C> {
  clock: Clock;
  /** Connections within the limit; 0 = no limit (default). Beyond it, `admit` marks them not `counted`. */
  maxConns?: number | undefined;
  /**
   * Counts shared with the other event loops (`sharedCounts()`): `connections` counts
   * theirs too, and `maxConns` holds across all of them. Absent: this table counts alone.
   */
  shared?: Int32Array | undefined;
  /** Runs once per connection, after its record is filled in (the owner emits it). */
  finished: (conn: C, err: SvpError | undefined) => void;
  /** Runs when the table is closing and its last connection has finished. */
  drained?: (() => void) | undefined;
}

/** How `close` treats the connections it finds. */
export interface CloseHooks<C> {
  /** At the first close: a connection not yet relaying (handshake, pending open) stops now. */
  stop: (conn: C) => void;
  /** At the drain deadline: whatever is still there is cut. */
  cut: (conn: C) => void;
}

export class ConnectionTable<C extends TableEntry> {
  readonly #o: ConnectionTableOptions<C>;
  readonly #maxConns: number;
  readonly #live = new Set<C>();
  #counted = 0;
  #closing = false;
  #closed: Promise<void> | undefined;
  #resolveClosed: (() => void) | undefined;
  #drainTimers: Timer[] = [];

  constructor(options: ConnectionTableOptions<C>) {
    this.#o = options;
    this.#maxConns = options.maxConns ?? 0;
  }

  /** Connections being served, by every loop sharing the counts. */
  get connections(): number {
    return this.#o.shared ? Atomics.load(this.#o.shared, LIVE) : this.#live.size;
  }

  /** Connections of this table still live. */
  get size(): number {
    return this.#live.size;
  }

  /** True once `close` (or `stopAccepting`) was called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** A snapshot of the live connections. */
  list(): C[] {
    return [...this.#live];
  }

  /** Take one of the `maxConns` slots; false when all are taken (by any loop). */
  #take(): boolean {
    const max = this.#maxConns;
    if (max === 0) return true;
    const shared = this.#o.shared;
    if (!shared) return this.#counted < max;
    if (Atomics.add(shared, COUNTED, 1) < max) return true;
    Atomics.sub(shared, COUNTED, 1);
    return false;
  }

  /**
   * Admit a connection: it takes a slot if one is free (`counted`), and counts as live
   * until `finish`. `fields` becomes the connection (no copy).
   */
  admit(fields: Omit<C, keyof TableSlot>): C {
    const counted = this.#take();
    if (counted) this.#counted++;
    if (this.#o.shared) Atomics.add(this.#o.shared, LIVE, 1);
    const conn = Object.assign(fields, { startedAt: this.#o.clock.now(), counted, finished: false }) as unknown as C;
    this.#live.add(conn);
    return conn;
  }

  /**
   * Finish a connection once: release its slots, fill in its record (duration, and the
   * outcome and message of `err`), hand it to the `finished` hook. False if already finished.
   */
  finish(conn: C, err: SvpError | undefined): boolean {
    if (conn.finished) return false;
    conn.finished = true;
    this.#live.delete(conn);
    const shared = this.#o.shared;
    if (conn.counted) {
      this.#counted--;
      if (shared && this.#maxConns > 0) Atomics.sub(shared, COUNTED, 1);
    }
    if (shared) Atomics.sub(shared, LIVE, 1);
    const record = conn.record;
    record.durationMs = this.#o.clock.now() - conn.startedAt;
    if (err) {
      record.outcome = err.code;
      record.message = err.message;
    }
    this.#o.finished(conn, err);
    if (this.#closing && this.#live.size === 0) this.#settle();
    return true;
  }

  /** Refuse new connections from now on, without touching the live ones. */
  stopAccepting(): void {
    this.#closing = true;
  }

  /** Cancel the drain deadlines (the owner ended and leaves live connections to themselves). */
  cancelDrain(): void {
    for (const t of this.#drainTimers) t.cancel();
    this.#drainTimers = [];
  }

  /**
   * Graceful close: the first call marks the table closing and `stop`s each connection;
   * every call with connections left sets a deadline `drainMs` away that `cut`s the rest
   * (so a second call can only bring it sooner: whichever fires first cuts). Resolves
   * when the last connection has finished; the deadlines are then cancelled.
   */
  close(drainMs: number, hooks: CloseHooks<C>): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      for (const conn of this.list()) hooks.stop(conn);
    }
    this.#closed ??= this.#live.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#resolveClosed = resolve));
    if (this.#live.size > 0) {
      this.#drainTimers.push(
        this.#o.clock.setTimeout(() => {
          for (const conn of this.list()) hooks.cut(conn);
        }, drainMs),
      );
    }
    return this.#closed;
  }

  #settle(): void {
    this.cancelDrain();
    const resolve = this.#resolveClosed;
    this.#resolveClosed = undefined;
    resolve?.();
    this.#o.drained?.();
  }
}
