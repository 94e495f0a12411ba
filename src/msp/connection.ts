/**
 * One MSP connection as a sans-I/O state machine: packets come in through `receive()`,
 * application calls through `write()`, `shutdown()`, `read()`, `abort()`; packets go out
 * through `handler.transmit()`. Time comes from the injected `Clock`, with one timer per
 * connection (every deadline shares it).
 *
 * Classic mode follows servald (msp_common.h, msp_client.c):
 * - Sequence numbers start at 0 each way and wrap at 16 bits; compared with `(int16)(a-b)`.
 *   The ack field is "next expected − 1" (0xFFFF before any data) and is only advanced when
 *   the application has consumed a packet (`read()`): that is the backpressure.
 * - Every packet carries ACK once a sequenced packet was received, and FIRST until any
 *   packet was received. At most `window` packets are unacknowledged; each is resent after
 *   `retransmitMs`. A 3-byte packet goes out when an ack is due (`flushAck()`) and after
 *   `keepaliveMs` without sending. `timeoutMs` without receiving closes the connection.
 * - SHUTDOWN marks the last sequenced packet (the last queued one, or a bare one). The
 *   connection finishes cleanly when both sides shut down, everything was acknowledged and
 *   the last ack was sent. STOP aborts.
 *
 * Extended mode (both ends svp, `params.extension`; docs/msp-extension.md): acks say what
 * *arrived* (cumulative plus ranges) and a separate limit says what the application has
 * room for, so flow control stays "what was consumed" while the window grows to what the
 * path carries: NewReno with pacing (new-reno.ts), losses found from packet numbers and
 * time (RFC 9002) instead of a fixed timer, a probe timeout from the measured RTT with
 * backoff, delayed acks, and messages as large as the path MTU. Keep-alive, timeout,
 * half-close, STOP and linger are the same in both modes.
 *
 * Deliberately unlike servald: data queued with a shutdown is never dropped (every byte is
 * sent before the SHUTDOWN packet), a peer's STOP before it answered is reported as a
 * refusal, and late packets after close are answered during `lingerMs`.
 */

import type { Clock } from "../clock.ts";
import { SvpError } from "../errors.ts";
import { DeadlineTimer } from "./deadline-timer.ts";
import { decodeExtPacket, type ExtAckInfo, EXT_MAX_HEADER_BYTES, EXT_MAX_RANGES, MSP_EXT, MSP_OFFER, writeExtHeader } from "./ext-packet.ts";
import { LossDetector } from "./loss-detector.ts";
import { countDrop, type MspCounters, newMspCounters } from "./msp-counters.ts";
import { NewReno, Pacer } from "./new-reno.ts";
import type { MspDropReason } from "./packet.ts";
import { MSP_FLAG, MSP_PREAMBLE_BYTES, decodeMspPacket, encodeMspAck, encodeMspStop, seqDiff, writeMspPreamble } from "./packet.ts";
import { PacketNumberLog, pnDiff } from "./packet-number-log.ts";
import type { MspParams } from "./params.ts";
import { ReceiveBuffer } from "./receive-buffer.ts";
import { RttEstimator } from "./rtt-estimator.ts";
import { SendQueue, type TxPacket } from "./send-queue.ts";

export type MspRole = "connector" | "listener";

/**
 * - connecting: connector, no answer from the peer yet
 * - accepting: listener, the application has not accepted the connection yet (nothing sent)
 * - open, local-shutdown, remote-shutdown, closing (both shut down, acks outstanding)
 * - closed: finished cleanly; failed: stopped, timed out, aborted or lost its transport
 */
export type MspState = "connecting" | "accepting" | "open" | "local-shutdown" | "remote-shutdown" | "closing" | "closed" | "failed";

/**
 * Whether this connection runs svp's extension: "off" (classic, servald's behaviour),
 * "offered" (connector, waiting to hear whether the peer speaks it) or "on".
 */
export type MspExtState = "off" | "offered" | "on";

/** Outputs of the state machine. Called synchronously; none may throw. */
export interface MspConnectionHandler {
  /** Send this MSP packet to the peer. The transport copies or sends it before returning. */
  transmit(packet: Uint8Array): void;
  /** The next in-order packet can be `read()`. */
  readable(): void;
  /** `write()` returned false before and the local buffer has fallen to half the high-water mark. */
  drain(): void;
  /** The first packet from the peer arrived (for a connector: the connect succeeded). */
  answered(): void;
  /** The connection finished: `err` is undefined after a clean close or a reason-less local abort. */
  closed(err: SvpError | undefined): void;
  /** Linger is over: nothing more will happen; forget this connection. */
  released(): void;
}

/** A snapshot of the sender's transport state (for status and `--verbose`). */
export interface MspTransportInfo {
  extension: MspExtState;
  /** Data bytes per message now. */
  messageSize: number;
  /** Packets sent and not yet acknowledged. */
  packetsInFlight: number;
  /** Extended mode: bytes counted against the congestion window; classic: data bytes unacknowledged. */
  bytesInFlight: number;
  /** Extended mode: congestion window, bytes; null in classic mode. */
  cwnd: number | null;
  /** Extended mode: slow-start threshold, bytes (null before the first loss or in classic mode). */
  ssthresh: number | null;
  /** Packets the peer allows in flight now (classic: the fixed window). */
  peerWindow: number;
  /** Smoothed RTT and its variation, ms (null before a sample). */
  srttMs: number | null;
  rttvarMs: number | null;
  minRttMs: number | null;
}

