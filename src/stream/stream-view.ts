/**
 * A `ByteStream` view of another one whose incoming bytes pass through a filter and/or
 * start with bytes that were already read (`prefix`), and whose `end` can be held back.
 * Writes go straight through.
 *
 * Used where a handshake read a little too far (an upstream proxy's reply followed by
 * the target's first bytes), for the response-head rewrite of HTTP forward requests, and
 * by `svp connect -N`, which holds the local EOF until the remote has finished.
 */

import type { SvpError } from "../errors.ts";
import type { ByteStream } from "./byte-stream.ts";
import { ByteStreamBase } from "./byte-stream-base.ts";

export interface ReadFilter {
  /** Transform one incoming chunk into zero or more chunks to deliver. */
  push(chunk: Uint8Array): Uint8Array[];
  /** The source ended: anything still held back. */
  flush(): Uint8Array[];
}

export interface StreamViewOptions {
  /** Bytes to deliver before anything read from the inner stream. */
  prefix?: Uint8Array;
  /** Transform applied to every incoming chunk. */
  filter?: ReadFilter;
  /** Hold `end` back until `releaseEnd()` is called. Default false. */
  holdEnd?: boolean;
}

export class StreamView extends ByteStreamBase {
  readonly inner: ByteStream;
  #filter: ReadFilter | undefined;
  #queue: Uint8Array[] = [];
  #scheduled = false;
  #innerEnded = false;
  /** The inner stream closed cleanly while delivered bytes or `end` were still queued here. */
  #closePending = false;
  #endHeld: boolean;

  constructor(inner: ByteStream, options: StreamViewOptions = {}) {
    super();
    this.inner = inner;
    this.#filter = options.filter;
    this.#endHeld = options.holdEnd ?? false;
    if (options.prefix && options.prefix.length > 0) this.#queue.push(options.prefix);
    inner.on("data", (chunk) => {
      if (this.#filter) {
        for (const c of this.#filter.push(chunk)) if (c.length > 0) this.#queue.push(c);
        this.#deliver();
      } else if (this.#queue.length === 0 && !this.paused) {
        this.emit("data", chunk);
      } else {
        this.#queue.push(chunk);
        this.#deliver();
      }
    });
    inner.on("end", () => {
      this.#innerEnded = true;
      if (this.#filter) for (const c of this.#filter.flush()) if (c.length > 0) this.#queue.push(c);
      this.#filter = undefined;
      this.#deliver();
    });
    inner.on("drain", () => this.emit("drain"));
    inner.on("close", (err?: SvpError) => {
      if (err || !this.#innerEnded || this.endDelivered) this.#close(err);
      else this.#closePending = true;
    });
  }

  get label(): string {
    return this.inner.label;
  }
  /** Writes go straight through: writable as the inner stream is. */
  override get writable(): boolean {
    return this.inner.writable;
  }
  get writableLength(): number {
    return this.inner.writableLength;
  }

  write(chunk: Uint8Array): boolean {
    return this.inner.write(chunk);
  }
  closeWrite(): void {
    this.inner.closeWrite();
  }
  abort(err?: SvpError): void {
    this.#queue = [];
    this.inner.abort(err);
  }

  pause(): void {
    this.paused = true;
    this.inner.pause();
  }

  resume(): void {
    this.paused = false;
    if (this.#queue.length === 0 && !this.#innerEnded) {
      this.inner.resume();
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#deliver();
    });
  }

  /** Let a held-back `end` through (now, if the inner stream has already ended). */
  releaseEnd(): void {
    if (!this.#endHeld) return;
    this.#endHeld = false;
    this.#deliver();
  }

  #deliver(): void {
    while (!this.paused && this.#queue.length > 0 && !this.closed) this.emit("data", this.#queue.shift()!);
    if (this.paused || this.#queue.length > 0 || this.closed) return;
    if (this.#innerEnded) {
      if (this.#endHeld) return;
      this.deliverEnd();
      if (this.#closePending) this.#close(undefined);
    } else {
      this.inner.resume();
    }
  }

  #close(err: SvpError | undefined): void {
    this.#queue = [];
    this.finish(err);
  }
}
