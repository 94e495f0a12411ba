/**
 * `svp connect --forward [ADDR:]PORT`: every accepted local connection gets its own MSP
 * stream to the one target. The local listener is the platform's (cli/connect.ts wires it
 * to `handle()`); this class only dials, relays and logs, through the shared `Bridge`
 * (src/relay/bridge.ts): the client's bytes wait until the MSP stream is up, and when the
 * dial fails the client is reset, so it sees a refused/reset connection rather than an
 * empty answer. `once`: the first client is the only one; the server then ends with that
 * connection's outcome.
 */

import type { Clock } from "../clock.ts";
import { Bridge } from "../relay/bridge.ts";
import type { BridgeRecord, BridgeResult } from "../relay/bridge.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { DEFAULTS } from "../defaults.ts";

export interface ForwardServerOptions {
  /** Open an MSP stream to the target (src/service/mesh-dialer.ts `dialMesh`). */
  dial: (signal: AbortSignal) => Promise<ByteStream>;
  /** The target for log lines. */
  targetLabel: string;
  clock?: Clock | undefined;
  /** Give up dialling after this long, ms. Default 30 000 (MSP itself gives up after 10 s of silence). */
  connectTimeoutMs?: number | undefined;
  /** Close a connection when no byte moved either way for this long, ms; 0 = never (default). */
  idleTimeoutMs?: number | undefined;
  once?: boolean | undefined;
  /** Live-connection count shared with the other event loops of this service (src/loops.ts). */
  shared?: Int32Array | undefined;
}

/** What a connection whose MSP stream did not open in time is told (also used by the worker loops). */
export function forwardTimeoutMessage(targetLabel: string, timeoutMs: number): string {
  return `no connection to ${targetLabel} within ${Math.round(timeoutMs / 100) / 10} s`;
}

export interface ForwardRecord extends BridgeRecord {
  /** The local client ("tcp 127.0.0.1:53210"). */
  client: string;
  target: string;
}

export type ForwardResult = BridgeResult;

export class ForwardServer extends Bridge<ForwardRecord> {
  readonly #label: string;

  constructor(options: ForwardServerOptions) {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    super({
      open: (_client, signal) => options.dial(signal),
      openTimeoutMs: timeoutMs,
      openTimeoutMessage: forwardTimeoutMessage(options.targetLabel, timeoutMs),
      idleTimeoutMs: options.idleTimeoutMs,
      once: options.once,
      clock: options.clock,
      shared: options.shared,
    });
    this.#label = options.targetLabel;
  }

  /** Serve one accepted local client. */
  override handle(client: ByteStream): void {
    super.handle(client, { client: client.label, target: this.#label, outcome: "ok", up: 0, down: 0, durationMs: 0 });
  }
}
