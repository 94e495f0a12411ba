/**
 * `MspStream`: one MSP connection as a `ByteStream` (src/stream/byte-stream.ts).
 *
 * - Reading: packets are delivered as `data` chunks (one per MSP packet) only while the
 *   stream is resumed; a delivered packet counts as consumed and only then is it
 *   acknowledged, so a paused stream stops the peer after one window. The peer's
 *   SHUTDOWN becomes `end` after its last data.
 * - Writing: chunks larger than the message size are split, smaller ones keep their
 *   boundaries; `write()` returns false once `highWaterMark` bytes wait beyond the window.
 *   `closeWrite()` sends SHUTDOWN after everything queued; `abort()` sends STOP.
 * - An incoming (listener) stream answers the connector only when the application takes
 *   it: on `accept()`, or implicitly on the first `resume()`, `write()` or `closeWrite()`.
 *   Aborting it before that refuses the connection with STOP, which the connector reports
 *   as ERR_REFUSED.
 * - `close` fires once, last: after a clean finish of both directions, or with an error
 *   after STOP (ERR_RESET), 10 s of silence (ERR_TIMEOUT) or loss of the transport
 *   (ERR_MESH_DOWN); a local abort closes with its reason.
 *
 * Streams come from `connectMsp()` and `MspListener`; the constructor is internal.
 */

import type { Clock } from "../clock.ts";
import type { SvpError } from "../errors.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import { sidShort } from "../mesh/sid.ts";
import { ByteStreamBase } from "../stream/byte-stream-base.ts";
import type { MspExtState, MspRole, MspState, MspTransportInfo } from "./connection.ts";
import { MspConnection } from "./connection.ts";
import type { MspCounters } from "./msp-counters.ts";
import type { MspParams } from "./params.ts";

/** A snapshot for `svp status` and logs: the connection's counters (msp-counters.ts) and its state. */
export interface MspStreamStats extends MspCounters {
  state: MspState;
  role: MspRole;
  local: MdpAddress;
  remote: MdpAddress;
  /** Whether svp's MSP extension is in use ("offered": not known yet). */
  extension: MspExtState;
  /** Window, congestion and RTT state of the sending side now. */
  transport: MspTransportInfo;
  /** Bytes written and waiting for window space. */
  pendingBytes: number;
  /** `clock.now()` when the stream was created. */
  startedAt: number;
  /** Error code when the state is "failed" with a reason. */
  error?: string;
}

/** @internal */
export interface MspStreamInit {
  role: MspRole;
  params: MspParams;
  clock: Clock;
  local: MdpAddress;
  remote: MdpAddress;
  /** Send one MSP packet to `remote`. */
  send: (packet: Uint8Array) => void;
  /** The connection is forgotten (linger over); the owner drops it. */
  onReleased: (stream: MspStream) => void;
  /** Connector: the peer answered. */
  onAnswered?: () => void;
}

export class MspStream extends ByteStreamBase {
  readonly label: string;
  readonly local: MdpAddress;
  readonly remote: MdpAddress;
  readonly role: MspRole;
  readonly startedAt: number;
  /** The state machine underneath (for tests and status). */
  readonly connection: MspConnection;
  #deliverScheduled = false;
  #outputScheduled = false;
  #delivering = false;
  #onAnswered: (() => void) | undefined;

  /** @internal Use `connectMsp()` or `listenMsp()`. */
  constructor(init: MspStreamInit) {
    super();
    this.local = init.local;
    this.remote = init.remote;
    this.role = init.role;
    this.label = `msp ${sidShort(init.remote.sid)}:${init.remote.port}`;
    this.startedAt = init.clock.now();
    this.#onAnswered = init.onAnswered;
    const send = init.send;
    const onReleased = init.onReleased;
    this.connection = new MspConnection(init.role, init.params, init.clock, {
      transmit: send,
      readable: () => {
        if (!this.paused) this.#deliver();
      },
      drain: () => {
        if (!this.finished) this.emit("drain");
      },
      answered: () => {
        const fn = this.#onAnswered;
        this.#onAnswered = undefined;
        fn?.();
      },
      closed: (err) => this.#onFinished(err),
      released: () => onReleased(this),
    });
  }

  /** True once `close` has fired (a microtask after the connection finished). */
  override get closed(): boolean {
    return this.closeFired;
  }
  get writableLength(): number {
    return this.connection.pendingBytes;
  }
  get state(): MspState {
    return this.connection.state;
  }

  get stats(): MspStreamStats {
    const c: MspCounters = this.connection.counters;
    const s: MspStreamStats = {
      state: this.connection.state,
      role: this.role,
      local: this.local,
      remote: this.remote,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      packetsIn: c.packetsIn,
      packetsOut: c.packetsOut,
      retransmissions: c.retransmissions,
      rttMs: c.rttMs === null ? null : Math.round(c.rttMs * 10) / 10,
      extension: this.connection.extension,
      losses: c.losses,
      spuriousLosses: c.spuriousLosses,
      probes: c.probes,
      transport: this.connection.transportInfo,
      pendingBytes: this.connection.pendingBytes,
      drops: { ...c.drops },
      startedAt: this.startedAt,
    };
    const err = this.connection.error;
    if (err) s.error = err.code;
    return s;
  }

  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    const ok = this.connection.write(chunk, false);
    this.#scheduleOutput();
    return ok;
  }

  closeWrite(): void {
    if (!this.markWriteClosed()) return;
    this.connection.shutdown(false);
    this.#scheduleOutput();
  }

  /**
   * Output leaves from one microtask per turn: packets written in the turn go together (a
   * SHUTDOWN rides on the last one), a reply carries the ack, and one ack covers every
   * packet consumed in the turn.
   */
  #scheduleOutput(): void {
    if (this.#outputScheduled) return;
    this.#outputScheduled = true;
    queueMicrotask(this.#output);
  }

  readonly #output = (): void => {
    this.#outputScheduled = false;
    if (this.finished) return;
    this.connection.flush();
    this.connection.flushAck();
  };

  abort(err?: SvpError): void {
    if (this.finished) return;
    this.markWriteClosed();
    this.connection.abort(err);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.accept();
  }

  /**
   * Listener streams: answer the connector now (implied by resume/write/closeWrite). The
   * answer goes out from a microtask, after anything deliverable was consumed, so it can
   * acknowledge the connector's 0-RTT data at once.
   */
  accept(): void {
    if (this.finished) return;
    this.connection.accept();
    if (!this.#deliverScheduled) {
      this.#deliverScheduled = true;
      queueMicrotask(() => {
        this.#deliverScheduled = false;
        this.#deliver();
      });
    }
    this.#scheduleOutput();
  }

  #deliver(): void {
    if (this.#delivering || this.finished) return;
    this.#delivering = true;
    const c = this.connection;
    let consumed = false;
    try {
      while (!this.paused && !this.finished) {
        const data = c.read();
        if (data === undefined) break;
        consumed = true;
        if (data.length > 0) this.emit("data", data);
        if (c.peerShutdown) this.deliverEnd();
      }
    } finally {
      this.#delivering = false;
    }
    if (consumed) this.#scheduleOutput();
  }

  #onFinished(err: SvpError | undefined): void {
    if (!this.finish(err, true)) return;
    this.#onAnswered = undefined;
  }
}
