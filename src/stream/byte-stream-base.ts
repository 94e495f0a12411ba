/**
 * The part of the `ByteStream` contract (src/stream/byte-stream.ts) that every
 * implementation shares, written once: the state flags and what they mean for `readable`,
 * `writable` and `closed`, the write-after-close error, starting paused, holding `end`
 * back while paused, delivering `end` once and firing `close` once. An implementation
 * supplies the transport: how bytes go out, how reading is stopped and started, when
 * `end` arrives and when the stream is finished. test/conformance/ checks each one.
 */

import { Emitter } from "../emitter.ts";
import { SvpError } from "../errors.ts";
import type { ByteStream, ByteStreamEvents } from "./byte-stream.ts";

export abstract class ByteStreamBase extends Emitter<ByteStreamEvents> implements ByteStream {
  abstract readonly label: string;
  abstract readonly writableLength: number;
  abstract write(chunk: Uint8Array): boolean;
  abstract closeWrite(): void;
  abstract abort(err?: SvpError): void;
  abstract pause(): void;
  abstract resume(): void;

  /** Whether delivery is stopped. Every stream starts paused: no byte is lost before a consumer attaches. */
  protected paused = true;
  #endPending = false;
  #endDelivered = false;
  #writeClosed = false;
  #closed = false;
  #closeFired = false;

  /** True until `end` has been delivered (or the stream closed). */
  get readable(): boolean {
    return !this.#endDelivered && !this.#closed;
  }
  /** True until `closeWrite()`/`abort()` was called or the stream closed. */
  get writable(): boolean {
    return !this.#writeClosed && !this.#closed;
  }
  /**
   * True once the stream has finished: its `close` has fired, or is about to (a `finish`
   * deferred to a microtask). Streams that report only a fired `close` return `closeFired`.
   */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the stream has finished (`finish` was called), whether or not `close` has fired yet. */
  protected get finished(): boolean {
    return this.#closed;
  }
  /** Whether `close` has been emitted. */
  protected get closeFired(): boolean {
    return this.#closeFired;
  }
  /** Whether `end` has been delivered. */
  protected get endDelivered(): boolean {
    return this.#endDelivered;
  }
  /** Whether the write side was closed (closeWrite, abort, or ended by the transport). */
  protected get writeClosed(): boolean {
    return this.#writeClosed;
  }
  /** Whether an `end` waits for a `resume()`. */
  protected get endPending(): boolean {
    return this.#endPending;
  }

  /** The contract's error for a write after `closeWrite()` or after close; throws when not writable. */
  protected checkWritable(): void {
    if (!this.writable) throw new SvpError("ERR_ABORTED", `write after ${this.#closed ? "close" : "closeWrite"}`);
  }

  /** Mark the write side closed; false when it already was (or the stream has closed). */
  protected markWriteClosed(): boolean {
    if (this.#writeClosed || this.#closed) return false;
    this.#writeClosed = true;
    return true;
  }

  /** The transport reached end-of-stream: deliver `end` now, or hold it until `resume()` while paused. */
  protected endArrived(): void {
    if (this.paused) this.#endPending = true;
    else this.deliverEnd();
  }

  /** From `resume()`: a held-back `end` is delivered in a microtask (after the caller's own code), if still resumed. */
  protected releaseHeldEnd(): void {
    if (!this.#endPending) return;
    queueMicrotask(() => {
      if (!this.paused && this.#endPending && !this.#closed) this.deliverEnd();
    });
  }

  /** Emit `end` once; false when it was delivered before (or the stream has closed). */
  protected deliverEnd(): boolean {
    this.#endPending = false;
    if (this.#endDelivered || this.#closed) return false;
    this.#endDelivered = true;
    this.emit("end");
    return true;
  }

  /**
   * Finish: `closed` (and not writable, not readable) from now, `close` fired exactly once,
   * now or (`defer`) in a microtask, so that no listener runs inside the caller's call.
   * False when the stream had already finished.
   */
  protected finish(err: SvpError | undefined, defer = false): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#writeClosed = true;
    const fire = () => {
      this.#closeFired = true;
      this.emit("close", err);
    };
    if (defer) queueMicrotask(fire);
    else fire();
    return true;
  }
}
