/**
 * Many `PortLike` ports over one message channel: the channel a worker thread already has
 * with the main thread (src/loops.ts). Each message travels as `{ t: "s", id, m }`.
 *
 * Why not one `MessageChannel` per stream: each costs native handles in both threads that
 * are released only when a major GC collects their wrappers, and svp's heaps are small, so
 * that is rare. In 14-minute soaks (bench/soak.ts) `svp socks` with two event loops grew
 * 14 MB after warm-up with a channel per mesh stream; with one loop it stayed flat. Over
 * the shared channel a stream costs one map entry.
 *
 * Like a closed `MessagePort`, a port drops what arrives after it is closed (and the mux
 * drops messages for ports it never opened).
 */

import type { PortLike } from "./port-stream.ts";

/** A message of port `id` on the shared channel. */
export interface MuxMessage {
  t: "s";
  id: number;
  m: unknown;
}

export class PortMux {
  readonly #send: (message: MuxMessage) => void;
  readonly #ports = new Map<number, MuxPort>();

  /** `send` posts on the shared channel; the other side hands what arrives to `deliver`. */
  constructor(send: (message: MuxMessage) => void) {
    this.#send = send;
  }

  /** Ports open now. */
  get size(): number {
    return this.#ports.size;
  }

  /** Open port `id` (both sides use the same id; one side opens it before telling the other). */
  open(id: number): PortLike {
    const port = new MuxPort(id, this.#send, () => this.#ports.delete(id));
    this.#ports.set(id, port);
    return port;
  }

  /** Hand a message from the other side to its port; false when that port is not open (dropped). */
  deliver(message: MuxMessage): boolean {
    const port = this.#ports.get(message.id);
    if (!port) return false;
    port.onmessage?.({ data: message.m });
    return true;
  }

  /** Close every port (the channel is gone): they deliver and send nothing more. */
  closeAll(): void {
    for (const port of [...this.#ports.values()]) port.close();
  }
}

/** True for a message `PortMux` sent. */
export function isMuxMessage(message: unknown): message is MuxMessage {
  return typeof message === "object" && message !== null && (message as MuxMessage).t === "s" && typeof (message as MuxMessage).id === "number";
}

class MuxPort implements PortLike {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  readonly #id: number;
  readonly #send: (message: MuxMessage) => void;
  #onClose: (() => void) | undefined;

  constructor(id: number, send: (message: MuxMessage) => void, onClose: () => void) {
    this.#id = id;
    this.#send = send;
    this.#onClose = onClose;
  }

  postMessage(message: unknown): void {
    if (this.#onClose) this.#send({ t: "s", id: this.#id, m: message });
  }

  close(): void {
    this.onmessage = null;
    const done = this.#onClose;
    this.#onClose = undefined;
    done?.();
  }
}
