/**
 * `svp listen`: accept MSP connections on one MDP port and connect each to a local target
 * (a TCP forward, a program, or stdin/stdout), relaying both ways.
 *
 * Per connection, in this order:
 * 1. a caller not in `allow` is stopped (STOP: the caller sees "refused") and logged;
 * 2. the target is opened **before anything is sent back**: only when it is there is the
 *    MSP connection answered, so a failed forward reaches the caller as STOP (refused),
 *    never as an accepted connection that closes at once;
 * 3. with `proxyProtocol`, the target first gets a PROXY v2 header naming the caller
 *    (src/service/proxy-v2.ts);
 * 4. the relay carries both directions with backpressure and half-close.
 * Each connection ends with one `connection` record (caller, outcome, bytes, duration).
 *
 * `once`: the first allowed caller is the only one (later ones are refused); the service
 * then ends with that connection's outcome. With `service`, discovery on port 11 answers
 * for it (src/service/discovery.ts) while new connections are accepted.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import type { ErrorCode } from "../errors.ts";
import { SvpError, toSvpError } from "../errors.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { isSidAny, sidEquals, sidToHex } from "../mesh/sid.ts";
import type { MspListener } from "../msp/listener.ts";
import { listenMsp } from "../msp/listener.ts";
import type { MspStream } from "../msp/msp-stream.ts";
import type { MspOptions } from "../msp/params.ts";
import { Relay } from "../relay/relay.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import type { ServiceResponder } from "./discovery.ts";
import { startServiceResponder } from "./discovery.ts";
import type { MeshSession } from "./mesh-session.ts";
import { encodeProxyV2 } from "./proxy-v2.ts";

/** Opens the local end for one caller; rejects (refused, timeout…) when it cannot. Must honour `signal`. */
export type OpenTarget = (caller: MdpAddress, signal: AbortSignal) => Promise<ByteStream>;

export interface ListenServiceOptions {
  /** MDP port to listen on (1–4294967295). */
  port: number;
  open: OpenTarget;
  /** The target for log lines: "127.0.0.1:8000", "exec: sort", "stdio". */
  targetLabel: string;
  /** Only these callers; undefined = anyone. */
  allow?: Sid[] | undefined;
  once?: boolean | undefined;
  proxyProtocol?: boolean | undefined;
  /** Answer service discovery for this name. */
  service?: string | undefined;
  /**
   * Port 11 could not be bound (servald lets only one client per node bind it, so a second
   * service there cannot answer discovery). Given this callback, the service runs without
   * answering discovery and is told why; without it, starting fails.
   */
  onDiscoveryUnavailable?: ((err: SvpError) => void) | undefined;
  clock?: Clock | undefined;
  /** Give up opening the target after this long, ms. Default 10 000. */
  openTimeoutMs?: number | undefined;
  /** Close a connection when no byte moved either way for this long, ms; 0 = never (default). */
  idleTimeoutMs?: number | undefined;
  msp?: MspOptions | undefined;
  /** Connections at most; more are refused. Default 1024. */
  maxConnections?: number | undefined;
}

/** One line of the per-connection log. */
export interface ListenRecord {
  /** Caller's SID, 64 hex digits. */
  peerSid: string;
  peerPort: number;
  target: string;
  /** "ok" (relayed and finished cleanly) or the error code. */
  outcome: "ok" | ErrorCode;
  message?: string;
  /** Bytes caller → target. */
  up: number;
  /** Bytes target → caller. */
  down: number;
  durationMs: number;
}

/** How the service ended. */
export interface ListenResult {
  /** "closed": close() was called; "once": the one connection of `once` finished; "down": the mesh backend went away. */
  reason: "closed" | "once" | "down";
  /** For "once": that connection's failure; for "down": the backend's error. */
  error?: SvpError;
}

export type ListenServiceEvents = {
  connection: (record: ListenRecord) => void;
};

