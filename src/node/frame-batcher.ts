/**
 * Coalesces the local API frames written to one `ByteStream` during one batch of I/O
 * callbacks into a single write. Without it every MDP datagram costs its own write system
 * call on the Unix socket (the largest single cost of the daemon's receive path and of a
 * client's send path); with it, the datagrams that one poll of the event loop brings in
 * (libuv reads up to 32 UDP datagrams per wake-up) go to a client in one write.
 *
 * `defer` decides when the batch goes out: the platform passes `setImmediate` (after the
 * current I/O callbacks, before the loop waits again: no added latency); the default,
 * `queueMicrotask`, still coalesces the frames of one synchronous burst (e.g. one MSP
 * output turn). Order is kept: every frame of the stream goes through the batcher.
 */

import type { ByteStream } from "../stream/byte-stream.ts";

/** Runs `fn` soon, once, after the current callback (see the module comment). */
export type Defer = (fn: () => void) => void;

export const defaultDefer: Defer = (fn) => queueMicrotask(fn);

export class FrameBatcher {
  readonly #stream: ByteStream;
  readonly #defer: Defer;
  #frames: Uint8Array[] = [];
  #bytes = 0;
  #scheduled = false;
  readonly #flushNow = () => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(stream: ByteStream, defer: Defer = defaultDefer) {
    this.#stream = stream;
    this.#defer = defer;
  }

  /** Bytes waiting here and in the stream: what a slow reader has not taken yet. */
  get queuedBytes(): number {
    return this.#bytes + this.#stream.writableLength;
  }

  /** Queue one frame; dropped when the stream can no longer be written. */
  push(frame: Uint8Array): void {
    if (!this.#stream.writable) return;
    this.#frames.push(frame);
    this.#bytes += frame.length;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#defer(this.#flushNow);
    }
  }

  /** Write what is queued now (before closeWrite/abort, so nothing queued is lost). */
  flush(): void {
    const frames = this.#frames;
    if (frames.length === 0) return;
    const total = this.#bytes;
    this.#frames = [];
    this.#bytes = 0;
    if (!this.#stream.writable) return;
    if (frames.length === 1) {
      this.#stream.write(frames[0]!);
      return;
    }
    const out = new Uint8Array(total);
    let off = 0;
    for (const f of frames) {
      out.set(f, off);
      off += f.length;
    }
    this.#stream.write(out);
  }
}
