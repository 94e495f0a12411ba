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
import { Relay } from "../relay/relay.ts";
import type { RelayStats } from "../relay/relay.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { StreamView } from "../stream/stream-view.ts";

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
    const gate = new StreamView(local, { holdEnd: true });
    remote.once("end", () => gate.releaseEnd());
    remote.once("close", () => gate.releaseEnd());
    a = gate;
  }
  const relay = new Relay(a, remote, { ...(options.clock ? { clock: options.clock } : {}), idleTimeoutMs: options.idleTimeoutMs ?? 0, lingerMs: 0 });
  return relay.done;
}
