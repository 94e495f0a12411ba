/**
 * A bridge serves accepted streams by opening a second leg for each and relaying the two:
 * what `svp listen` (MSP caller → local target) and `svp connect --forward` (local client
 * → MSP stream) have in common.
 *
 * Per accepted stream:
 * - it stays paused (its bytes wait) while the other leg is opened, under a timeout;
 *   if it goes away meanwhile, the opening is aborted;
 * - when the opening fails, the accepted stream is aborted with the reason (TCP RST,
 *   MSP STOP), so its far end sees a refusal, never an accepted connection that closes
 *   at once;
 * - it ends with one record (outcome, bytes each way, duration) on `connection`.
 *
 * `once`: the first stream is the only one (others are refused); the bridge then ends with
 * its outcome. `close(drainMs)`: stop accepting, abandon openings, let live relays finish
 * for up to `drainMs`, then abort them.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import type { ErrorCode } from "../errors.ts";
import { durationText } from "../options.ts";
import { SvpError, failureUnder } from "../errors.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { Relay } from "./relay.ts";
import { DEFAULTS } from "../defaults.ts";
import type { TableSlot } from "../stream/connection-table.ts";
import { ConnectionTable } from "../stream/connection-table.ts";

/** The fields of a per-connection record the bridge fills in. */
export interface BridgeRecord {
  /** "ok" (relayed and finished cleanly) or the error code. */
  outcome: "ok" | ErrorCode;
  message?: string;
  /** Bytes accepted → opened leg. */
  up: number;
  /** Bytes opened → accepted leg. */
  down: number;
  durationMs: number;
}

/** How a bridge ended. */
export interface BridgeResult {
  /** "closed": close() was called; "once": the one connection of `once` finished; "down": ended by its owner (e.g. the mesh backend went away). */
  reason: "closed" | "once" | "down";
  /** For "once": that connection's failure; for "down": the cause. */
  error?: SvpError;
}

export interface BridgeOptions {
  /** Open the other leg for `accepted`; must honour `signal`. */
  open: (accepted: ByteStream, signal: AbortSignal) => Promise<ByteStream>;
  /** Give up opening after this long, ms. */
  openTimeoutMs: number;
  /** The error message for an opening that timed out. */
  openTimeoutMessage: string;
  /** Runs with both legs just before relaying (e.g. to write a PROXY protocol header). */
  beforeRelay?: ((accepted: ByteStream, opened: ByteStream) => void) | undefined;
  /** Close a connection when no byte moved either way for this long, ms; 0 = never (default). */
  idleTimeoutMs?: number | undefined;
  once?: boolean | undefined;
  clock?: Clock | undefined;
  /** Runs once when the bridge ends (before `done` resolves). */
  onEnd?: ((result: BridgeResult) => void) | undefined;
  /**
   * A count of live connections shared with the other event loops of the same service
   * (an Int32Array over a SharedArrayBuffer, slot 0): `connections` then counts theirs too.
   */
  shared?: Int32Array | undefined;
}

export type BridgeEvents<R> = {
  connection: (record: R) => void;
};

interface Conn<R> extends TableSlot {
  accepted: ByteStream;
  record: R;
  abortOpen: AbortController | undefined;
  timer: Timer | undefined;
  relay: Relay | undefined;
  /** With `once`: this is the one connection served. */
  theOne: boolean;
}

const SHUTTING_DOWN = "shutting down";

export class Bridge<R extends BridgeRecord> extends Emitter<BridgeEvents<R>> {
  readonly #o: BridgeOptions;
  readonly #clock: Clock;
  readonly #conns: ConnectionTable<Conn<R>>;
  #taken = false;
  #result: BridgeResult | undefined;
  #resolveDone!: (r: BridgeResult) => void;
  /** Resolves when the bridge has ended; never rejects. */
  readonly done: Promise<BridgeResult>;

  constructor(options: BridgeOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.done = new Promise((r) => (this.#resolveDone = r));
    this.#conns = new ConnectionTable<Conn<R>>({
      clock: this.#clock,
      shared: options.shared,
      finished: (conn, err) => {
        conn.timer?.cancel();
        conn.timer = undefined;
        this.emit("connection", conn.record);
        if (conn.theOne) this.end(err ? { reason: "once", error: err } : { reason: "once" });
      },
      drained: () => this.#maybeEnd(),
    });
  }

  /** Connections being opened or relayed (by every loop sharing the count). */
  get connections(): number {
    return this.#conns.connections;
  }

