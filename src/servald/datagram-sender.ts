/**
 * The send path to the daemon: datagrams go out in order on the connected socket; while the
 * daemon's queue is full (EAGAIN) they wait in a bounded queue of svp's own and go out on
 * `writable`. A result saying the daemon's socket is gone (servald stopped or restarted) is
 * reported once per send through `onGone`; the owner takes the transport down.
 */

import type { DatagramSendResult, DatagramSocket } from "./datagram-socket.ts";

/** Send results that mean the connected peer (the daemon's socket) no longer exists. */
export const SOCKET_GONE: readonly string[] = ["ECONNREFUSED", "ENOENT", "ENOTCONN", "ECONNRESET", "EPIPE", "EBADF"] as const;

/** Counters the sender keeps up to date (the transport's `stats` object). */
export interface DatagramSenderStats {
  datagramsSent: number;
  /** Queue full or a send error other than EAGAIN / socket gone. */
  datagramsDropped: number;
  /** Datagrams that waited in the queue because the daemon's was full. */
  datagramsDeferred: number;
}

export interface DatagramSenderOptions {
  /** Most datagrams held while the daemon's queue is full; more are dropped. */
  maxQueued: number;
  stats: DatagramSenderStats;
  /** The socket's peer is gone (the errno name). */
  onGone: (errno: string) => void;
}

export class DatagramSender {
  readonly #socket: DatagramSocket;
  readonly #options: DatagramSenderOptions;
  #queue: Uint8Array[] = [];
  #waitingWritable = false;

  constructor(socket: DatagramSocket, options: DatagramSenderOptions) {
    this.#socket = socket;
    this.#options = options;
    socket.on("writable", () => this.#flush());
  }

  /** Datagrams waiting for the daemon's queue. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Sends in order: while datagrams wait for the daemon's queue, new ones queue behind them. */
  send(datagram: Uint8Array): void {
    if (this.#queue.length > 0) {
      this.#enqueue(datagram);
      return;
    }
    const r = this.sendNow(datagram);
    if (r === "EAGAIN") this.#enqueue(datagram);
  }

  /** One attempt, bypassing the queue (the farewell CLOSE); counts the result. */
  sendNow(datagram: Uint8Array): DatagramSendResult {
    const r = this.#socket.send(datagram);
    const stats = this.#options.stats;
    if (r === "ok") stats.datagramsSent++;
    else if (SOCKET_GONE.includes(r)) this.#options.onGone(r);
    else if (r !== "EAGAIN") stats.datagramsDropped++;
    return r;
  }

  /** Forget every queued datagram (the transport is shutting down). */
  clear(): void {
    this.#queue = [];
  }

  #enqueue(datagram: Uint8Array): void {
    const stats = this.#options.stats;
    if (this.#queue.length >= this.#options.maxQueued) {
      stats.datagramsDropped++;
      return;
    }
    this.#queue.push(datagram);
    stats.datagramsDeferred++;
    if (!this.#waitingWritable) {
      this.#waitingWritable = true;
      this.#socket.wantWritable();
    }
  }

  #flush(): void {
    this.#waitingWritable = false;
    while (this.#queue.length > 0) {
      const r = this.sendNow(this.#queue[0]!);
      if (r === "EAGAIN") {
        this.#waitingWritable = true;
        this.#socket.wantWritable();
        return;
      }
      this.#queue.shift();
    }
  }
}
