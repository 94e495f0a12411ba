/**
 * The proxy server: for each accepted client stream, run the handshake (with a timer),
 * dial the destination through the injected `Dialer` (with a timer), answer only once
 * the outcome is known, then hand both streams to the relay. Listening sockets are not
 * its business (src/platform/socks-proxy.ts wires the platform's listeners to `handle()`).
 *
 * After the handshake a connection holds no parser, buffer or timer of its own: the
 * relay is all that is left.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import type { ErrorCode } from "../errors.ts";
import { SvpError, toSvpError, failureUnder } from "../errors.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import type { Credentials } from "./auth.ts";
import type { Destination } from "./destination.ts";
import { displayDestination } from "./destination.ts";
import type { Dialer, RouteName } from "./dialer.ts";
import { DialCancel } from "./dialer.ts";
import type { HandshakeStep, ProxyProtocol, ProxyRequest } from "./handshake.ts";
import { Handshake, failureReply, successReply } from "./handshake.ts";
import { RequestBodyLimit, ResponseHeadRewriter } from "./http-proxy.ts";
import { concatBytes } from "../bytes/concat.ts";
import { StreamView } from "../stream/stream-view.ts";
import { DEFAULTS } from "../defaults.ts";
import type { TableSlot } from "../stream/connection-table.ts";
import { ConnectionTable } from "../stream/connection-table.ts";


/** What the relay reports when it ends (src/relay/relay.ts `RelayStats`). */
export interface RelayResult {
  aToB: number;
  bToA: number;
  durationMs: number;
  error?: SvpError;
}

/** A running relay, as far as the server needs it (src/relay/relay.ts `Relay`). */
export interface RelayHandle {
  /** `close` fires once, when both legs have closed. */
  on(event: "close", fn: (stats: RelayResult) => void): unknown;
  abort(err?: SvpError): void;
}

/** Starts relaying between client `a` and target `b`; injected so socks does not depend on relay. */
export type StartRelay = (a: ByteStream, b: ByteStream, options: { clock: Clock; idleTimeoutMs: number }) => RelayHandle;

export interface ProxyServerOptions {
  dialer: Dialer;
  startRelay: StartRelay;
  clock?: Clock;
  /** Required credentials; undefined = open (no authentication). */
  credentials?: Credentials | undefined;
  /** Close a client that has not completed its request within this many ms. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Give up connecting to a destination after this many ms. Default 30 s. */
  connectTimeoutMs?: number;
  /** Close a tunnel when no byte moved either way for this many ms. 0 = off (default). */
  idleTimeoutMs?: number;
  /** Refuse requests beyond this many live connections. 0 = no limit (default). */
  maxConns?: number;
  /** Cap on an HTTP request head, bytes. Default 32 KiB. */
  maxHeadBytes?: number;
  /** After refusing a request, wait this long for the client to close before resetting. Default 2 s. */
  lingerMs?: number;
  /**
   * Counts shared with the other event loops of the same proxy (`sharedCounts()`, over a
   * SharedArrayBuffer): with it `maxConns` holds across all of them and `connections`
   * counts theirs too. Absent: this server counts alone.
   */
  shared?: Int32Array | undefined;
  /** Which event loop of the proxy this server is (0 the main thread); set, it goes into each record's `loop`. */
  loop?: number | undefined;
}

/** One line of the per-stream log: emitted once per accepted client connection. */
export interface StreamRecord {
  /** The client's address (the stream's label). */
  client: string;
  protocol?: ProxyProtocol;
  /** host:port the client asked for. */
  dest?: string;
  route?: RouteName;
  user?: string;
  /** "ok" (relayed and finished cleanly), "served" (PAC file/info page) or the error code. */
  outcome: "ok" | "served" | ErrorCode;
  /** Error text, or what was served. */
  message?: string;
  /** Bytes client → destination (including early data). */
  up: number;
  /** Bytes destination → client; for "served", the size of svp's own response. */
  down: number;
  durationMs: number;
  /** The event loop that served it (0: the main thread), when the proxy runs several (not logged). */
  loop?: number;
}