  /** Emit the record of a connection another event loop of this service served. */
  report(record: R): void {
    this.emit("connection", record);
  }

  /** False once no more streams will be served (closing, ended, or `once` has its one). */
  get accepting(): boolean {
    return !this.#conns.closing && !(this.#o.once && this.#taken);
  }

  /**
   * Serve one accepted stream; `record` is filled in and emitted when it ends. `refuse`:
   * the owner's own rules turned it away (e.g. `--allow`): it is aborted with that error.
   */
  handle(accepted: ByteStream, record: R, refuse?: SvpError): void {
    const conn = this.#conns.admit({ accepted, record, abortOpen: undefined, timer: undefined, relay: undefined, theOne: false });
    if (this.#conns.closing) return this.#fail(conn, new SvpError("ERR_ABORTED", SHUTTING_DOWN));
    if (refuse) return this.#fail(conn, refuse);
    if (this.#o.once) {
      if (this.#taken) return this.#fail(conn, new SvpError("ERR_NOT_ALLOWED", "already serving its one connection (--once)"));
      this.#taken = true;
      conn.theOne = true;
    }
    const ac = new AbortController();
    conn.abortOpen = ac;
    conn.timer = this.#clock.setTimeout(() => ac.abort(new SvpError("ERR_TIMEOUT", this.#o.openTimeoutMessage)), this.#o.openTimeoutMs);
    const gone = () => new SvpError("ERR_ABORTED", "the connection went away while its other end was being opened");
    const onEarlyClose = (err?: SvpError) => ac.abort(err ?? gone());
    accepted.once("close", onEarlyClose);
    let opening: Promise<ByteStream>;
    try {
      opening = this.#o.open(accepted, ac.signal);
    } catch (err) {
      opening = Promise.reject(err);
    }
    opening.then(
      (opened) => {
        accepted.off("close", onEarlyClose);
        conn.timer?.cancel();
        conn.timer = undefined;
        conn.abortOpen = undefined;
        if (conn.finished || accepted.closed || ac.signal.aborted) {
          opened.abort(gone());
          if (!conn.finished) this.#fail(conn, failureUnder(ac.signal, gone()));
          return;
        }
        this.#relay(conn, opened);
      },
      (err: unknown) => {
        accepted.off("close", onEarlyClose);
        this.#fail(conn, failureUnder(ac.signal, err));
      },
    );
  }

  /** Stop serving new streams, let live ones finish for up to `drainMs`, then abort them. */
  async close(drainMs: number = DEFAULTS.drainMs): Promise<void> {
    const shutdown = new SvpError("ERR_ABORTED", SHUTTING_DOWN);
    // Ends through `drained` (or below, when nothing was live); `done` tells either way.
    void this.#conns.close(drainMs, {
      stop: (c) => {
        if (!c.relay) this.#fail(c, shutdown);
      },
      cut: (c) => {
        if (c.relay) c.relay.abort(new SvpError("ERR_ABORTED", `shut down; connection still open after ${durationText(drainMs)}`));
        else this.#fail(c, shutdown);
      },
    });
    this.#maybeEnd();
    await this.done;
  }

  /** End now with `result` (live connections are left to finish or be closed by the owner). */
  end(result: BridgeResult): void {
    if (this.#result) return;
    this.#result = result;
    this.#conns.stopAccepting();
    this.#conns.cancelDrain();
    this.#o.onEnd?.(result);
    this.#resolveDone(result);
  }

  #relay(conn: Conn<R>, opened: ByteStream): void {
    this.#o.beforeRelay?.(conn.accepted, opened);
    const relay = new Relay(conn.accepted, opened, { clock: this.#clock, idleTimeoutMs: this.#o.idleTimeoutMs ?? 0 });
    conn.relay = relay;
    relay.on("close", (stats) => {
      conn.record.up = stats.aToB;
      conn.record.down = stats.bToA;
      this.#conns.finish(conn, stats.error);
    });
  }

  /** Refused or failed before relaying: the accepted stream is aborted with the reason. */
  #fail(conn: Conn<R>, err: SvpError): void {
    if (conn.finished) return;
    conn.abortOpen?.abort(err);
    if (!conn.accepted.closed) conn.accepted.abort(err);
    this.#conns.finish(conn, err);
  }

  #maybeEnd(): void {
    if (this.#conns.closing && this.#conns.size === 0) this.end({ reason: "closed" });
  }
}
