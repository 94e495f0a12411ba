/**
 * `ByteStream` over a `node:net` socket (TCP or unix stream socket). The socket must be
 * created with `allowHalfOpen: true` so that a FIN from the peer only ends reading.
 */

import type { Socket } from "node:net";
import { Emitter } from "../emitter.ts";
import { SvpError, toSvpError } from "../errors.ts";
import type { ByteStream, ByteStreamEvents } from "../stream/byte-stream.ts";

export class SocketStream extends Emitter<ByteStreamEvents> implements ByteStream {
  readonly socket: Socket;
  readonly label: string;
  #endDelivered = false;
  #writeClosed = false;
  #closed = false;
  #error: SvpError | undefined;
  #abortedLocally = false;
  #paused = true;
  /** node:net emits `end` even while paused (when its buffer is empty); held here until resume(). */
  #endPending = false;

  constructor(socket: Socket, label?: string) {
    super();
    this.socket = socket;
    this.label = label ?? describeSocket(socket);
    socket.pause();
    socket.on("data", (chunk: Uint8Array) => this.emit("data", chunk));
    socket.on("end", () => {
      if (this.#paused) this.#endPending = true;
      else this.#deliverEnd();
    });
    socket.on("drain", () => this.emit("drain"));
    socket.on("error", (err) => {
      this.#error ??= toSvpError(err);
    });
    socket.on("close", () => {
      // `end` is never lost: a close that overtakes a held-back end delivers it first.
      if (this.#endPending && !this.#error) this.#deliverEnd();
      this.#closed = true;
      this.emit("close", this.#abortedLocally ? this.#error : (this.#error ?? (this.#endDelivered ? undefined : new SvpError("ERR_RESET", "connection closed before end of stream"))));
    });
  }

  get readable(): boolean {
    return !this.#endDelivered && !this.#closed;
  }
  get writable(): boolean {
    return !this.#writeClosed && !this.#closed && !this.socket.destroyed;
  }
  get closed(): boolean {
    return this.#closed;
  }
  get writableLength(): number {
    return this.socket.writableLength;
  }

  write(chunk: Uint8Array): boolean {
    if (!this.writable) throw new SvpError("ERR_ABORTED", `write after ${this.#closed ? "close" : "closeWrite"}`);
    return this.socket.write(chunk);
  }

  closeWrite(): void {
    if (this.#writeClosed || this.#closed) return;
    this.#writeClosed = true;
    this.socket.end();
  }

  abort(err?: SvpError): void {
    if (this.#closed || this.#abortedLocally) return;
    const shutDown = this.#writeClosed;
    this.#abortedLocally = true;
    this.#writeClosed = true;
    this.#error = err;
    const s = this.socket as Socket & { resetAndDestroy?: () => void };
    // RST tells the far end this was not a clean finish. Unix sockets (and some runtimes)
    // have no reset, and libuv refuses to reset a socket whose FIN is already queued
    // (it would leak the handle), so plain destroy is the fallback.
    if (!shutDown && typeof s.resetAndDestroy === "function" && s.remoteAddress !== undefined) {
      try {
        s.resetAndDestroy();
        return;
      } catch {
        // fall through
      }
    }
    s.destroy();
  }

  pause(): void {
    this.#paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#endPending) {
      queueMicrotask(() => {
        if (!this.#paused && this.#endPending && !this.#closed) this.#deliverEnd();
      });
    }
    this.socket.resume();
  }

  #deliverEnd(): void {
    this.#endPending = false;
    if (this.#endDelivered) return;
    this.#endDelivered = true;
    this.emit("end");
  }
}

export function describeSocket(socket: Socket): string {
  if (socket.remoteAddress) {
    const host = socket.remoteAddress.includes(":") ? `[${socket.remoteAddress}]` : socket.remoteAddress;
    return `tcp ${host}:${socket.remotePort}`;
  }
  return "unix";
}
