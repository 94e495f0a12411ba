/**
 * `svp connect --forward [ADDR:]PORT`: every accepted local connection gets its own MSP
 * stream to the one target. The local listener is the platform's (src/index.ts wires it
 * to `handle()`); this class only dials, relays and logs.
 *
 * A client's bytes wait (the client stream stays paused) until `dial` resolves (svp connect
 * dials `early`: at once, the bytes riding as 0-RTT data); when the dial fails, or the
 * stream then closes with an error, the client is reset, so it sees a refused/reset
 * connection rather than an empty answer. `once`: the first client is the only one; the
 * server then ends with that connection's outcome.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import type { ErrorCode } from "../errors.ts";
import { SvpError, toSvpError } from "../errors.ts";
import { Relay } from "../relay/relay.ts";
import type { ByteStream } from "../stream/byte-stream.ts";

export interface ForwardServerOptions {
  /** Open an MSP stream to the target (src/service/mesh-dialer.ts `dialMesh`). */
  dial: (signal: AbortSignal) => Promise<ByteStream>;
  /** The target for log lines. */
  targetLabel: string;
  clock?: Clock | undefined;
  /** Give up dialling after this long, ms. Default 30 000 (MSP itself gives up after 10 s of silence). */
  connectTimeoutMs?: number | undefined;
  /** Close a connection when no byte moved either way for this long, ms; 0 = never (default). */
  idleTimeoutMs?: number | undefined;
  once?: boolean | undefined;
}

export interface ForwardRecord {
  /** The local client ("tcp 127.0.0.1:53210"). */
  client: string;
  target: string;
  outcome: "ok" | ErrorCode;
  message?: string;
  /** Bytes client → mesh. */
  up: number;
  /** Bytes mesh → client. */
  down: number;
  durationMs: number;
}

export interface ForwardResult {
  reason: "closed" | "once";
  error?: SvpError;
}

export type ForwardServerEvents = {
  connection: (record: ForwardRecord) => void;
};

interface Conn {
  client: ByteStream;
  record: ForwardRecord;
  startedAt: number;
  ac: AbortController | undefined;
  timer: Timer | undefined;
  relay: Relay | undefined;
  finished: boolean;
  theOne: boolean;
}

export class ForwardServer extends Emitter<ForwardServerEvents> {
  readonly #o: ForwardServerOptions;
  readonly #clock: Clock;
  readonly #conns = new Set<Conn>();
  #taken = false;
  #closing = false;
  #ended = false;
  #resolveDone!: (r: ForwardResult) => void;
  #drainTimers: Timer[] = [];
  /** Resolves when the server has ended; never rejects. */
  readonly done: Promise<ForwardResult>;

  constructor(options: ForwardServerOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.done = new Promise((r) => (this.#resolveDone = r));
  }

  get connections(): number {
    return this.#conns.size;
  }

  /** True once no more clients will be served (closing, or `once` has its client). */
  get accepting(): boolean {
    return !this.#closing && !(this.#o.once && this.#taken);
  }

  /** Serve one accepted local client. */
  handle(client: ByteStream): void {
    const record: ForwardRecord = { client: client.label, target: this.#o.targetLabel, outcome: "ok", up: 0, down: 0, durationMs: 0 };
    const conn: Conn = { client, record, startedAt: this.#clock.now(), ac: undefined, timer: undefined, relay: undefined, finished: false, theOne: false };
    this.#conns.add(conn);
    if (this.#closing) return this.#fail(conn, new SvpError("ERR_ABORTED", "shutting down"));
    if (this.#o.once) {
      if (this.#taken) return this.#fail(conn, new SvpError("ERR_NOT_ALLOWED", "already serving its one connection (--once)"));
      this.#taken = true;
      conn.theOne = true;
    }
    const ac = new AbortController();
    conn.ac = ac;
    const timeoutMs = this.#o.connectTimeoutMs ?? 30_000;
    conn.timer = this.#clock.setTimeout(() => ac.abort(new SvpError("ERR_TIMEOUT", `no connection to ${this.#o.targetLabel} within ${Math.round(timeoutMs / 100) / 10} s`)), timeoutMs);
    const onEarlyClose = (err?: SvpError) => ac.abort(err ?? new SvpError("ERR_ABORTED", "client went away while connecting"));
    client.once("close", onEarlyClose);
    let dialing: Promise<ByteStream>;
    try {
      dialing = this.#o.dial(ac.signal);
    } catch (err) {
      dialing = Promise.reject(err);
    }
    dialing.then(
      (remote) => {
        client.off("close", onEarlyClose);
        conn.timer?.cancel();
        conn.timer = undefined;
        conn.ac = undefined;
        if (conn.finished || client.closed || ac.signal.aborted) {
          remote.abort(new SvpError("ERR_ABORTED", "client went away while connecting"));
          if (!conn.finished) this.#fail(conn, ac.signal.reason instanceof SvpError ? ac.signal.reason : new SvpError("ERR_ABORTED", "client went away while connecting"));
          return;
        }
        const relay = new Relay(client, remote, { clock: this.#clock, idleTimeoutMs: this.#o.idleTimeoutMs ?? 0 });
        conn.relay = relay;
        void relay.done.then((stats) => {
          record.up = stats.aToB;
          record.down = stats.bToA;
          this.#finish(conn, stats.error);
        });
      },
      (err: unknown) => {
        client.off("close", onEarlyClose);
        const r: unknown = ac.signal.reason;
        this.#fail(conn, ac.signal.aborted && r instanceof SvpError ? r : toSvpError(err));
      },
    );
  }

  /** Stop serving new clients, let live ones finish for up to `drainMs`, then abort them. */
  async close(drainMs = 10_000): Promise<void> {
    const shutdown = new SvpError("ERR_ABORTED", "shutting down");
    if (!this.#closing) {
      this.#closing = true;
      for (const c of [...this.#conns]) if (!c.relay) this.#fail(c, shutdown);
    }
    if (this.#conns.size > 0) {
      this.#drainTimers.push(
        this.#clock.setTimeout(() => {
          for (const c of [...this.#conns]) {
            if (c.relay) c.relay.abort(new SvpError("ERR_ABORTED", `shut down; connection still open after ${Math.round(drainMs / 1000)} s`));
            else this.#fail(c, shutdown);
          }
        }, drainMs),
      );
    }
    this.#maybeEnd();
    await this.done;
  }

  #fail(conn: Conn, err: SvpError): void {
    if (conn.finished) return;
    conn.ac?.abort(err);
    if (!conn.client.closed) conn.client.abort(err);
    this.#finish(conn, err);
  }

  #finish(conn: Conn, err: SvpError | undefined): void {
    if (conn.finished) return;
    conn.finished = true;
    conn.timer?.cancel();
    this.#conns.delete(conn);
    conn.record.durationMs = this.#clock.now() - conn.startedAt;
    if (err) {
      conn.record.outcome = err.code;
      conn.record.message = err.message;
    }
    this.emit("connection", conn.record);
    if (conn.theOne) this.#end(err ? { reason: "once", error: err } : { reason: "once" });
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    if (this.#closing && this.#conns.size === 0) this.#end({ reason: "closed" });
  }

  #end(r: ForwardResult): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const t of this.#drainTimers) t.cancel();
    this.#drainTimers = [];
    this.#resolveDone(r);
  }
}
