/**
 * `svp connect` without `--forward`: one local stream (stdin/stdout) relayed to one MSP
 * stream, netcat style.
 *
 * - EOF on the local side sends SHUTDOWN; what the remote still sends keeps coming until it
 *   finishes too (a server that answers only after EOF, like `sort`, works).
 * - `noShutdown` (`-N`): the local EOF is held back until the remote has finished, for
 *   servers that treat a half-close as a full close; only then is SHUTDOWN sent.
 * - Resolves with the relay's stats; `error` set when the stream ended abnormally.
 */

import type { Clock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import type { SvpError } from "../errors.ts";
import { Relay } from "../relay/relay.ts";
import type { RelayStats } from "../relay/relay.ts";
import type { ByteStream, ByteStreamEvents } from "../stream/byte-stream.ts";

export interface NetcatOptions {
  clock?: Clock;
  noShutdown?: boolean;
  /** Abort when no byte moves either way for this long, ms; 0 = never. */
  idleTimeoutMs?: number;
}

/** Relay `local` (stdin/stdout) and `remote` (the MSP stream) until both have finished. */
export function netcat(local: ByteStream, remote: ByteStream, options: NetcatOptions = {}): Promise<RelayStats> {
  let a: ByteStream = local;
  if (options.noShutdown) {
    const gate = new EndGate(local);
    remote.once("end", () => gate.release());
    remote.once("close", () => gate.release());
    a = gate;
  }
  const relay = new Relay(a, remote, { ...(options.clock ? { clock: options.clock } : {}), idleTimeoutMs: options.idleTimeoutMs ?? 0, lingerMs: 0 });
  return relay.done;
}

/** A view of `inner` whose `end` is held back until `release()`. */
export class EndGate extends Emitter<ByteStreamEvents> implements ByteStream {
  readonly inner: ByteStream;
  #released = false;
  #innerEnded = false;
  #endDelivered = false;
  #closePending = false;
  #closed = false;

  constructor(inner: ByteStream) {
    super();
    this.inner = inner;
    inner.on("data", (c) => this.emit("data", c));
    inner.on("drain", () => this.emit("drain"));
    inner.on("end", () => {
      this.#innerEnded = true;
      if (this.#released) this.#deliverEnd();
    });
    inner.on("close", (err?: SvpError) => {
      if (!err && this.#innerEnded && !this.#endDelivered) this.#closePending = true;
      else this.#close(err);
    });
  }

  /** Let `end` through (now, if the inner stream has already ended). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#innerEnded) this.#deliverEnd();
  }

  #deliverEnd(): void {
    if (this.#endDelivered) return;
    this.#endDelivered = true;
    this.emit("end");
    if (this.#closePending) this.#close(undefined);
  }

  #close(err: SvpError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close", err);
  }

  get readable(): boolean {
    return !this.#endDelivered && !this.#closed;
  }
  get writable(): boolean {
    return this.inner.writable;
  }
  get closed(): boolean {
    return this.#closed;
  }
  get writableLength(): number {
    return this.inner.writableLength;
  }
  get label(): string {
    return this.inner.label;
  }
  write(chunk: Uint8Array): boolean {
    return this.inner.write(chunk);
  }
  closeWrite(): void {
    this.inner.closeWrite();
  }
  abort(err?: SvpError): void {
    this.inner.abort(err);
  }
  pause(): void {
    this.inner.pause();
  }
  resume(): void {
    this.inner.resume();
  }
}