export type ProxyServerEvents = {
  /** Once per client connection (from other loops too, through `report`). */
  stream: (record: StreamRecord) => void;
};

type Phase = "handshake" | "dial" | "relay" | "closing";

/** Per-connection state; the handshake parts are dropped once the request is known. */
interface Conn extends TableSlot {
  client: ByteStream;
  phase: Phase;
  handshake: Handshake | undefined;
  timer: Timer | undefined;
  abortDial: DialCancel | undefined;
  relay: RelayHandle | undefined;
  record: StreamRecord;
  onData: ((chunk: Uint8Array) => void) | undefined;
  onEnd: (() => void) | undefined;
  onClose: ((err?: SvpError) => void) | undefined;
}

export class ProxyServer extends Emitter<ProxyServerEvents> {
  readonly #o: Required<Omit<ProxyServerOptions, "credentials" | "shared" | "loop">> & { credentials: Credentials | undefined };
  readonly #loop: number | undefined;
  readonly #conns: ConnectionTable<Conn>;

  constructor(options: ProxyServerOptions) {
    super();
    this.#o = {
      dialer: options.dialer,
      startRelay: options.startRelay,
      clock: options.clock ?? systemClock,
      credentials: options.credentials,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      maxConns: options.maxConns ?? DEFAULTS.maxConns,
      maxHeadBytes: options.maxHeadBytes ?? 32 * 1024,
      lingerMs: options.lingerMs ?? 2_000,
    };
    this.#loop = options.loop;
    this.#conns = new ConnectionTable<Conn>({
      clock: this.#o.clock,
      maxConns: this.#o.maxConns,
      shared: options.shared,
      finished: (conn) => {
        conn.timer?.cancel();
        conn.timer = undefined;
        conn.relay = undefined;
        if (this.#loop !== undefined) conn.record.loop = this.#loop;
        this.emit("stream", conn.record);
      },
    });
  }

  /** Connections being served (handshaking, connecting or relaying), by every loop sharing the counts. */
  get connections(): number {
    return this.#conns.connections;
  }

  /**
   * Serve one client. `proxyAddress` is the "host:port" clients used to reach this
   * listener (for the PAC file).
   */
  handle(client: ByteStream, proxyAddress: string): void {
    if (this.#conns.closing) {
      client.abort(new SvpError("ERR_ABORTED", "proxy is shutting down"));
      return;
    }
    const o = this.#o;
    const conn = this.#conns.admit({
      client,
      phase: "handshake",
      handshake: new Handshake({ credentials: o.credentials, proxyAddress, maxHeadBytes: o.maxHeadBytes }),
      timer: undefined,
      abortDial: undefined,
      relay: undefined,
      // The peer address costs a system call and a few strings per connection: only fetched
      // when someone listens for the records.
      record: { client: this.listenerCount("stream") > 0 ? client.label : "", outcome: "ok", up: 0, down: 0, durationMs: 0 },
      onData: undefined,
      onEnd: undefined,
      onClose: undefined,
    });
    conn.onData = (chunk) => this.#onHandshakeData(conn, chunk);
    conn.onEnd = () => this.#refuse(conn, new SvpError("ERR_PROTOCOL", "client closed the connection during the handshake"));
    conn.onClose = (err) => this.#onEarlyClose(conn, err);
    client.on("data", conn.onData);
    client.on("end", conn.onEnd);
    client.on("close", conn.onClose);
    conn.timer = o.clock.setTimeout(() => {
      conn.timer = undefined;
      this.#refuse(conn, new SvpError("ERR_TIMEOUT", `handshake not completed within ${seconds(o.handshakeTimeoutMs)}`));
    }, o.handshakeTimeoutMs);
    client.resume();
  }

  /** Emit a record of a connection another event loop of this proxy served. */
  report(record: StreamRecord): void {
    this.emit("stream", record);
  }

  /**
   * Graceful stop: refuse new clients, close handshakes and pending connects, let live
   * tunnels finish for up to `drainMs`, then abort what is left. Resolves when every
   * connection is gone.
   */
  close(drainMs = 10_000): Promise<void> {
    const shutdown = new SvpError("ERR_ABORTED", "proxy is shutting down");
    // Called again (a second signal): a sooner deadline; whichever fires first cuts.
    return this.#conns.close(drainMs, {
      stop: (conn) => {
        if (conn.phase === "handshake") this.#refuse(conn, shutdown);
        else if (conn.phase === "dial") conn.abortDial?.abort(shutdown);
      },
      cut: (conn) => {
        if (conn.relay) conn.relay.abort(new SvpError("ERR_ABORTED", `proxy shut down; stream still open after ${seconds(drainMs)}`));
        else if (!conn.client.closed) conn.client.abort(shutdown);
      },
    });
  }

  #onHandshakeData(conn: Conn, chunk: Uint8Array): void {
    const hs = conn.handshake;
    if (!hs || conn.phase !== "handshake") return;
    let step: HandshakeStep;
    try {
      step = hs.push(chunk);
    } catch (err) {
      this.#refuse(conn, toSvpError(err));
      return;
    }
    if (step.kind === "more") {
      if (step.send && conn.client.writable) conn.client.write(step.send);
      return;
    }
    const protocol = step.kind === "connect" ? step.request.protocol : (step.protocol ?? hs.protocol);
    if (protocol) conn.record.protocol = protocol;
    if (step.kind === "close") {
      if (step.dest) {
        conn.record.dest = displayDestination(step.dest);
        conn.record.route = this.#o.dialer.route(step.dest);
      }
      if (step.error) this.#refuse(conn, step.error, step.send);
      else {
        conn.record.outcome = "served";
        if (step.served) conn.record.message = step.served;
        if (step.send) conn.record.down = step.send.length;
        this.#refuse(conn, undefined, step.send);
      }
      return;
    }
    // The request is known: the handshake's parser, buffers and timer go away now.
    this.#endHandshake(conn);
    if (step.send) conn.client.write(step.send);
    const { request, early } = step;
    conn.record.dest = displayDestination(request.dest);
    conn.record.route = this.#o.dialer.route(request.dest);
    if (request.user !== undefined) conn.record.user = request.user;
    if (!conn.counted) {
      this.#fail(conn, request, new SvpError("ERR_LIMIT", `too many connections (limit ${this.#o.maxConns})`));
      return;
    }
    this.#dial(conn, request, early);
  }

  #endHandshake(conn: Conn): void {
    conn.timer?.cancel();
    conn.timer = undefined;
    conn.handshake = undefined;
    conn.client.pause();
    conn.client.off("data", conn.onData!);
    conn.client.off("end", conn.onEnd!);
    conn.onData = undefined;
    conn.onEnd = undefined;
  }

  #dial(conn: Conn, request: ProxyRequest, early: Uint8Array): void {
    const o = this.#o;
    conn.phase = "dial";
    const ac = new DialCancel();
    conn.abortDial = ac;
    conn.timer = o.clock.setTimeout(() => {
      conn.timer = undefined;
      ac.abort(new SvpError("ERR_TIMEOUT", `no connection to ${displayDestination(request.dest)} within ${seconds(o.connectTimeoutMs)}`));
    }, o.connectTimeoutMs);
    let dialing: Promise<ByteStream>;
    try {
      dialing = o.dialer.dial(request.dest, ac);
    } catch (err) {
      dialing = Promise.reject(err);
    }
    dialing.then(
      (target) => this.#connected(conn, request, early, target),
      (err) => {
        conn.timer?.cancel();
        conn.timer = undefined;
        conn.abortDial = undefined;
        // An abort reason (timeout, shutdown, client gone) explains better than the dialer's echo of it.
        const reason = failureUnder(ac, err);
        this.#fail(conn, request, reason);
      },
    );
  }

  #connected(conn: Conn, request: ProxyRequest, early: Uint8Array, target: ByteStream): void {
    conn.timer?.cancel();
    conn.timer = undefined;
    conn.abortDial = undefined;
    const client = conn.client;
    if (client.closed || !client.writable || conn.phase !== "dial") {
      target.abort(new SvpError("ERR_ABORTED", "client went away while connecting"));
      if (conn.phase === "dial") this.#conns.finish(conn, new SvpError("ERR_ABORTED", "client went away while connecting"));
      return;
    }
    conn.phase = "relay";
    client.off("close", conn.onClose!);
    conn.onClose = undefined;
    const reply = successReply(request.protocol);
    if (reply) client.write(reply);
    let a = client;
    let b = target;
    let first = early;
    let bodyLimit: RequestBodyLimit | undefined;
    let responseHead: ResponseHeadRewriter | undefined;
    // Bytes sent before the relay starts (the rewritten request head of an HTTP forward
    // request, early data pipelined after the request) count as "up" like the rest.
    if (request.head) {
      target.write(request.head);
      conn.record.up += request.head.length;
      responseHead = new ResponseHeadRewriter(displayDestination(request.dest));
      b = new StreamView(target, { filter: responseHead });
      if (request.bodyLength !== undefined) {
        bodyLimit = new RequestBodyLimit(request.bodyLength);
        first = concatBytes(bodyLimit.push(early));
        a = new StreamView(client, { filter: bodyLimit });
      }
    }
    if (first.length > 0) {
      target.write(first);
      conn.record.up += first.length;
    }
    const relay = this.#o.startRelay(a, b, { clock: this.#o.clock, idleTimeoutMs: this.#o.idleTimeoutMs });
    conn.relay = relay;
    relay.on("close", (stats) => {
      conn.record.up += stats.aToB;
      conn.record.down = stats.bToA;
      if (responseHead?.emptyReply) conn.record.message = "the server closed the connection without a response; sent 502";
      if (bodyLimit && bodyLimit.dropped > 0) conn.record.message = `${bodyLimit.dropped} bytes sent after the request (pipelined requests) not forwarded: one request per connection`;
      this.#conns.finish(conn, stats.error);
    });
  }

  /** The connect failed (or was refused by a rule): answer with the mapped reply, then close. */
  #fail(conn: Conn, request: ProxyRequest, err: SvpError): void {
    if (conn.client.closed) {
      this.#conns.finish(conn, err);
      return;
    }
    this.#refuse(conn, err, failureReply(request.protocol, err, request.dest));
  }

  /**
   * End a connection that will not be relayed: write `send`, half-close, discard what the
   * client still sends (so it reads the answer instead of a reset), and reset it if it
   * has not closed within the linger time.
   */
  #refuse(conn: Conn, err: SvpError | undefined, send?: Uint8Array): void {
    if (conn.phase === "closing") return;
    if (conn.phase === "handshake") this.#endHandshake(conn);
    conn.phase = "closing";
    conn.timer?.cancel();
    conn.timer = undefined;
    const client = conn.client;
    if (conn.onClose) client.off("close", conn.onClose);
    conn.onClose = undefined;
    if (client.closed) {
      this.#conns.finish(conn, err);
      return;
    }
    if (send && client.writable) client.write(send);
    if (client.writable) client.closeWrite();
    const timer = this.#o.clock.setTimeout(() => client.abort(err ?? new SvpError("ERR_TIMEOUT", "client did not close")), this.#o.lingerMs);
    client.on("data", discard);
    client.once("close", () => {
      timer.cancel();
      this.#conns.finish(conn, err);
    });
    client.resume();
  }

  /** The client closed before a request was complete or while connecting. */
  #onEarlyClose(conn: Conn, err: SvpError | undefined): void {
    conn.onClose = undefined;
    if (conn.phase === "dial") {
      conn.abortDial?.abort(new SvpError("ERR_ABORTED", "client went away while connecting"));
      return;
    }
    if (conn.phase === "handshake") {
      this.#endHandshake(conn);
      this.#conns.finish(conn, err ?? new SvpError("ERR_PROTOCOL", "client closed the connection during the handshake"));
    }
  }
}

function discard(): void {}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

export type { Destination };
