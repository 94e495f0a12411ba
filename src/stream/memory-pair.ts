/**
 * Two connected in-memory `ByteStream`s: what one writes, the other reads. Used by tests,
 * by the relay's own tests and wherever two svp parts talk inside one program.
 *
 * Backpressure is real: `write()` returns false once the reader holds `highWaterMark`
 * undelivered bytes (reader paused or slow), and `drain` fires when it has consumed them.
 * Delivery is asynchronous (a microtask), so no listener runs inside `write()`.
 */

import { SvpError } from "../errors.ts";
import type { ByteStream } from "./byte-stream.ts";
import { ByteStreamBase } from "./byte-stream-base.ts";

export interface MemoryPairOptions {
  /** Undelivered bytes at the reader before `write()` returns false. Default 64 KiB. */
  highWaterMark?: number;
  /** Labels for logs. Default "mem a" / "mem b". */
  labels?: [string, string];
}

class MemoryEnd extends ByteStreamBase {
  peer!: MemoryEnd;
  readonly label: string;
  readonly #hwm: number;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #scheduled = false;
  #peerEnded = false; // the peer closed its write side; deliver `end` after the queue
  #wantDrain = false;

  constructor(label: string, hwm: number) {
    super();
    this.label = label;
    this.#hwm = hwm;
  }

  get writableLength(): number {
    return this.peer.#queued;
  }

  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    if (chunk.length > 0) this.peer.#enqueue(chunk.slice());
    const ok = this.peer.#queued < this.#hwm;
    if (!ok) this.#wantDrain = true;
    return ok;
  }

  closeWrite(): void {
    if (!this.markWriteClosed()) return;
    this.peer.#peerEnded = true;
    this.peer.#schedule();
    this.#maybeClose();
  }

  abort(err?: SvpError): void {
    if (this.closed) return;
    this.#finish(err);
    if (!this.peer.closed) this.peer.#finish(new SvpError("ERR_RESET", "reset by peer"));
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.#schedule();
  }

  #enqueue(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.paused || this.closed) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#deliver();
    });
  }

  #deliver(): void {
    while (!this.paused && !this.closed && this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      this.#queued -= chunk.length;
      this.emit("data", chunk);
    }
    const writer = this.peer;
    if (writer.#wantDrain && this.#queued < writer.#hwm && !writer.closed) {
      writer.#wantDrain = false;
      writer.emit("drain");
    }
    if (this.#queue.length === 0 && this.#peerEnded && !this.endDelivered && !this.paused && !this.closed) {
      this.deliverEnd();
      this.#maybeClose();
      writer.#maybeClose();
    }
  }

  /** Closed cleanly when our end was delivered and our writes were all consumed. */
  #maybeClose(): void {
    if (this.closed) return;
    if (this.endDelivered && this.writeClosed && this.peer.#queued === 0 && this.peer.endDelivered) {
      this.#finish(undefined);
    }
  }

  #finish(err: SvpError | undefined): void {
    if (!this.finish(err, true)) return;
    this.#queue = [];
    this.#queued = 0;
  }
}

/** Create a connected pair `[a, b]`. Both start paused. */
export function memoryPair(options: MemoryPairOptions = {}): [ByteStream, ByteStream] {
  const hwm = options.highWaterMark ?? 64 * 1024;
  const [la, lb] = options.labels ?? ["mem a", "mem b"];
  const a = new MemoryEnd(la, hwm);
  const b = new MemoryEnd(lb, hwm);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
