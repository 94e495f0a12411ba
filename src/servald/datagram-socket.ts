/**
 * What the servald backend needs from the platform: an AF_UNIX datagram socket whose
 * addresses are raw `sun_path` bytes of exact length. servald's sockets live in the Linux
 * abstract namespace (a leading NUL byte, no trailing NUL), which is why the length matters.
 * `src/platform/unix-dgram.ts` implements it with the native addon; `src/platform/servald.ts` wires it in.
 */

import type { SvpError } from "../errors.ts";

/**
 * A unix socket address as the bytes of `sun_path`: a leading 0 byte for an abstract name,
 * a plain path otherwise (no trailing NUL). Empty = unnamed (a sender that never bound).
 */
export type UnixAddress = Uint8Array;

/**
 * Result of one send: "ok", or the errno name. "EAGAIN" means the receiver's queue is full
 * (wait for `writable`); "ECONNREFUSED"/"ENOENT" mean nobody is bound at the address.
 */
export type DatagramSendResult = "ok" | "EAGAIN" | "ECONNREFUSED" | "ENOENT" | (string & {});

export type DatagramSocketEvents = {
  /** One datagram and the address of its sender. */
  message: (data: Uint8Array, from: UnixAddress) => void;
  /** After `wantWritable()`: the socket can take more datagrams. */
  writable: () => void;
  /** A receive error (errno name); the socket stays open unless `close` follows. */
  error: (err: SvpError) => void;
  /** The socket is closed (by `close()`, or because the reader failed, then with `err`). */
  close: (err?: SvpError) => void;
};

export interface DatagramSocket {
  /** Own address (after bind or autobind). */
  readonly address: UnixAddress;
  /** Send one datagram; `to` is required unless the socket is connected. Never blocks. */
  send(data: Uint8Array, to?: UnixAddress): DatagramSendResult;
  /** Ask for one `writable` event (after a send returned "EAGAIN"). */
  wantWritable(): void;
  /** Idempotent. Stops the reader before returning; no events follow except `close`. */
  close(): void;
  /** Whether the open socket keeps the process alive (default true). */
  ref(on: boolean): void;
  on<K extends keyof DatagramSocketEvents>(event: K, fn: DatagramSocketEvents[K]): this;
  off<K extends keyof DatagramSocketEvents>(event: K, fn: DatagramSocketEvents[K]): this;
}

export interface OpenDatagramOptions {
  /** Bind to this address; an empty array autobinds (Linux: a unique abstract name). */
  bind?: UnixAddress;
  /** Connect to this address: sends go there, only its datagrams are received. */
  connect?: UnixAddress;
}

/**
 * Opens a socket. Throws SvpError: ERR_MESH_DOWN when the platform cannot provide one (addon
 * not built), or the bind/connect failure (ECONNREFUSED → ERR_REFUSED, EADDRINUSE → ERR_USAGE, …).
 */
export type OpenDatagramSocket = (options: OpenDatagramOptions) => DatagramSocket;
