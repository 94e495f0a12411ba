/**
 * One MSP connection as a sans-I/O state machine: packets come in through `receive()`,
 * application calls through `write()`, `shutdown()`, `read()`, `abort()`; packets go out
 * through `handler.transmit()`. Time comes from the injected `Clock`, with one timer per
 * connection (retransmit, keep-alive, timeout and linger share it).
 *
 * Behaviour follows servald (msp_common.h, msp_client.c):
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
 * Deliberately unlike servald: data queued with a shutdown is never dropped (every byte is
 * sent before the SHUTDOWN packet), a peer's STOP before it answered is reported as a
 * refusal, and late packets after close are answered during `lingerMs`.
 */

import type { Clock, Timer } from "../clock.ts";
import { SvpError } from "../errors.ts";
import type { MspDropReason } from "./packet.ts";
import { MSP_FLAG, MSP_PREAMBLE_BYTES, decodeMspPacket, encodeMspAck, encodeMspStop, seqDiff, writeMspPreamble } from "./packet.ts";
import type { MspParams } from "./params.ts";

export type MspRole = "connector" | "listener";

/**
 * - connecting: connector, no answer from the peer yet
 * - accepting: listener, the application has not accepted the connection yet (nothing sent)
 * - open, local-shutdown, remote-shutdown, closing (both shut down, acks outstanding)
 * - closed: finished cleanly; failed: stopped, timed out, aborted or lost its transport
 */
export type MspState = "connecting" | "accepting" | "open" | "local-shutdown" | "remote-shutdown" | "closing" | "closed" | "failed";

/** Outputs of the state machine. Called synchronously; none may throw. */
export interface MspConnectionHandler {
  /** Send this MSP packet to the peer. The bytes are never modified afterwards. */
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

export interface MspCounters {
  /** Application bytes delivered to the application (consumed). */
  bytesIn: number;
  /** Application bytes sent (first transmissions only). */
  bytesOut: number;
  /** MSP packets received (valid ones, any form). */
  packetsIn: number;
  /** MSP packets sent, including acks, keep-alives and retransmissions. */
  packetsOut: number;
  /** Packets sent again because no ack came within `retransmitMs`. */
  retransmissions: number;
  /** Smoothed round-trip time from packets acknowledged on their first transmission, ms; null before any. */
  rttMs: number | null;
  /** Datagrams dropped, by reason. */
  drops: Partial<Record<MspDropReason, number>>;
}

interface TxPacket {
  /** Preamble room (5 bytes) then the data. */
  buf: Uint8Array;
  len: number;
  flags: number;
  seq: number;
  sentAt: number;
  retransmitted: boolean;
}

type Outcome = "clean" | "aborted" | "stopped" | "refused" | "timeout" | "down";

export class MspConnection {
  readonly role: MspRole;
  readonly params: MspParams;
  readonly counters: MspCounters = { bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0, retransmissions: 0, rttMs: null, drops: {} };
  readonly #clock: Clock;
  readonly #h: MspConnectionHandler;

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

  #txNext = 0;
  #inflight: TxPacket[] = [];
  #pending: (TxPacket | undefined)[] = [];
  #pendingHead = 0;
  #pendingBytes = 0;
  #localShutdown = false;
  #wantDrain = false;
  #inWrite = false;

  #rxNext = 0;
  #rxHead = 0;
  #rxData: (Uint8Array | undefined)[];
  #rxShut: Uint8Array;
  #peerShutdownSeq = -1;
  #peerShutdown = false;
  #lastAckSent = -1;
  #ackDue = false;

  #lastRx: number;
  #lastTx: number;
  #timer: Timer | undefined;
  #timerAt = Infinity;

