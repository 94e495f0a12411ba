/**
 * A `ByteStream` over a message port (the web `MessagePort`, which Node's worker threads and
 * Deno both have): how a stream opened on one event loop is used on another. `svp socks`
 * with several event loops keeps one mesh session in the main thread; a worker whose client
 * asks for a mesh destination gets the MSP stream as a `PortStream`, and the main thread
 * relays the other end to the MSP stream (src/loops.ts).
 *
 * Wire (one array per message): `[DATA, bytes]`, `[ACK, n]` (n bytes consumed: delivered to
 * a `data` listener), `[END]` (the sender finished writing), `[RESET, code, message]`.
 * - Backpressure: `write()` returns false once more than `highWaterMark` bytes are not yet
 *   acknowledged; `drain` follows when the reader has consumed down to half of it. A paused
 *   reader acknowledges nothing, so a slow consumer slows the writer across the port.
 * - Writes within one turn go out as one message (copied: the caller may reuse its buffer).
 * - `close` fires once both directions have ended (end delivered, own end sent and every
 *   byte acknowledged), or on a reset either way; the port is then closed.
 */

import type { ErrorCode } from "../errors.ts";
import { ERROR_TABLE, SvpError } from "../errors.ts";
import { ByteStreamBase } from "./byte-stream-base.ts";

/** The part of a `MessagePort` a PortStream uses. */
export interface PortLike {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  close(): void;
}

const DATA = 0;
const ACK = 1;
const END = 2;
const RESET = 3;

export interface PortStreamOptions {
  /** Unacknowledged bytes before `write()` returns false. Default 256 KiB. */
  highWaterMark?: number;
  label?: string;
}

export class PortStream extends ByteStreamBase {
  readonly label: string;
  readonly #port: PortLike;
  readonly #hwm: number;
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #flushScheduled = false;
  #unacked = 0;
  #wantDrain = false;
  #inbox: Uint8Array[] = [];
  #endReceived = false;
  #delivering = false;
  #ackDue = 0;
  #endSent = false;

  constructor(port: PortLike, options: PortStreamOptions = {}) {
    super();
    this.#port = port;
    this.#hwm = options.highWaterMark ?? 256 * 1024;
    this.label = options.label ?? "port";
    port.onmessage = (ev) => this.#onMessage(ev.data);
  }

  get writableLength(): number {
    return this.#outBytes + this.#unacked;
  }

  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    if (chunk.length > 0) {
      this.#out.push(chunk.slice());
      this.#outBytes += chunk.length;
      this.#scheduleFlush();
    }
    if (this.#outBytes + this.#unacked > this.#hwm) {
      this.#wantDrain = true;
      return false;
    }
    return true;
  }

  closeWrite(): void {
    if (!this.markWriteClosed()) return;
    this.#scheduleFlush();
  }

  abort(err?: SvpError): void {
    if (this.closed) return;
    this.#post([RESET, err?.code ?? "ERR_ABORTED", err?.message ?? "aborted"]);
    this.#close(err);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.#inbox.length > 0 || this.#endReceived) queueMicrotask(() => this.#deliver());
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.closed) return;
    if (this.#out.length > 0) {
      let bytes: Uint8Array;
      if (this.#out.length === 1) bytes = this.#out[0]!;
      else {
        bytes = new Uint8Array(this.#outBytes);
        let at = 0;
        for (const c of this.#out) {
          bytes.set(c, at);
          at += c.length;
        }
      }
      this.#out = [];
      this.#unacked += this.#outBytes;
      this.#outBytes = 0;
      this.#post([DATA, bytes]);
    }
    if (this.writeClosed && !this.#endSent) {
      this.#endSent = true;
      this.#post([END]);
      this.#maybeClose();
    }
  }

  #onMessage(data: unknown): void {
    if (this.closed || !Array.isArray(data)) return;
    switch (data[0]) {
      case DATA:
        if (data[1] instanceof Uint8Array && !this.#endReceived) {
          this.#inbox.push(data[1]);
          if (!this.paused) this.#deliver();
        }
        return;
      case ACK:
        this.#unacked = Math.max(0, this.#unacked - Number(data[1]));
        if (this.#wantDrain && this.#outBytes + this.#unacked <= this.#hwm / 2) {
          this.#wantDrain = false;
          this.emit("drain");
        }
        this.#maybeClose();
        return;
      case END:
        this.#endReceived = true;
        if (!this.paused) this.#deliver();
        return;
      case RESET: {
        const code = typeof data[1] === "string" && data[1] in ERROR_TABLE ? (data[1] as ErrorCode) : "ERR_RESET";
        this.#close(new SvpError(code, typeof data[2] === "string" ? data[2] : "reset by the other end"));
        return;
      }
    }
  }

  #deliver(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (!this.paused && !this.closed && this.#inbox.length > 0) {
        const chunk = this.#inbox.shift()!;
        this.#ackDue += chunk.length;
        this.emit("data", chunk);
      }
      if (this.#ackDue > 0 && !this.closed) {
        this.#post([ACK, this.#ackDue]);
        this.#ackDue = 0;
      }
      if (!this.paused && !this.closed && this.#inbox.length === 0 && this.#endReceived && this.deliverEnd()) {
        this.#maybeClose();
      }
    } finally {
      this.#delivering = false;
    }
  }

  #maybeClose(): void {
    if (this.endDelivered && this.#endSent && this.#unacked === 0 && this.#outBytes === 0) this.#close(undefined);
  }

  #post(message: unknown[]): void {
    try {
      this.#port.postMessage(message);
    } catch {
      // the other side is gone: its end closes the stream
    }
  }

  #close(err: SvpError | undefined): void {
    if (this.closed) return;
    this.#inbox = [];
    this.#out = [];
    this.#port.onmessage = null;
    this.#port.close();
    this.finish(err);
  }
}
