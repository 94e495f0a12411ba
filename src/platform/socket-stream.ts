/**
 * `ByteStream` over a `node:net` socket (TCP or unix stream socket). The socket must be
 * created with `allowHalfOpen: true` so that a FIN from the peer only ends reading.
 */

import type { Socket } from "node:net";
import { SvpError, toSvpError } from "../errors.ts";
import { ByteStreamBase } from "../stream/byte-stream-base.ts";

const OWNER = Symbol("svp.SocketStream");
const EARLY = Symbol("svp.SocketStream.early");
type OwnedSocket = Socket & { [OWNER]: SocketStream; [EARLY]?: Uint8Array[] | undefined };

/** Size of the one read buffer all sockets share while their reads are small. */
const SHARED_READ = 64 * 1024;
/** Size of the per-read buffers of a socket whose reads fill the shared one (bulk data). */
const BULK_READ = 256 * 1024;
let sharedRead: Uint8Array | undefined;

/**
 * `onread` options for `net.connect` (node:net's user-buffer reading): reads go into one
 * shared 64 KiB buffer and small reads are copied out, so an idle socket holds no read
 * buffer at all; once a read fills it, the socket switches to fresh 256 KiB buffers handed
 * out without a copy, and back when reads get small. Four times fewer reads per byte than
 * node:net's fixed 64 KiB: bulk downloads through the proxy get markedly faster.
 * Runtimes without `onread` ignore it and emit `data` events, which SocketStream also handles.
 */
export function adaptiveReadOptions(): { buffer: () => Uint8Array; callback: (this: Socket, n: number, buf: Uint8Array) => boolean } {
  let bulk = false;
  return {
    buffer: () => (bulk ? Buffer.allocUnsafeSlow(BULK_READ) : (sharedRead ??= Buffer.allocUnsafeSlow(SHARED_READ))),
    callback(this: Socket, n: number, buf: Uint8Array): boolean {
      let chunk: Uint8Array;
      if (buf === sharedRead) {
        // Copy out now: the next read, of any socket, overwrites the shared buffer.
        chunk = Buffer.allocUnsafe(n);
        chunk.set(buf.subarray(0, n));
        bulk = n === buf.length;
      } else {
        chunk = buf.subarray(0, n); // this buffer is never read into again
        bulk = n >= BULK_READ / 4;
      }
      const owner = (this as OwnedSocket)[OWNER] as SocketStream | undefined;
      if (owner) SocketStream.deliver(owner, chunk);
      else {
        // Not adopted by a SocketStream yet: keep it for the stream, stop reading.
        ((this as OwnedSocket)[EARLY] ??= []).push(chunk);
        this.pause();
      }
      return true;
    },
  };
}

export class SocketStream extends ByteStreamBase {
  readonly socket: Socket;
  #label: string | undefined;
  #error: SvpError | undefined;
  #abortedLocally = false;

  // One set of socket listeners shared by every instance (`this` is the socket), instead of
  // five closures per socket: a proxy holds two sockets per tunnel, thousands of tunnels.
  static #onData(this: OwnedSocket, chunk: Uint8Array): void {
    SocketStream.deliver(this[OWNER], chunk);
  }
  /** Entry for `adaptiveReadOptions`' read callback. */
  static deliver(s: SocketStream, chunk: Uint8Array): void {
    if (s.paused) {
      // Paused lazily (see pause()): keep this chunk, and now stop reading the socket.
      (s.#early ??= []).push(chunk);
      if (!s.#socketPaused) {
        s.#socketPaused = true;
        s.socket.pause();
      }
      return;
    }
    s.emit("data", chunk);
  }
  /** Chunks read while paused (or before this stream adopted the socket), delivered on resume(). */
  #early: Uint8Array[] | undefined;
  /** Whether the socket itself is paused (pause() only flags; the socket stops once data comes). */
  #socketPaused = true;
  static #onEnd(this: OwnedSocket): void {
    // node:net emits `end` even while paused (when its buffer is empty): held until resume().
    this[OWNER].endArrived();
  }
  static #onDrain(this: OwnedSocket): void {
    this[OWNER].emit("drain");
  }
  static #onError(this: OwnedSocket, err: Error): void {
    const s = this[OWNER];
    s.#error ??= toSvpError(err);
  }
  static #onClose(this: OwnedSocket): void {
    const s = this[OWNER];
    // `end` is never lost: a close that overtakes a held-back end delivers it first, after
    // any data still held for a resume().
    if (s.endPending && !s.#error) {
      const early = s.#early;
      s.#early = undefined;
      if (early) for (const c of early) s.emit("data", c);
      s.deliverEnd();
    }
    s.finish(s.#abortedLocally ? s.#error : (s.#error ?? (s.endDelivered ? undefined : new SvpError("ERR_RESET", "connection closed before end of stream"))));
  }

  /** True for an accepted TCP connection (for the label of one whose peer went away early). */
  readonly #tcp: boolean;

  constructor(socket: Socket, label?: string, tcp = false) {
    super();
    this.socket = socket;
    this.#label = label;
    this.#tcp = tcp;
    socket.pause();
    (socket as OwnedSocket)[OWNER] = this;
    this.#early = (socket as OwnedSocket)[EARLY];
    (socket as OwnedSocket)[EARLY] = undefined;
    socket.on("data", SocketStream.#onData);
    socket.on("end", SocketStream.#onEnd);
    socket.on("drain", SocketStream.#onDrain);
    socket.on("error", SocketStream.#onError);
    socket.on("close", SocketStream.#onClose);
  }

  /** "tcp host:port" of the peer, computed on first use (and kept). */
  get label(): string {
    return (this.#label ??= describeSocket(this.socket, this.#tcp));
  }

  override get writable(): boolean {
    return super.writable && !this.socket.destroyed;
  }
  get writableLength(): number {
    return this.socket.writableLength;
  }

  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    return this.socket.write(chunk);
  }

  closeWrite(): void {
    if (!this.markWriteClosed()) return;
    this.socket.end();
  }

  abort(err?: SvpError): void {
    if (this.closed || this.#abortedLocally) return;
    const shutDown = this.writeClosed;
    this.#abortedLocally = true;
    this.markWriteClosed();
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

  /**
   * Stop delivering. Lazily: the socket keeps reading until a chunk actually arrives while
   * paused, which is then held and the socket paused. A pause that ends before any data comes
   * (a proxy waiting for its dial with the client quiet, as SOCKS clients are) then costs no
   * system call, and neither does the resume().
   */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    if (this.#early) {
      queueMicrotask(() => {
        const early = this.#early;
        while (early && early.length > 0 && !this.paused && !this.closed) this.emit("data", early.shift()!);
        if (early && early.length > 0) return;
        this.#early = undefined;
        if (!this.paused) this.resume();
      });
      return;
    }
    this.releaseHeldEnd();
    if (this.#socketPaused) {
      this.#socketPaused = false;
      this.socket.resume();
    }
  }
}

/** "tcp host:port" of the peer; `tcp`: an accepted TCP connection whose peer is already gone (no address left). */
export function describeSocket(socket: Socket, tcp = false): string {
  if (socket.remoteAddress) {
    const host = socket.remoteAddress.includes(":") ? `[${socket.remoteAddress}]` : socket.remoteAddress;
    return `tcp ${host}:${socket.remotePort}`;
  }
  return tcp ? "tcp (peer gone before accept)" : "unix";
}
