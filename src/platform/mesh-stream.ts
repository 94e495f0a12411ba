/**
 * A svp `ByteStream` (an MSP stream, above all) as a node:stream `Duplex`, for library
 * users: what `openMesh().dial()` and `listen()` hand out.
 *
 * It behaves like any Duplex (a TCP socket, say):
 * - No hidden paused state: data flows once a `data` listener is attached, the stream is
 *   piped, or `read()` is called. Until then the bytes wait in the mesh stream's window, so
 *   the sender is held back (MSP acknowledges only what was consumed) and nothing is lost.
 * - Backpressure both ways: a full readable buffer pauses the mesh stream; `write()`
 *   returns false while the mesh stream's send queue is full, `drain` follows.
 * - Half-close both ways (`allowHalfOpen` is always true): `end()` sends SHUTDOWN (the
 *   peer sees end-of-stream) and reading goes on; the peer's SHUTDOWN is `end` here.
 * - `close` fires once the mesh stream itself has closed (both directions finished and
 *   acknowledged), so after `close` no byte written is still in flight.
 * - Errors are `SvpError`s (src/errors.ts) with their codes: `ERR_RESET` (reset by the
 *   peer), `ERR_TIMEOUT` (peer silent), `ERR_MESH_DOWN` (backend gone), `ERR_ABORTED`
 *   (the dial's signal). `destroy(err?)` resets the mesh stream (MSP STOP): the peer's
 *   stream fails with ERR_RESET.
 */

import { Duplex } from "node:stream";
import { SvpError, toSvpError } from "../errors.ts";
import type { ByteStream } from "../stream/byte-stream.ts";

/** A mesh address in text form: the node's SID (64 upper-case hex digits) and the MDP port. */
export interface MeshPeer {
  readonly sid: string;
  readonly port: number;
}

export interface MeshStreamOptions {
  /** Bytes the readable side buffers before it pauses the mesh stream. Default 64 KiB. */
  readableHighWaterMark?: number;
}

export class MeshStream extends Duplex {
  /** The other end: its SID and MDP port. */
  readonly peer: MeshPeer;
  /** This end: the local SID and MDP port. */
  readonly local: MeshPeer;
  readonly #s: ByteStream;
  #writeCallback: ((err?: Error | null) => void) | undefined;
  #closeCallback: ((err: Error | null) => void) | undefined;
  #innerClosed = false;
  #innerError: SvpError | undefined;

  /** @internal Made by `openMesh()`; wraps `stream`, which must not be used directly any more. */
  constructor(stream: ByteStream, local: MeshPeer, peer: MeshPeer, options: MeshStreamOptions = {}) {
    super({ allowHalfOpen: true, readableHighWaterMark: options.readableHighWaterMark ?? 64 * 1024 });
    this.#s = stream;
    this.local = local;
    this.peer = peer;
    stream.on("data", (chunk) => {
      if (!this.push(chunk)) stream.pause();
    });
    stream.on("end", () => this.push(null));
    stream.on("drain", () => {
      const cb = this.#writeCallback;
      this.#writeCallback = undefined;
      cb?.();
    });
    stream.on("close", (err) => this.#onInnerClose(err));
  }

  override _read(): void {
    this.#s.resume();
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    let ok: boolean;
    try {
      ok = this.#s.write(chunk);
    } catch (err) {
      callback(toSvpError(err));
      return;
    }
    if (ok) callback();
    else this.#writeCallback = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    try {
      if (this.#s.writable) this.#s.closeWrite();
      callback();
    } catch (err) {
      callback(toSvpError(err));
    }
  }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    const pending = this.#writeCallback;
    this.#writeCallback = undefined;
    if (this.#innerClosed) {
      pending?.(err ?? this.#innerError ?? new SvpError("ERR_ABORTED", "stream closed"));
      callback(err ?? this.#innerError ?? null);
      return;
    }
    if (!err && this.readableEnded && this.writableFinished) {
      // Both directions finished cleanly: let the mesh stream flush and close on its own
      // (aborting now would drop the last bytes and the SHUTDOWN's acknowledgement).
      this.#closeCallback = callback;
      return;
    }
    const e = err ? toSvpError(err) : new SvpError("ERR_ABORTED", "stream destroyed");
    pending?.(e);
    this.#s.abort(err ? e : undefined);
    callback(err ? e : null);
  }

  #onInnerClose(err: SvpError | undefined): void {
    this.#innerClosed = true;
    this.#innerError = err;
    const cb = this.#closeCallback;
    if (cb) {
      this.#closeCallback = undefined;
      cb(err ?? null);
      return;
    }
    if (this.destroyed) return;
    if (err) this.destroy(err);
    else if (!this.readableEnded || !this.writableFinished) {
      // Closed cleanly underneath (both sides done) while data is still buffered here: let the
      // reader drain it; then the Duplex ends as usual (autoDestroy).
      if (this.writableFinished || this.writableEnded) return;
      this.destroy(new SvpError("ERR_ABORTED", "the mesh stream closed"));
    }
  }
}