interface Conn {
  stream: MspStream;
  record: ListenRecord;
  startedAt: number;
  abortOpen: AbortController | undefined;
  timer: Timer | undefined;
  relay: Relay | undefined;
  finished: boolean;
  /** With `once`: this is the one connection served. */
  theOne: boolean;
}

export class ListenService extends Emitter<ListenServiceEvents> {
  readonly #listener: MspListener;
  readonly #responder: ServiceResponder | undefined;
  readonly #session: MeshSession;
  readonly #o: ListenServiceOptions;
  readonly #clock: Clock;
  readonly #conns = new Set<Conn>();
  readonly #allow: Sid[] | undefined;
  #taken = false;
  #closing = false;
  #result: ListenResult | undefined;
  #resolveDone!: (r: ListenResult) => void;
  #drainTimers: Timer[] = [];
  /** Resolves when the service has ended (see ListenResult); never rejects. */
  readonly done: Promise<ListenResult>;

  /** @internal Use `startListenService()`. */
  constructor(listener: MspListener, responder: ServiceResponder | undefined, session: MeshSession, options: ListenServiceOptions) {
    super();
    this.#listener = listener;
    this.#responder = responder;
    this.#session = session;
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#allow = options.allow;
    this.done = new Promise((r) => (this.#resolveDone = r));
    listener.on("accept", (s) => this.#onAccept(s));
    listener.on("close", (err) => {
      this.#responder?.close();
      if (err) this.#end({ reason: "down", error: err });
      else this.#maybeEnd();
    });
  }

  /** The bound address: this node's SID and the MDP port. */
  get local(): MdpAddress {
    const l = this.#listener.local;
    return isSidAny(l.sid) ? { sid: this.#session.sid ?? this.#session.transport.localSid, port: l.port } : l;
  }

  /** Connections being opened or relayed. */
  get connections(): number {
    return this.#conns.size;
  }

  /**
   * Stop accepting (new callers are refused), abandon targets still being opened, let live
   * connections finish for up to `drainMs`, then abort them. Resolves when all are gone.
   */
  async close(drainMs = 10_000): Promise<void> {
    const shutdown = new SvpError("ERR_ABORTED", "listener is shutting down");
    if (!this.#closing) {
      this.#closing = true;
      this.#listener.close();
      this.#responder?.close();
      for (const c of [...this.#conns]) if (!c.relay) this.#fail(c, shutdown);
    }
    if (this.#conns.size > 0) {
      this.#drainTimers.push(
        this.#clock.setTimeout(() => {
          for (const c of [...this.#conns]) {
            if (c.relay) c.relay.abort(new SvpError("ERR_ABORTED", `listener shut down; connection still open after ${Math.round(drainMs / 1000)} s`));
            else this.#fail(c, shutdown);
          }
        }, drainMs),
      );
    }
    this.#maybeEnd();
    await this.done;
  }

  #onAccept(s: MspStream): void {
    this.#session.streams.add(s);
    const record: ListenRecord = { peerSid: sidToHex(s.remote.sid), peerPort: s.remote.port, target: this.#o.targetLabel, outcome: "ok", up: 0, down: 0, durationMs: 0 };
    const conn: Conn = { stream: s, record, startedAt: this.#clock.now(), abortOpen: undefined, timer: undefined, relay: undefined, finished: false, theOne: false };
    this.#conns.add(conn);
    if (this.#closing) return this.#fail(conn, new SvpError("ERR_ABORTED", "listener is shutting down"));
    if (this.#allow && !this.#allow.some((sid) => sidEquals(sid, s.remote.sid))) {
      return this.#fail(conn, new SvpError("ERR_NOT_ALLOWED", `caller ${sidToHex(s.remote.sid)} is not allowed (--allow)`));
    }
    if (this.#o.once) {
      if (this.#taken) return this.#fail(conn, new SvpError("ERR_NOT_ALLOWED", "already serving its one connection (--once)"));
      this.#taken = true;
      conn.theOne = true;
      this.#listener.close();
      this.#responder?.close();
    }
    const ac = new AbortController();
    conn.abortOpen = ac;
    const timeoutMs = this.#o.openTimeoutMs ?? 10_000;
    conn.timer = this.#clock.setTimeout(() => ac.abort(new SvpError("ERR_TIMEOUT", `${this.#o.targetLabel} did not connect within ${Math.round(timeoutMs / 100) / 10} s`)), timeoutMs);
    // The caller may give up (or time out) while the target is being opened.
    const onEarlyClose = (err?: SvpError) => ac.abort(err ?? new SvpError("ERR_ABORTED", "caller went away"));
    s.once("close", onEarlyClose);
    let opening: Promise<ByteStream>;
    try {
      opening = this.#o.open(s.remote, ac.signal);
    } catch (err) {
      opening = Promise.reject(err);
    }
    opening.then(
      (target) => {
        s.off("close", onEarlyClose);
        conn.timer?.cancel();
        conn.timer = undefined;
        conn.abortOpen = undefined;
        if (conn.finished || s.closed || ac.signal.aborted) {
          target.abort(new SvpError("ERR_ABORTED", "caller went away"));
          if (!conn.finished) this.#fail(conn, ac.signal.reason instanceof SvpError ? ac.signal.reason : new SvpError("ERR_ABORTED", "caller went away"));
          return;
        }
        this.#relay(conn, target);
      },
      (err: unknown) => {
        s.off("close", onEarlyClose);
        const r: unknown = ac.signal.reason;
        this.#fail(conn, ac.signal.aborted && r instanceof SvpError ? r : toSvpError(err));
      },
    );
  }

  #relay(conn: Conn, target: ByteStream): void {
    const s = conn.stream;
    if (this.#o.proxyProtocol) {
      const local = this.local;
      target.write(encodeProxyV2({ peerSid: s.remote.sid, peerPort: s.remote.port, localSid: local.sid, localPort: local.port }));
    }
    const relay = new Relay(s, target, { clock: this.#clock, idleTimeoutMs: this.#o.idleTimeoutMs ?? 0 });
    conn.relay = relay;
    void relay.done.then((stats) => {
      conn.record.up = stats.aToB;
      conn.record.down = stats.bToA;
      this.#finish(conn, stats.error);
    });
  }

  /** The connection is refused or failed before relaying: STOP to the caller. */
  #fail(conn: Conn, err: SvpError): void {
    if (conn.finished) return;
    conn.abortOpen?.abort(err);
    if (!conn.stream.closed) conn.stream.abort(err);
    this.#finish(conn, err);
  }

  #finish(conn: Conn, err: SvpError | undefined): void {
    if (conn.finished) return;
    conn.finished = true;
    conn.timer?.cancel();
    conn.timer = undefined;
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

  #end(result: ListenResult): void {
    if (this.#result) return;
    this.#result = result;
    for (const t of this.#drainTimers) t.cancel();
    this.#drainTimers = [];
    this.#responder?.close();
    if (result.reason !== "closed") {
      this.#closing = true;
      this.#listener.close();
    }
    this.#resolveDone(result);
  }
}

/** Bind the port (and port 11 for `service`) and start serving. */
export async function startListenService(session: MeshSession, options: ListenServiceOptions): Promise<ListenService> {
  const clock = options.clock ?? systemClock;
  const listener = await listenMsp(session.transport, options.port, {
    ...options.msp,
    clock,
    ...(session.sid ? { sid: session.sid } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
  });
  let responder: ServiceResponder | undefined;
  if (options.service !== undefined) {
    try {
      responder = await startServiceResponder(session.transport, { service: options.service, port: listener.local.port, sid: session.sid, clock });
    } catch (err) {
      const e = toSvpError(err);
      if (e.code === "ERR_NOT_ALLOWED" && options.onDiscoveryUnavailable) options.onDiscoveryUnavailable(e);
      else {
        listener.abort();
        throw e;
      }
    }
  }
  return new ListenService(listener, responder, session, options);
}
