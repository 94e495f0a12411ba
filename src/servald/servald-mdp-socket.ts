/**
 * One bound MDP port on the daemon, as an `MdpSocket`. Several sockets share one binding
 * (REUSE); the binding, not the socket, is what the daemon knows. Sends and the release of
 * the port go through the owner (the transport), which also delivers and finishes sockets.
 */

import { Emitter } from "../emitter.ts";
import type { SvpError } from "../errors.ts";
import type { Sid } from "../mesh/sid.ts";
import type { MdpAddress, MdpSendOptions, MdpSocket, MdpSocketEvents } from "../mdp/transport.ts";

/** A (SID, port) the daemon has bound for this client, and the sockets on it. */
export interface Binding {
  sid: Sid;
  port: number;
  /** Bound with REUSE: more sockets may attach. */
  reuse: boolean;
  sockets: Set<ServaldMdpSocket>;
}

/** What a socket needs from its transport. */
export interface BindingOwner {
  /** Send a datagram from the binding (checks the payload limit; a no-op unless open). */
  sendData(b: Binding, to: MdpAddress, payload: Uint8Array, options: MdpSendOptions): void;
  /** The socket closed: detach it, releasing the port when it was the last one. */
  release(s: ServaldMdpSocket): void;
}

export class ServaldMdpSocket extends Emitter<MdpSocketEvents> implements MdpSocket {
  readonly local: MdpAddress;
  #closed = false;

  constructor(
    readonly transport: BindingOwner,
    readonly binding: Binding,
  ) {
    super();
    this.local = { sid: binding.sid, port: binding.port };
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(to: MdpAddress, payload: Uint8Array, options: MdpSendOptions = {}): void {
    if (this.#closed) return;
    this.transport.sendData(this.binding, to, payload, options);
  }

  close(): void {
    if (this.#closed) return;
    this.transport.release(this);
    this.finish();
  }

  /** @internal The transport closed the socket (with the reason, when not by `close()`). */
  finish(err?: SvpError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close", err);
  }

  /** @internal */
  deliver(payload: Uint8Array, from: MdpAddress, to: MdpAddress): void {
    if (!this.#closed) this.emit("message", payload, from, to);
  }
}
