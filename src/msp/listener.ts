/**
 * `listenMsp()`: accept MSP connections on one MDP port. Each connection is keyed by the
 * connector's (SID, port) and surfaces as an `accept` event carrying an `MspStream` that
 * has not answered yet: take it (`resume()`, `write()`, `accept()`) or refuse it
 * (`abort()` → STOP, which the connector sees as ERR_REFUSED). With no `accept` listener
 * registered, connections are refused.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { SvpError } from "../errors.ts";
import type { MdpAddress, MdpTransport } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { MspEndpoint } from "./endpoint.ts";
import type { MspStream, MspStreamStats } from "./msp-stream.ts";
import type { MspDropReason } from "./packet.ts";
import type { MspOptions } from "./params.ts";
import { pathMtuLookup, resolveTransportParams } from "./params.ts";
import { DEFAULTS } from "../defaults.ts";

export interface MspListenOptions extends MspOptions {
  clock?: Clock;
  /** Bind on this identity instead of the primary one. */
  sid?: Sid;
  /** Connections at most (closing ones included); more are refused with STOP. Default 1024. */
  maxConnections?: number;
}

export type MspListenerEvents = {
  /** A new connection; the stream starts paused and unanswered. */
  accept: (stream: MspStream) => void;
  /** The port is released: after `close()` once the last stream finished, `abort()`, or transport loss (with `err`). */
  close: (err?: SvpError) => void;
};

export class MspListener extends Emitter<MspListenerEvents> {
  readonly #endpoint: MspEndpoint;
  #accepting = true;
  #closed = false;

  /** @internal Use `listenMsp()`. */
  constructor(endpointFactory: (l: MspListener) => MspEndpoint) {
    super();
    this.#endpoint = endpointFactory(this);
  }

  /** The bound address (SID and port). */
  get local(): MdpAddress {
    return this.#endpoint.local;
  }

  /** False after `close()`/`abort()`. */
  get accepting(): boolean {
    return this.#accepting && !this.#closed;
  }

  /** True once the port is released. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Streams not yet closed. */
  get streams(): MspStream[] {
    return this.#endpoint.streams().filter((s) => !s.connection.closed);
  }

  /** Connections held, closed ones still lingering included (a leak check: 0 once all are released). */
  get connectionCount(): number {
    return this.#endpoint.size;
  }

  /** Per-stream counters of the open streams, for status. */
  stats(): MspStreamStats[] {
    return this.streams.map((s) => s.stats);
  }

  /** Datagrams dropped before reaching a connection, by reason (per-stream drops are in `stats()`). */
  get drops(): Readonly<Partial<Record<MspDropReason, number>>> {
    return this.#endpoint.drops;
  }

  /** Stop accepting (new connection requests get STOP); the port is released when the last stream has finished. */
  close(): void {
    this.#accepting = false;
    this.#endpoint.closeWhenEmpty();
  }

  /** Abort every stream (STOP) and release the port now. */
  abort(err?: SvpError): void {
    this.#accepting = false;
    this.#endpoint.destroy(err);
  }

  /** @internal */
  isAccepting(): boolean {
    return this.#accepting && this.listenerCount("accept") > 0;
  }

  /** @internal */
  onAccept(stream: MspStream): void {
    this.emit("accept", stream);
  }

  /** @internal */
  onClosed(err: SvpError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#accepting = false;
    if (err) this.emit("close", err);
    else this.emit("close");
  }
}

/** Bind `port` on `transport` and accept MSP connections there. */
export async function listenMsp(transport: MdpTransport, port: number, options: MspListenOptions = {}): Promise<MspListener> {
  if (!Number.isInteger(port) || port < 1 || port > 0xffffffff) throw new SvpError("ERR_BAD_ADDRESS", `invalid MDP port ${port}: expected 1-4294967295`);
  const params = resolveTransportParams(transport, options);
  const maxConnections = options.maxConnections ?? DEFAULTS.listenMaxConnections;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new SvpError("ERR_USAGE", `maxConnections must be a positive integer, got ${maxConnections}`);
  const clock = options.clock ?? systemClock;
  const socket = await transport.bind(port, options.sid ? { sid: options.sid } : {});
  return new MspListener(
    (l) =>
      new MspEndpoint(socket, clock, params, {
        accepting: () => l.isAccepting(),
        accept: (s) => l.onAccept(s),
        maxConnections,
        closed: (err) => l.onClosed(err),
        pathMtu: pathMtuLookup(transport, options),
      }),
  );
}