type Outcome = "clean" | "aborted" | "stopped" | "refused" | "timeout" | "down";

/** Packets a receiver may let pile up before it acknowledges (extended mode). */
const EXT_ACK_EVERY = 2;
/** Initial RTT before any sample (RFC 9002 kInitialRtt), ms. */
const EXT_INITIAL_RTT_MS = 333;
/** Probe timeouts in a row after which everything outstanding counts as lost. */
const EXT_PERSISTENT_PTOS = 2;
/** Largest extended packet accepted, bytes (UDP's limit, well above any path MTU). */
const EXT_MAX_PACKET_BYTES = 65_507;
/** The classic receive window an offering connector has before it switches (peers assume it). */
const CLASSIC_PEER_WINDOW = 8;

export class MspConnection {
  readonly role: MspRole;
  readonly params: MspParams;
  readonly counters: MspCounters = newMspCounters();
  readonly #clock: Clock;
  readonly #h: MspConnectionHandler;

  #ext: MspExtState;
  #started: boolean;
  #answered: boolean;
  #heard = false;
  #receivedData = false;
  #closed = false;
  #outcome: Outcome | undefined;
  #error: SvpError | undefined;
  #released = false;
  #lingerUntil = 0;
  #lingerCap = 0;

  // ---- sending
  #txNext = 0;
  /** Sent and not cumulatively acknowledged, in sequence order, from index `#ih`. */
  #inflight: TxPacket[] = [];
  #ih = 0;
  #pending = new SendQueue();
  #localShutdown = false;
  #wantDrain = false;
  #inWrite = false;
  #messageSize: number;
  #highWaterMark: number;

  // ---- receiving
  #rx: ReceiveBuffer;
  #peerShutdownSeq = -1;
  #peerShutdown = false;
  #lastAckSent = -1;
  #ackDue = false;

  // ---- extended mode
  #rtt = new RttEstimator(EXT_INITIAL_RTT_MS);
  #cc: NewReno | undefined;
  #pacer: Pacer | undefined;
  #bytesInFlight = 0;
  #lostCount = 0;
  #pns = new PacketNumberLog();
  #largestAcked = 0;
  #peerLimit = (CLASSIC_PEER_WINDOW - 1) & 0xffff;
  #ptoCount = 0;
  #lastElicitingAt = -Infinity;
  #loss = new LossDetector();
  #paceAt = Infinity;
  #cwndBlocked = false;
  #largestRx = 0;
  #largestRxAt = 0;
  #elicited = 0;
  #elicitedAt = 0;
  #ackNow = false;
  #lastLimitSent = -1;
  #firstSentAt = -1;
  #resentBeforeHeard = false;

  #lastRx: number;
  #lastTx: number;
  readonly #timer: DeadlineTimer;

  constructor(role: MspRole, params: MspParams, clock: Clock, handler: MspConnectionHandler) {
    this.role = role;
    this.params = params;
    this.#clock = clock;
    this.#h = handler;
    // A connector sends nothing until start() (its port is bound and 0-RTT data queued);
    // a listener sends nothing until the application accepts the connection.
    this.#started = role === "listener";
    this.#answered = role === "connector";
    // A listener decides when the first packet shows whether the connector offered.
    this.#ext = params.extension && role === "connector" ? "offered" : "off";
    this.#messageSize = params.messageSize;
    this.#highWaterMark = params.highWaterMark;
    this.#rx = new ReceiveBuffer(params.receiveWindow);
    this.#timer = new DeadlineTimer(clock, this.#onTimer);
    const now = clock.now();
    this.#lastRx = now;
    this.#lastTx = now;
    this.#arm(now + params.timeoutMs);
  }

  // ---- status ------------------------------------------------------------------------

