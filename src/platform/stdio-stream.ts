/**
 * `ByteStream` over a pair of Node streams: a Readable for the incoming bytes and a
 * Writable for the outgoing ones. `svp connect` and `svp listen` without `--forward` use
 * it on process.stdin/process.stdout (`stdioStream()`); `svp listen --exec` on a child's
 * stdout/stdin (src/platform/exec-stream.ts).
 *
 * - Starts paused; `end` (EOF on the Readable) is held back while paused.
 * - `closeWrite()` ends the Writable (for stdout: the reader sees EOF once it is flushed).
 * - `close` fires once both directions are done: EOF delivered and the Writable finished
 *   (or gone: EPIPE means the reader went away, which ends the write side), or on an
 *   error, or after `abort()`.
 */

import type { Readable, Writable } from "node:stream";
import { SvpError, toSvpError } from "../errors.ts";
import { ByteStreamBase } from "../stream/byte-stream-base.ts";

export class PipeStream extends ByteStreamBase {
  readonly label: string;
  readonly #in: Readable;
  readonly #out: Writable;
  /** The Writable finished (flushed after end()) or is gone. */
  #writeDone = false;
  #error: SvpError | undefined;

  constructor(input: Readable, output: Writable, label: string) {
    super();
    this.label = label;
    this.#in = input;
    this.#out = output;
    input.on("data", (chunk: Uint8Array) => {
      if (!this.finished) this.emit("data", chunk);
    });
    input.pause();
    input.on("end", () => this.endArrived());
    input.on("error", (err) => this.fail(toSvpError(err)));
    output.on("drain", () => {
      if (!this.finished) this.emit("drain");
    });
    output.on("finish", () => this.#onWriteDone());
    output.on("error", (err: NodeJS.ErrnoException) => {
      // The reader went away (EPIPE): nothing more can be written; that ends the write side.
      if (err.code === "EPIPE" || err.code === "ERR_STREAM_DESTROYED") this.writerGone();
      else this.fail(toSvpError(err));
    });
  }

  get writableLength(): number {
    return this.#out.writableLength;
  }

  /** True once `close` has fired (it fires a microtask after the stream finished). */
  override get closed(): boolean {
    return this.closeFired;
  }

  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    return this.#out.write(chunk);
  }

  closeWrite(): void {
    if (!this.markWriteClosed()) return;
    this.#out.end();
  }

  abort(err?: SvpError): void {
    if (this.finished) return;
    this.markWriteClosed();
    this.onAbort(err);
    this.finish(err, true);
  }

  pause(): void {
    this.paused = true;
    this.#in.pause();
  }

  resume(): void {
    this.paused = false;
    this.releaseHeldEnd();
    this.#in.resume();
  }

  /** Subclasses: release the underlying resources on abort (default: destroy both streams). */
  protected onAbort(_err: SvpError | undefined): void {
    this.#in.destroy();
    this.#out.destroy();
  }

  /** Subclasses: whether `close` may fire once both directions are done (e.g. the child has exited). */
  protected canClose(): boolean {
    return true;
  }

  /**
   * The write side is over on its own (the reader went away, or the child exited, so
   * nobody reads its stdin). A writer waiting for `drain` is woken: it finds the stream
   * no longer writable instead of waiting forever with its data.
   */
  protected endWriteSide(): void {
    // Before #onWriteDone: that may close the stream, and a closed stream emits nothing.
    if (this.markWriteClosed()) this.emit("drain");
    this.#onWriteDone();
  }

  /**
   * The reader of the Writable went away (EPIPE). Default: only the write side ends (a
   * child that exited early may still have output coming). Overridden for stdio.
   */
  protected writerGone(): void {
    this.endWriteSide();
  }

  /** Subclasses: re-check whether `close` can fire now. */
  protected checkClose(): void {
    if (this.endDelivered && this.#writeDone && this.canClose()) this.finish(this.#error, true);
  }

  /** Close with an error (a failed read or write, a killed child). */
  protected fail(err: SvpError): void {
    if (this.finished) return;
    this.#error ??= err;
    this.finish(err, true);
  }

  #onWriteDone(): void {
    this.#writeDone = true;
    this.checkClose();
  }

  protected override deliverEnd(): boolean {
    if (!super.deliverEnd()) return false;
    this.checkClose();
    return true;
  }
}

/**
 * process.stdin and process.stdout. When whoever reads stdout goes away (`svp connect … |
 * head`), the stream fails at once, as netcat dies of SIGPIPE: what the remote still sends
 * has nowhere to go, so waiting for stdin's EOF would only hang.
 */
export class StdioStream extends PipeStream {
  protected override writerGone(): void {
    this.fail(new SvpError("ERR_RESET", "stdout was closed by its reader"));
  }
}

/** process.stdin and process.stdout as one ByteStream (for `svp connect`, `svp listen` without targets). */
export function stdioStream(): PipeStream {
  return new StdioStream(process.stdin, process.stdout, "stdio");
}
