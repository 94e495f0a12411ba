/**
 * `svp connect` without `--forward` as one library call: open the mesh, dial one target,
 * relay it with a local stream (stdin/stdout by default) netcat style until both sides have
 * finished, close the mesh. What the CLI prints and exits with is read from the result;
 * nothing here writes to the terminal or handles signals (the caller's `signal` does).
 * `startForwardProxy` (forward-proxy.ts) is the `--forward` counterpart.
 */

import { DEFAULTS } from "../defaults.ts";
import { SvpError, abortError, toSvpError } from "../errors.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import type { MspStream } from "../msp/msp-stream.ts";
import { MSP_DEFAULTS } from "../msp/params.ts";
import { formatDuration } from "../options.ts";
import type { RelayStats } from "../relay/relay.ts";
import { dialMesh } from "../service/mesh-dialer.ts";
import type { MeshSession, OpenMeshOptions } from "../service/mesh-session.ts";
import type { MeshTarget } from "../service/mesh-target.ts";
import { netcat } from "../service/netcat.ts";
import { mspTelemetry } from "../service/stream-registry.ts";
import type { MspTelemetry } from "../status/status-report.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { openSession } from "./open-session.ts";
import { stdioStream } from "./stdio-stream.ts";

export interface MeshNetcatOptions {
  /** Which mesh backend (as `svp connect --mesh/--home/…`). */
  mesh: OpenMeshOptions;
  /** Where to connect: a node and an MDP port or service. */
  target: MeshTarget;
  /**
   * The local end, made once the peer has answered. Default: stdin/stdout (and then
   * process.stdin is destroyed at the end, so that nothing keeps the process alive).
   */
  local?: () => ByteStream;
  /**
   * Give up connecting after this long, ms (ERR_TIMEOUT "no answer within …"); a wait longer
   * than MSP's own silence limit raises that limit for this stream. Default: MSP's limit
   * (`MSP_DEFAULTS.timeoutMs`, 10 s), which ends the attempt by itself.
   */
  waitMs?: number;
  /** Wait up to this long (ms) for the node to become reachable instead of failing at once. Default `DEFAULTS.waitRouteMs` (0). */
  waitRouteMs?: number;
  /** Abort when no byte moves either way for this long, ms; 0 = never. Default `DEFAULTS.idleTimeoutMs` (0). */
  idleTimeoutMs?: number;
  /** Hold the local EOF back until the remote has finished (`-N`). Default false. */
  noShutdown?: boolean;
  /**
   * Before the peer answered: abandons the dial (the result's error is the reason, as an
   * SvpError). After: resets the stream (the remote sees STOP) and the reason is the error.
   */
  signal?: AbortSignal;
  /** Told once the peer has answered, before any byte is relayed. */
  onConnected?: (info: { remote: MdpAddress; description: string }) => void;
}

/** How `meshNetcat` ended: in which stage, with which error, and what moved. */
export type MeshNetcatResult =
  /** No mesh backend could be opened. */
  | { stage: "open"; error: SvpError }
  /** The mesh was open but the target did not answer (refused, no route, timeout, aborted). */
  | { stage: "connect"; error: SvpError; description: string }
  /** The stream ran; `error` is set when it ended abnormally (after it was established). */
  | {
      stage: "stream";
      /** The mesh backend, for messages ("embedded node (pid 12, /home/u/.local/state/svp)"). */
      description: string;
      remote: MdpAddress;
      /** aToB: bytes sent to the remote; bToA: bytes received; the relay's duration. */
      stats: RelayStats;
      /** The MSP stream's figures at the end (extension, window, rtt, retransmissions). */
      telemetry: MspTelemetry;
      error?: SvpError;
      /** The error was the idle timeout's own (`idleTimeoutMs`), not a failure of the peer. */
      idleTimeout: boolean;
    };

/** Connect to `target` and relay it with the local stream until both sides have finished. Never rejects. */
export async function meshNetcat(options: MeshNetcatOptions): Promise<MeshNetcatResult> {
  const user = options.signal;
  let session: MeshSession;
  try {
    if (user?.aborted) throw abortError(user.reason, "connect");
    session = await openSession(options.mesh);
  } catch (err) {
    return { stage: "open", error: toSvpError(err) };
  }
  const description = session.description;
  const waitMs = options.waitMs;
  const ac = new AbortController();
  const onAbort = () => ac.abort(abortError(user!.reason, "connect"));
  if (user?.aborted) onAbort();
  else user?.addEventListener("abort", onAbort, { once: true });
  const timer = waitMs === undefined ? undefined : setTimeout(() => ac.abort(new SvpError("ERR_TIMEOUT", `no answer within ${formatDuration(waitMs)}`)), waitMs);
  let stream: MspStream;
  try {
    stream = await dialMesh(session, options.target, {
      signal: ac.signal,
      waitRouteMs: options.waitRouteMs ?? DEFAULTS.waitRouteMs,
      msp: { timeoutMs: Math.max(MSP_DEFAULTS.timeoutMs, waitMs ?? 0) },
    });
  } catch (err) {
    session.close();
    return { stage: "connect", error: toSvpError(err), description };
  } finally {
    if (timer) clearTimeout(timer);
    user?.removeEventListener("abort", onAbort);
  }
  options.onConnected?.({ remote: stream.remote, description });
  const local = options.local ? options.local() : stdioStream();
  const reset = () => stream.abort(abortError(user!.reason, "connection"));
  if (user?.aborted) reset();
  else user?.addEventListener("abort", reset, { once: true });
  const stats = await netcat(local, stream, { noShutdown: options.noShutdown ?? false, idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs });
  user?.removeEventListener("abort", reset);
  session.close();
  if (!options.local) process.stdin.destroy();
  return {
    stage: "stream",
    description,
    remote: stream.remote,
    stats,
    telemetry: mspTelemetry(stream.stats),
    ...(stats.error ? { error: stats.error } : {}),
    idleTimeout: stats.idleTimeout === true,
  };
}