  constructor(role: MspRole, params: MspParams, clock: Clock, handler: MspConnectionHandler) {
    this.role = role;
    this.params = params;
    this.#clock = clock;
    this.#h = handler;
    // A connector sends nothing until start() (its port is bound and 0-RTT data queued);
    // a listener sends nothing until the application accepts the connection.
    this.#started = role === "listener";
    this.#answered = role === "connector";
    this.#rxData = new Array<Uint8Array | undefined>(params.receiveWindow).fill(undefined);
    this.#rxShut = new Uint8Array(params.receiveWindow);
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
  /** Bytes written but not yet handed to the transport (waiting for window space). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }
  /** Packets sent and not yet acknowledged. */
  get inflightCount(): number {
    return this.#inflight.length;
  }
  /** Packets received and not yet consumed (in order or not). */
  get bufferedCount(): number {
    let n = 0;
    for (const d of this.#rxData) if (d) n++;
    return n;
  }

  // ---- application side -------------------------------------------------------------

  /** Connector: begin sending (the FIRST packet, or the queued 0-RTT data). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#pump();
    if (this.#inflight.length === 0 && !this.#closed) this.#sendAck(this.#clock.now());
  }

  /**
   * Listener: the application takes the connection; the answer (an ack) goes out with the
   * next `flushAck()` or packet. Implied by `write()` and `shutdown()`.
   */
  accept(): void {
    if (this.#answered || this.#closed) return;
    this.#answered = true;
    this.#ackDue = true;
    this.#pump();
  }

  /**
   * Queue bytes (split into messages, boundaries of small writes kept). False = wait for
   * `drain`. With `send` false the packets wait for `flush()`, so that a write and a
   * shutdown in the same turn leave as one packet carrying SHUTDOWN (as servald does).
   */
  write(chunk: Uint8Array, send = true): boolean {
    if (this.#closed || this.#localShutdown) throw new SvpError("ERR_ABORTED", `write after ${this.#closed ? "close" : "shutdown"}`);
    if (!this.#answered) this.accept();
    const size = this.params.messageSize;
    const n = chunk.length;
    // The one copy of the data: all packets of this write are cut from one allocation,
    // each with room for its preamble.
    const messages = Math.ceil(n / size);
    const slab = new Uint8Array(n + messages * MSP_PREAMBLE_BYTES);
    let at = 0;
    for (let o = 0; o < n; o += size) {
      const len = Math.min(size, n - o);
      const buf = messages === 1 ? slab : slab.subarray(at, at + MSP_PREAMBLE_BYTES + len);
      buf.set(len === n ? chunk : chunk.subarray(o, o + len), MSP_PREAMBLE_BYTES);
      at += MSP_PREAMBLE_BYTES + len;
      this.#pending.push({ buf, len, flags: 0, seq: -1, sentAt: -1, retransmitted: false });
      this.#pendingBytes += len;
    }
    if (send) {
      this.#inWrite = true;
      try {
        this.#pump();
      } finally {
        this.#inWrite = false;
      }
    }
    const ok = this.#pendingBytes < this.params.highWaterMark;
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
    const tail = this.#pendingHead < this.#pending.length ? this.#pending[this.#pending.length - 1] : undefined;
    if (tail) tail.flags |= MSP_FLAG.SHUTDOWN;
    else this.#pending.push({ buf: new Uint8Array(MSP_PREAMBLE_BYTES), len: 0, flags: MSP_FLAG.SHUTDOWN, seq: -1, sentAt: -1, retransmitted: false });
    if (send) this.flush();
  }

  /**
   * Take the next in-order packet's data (possibly empty) and count it as consumed; the ack
   * becomes due. Undefined when nothing is in order. Check `peerShutdown` afterwards.
   */
  read(): Uint8Array | undefined {
    if (this.#closed || this.#peerShutdown) return undefined;
    const i = this.#rxHead;
    const data = this.#rxData[i];
    if (data === undefined) return undefined;
    const shut = this.#rxShut[i] === 1;
    this.#rxData[i] = undefined;
    this.#rxShut[i] = 0;
    this.#rxHead = i + 1 === this.#rxData.length ? 0 : i + 1;
    this.#rxNext = (this.#rxNext + 1) & 0xffff;
    this.#ackDue = true;
    this.counters.bytesIn += data.length;
    if (shut) {
      this.#peerShutdown = true;
      this.#rxData.fill(undefined);
    }
    return data;
  }

  /** Whether `read()` would return a packet now. */
  get hasReadable(): boolean {
    return !this.#closed && !this.#peerShutdown && this.#rxData[this.#rxHead] !== undefined;
  }

  /** Send the due ack now, unless a data packet already carried it. */
  flushAck(): void {
    if (this.#ackDue && this.#answered && this.#started && !this.#closed) this.#sendAck(this.#clock.now());
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
    if (p.flags & MSP_FLAG.ACK && seqDiff(p.ack, this.#txNext - 1) > 0) {
      this.#drop("bad-ack");
      return;
    }
    this.counters.packetsIn++;
    this.#lastRx = now;
    if (!this.#heard) {
      this.#heard = true;
      this.#h.answered();
      if (this.#closed) return;
    }
    if (p.flags & MSP_FLAG.ACK) this.#onAck(p.ack, now);
    if (this.#closed) return;
    let reack = false;
    if (p.form === "sequenced") {
      this.#receivedData = true;
      const off = seqDiff(p.seq, this.#rxNext);
      if (off < 0) {
        // Already consumed: our ack was probably lost, so repeat it now.
        this.#drop("duplicate");
        reack = true;
      } else if (off >= this.params.receiveWindow) {
        this.#drop("beyond-window");
      } else if (this.#peerShutdown || (this.#peerShutdownSeq >= 0 && seqDiff(p.seq, this.#peerShutdownSeq) > 0)) {
        this.#drop("after-shutdown");
      } else {
        let i = this.#rxHead + off;
        if (i >= this.#rxData.length) i -= this.#rxData.length;
        if (this.#rxData[i] !== undefined) {
          this.#drop("duplicate");
        } else {
          this.#rxData[i] = p.data;
          if (p.flags & MSP_FLAG.SHUTDOWN) {
            this.#rxShut[i] = 1;
            if (this.#peerShutdownSeq < 0 || seqDiff(p.seq, this.#peerShutdownSeq) < 0) this.#peerShutdownSeq = p.seq;
          }
          if (off === 0) this.#h.readable();
          if (this.#closed) return;
        }
      }
    }
    // The ack for data consumed in `readable()` is the driver's to send (`flushAck()`), so
    // that one ack can cover a burst; a repeated ack for old data goes at once.
    if (reack) {
      this.#ackDue = true;
      this.flushAck();
    } else {
      this.#maybeFinish();
    }
  }

  // ---- internals --------------------------------------------------------------------

  #ackFlags(): number {
    return (this.#receivedData ? MSP_FLAG.ACK : 0) | (this.#heard ? 0 : MSP_FLAG.FIRST);
  }

  #onAck(ack: number, now: number): void {
    const inflight = this.#inflight;
    let k = 0;
    while (k < inflight.length && seqDiff(inflight[k]!.seq, ack) <= 0) k++;
    if (k === 0) return;
    for (let j = k - 1; j >= 0; j--) {
      const p = inflight[j]!;
      if (!p.retransmitted) {
        const sample = now - p.sentAt;
        const c = this.counters;
        c.rttMs = c.rttMs === null ? sample : c.rttMs + (sample - c.rttMs) / 8;
        break;
      }
    }
    if (k === inflight.length) inflight.length = 0;
    else inflight.splice(0, k);
    this.#pump();
  }

  #onStop(): void {
    if (this.role === "connector" && !this.#heard) {
      this.#finish("refused", new SvpError("ERR_REFUSED", "connection refused by the peer (MSP STOP)"));
      return;
    }
    // servald answers our retransmitted bare SHUTDOWN with STOP once it has closed: if that
    // is all that is outstanding and the peer has shut down too, nothing was lost.
    if (this.#peerShutdown && this.#localShutdown && this.#pendingHead >= this.#pending.length && this.#inflight.every((p) => p.len === 0)) {
      this.#finish("clean", undefined);
      return;
    }
    this.#finish("stopped", new SvpError("ERR_RESET", "connection reset by the peer (MSP STOP)"));
  }

  #pump(): void {
    if (!this.#started || !this.#answered || this.#closed) return;
    const window = this.params.window;
    const pending = this.#pending;
    if (this.#pendingHead < pending.length && this.#inflight.length < window) {
      const now = this.#clock.now();
      while (this.#inflight.length < window && this.#pendingHead < pending.length) {
        const p = pending[this.#pendingHead]!;
        pending[this.#pendingHead++] = undefined;
        this.#pendingBytes -= p.len;
        p.seq = this.#txNext;
        this.#txNext = (this.#txNext + 1) & 0xffff;
        this.#inflight.push(p);
        this.#sendData(p, now, false);
      }
      if (this.#pendingHead >= pending.length) {
        pending.length = 0;
        this.#pendingHead = 0;
      } else if (this.#pendingHead > 1024 && this.#pendingHead * 2 > pending.length) {
        this.#pending = pending.slice(this.#pendingHead);
        this.#pendingHead = 0;
      }
    }
    if (this.#wantDrain && !this.#inWrite && this.#pendingBytes <= this.params.highWaterMark / 2) {
      this.#wantDrain = false;
      this.#h.drain();
    }
  }

  #sendData(p: TxPacket, now: number, again: boolean): void {
    let buf = p.buf;
    if (again) {
      // The first buffer was handed to the transport: never modify it, send a copy.
      buf = buf.slice();
      p.buf = buf;
      p.retransmitted = true;
      this.counters.retransmissions++;
    } else {
      this.counters.bytesOut += p.len;
    }
    const ack = (this.#rxNext - 1) & 0xffff;
    writeMspPreamble(buf, this.#ackFlags() | p.flags, ack, p.seq);
    this.#lastAckSent = ack;
    this.#ackDue = false;
    p.sentAt = now;
    this.#transmitRaw(buf, now);
  }

  #sendAck(now: number): void {
    const ack = (this.#rxNext - 1) & 0xffff;
    this.#lastAckSent = ack;
    this.#ackDue = false;
    this.#transmitRaw(encodeMspAck(this.#ackFlags(), ack), now);
  }

  #transmitRaw(packet: Uint8Array, now: number): void {
    this.#lastTx = now;
    this.counters.packetsOut++;
    this.#h.transmit(packet);
    if (!this.#closed) this.#arm(now + Math.min(this.params.retransmitMs, this.params.keepaliveMs));
  }

  #maybeFinish(): void {
    if (
      !this.#closed &&
      this.#localShutdown &&
      this.#peerShutdown &&
      this.#inflight.length === 0 &&
      this.#pendingHead >= this.#pending.length &&
      this.#lastAckSent === ((this.#rxNext - 1) & 0xffff)
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
    this.#pending = [];
    this.#pendingHead = 0;
    this.#pendingBytes = 0;
    this.#rxData.fill(undefined);
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
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
      if (seq >= 0 && seqDiff(seq, this.#rxNext) < 0) this.#sendAck(now);
    } else {
      this.#transmitRaw(encodeMspStop(), now);
    }
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#h.released();
  }

  #drop(reason: MspDropReason): void {
    const d = this.counters.drops;
    d[reason] = (d[reason] ?? 0) + 1;
  }

  /** Keep the one timer at the earliest deadline; later deadlines are found when it fires. */
  #arm(at: number): void {
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#timer?.cancel();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, at - this.#clock.now()));
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#released) return;
    const now = this.#clock.now();
    const p = this.params;
    if (this.#closed) {
      if (now >= this.#lingerUntil) this.#release();
      else this.#arm(this.#lingerUntil);
      return;
    }
    if (now - this.#lastRx >= p.timeoutMs) {
      const silent = `no packet from the peer for ${Math.round(p.timeoutMs / 1000)} s`;
      this.#finish("timeout", new SvpError("ERR_TIMEOUT", this.#heard ? silent : `no answer from the peer within ${Math.round(p.timeoutMs / 1000)} s`));
      return;
    }
    const sending = this.#started && this.#answered;
    if (sending) {
      for (const pkt of this.#inflight) {
        if (now - pkt.sentAt >= p.retransmitMs) this.#sendData(pkt, now, true);
      }
      if (now - this.#lastTx >= p.keepaliveMs) this.#sendAck(now);
    }
    let next = this.#lastRx + p.timeoutMs;
    if (sending) {
      next = Math.min(next, this.#lastTx + p.keepaliveMs);
      for (const pkt of this.#inflight) next = Math.min(next, pkt.sentAt + p.retransmitMs);
    }
    this.#arm(next);
  };
}