  get state(): MspState {
    if (this.#closed) return this.#outcome === "clean" ? "closed" : "failed";
    if (!this.#heard && this.role === "connector") return "connecting";
    if (!this.#answered) return "accepting";
    if (this.#localShutdown && this.#peerShutdown) return "closing";
    if (this.#localShutdown) return "local-shutdown";
    if (this.#peerShutdown) return "remote-shutdown";
    return "open";
  }
  get closed(): boolean {
    return this.#closed;
  }
  /** True once the connection finished cleanly (both sides shut down, all acknowledged). */
  get closedCleanly(): boolean {
    return this.#outcome === "clean";
  }
  get error(): SvpError | undefined {
    return this.#error;
  }
  /** True once linger is over (or the transport went away). */
  get released(): boolean {
    return this.#released;
  }
  /** A packet from the peer has arrived. */
  get heard(): boolean {
    return this.#heard;
  }
  /** The peer's SHUTDOWN has been consumed: it sends nothing more. */
  get peerShutdown(): boolean {
    return this.#peerShutdown;
  }
  get localShutdown(): boolean {
    return this.#localShutdown;
  }
  /** Whether svp's extension is in use (see `MspExtState`). */
  get extension(): MspExtState {
    return this.#ext;
  }
  /** Bytes written but not yet handed to the transport (waiting for window space). */
  get pendingBytes(): number {
    return this.#pending.bytes;
  }
  /** Packets sent and not yet acknowledged. */
  get inflightCount(): number {
    return this.#inflight.length - this.#ih;
  }
  /** Packets received and not yet consumed (in order or not). */
  get bufferedCount(): number {
    return this.#rx.count;
  }

  /** The sender's window, RTT and congestion state now. */
  get transportInfo(): MspTransportInfo {
    const on = this.#ext === "on";
    let classicBytes = 0;
    for (let i = this.#ih; i < this.#inflight.length; i++) classicBytes += this.#inflight[i]!.len;
    const sampled = this.#rtt.samples > 0;
    return {
      extension: this.#ext,
      messageSize: this.#messageSize,
      packetsInFlight: this.inflightCount,
      bytesInFlight: on ? this.#bytesInFlight : classicBytes,
      cwnd: on && this.#cc ? Math.round(this.#cc.cwnd) : null,
      ssthresh: on && this.#cc && Number.isFinite(this.#cc.ssthresh) ? Math.round(this.#cc.ssthresh) : null,
      peerWindow: on ? Math.max(0, seqDiff(this.#peerLimit, this.#txNext) + this.inflightCount + 1) : this.params.window,
      srttMs: on && sampled ? this.#rtt.srtt : this.counters.rttMs,
      rttvarMs: on && sampled ? this.#rtt.rttvar : null,
      minRttMs: on && sampled ? this.#rtt.minRtt : null,
    };
  }

  // ---- application side -------------------------------------------------------------

  /** Connector: begin sending (the FIRST packet, or the queued 0-RTT data). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#pump();
    if (this.inflightCount === 0 && !this.#closed) this.#sendAck(this.#clock.now());
  }

  /**
   * Listener: the application takes the connection; the answer (an ack) goes out with the
   * next `flushAck()` or packet. Implied by `write()` and `shutdown()`.
   */
  accept(): void {
    if (this.#answered || this.#closed) return;
    this.#answered = true;
    this.#ackDue = true;
    this.#ackNow = true;
    this.#pump();
  }

  /**
   * Queue bytes. Classic mode splits them into messages of at most `messageSize` and keeps
   * the boundaries of small writes (as servald does); extended mode packs consecutive writes
   * into messages as large as the path carries. False = wait for `drain`. With `send` false
   * the packets wait for `flush()`, so that a write and a shutdown in the same turn leave as
   * one packet carrying SHUTDOWN (as servald does).
   */
  write(chunk: Uint8Array, send = true): boolean {
    if (this.#closed || this.#localShutdown) throw new SvpError("ERR_ABORTED", `write after ${this.#closed ? "close" : "shutdown"}`);
    if (!this.#answered) this.accept();
    if (this.#ext === "on") this.#pending.queueExt(chunk, this.#messageSize);
    else this.#pending.queueClassic(chunk, this.#messageSize);
    if (send) {
      this.#inWrite = true;
      try {
        this.#pump();
      } finally {
        this.#inWrite = false;
      }
    }
    const ok = this.#pending.bytes < this.#highWaterMark;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  /** Send what the window allows of the queued packets (after `write(…, false)`/`shutdown(false)`). */
  flush(): void {
    this.#pump();
    this.#maybeFinish();
  }

  /** Half-close: SHUTDOWN goes on the last queued packet, or on a bare one. Idempotent. */
  shutdown(send = true): void {
    if (this.#closed || this.#localShutdown) return;
    this.#localShutdown = true;
    if (!this.#answered) this.accept();
    this.#pending.queueShutdown(this.#ext === "on" ? EXT_MAX_HEADER_BYTES : MSP_PREAMBLE_BYTES);
    if (send) this.flush();
  }

  /**
   * Take the next in-order packet's data (possibly empty) and count it as consumed; the ack
   * becomes due. Undefined when nothing is in order. Check `peerShutdown` afterwards.
   */
  read(): Uint8Array | undefined {
    if (this.#closed || this.#peerShutdown) return undefined;
    const rx = this.#rx;
    const shut = rx.nextIsShutdown;
    const data = rx.take();
    if (data === undefined) return undefined;
    this.#ackDue = true;
    this.counters.bytesIn += data.length;
    // A window update once a quarter of the receive window has been freed since the last one.
    if (this.#ext === "on" && seqDiff(rx.limit, this.#lastLimitSent) * 4 >= rx.size) this.#ackNow = true;
    if (shut) {
      this.#peerShutdown = true;
      rx.clear();
    }
    return data;
  }

  /** Whether `read()` would return a packet now. */
  get hasReadable(): boolean {
    return !this.#closed && !this.#peerShutdown && this.#rx.hasNext;
  }

  /**
   * Send the due ack now, unless a data packet already carried it. In extended mode an ack
   * goes now only when one is needed at once (two packets unacknowledged, a gap, a
   * SHUTDOWN, a window update); otherwise the delayed-ack timer sends it.
   */
  flushAck(): void {
    if (this.#answered && this.#started && !this.#closed) {
      if (this.#ext === "on") {
        const now = this.#clock.now();
        if (this.#ackNow) this.#sendAck(now);
        else if (this.#elicited > 0) this.#arm(this.#elicitedAt + this.params.extMaxAckDelayMs);
      } else if (this.#ackDue) {
        this.#sendAck(this.#clock.now());
      }
    }
    this.#maybeFinish();
  }

  /** Abort: send STOP (if anything could have reached the peer) and finish with `err`. */
  abort(err?: SvpError): void {
    if (this.#closed) return;
    if (this.#started) this.#transmitRaw(encodeMspStop(), this.#clock.now());
    this.#finish("aborted", err);
  }

  /** The transport under this connection is gone: finish (if still open) and release now. */
  transportLost(err: SvpError = new SvpError("ERR_MESH_DOWN", "MDP socket closed")): void {
    if (!this.#closed) this.#finish("down", err);
    this.#release();
  }

  /** Forget a finished connection before its linger is over (e.g. a new connection reuses its address). */
  release(): void {
    if (this.#closed) this.#release();
  }

  // ---- network side -----------------------------------------------------------------

  /** One MSP packet from the peer. Bad or unfitting packets are dropped and counted; never throws. */
  receive(bytes: Uint8Array): void {
    if (this.#released) return;
    if (bytes.length > 0 && bytes[0]! & MSP_EXT && !(bytes[0]! & MSP_FLAG.STOP)) {
      this.#receiveExt(bytes);
      return;
    }
    const now = this.#clock.now();
    const r = decodeMspPacket(bytes, this.params.maxPacketBytes);
    if (!r.ok) {
      this.#drop(r.reason);
      return;
    }
    const p = r.packet;
    if (this.#closed) {
      this.#receiveAfterClose(p.form === "stop", p.form === "sequenced" ? p.seq : -1, now);
      return;
    }
    if (p.form === "stop") {
      this.counters.packetsIn++;
      this.#lastRx = now;
      this.#onStop();
      return;
    }
    if (this.#ext === "on" && this.role === "connector") {
      // The listener answered in the extended format; a classic packet now contradicts it.
      this.#drop("bad-ext");
      return;
    }
    // In extended mode (listener) a classic packet comes from the connector before it heard
    // us: its ack field says nothing (it has received nothing).
    const classicAck = this.#ext !== "on" && (p.flags & MSP_FLAG.ACK) !== 0;
    if (classicAck && seqDiff(p.ack, this.#txNext - 1) > 0) {
      this.#drop("bad-ack");
      return;
    }
    this.counters.packetsIn++;
    this.#lastRx = now;
    if (!this.#heard) {
      this.#heard = true;
      if (this.role === "listener" && this.params.extension && p.flags & MSP_OFFER) this.#switchToExt(now);
      else if (this.#ext === "offered") this.#ext = "off";
      this.#h.answered();
      if (this.#closed) return;
    }
    if (classicAck) this.#onAck(p.ack, now);
    if (this.#closed) return;
    if (p.form === "sequenced") this.#onSequenced(p.seq, p.flags, p.data, now);
    else this.#afterReceive();
  }

  // ---- internals: classic -----------------------------------------------------------

  #ackFlags(): number {
    return (this.#receivedData ? MSP_FLAG.ACK : 0) | (this.#heard ? 0 : MSP_FLAG.FIRST | (this.#ext === "offered" ? MSP_OFFER : 0));
  }

  #onAck(ack: number, now: number): void {
    const inflight = this.#inflight;
    let k = this.#ih;
    while (k < inflight.length && seqDiff(inflight[k]!.seq, ack) <= 0) k++;
    if (k === this.#ih) return;
    for (let j = k - 1; j >= this.#ih; j--) {
      const p = inflight[j]!;
      if (!p.retransmitted) {
        const sample = now - p.sentAt;
        const c = this.counters;
        c.rttMs = c.rttMs === null ? sample : c.rttMs + (sample - c.rttMs) / 8;
        break;
      }
    }
    this.#advanceInflight(k);
    this.#pump();
  }

  #onSequenced(seq: number, flags: number, data: Uint8Array, now: number): void {
    this.#receivedData = true;
    const ext = this.#ext === "on";
    const rx = this.#rx;
    const off = seqDiff(seq, rx.next);
    let reack = false;
    if (off < 0) {
      // Already consumed: our ack was probably lost, so repeat it now.
      this.#drop("duplicate");
      reack = true;
    } else if (off >= rx.size) {
      this.#drop("beyond-window");
    } else if (this.#peerShutdown || (this.#peerShutdownSeq >= 0 && seqDiff(seq, this.#peerShutdownSeq) > 0)) {
      this.#drop("after-shutdown");
    } else {
      if (rx.has(off)) {
        this.#drop("duplicate");
        if (ext) this.#ackNow = true;
      } else {
        const shut = (flags & MSP_FLAG.SHUTDOWN) !== 0;
        rx.put(off, data, shut);
        if (shut && (this.#peerShutdownSeq < 0 || seqDiff(seq, this.#peerShutdownSeq) < 0)) this.#peerShutdownSeq = seq;
        if (ext) this.#onArrivedExt(off, flags, now);
        if (off === 0) this.#h.readable();
        if (this.#closed) return;
      }
    }
    // The ack for data consumed in `readable()` is the driver's to send (`flushAck()`), so
    // that one ack can cover a burst; a repeated ack for old data goes at once.
    if (reack) {
      this.#ackDue = true;
      this.#ackNow = true;
      this.flushAck();
    } else {
      this.#afterReceive();
    }
  }

  #afterReceive(): void {
    if (this.#ext === "on") {
      // Acks and window updates go out from flushAck() (the driver's turn) or the timer.
      this.#armExt();
    }
    this.#maybeFinish();
  }

  #onStop(): void {
    if (this.role === "connector" && !this.#heard) {
      this.#finish("refused", new SvpError("ERR_REFUSED", "connection refused by the peer (MSP STOP)"));
      return;
    }
    // servald answers our retransmitted bare SHUTDOWN with STOP once it has closed: if that
    // is all that is outstanding and the peer has shut down too, nothing was lost.
    let onlyBare = true;
    for (let i = this.#ih; i < this.#inflight.length; i++) if (this.#inflight[i]!.len !== 0) onlyBare = false;
    if (this.#peerShutdown && this.#localShutdown && this.#pending.empty && onlyBare) {
      this.#finish("clean", undefined);
      return;
    }
    this.#finish("stopped", new SvpError("ERR_RESET", "connection reset by the peer (MSP STOP)"));
  }

  #pump(): void {
    if (!this.#started || !this.#answered || this.#closed) return;
    if (this.#ext === "on") this.#pumpExt(this.#clock.now());
    else this.#pumpClassic();
    if (this.#wantDrain && !this.#inWrite && this.#pending.bytes <= this.#highWaterMark / 2) {
      this.#wantDrain = false;
      this.#h.drain();
    }
  }

  #pumpClassic(): void {
    const window = this.params.window;
    const pending = this.#pending;
    if (!pending.empty && this.inflightCount < window) {
      const now = this.#clock.now();
      while (this.inflightCount < window && !pending.empty) {
        const p = this.#takePending();
        this.#inflight.push(p);
        this.#sendData(p, now, false);
      }
      pending.compact();
    }
  }

  #takePending(): TxPacket {
    const p = this.#pending.take(this.#txNext);
    this.#txNext = (this.#txNext + 1) & 0xffff;
    return p;
  }

  #advanceInflight(k: number): void {
    this.#ih = k;
    const inflight = this.#inflight;
    if (k === inflight.length) {
      inflight.length = 0;
      this.#ih = 0;
    } else if (k > 64 && k * 2 > inflight.length) {
      this.#inflight = inflight.slice(k);
      this.#ih = 0;
    }
  }

  #sendData(p: TxPacket, now: number, again: boolean): void {
    if (again) {
      p.retransmitted = true;
      this.counters.retransmissions++;
    } else {
      this.counters.bytesOut += p.len;
      if (this.#firstSentAt < 0) this.#firstSentAt = now;
    }
    if (!this.#heard && again) this.#resentBeforeHeard = true;
    if (this.#ext === "on") {
      this.#sendDataExt(p, now);
      return;
    }
    let buf = p.buf;
    if (again) {
      // The first buffer was handed to the transport: never modify it, send a copy.
      buf = buf.slice();
      p.buf = buf;
    }
    const ack = (this.#rx.next - 1) & 0xffff;
    const start = p.room - MSP_PREAMBLE_BYTES;
    writeMspPreamble(start === 0 ? buf : buf.subarray(start), this.#ackFlags() | p.flags, ack, p.seq);
    this.#lastAckSent = ack;
    this.#ackDue = false;
    p.sentAt = now;
    this.#transmitRaw(start === 0 && buf.length === p.room + p.len ? buf : buf.subarray(start, p.room + p.len), now);
  }

  #sendAck(now: number): void {
    if (this.#ext === "on") {
      this.#sendAckExt(now);
      return;
    }
    const ack = (this.#rx.next - 1) & 0xffff;
    this.#lastAckSent = ack;
    this.#ackDue = false;
    this.#transmitRaw(encodeMspAck(this.#ackFlags(), ack), now);
  }

  #transmitRaw(packet: Uint8Array, now: number): void {
    this.#lastTx = now;
    this.counters.packetsOut++;
    this.#h.transmit(packet);
    if (this.#closed) return;
    if (this.#ext === "on") this.#armExt();
    else this.#arm(now + Math.min(this.params.retransmitMs, this.params.keepaliveMs));
  }

  // ---- internals: extended mode -------------------------------------------------------

  /** Both ends speak the extension: from now on every packet this side sends is extended. */
  #switchToExt(now: number): void {
    const p = this.params;
    this.#ext = "on";
    this.#messageSize = p.extMaxPacketBytes - EXT_MAX_HEADER_BYTES;
    this.#highWaterMark = Math.max(p.highWaterMark, p.extHighWaterMark);
    this.#cc = new NewReno(p.extMaxPacketBytes);
    this.#pacer = new Pacer(now, this.#cc.cwnd);
    // The connector's answer came one round trip after its first packet (if nothing was resent).
    if (this.role === "connector" && this.#firstSentAt >= 0 && !this.#resentBeforeHeard) this.#takeRttSample(now - this.#firstSentAt, 0);
    // Receive buffer: as many packets as the byte budget allows at the largest message size,
    // never less than the classic window nor more than a quarter of the sequence space.
    const slots = Math.min(8192, Math.max(this.#rx.size, 32, Math.ceil(p.extReceiveBytes / (p.extMaxPacketBytes - EXT_MAX_HEADER_BYTES))));
    this.#rx.grow(slots);
    this.#rx.startTracking();
    // Packets sent classic are in flight with packet number 0 (older than any numbered one).
    // The probe timeout covers them from their last transmission on.
    for (let i = this.#ih; i < this.#inflight.length; i++) {
      const q = this.#inflight[i]!;
      q.counted = q.len + MSP_PREAMBLE_BYTES;
      this.#bytesInFlight += q.counted;
      this.#lastElicitingAt = Math.max(this.#lastElicitingAt, q.sentAt);
    }
    this.#pending.recutExt(this.#messageSize);
    this.#ackNow = true;
  }

  #ackInfo(now: number): ExtAckInfo {
    const rx = this.#rx;
    return {
      ack: rx.cumulativeAck,
      limit: rx.limit,
      largest: this.#largestRx,
      delayMs: this.#largestRx === 0 ? 0 : now - this.#largestRxAt,
      ranges: rx.ackRanges(EXT_MAX_RANGES),
    };
  }

  #ackSent(info: ExtAckInfo): void {
    this.#lastAckSent = info.ack;
    this.#lastLimitSent = info.limit;
    this.#ackDue = false;
    this.#ackNow = false;
    this.#elicited = 0;
  }

  #sendAckExt(now: number): void {
    const info = this.#ackInfo(now);
    const head = 16 + 2 * info.ranges.length;
    const out = new Uint8Array(head);
    writeExtHeader(out, head, 0, 0, info, -1);
    this.#ackSent(info);
    this.#transmitRaw(out, now);
  }

  #sendDataExt(p: TxPacket, now: number): void {
    if (p.room < EXT_MAX_HEADER_BYTES) {
      // Cut classic (before the switch): move the data behind a larger header room.
      const buf = new Uint8Array(EXT_MAX_HEADER_BYTES + p.len);
      buf.set(p.buf.subarray(p.room, p.room + p.len), EXT_MAX_HEADER_BYTES);
      p.buf = buf;
      p.room = EXT_MAX_HEADER_BYTES;
    }
    const pn = this.#pns.record(now);
    p.pn = pn;
    p.sentAt = now;
    p.lost = false;
    if (p.counted === 0) {
      p.counted = p.len + EXT_MAX_HEADER_BYTES;
      this.#bytesInFlight += p.counted;
    }
    this.#lastElicitingAt = now;
    const info = this.#ackInfo(now);
    const start = writeExtHeader(p.buf, p.room, p.flags, pn, info, p.seq);
    this.#ackSent(info);
    this.#transmitRaw(p.buf.subarray(start, p.room + p.len), now);
  }

  #pumpExt(now: number): void {
    const cc = this.#cc!;
    const pacer = this.#pacer!;
    const sampled = this.#rtt.samples > 0;
    if (sampled) {
      const rate = cc.pacingRate(this.#rtt.srtt);
      // The bucket holds at least what the rate brings in 2 ms: timers are not finer than that.
      pacer.refill(now, rate, Math.max(2 * cc.maxDatagram, cc.cwnd / 8, rate * 2));
    }
    this.#paceAt = Infinity;
    let sent = false;
    const canSend = (): boolean => {
      if (this.#bytesInFlight >= cc.cwnd) {
        this.#cwndBlocked = true;
        return false;
      }
      if (sampled && !pacer.take(0)) {
        this.#paceAt = now + Math.max(0.1, pacer.waitMs(cc.pacingRate(this.#rtt.srtt)));
        this.#cwndBlocked = true;
        return false;
      }
      return true;
    };
    // Packets declared lost go first, in sequence order.
    if (this.#lostCount > 0) {
      for (let i = this.#ih; i < this.#inflight.length && this.#lostCount > 0; i++) {
        const p = this.#inflight[i]!;
        if (!p.lost) continue;
        if (!canSend()) break;
        this.#lostCount--;
        if (sampled) pacer.take(p.len + EXT_MAX_HEADER_BYTES);
        this.#sendData(p, now, true);
        sent = true;
        if (this.#closed) return;
      }
    }
    const pending = this.#pending;
    while (!pending.empty && this.#lostCount === 0) {
      if (seqDiff(this.#txNext, this.#peerLimit) > 0 || this.inflightCount >= this.params.extMaxWindow) break;
      if (!canSend()) break;
      const p = this.#takePending();
      this.#inflight.push(p);
      if (sampled) pacer.take(p.len + EXT_MAX_HEADER_BYTES);
      this.#sendData(p, now, false);
      sent = true;
      if (this.#closed) return;
    }
    pending.compact();
    if (sent || this.#paceAt !== Infinity) this.#armExt();
  }

  /** A new packet arrived at ring offset `off` (not a duplicate). */
  #onArrivedExt(off: number, flags: number, now: number): void {
    const rx = this.#rx;
    if (this.#elicited++ === 0) this.#elicitedAt = now;
    // At once: every second packet, anything that leaves or fills a gap, and the end.
    if (this.#elicited >= EXT_ACK_EVERY || off !== rx.contig - 1 || rx.maxOff >= rx.contig || flags & MSP_FLAG.SHUTDOWN) this.#ackNow = true;
  }

  #receiveExt(bytes: Uint8Array): void {
    const now = this.#clock.now();
    // Whatever arrived, the path carried: accept up to the largest MDP payload there is (a
    // peer whose path MTU is larger than ours must not stall on drops we could avoid).
    if (bytes.length > EXT_MAX_PACKET_BYTES) return this.#drop("oversize");
    const r = decodeExtPacket(bytes);
    if (!r.ok) return this.#drop("bad-ext");
    const p = r.packet;
    if (this.#closed) {
      this.#receiveAfterClose(false, p.seq, now);
      return;
    }
    // Only a connector that offered may hear an extended answer, and only a listener that
    // switched may get extended packets (from the connector, after its switch).
    if (this.#ext === "off" || (this.#ext === "offered" && this.#heard)) return this.#drop("bad-ext");
    const sentLast = (this.#txNext - 1) & 0xffff;
    if (seqDiff(p.ack, sentLast) > 0) return this.#drop("bad-ack");
    for (let i = 1; i < p.ranges.length; i += 2) if (seqDiff(p.ranges[i]!, sentLast) > 0) return this.#drop("bad-ack");
    if (p.largest !== 0 && pnDiff(p.largest, this.#pns.next) >= 0) return this.#drop("bad-ack");
    const window = seqDiff(p.limit, p.ack);
    if (window < 0 || window > 8192) return this.#drop("bad-ext");
    if (p.pn !== 0 && this.#largestRx !== 0 && pnDiff(p.pn, this.#largestRx) < -0x4000_0000) return this.#drop("bad-ext");
    this.counters.packetsIn++;
    this.#lastRx = now;
    if (!this.#heard) {
      this.#heard = true;
      this.#switchToExt(now);
      this.#h.answered();
      if (this.#closed) return;
    }
    if (p.pn !== 0 && (this.#largestRx === 0 || pnDiff(p.pn, this.#largestRx) > 0)) {
      this.#largestRx = p.pn;
      this.#largestRxAt = now;
    }
    this.#onAckExt(p, now);
    if (this.#closed) return;
    if (p.seq >= 0) this.#onSequenced(p.seq, p.flags, p.data, now);
    else this.#afterReceive();
  }

  #onAckExt(info: ExtAckInfo, now: number): void {
    const cc = this.#cc!;
    if (seqDiff(info.limit, this.#peerLimit) > 0) this.#peerLimit = info.limit;
    const limited = !this.#cwndBlocked;
    this.#cwndBlocked = false;
    let progress = false;
    const inflight = this.#inflight;
    const acked = (p: TxPacket): void => {
      progress = true;
      if (p.lost) {
        // It arrived after all (reordered, not lost): tolerate more reordering from now on,
        // and give back the window reduction it caused.
        p.lost = false;
        this.#lostCount--;
        this.counters.spuriousLosses++;
        this.#loss.onSpuriousLoss(this.#largestAcked, p.pn);
        cc.onSpuriousLoss(p.sentAt);
      }
      if (p.counted > 0) {
        this.#bytesInFlight -= p.counted;
        cc.onAcked(p.counted, p.sentAt, limited);
        p.counted = 0;
      }
    };
    // Cumulative part.
    let k = this.#ih;
    while (k < inflight.length && seqDiff(inflight[k]!.seq, info.ack) <= 0) {
      const p = inflight[k]!;
      if (!p.sacked) acked(p);
      k++;
    }
    if (k !== this.#ih) this.#advanceInflight(k);
    // Ranges above it.
    if (info.ranges.length > 0 && this.#ih < this.#inflight.length) {
      const list = this.#inflight;
      const base = list[this.#ih]!.seq;
      for (let r = 0; r < info.ranges.length; r += 2) {
        const from = Math.max(0, seqDiff(info.ranges[r]!, base));
        const to = seqDiff(info.ranges[r + 1]!, base);
        for (let j = from; j <= to && this.#ih + j < list.length; j++) {
          const p = list[this.#ih + j]!;
          if (!p.sacked) {
            p.sacked = true;
            acked(p);
          }
        }
      }
    }
    // RTT from the largest packet number acknowledged, when it is new.
    if (info.largest !== 0 && (this.#largestAcked === 0 || pnDiff(info.largest, this.#largestAcked) > 0)) {
      this.#largestAcked = info.largest;
      const sentAt = this.#pns.sentAt(info.largest);
      if (sentAt !== undefined) this.#takeRttSample(now - sentAt, info.delayMs);
    }
    if (progress) this.#ptoCount = 0;
    this.#detectLosses(now);
    this.#pump();
    this.#armExt();
  }

  #takeRttSample(ms: number, ackDelayMs: number): void {
    this.#rtt.update(ms, ackDelayMs, this.params.extMaxAckDelayMs);
    this.counters.rttMs = this.#rtt.srtt;
  }

  /** RFC 9002 6.1: a packet overtaken by 3 later ones, or sent 9/8 RTT before one that arrived, is lost (loss-detector.ts). */
  #detectLosses(now: number): void {
    this.#loss.detect(this.#inflight, this.#ih, this.#largestAcked, now, this.#rtt, (p) => this.#markLost(p, now, this.#cc!));
  }

  #markLost(p: TxPacket, now: number, cc: NewReno): void {
    p.lost = true;
    this.#lostCount++;
    this.counters.losses++;
    if (p.counted > 0) {
      this.#bytesInFlight -= p.counted;
      p.counted = 0;
    }
    cc.onLoss(p.sentAt, now);
  }

  #ptoDeadline(): number {
    if (this.inflightCount === 0 || this.#lastElicitingAt === -Infinity) return Infinity;
    const base = this.#rtt.pto(this.params.extMaxAckDelayMs, this.params.extMinPtoMs);
    return this.#lastElicitingAt + base * 2 ** Math.min(this.#ptoCount, 6);
  }

  #armExt(): void {
    if (this.#closed) return;
    const p = this.params;
    let at = this.#lastRx + p.timeoutMs;
    if (this.#started && this.#answered) {
      at = Math.min(at, this.#lastTx + p.keepaliveMs, this.#loss.lossTime, this.#ptoDeadline(), this.#paceAt);
      if (this.#elicited > 0) at = Math.min(at, this.#elicitedAt + p.extMaxAckDelayMs);
    }
    this.#arm(at);
  }

  #onTimerExt(now: number): void {
    const p = this.params;
    if (!(this.#started && this.#answered)) return;
    if (now >= this.#loss.lossTime) {
      this.#detectLosses(now);
      this.#pump();
      if (this.#closed) return;
    }
    if (now >= this.#ptoDeadline()) this.#onProbeTimeout(now);
    if (this.#closed) return;
    if (now >= this.#paceAt) this.#pump();
    if (this.#closed) return;
    if ((this.#elicited > 0 && now >= this.#elicitedAt + p.extMaxAckDelayMs) || this.#ackNow || now >= this.#lastTx + p.keepaliveMs) this.#sendAck(now);
  }

  /** No ack for a probe timeout: resend the oldest unacknowledged packet; after several in a row, everything counts as lost. */
  #onProbeTimeout(now: number): void {
    this.#ptoCount++;
    this.counters.probes++;
    const cc = this.#cc!;
    const list = this.#inflight;
    if (this.#ptoCount >= EXT_PERSISTENT_PTOS) {
      for (let i = this.#ih; i < list.length; i++) {
        const q = list[i]!;
        if (!q.sacked && !q.lost) this.#markLost(q, now, cc);
      }
      cc.onPersistentCongestion(now);
    }
    for (let i = this.#ih; i < list.length; i++) {
      const q = list[i]!;
      if (q.sacked) continue;
      if (q.lost) {
        q.lost = false;
        this.#lostCount--;
      }
      this.#sendData(q, now, true);
      break;
    }
    if (!this.#closed) this.#pump();
  }

  // ---- internals: both modes ----------------------------------------------------------

  #maybeFinish(): void {
    if (
      !this.#closed &&
      this.#localShutdown &&
      this.#peerShutdown &&
      this.inflightCount === 0 &&
      this.#pending.empty &&
      this.#lastAckSent === ((this.#rx.next - 1) & 0xffff)
    ) {
      this.#finish("clean", undefined);
    }
  }

  #finish(outcome: Outcome, err: SvpError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#outcome = outcome;
    this.#error = err;
    this.#inflight = [];
    this.#ih = 0;
    this.#pending.clear();
    this.#bytesInFlight = 0;
    this.#lostCount = 0;
    this.#rx.clear();
    this.#timer.cancel();
    const now = this.#clock.now();
    this.#lingerUntil = now + this.params.lingerMs;
    this.#lingerCap = now + this.params.timeoutMs;
    this.#h.closed(err);
    if (this.#released) return;
    // Linger only where the peer may still retransmit: after a clean close (our last ack may
    // be lost) or a local abort (our STOP may be lost). A peer that stopped or fell silent is gone.
    if (this.params.lingerMs <= 0 || (outcome !== "clean" && outcome !== "aborted")) this.#release();
    else this.#arm(this.#lingerUntil);
  }

  /**
   * Late packets: after a clean close, a retransmission of something we consumed means our
   * last ack was lost, so repeat it; after an abort or STOP, repeat STOP. Never answer STOP.
   */
  #receiveAfterClose(isStop: boolean, seq: number, now: number): void {
    if (isStop) {
      this.#release();
      return;
    }
    this.#drop("after-close");
    this.#lingerUntil = Math.min(now + this.params.lingerMs, this.#lingerCap);
    if (this.#outcome === "clean") {
      if (seq >= 0 && seqDiff(seq, this.#rx.next) < 0) this.#sendAck(now);
    } else {
      this.#transmitRaw(encodeMspStop(), now);
    }
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#timer.cancel();
    this.#h.released();
  }

  #drop(reason: MspDropReason): void {
    countDrop(this.counters, reason);
  }

  /** Keep the one timer at the earliest deadline; later deadlines are found when it fires. */
  #arm(at: number): void {
    this.#timer.arm(at);
  }

  readonly #onTimer = (): void => {
    if (this.#released) return;
    const now = this.#clock.now();
    const p = this.params;
    if (this.#closed) {
      if (now >= this.#lingerUntil) this.#release();
      else this.#arm(this.#lingerUntil);
      return;
    }
    // Deadlines are compared in the form they were armed in (a + b <= now): `now - a >= b`
    // can miss by a rounding error and re-arm the timer for the same instant forever.
    if (now >= this.#lastRx + p.timeoutMs) {
      const silent = `no packet from the peer for ${Math.round(p.timeoutMs / 1000)} s`;
      this.#finish("timeout", new SvpError("ERR_TIMEOUT", this.#heard ? silent : `no answer from the peer within ${Math.round(p.timeoutMs / 1000)} s`));
      return;
    }
    if (this.#ext === "on") {
      this.#onTimerExt(now);
      if (!this.#closed) this.#armExt();
      return;
    }
    const sending = this.#started && this.#answered;
    if (sending) {
      for (let i = this.#ih; i < this.#inflight.length; i++) {
        const pkt = this.#inflight[i]!;
        if (now >= pkt.sentAt + p.retransmitMs) this.#sendData(pkt, now, true);
      }
      if (now >= this.#lastTx + p.keepaliveMs) this.#sendAck(now);
    }
    let next = this.#lastRx + p.timeoutMs;
    if (sending) {
      next = Math.min(next, this.#lastTx + p.keepaliveMs);
      for (let i = this.#ih; i < this.#inflight.length; i++) next = Math.min(next, this.#inflight[i]!.sentAt + p.retransmitMs);
    }
    this.#arm(next);
  };
}
