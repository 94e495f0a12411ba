/**
 * The one stream contract everything in svp relays: TCP and unix sockets, stdio, MSP
 * streams and in-memory pairs all implement `ByteStream`, and `test/conformance/` checks
 * each against the same suite.
 *
 * Reading
 * - A stream starts **paused**: nothing is delivered until `resume()`, so no byte is lost
 *   before a consumer is attached. `pause()` stops delivery; the implementation then
 *   stops reading from its source (TCP: stop reading the socket; MSP: stop acknowledging),
 *   which is how backpressure reaches the far end.
 * - `data` delivers chunks in order. A chunk handed to a `data` listener is consumed.
 * - `end` fires once, after the last `data`, when the peer has finished sending
 *   (TCP FIN, MSP SHUTDOWN). Like `data`, it is only delivered while resumed.
 *
 * Writing
 * - `write(chunk)` queues the bytes and returns false when the caller should wait for
 *   `drain` before writing more (the bytes are still accepted). Writing after
 *   `closeWrite()` or after `close` throws an `SvpError("ERR_ABORTED")`.
 * - `closeWrite()` is a graceful half-close: queued bytes are sent, then the peer sees
 *   end-of-stream (TCP FIN, MSP SHUTDOWN). Reading continues.
 * - `abort(err?)` resets at once (TCP RST, MSP STOP); queued bytes are dropped.
 *
 * Ending
 * - `close` fires exactly once, last: after both directions finished (end received and
 *   own write side closed and flushed), or after an abort or failure. Its argument is
 *   present when the stream ended abnormally (reset by the peer, timeout, local abort
 *   with a reason) and absent on a clean finish or a reason-less local abort.
 */

import type { SvpError } from "../errors.ts";

export type ByteStreamEvents = {
  data: (chunk: Uint8Array) => void;
  drain: () => void;
  end: () => void;
  close: (err?: SvpError) => void;
};

export interface ByteStream {
  write(chunk: Uint8Array): boolean;
  closeWrite(): void;
  abort(err?: SvpError): void;
  pause(): void;
  resume(): void;

  /** True until `end` has been delivered (or the stream closed). */
  readonly readable: boolean;
  /** True until `closeWrite()`/`abort()` was called or the stream closed. */
  readonly writable: boolean;
  /** True once `close` has fired. */
  readonly closed: boolean;
  /** Bytes queued locally and not yet handed to the transport. */
  readonly writableLength: number;
  /** A short human label for logs, e.g. "tcp 127.0.0.1:5000" or "msp 3f2a…:80". */
  readonly label: string;

  on<K extends keyof ByteStreamEvents>(event: K, fn: ByteStreamEvents[K]): this;
  once<K extends keyof ByteStreamEvents>(event: K, fn: ByteStreamEvents[K]): this;
  off<K extends keyof ByteStreamEvents>(event: K, fn: ByteStreamEvents[K]): this;
}
