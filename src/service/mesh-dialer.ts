/**
 * Opening MSP streams to mesh targets: name → (SID, port) → reachability → MSP connect.
 * `svp connect` and the mesh routes of `svp socks` both go through `dialMesh`, so they fail
 * the same way:
 *
 * | situation | error |
 * |---|---|
 * | no mesh backend (none running, auto-start off or failed, backend gone) | ERR_MESH_DOWN |
 * | node not a reachable peer (after `waitRouteMs` / the start-up grace) | ERR_NO_ROUTE, at once by default |
 * | no node answers for the service | ERR_NAME_NOT_FOUND |
 * | STOP before any data (nothing listens on the port, forward refused, --allow) | ERR_REFUSED |
 * | silence (MSP's 10 s, or the caller's own timer through `signal`) | ERR_TIMEOUT |
 *
 * The stream resolves only once the peer has answered, so a proxy's success reply is true.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError, toSvpError, failureUnder, throwIfAborted } from "../errors.ts";
import type { MeshName } from "../mesh/names.ts";
import { connectMsp } from "../msp/connect.ts";
import type { MspStream } from "../msp/msp-stream.ts";
import type { MspOptions } from "../msp/params.ts";
import type { MeshDialer } from "../socks/dialer.ts";
import type { MeshSession } from "./mesh-session.ts";
import type { MeshTarget } from "./mesh-target.ts";
import { resolveMeshTarget } from "./mesh-target.ts";
import { DEFAULTS } from "../defaults.ts";

export interface MeshDialOptions {
  clock?: Clock;
  /** Abandon the attempt; rejects with the signal's reason when it is an SvpError. */
  signal?: AbortSignal | undefined;
  /** Hold the request up to this long (ms) while the node is not reachable yet. Default 0. */
  waitRouteMs?: number;
  /** How long a service lookup may take, ms. Default 2000. */
  discoveryTimeoutMs?: number;
  /** MSP parameters (e.g. a longer `timeoutMs` for a long connect wait). */
  msp?: MspOptions;
  /**
   * Resolve once the connection request is sent, not when the peer answers (connectMsp's
   * `early`): writes go out at once; a refusal or timeout then closes the stream instead.
   */
  early?: boolean;
  /**
   * With `early`: the peer must answer within this long (ms, counted from the start of the
   * dial), else the stream is aborted with ERR_TIMEOUT. `early` resolves before any answer,
   * so this is what keeps a caller's connect deadline (`svp connect -w`) shorter than MSP's
   * own 10 s of silence.
   */
  answerTimeoutMs?: number;
}

/** Open an MSP stream to `target` on `session`; resolves once the peer has answered. */
export async function dialMesh(session: MeshSession, target: MeshTarget, options: MeshDialOptions = {}): Promise<MspStream> {
  const clock = options.clock ?? systemClock;
  const signal = options.signal;
  const startedAt = clock.now();
  try {
    if (session.down) throw new SvpError("ERR_MESH_DOWN", `the mesh backend (${session.description}) went away`);
    const to = await resolveMeshTarget(session, target, {
      clock,
      signal,
      waitRouteMs: options.waitRouteMs ?? DEFAULTS.waitRouteMs,
      ...(options.discoveryTimeoutMs !== undefined ? { discoveryTimeoutMs: options.discoveryTimeoutMs } : {}),
    });
    const stream = await connectMsp(session.transport, to, { ...options.msp, clock, ...(session.sid ? { sid: session.sid } : {}), ...(signal ? { signal } : {}), ...(options.early ? { early: true } : {}) });
    session.streams.add(stream);
    if (options.early && options.answerTimeoutMs !== undefined) abortUnanswered(stream, clock, startedAt, options.answerTimeoutMs);
    return stream;
  } catch (err) {
    const r: unknown = signal?.reason;
    if (signal?.aborted && r instanceof SvpError) throw r;
    throw toSvpError(err);
  }
}

/** Abort `stream` with ERR_TIMEOUT unless the peer has answered by `startedAt + ms`. */
function abortUnanswered(stream: MspStream, clock: Clock, startedAt: number, ms: number): void {
  const answered = () => stream.connection.counters.packetsIn > 0;
  if (stream.closed || answered()) return;
  const timer = clock.setTimeout(() => {
    if (!stream.closed && !answered()) stream.abort(new SvpError("ERR_TIMEOUT", `no answer from the peer within ${ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`}`));
  }, Math.max(0, startedAt + ms - clock.now()));
  stream.once("close", () => timer.cancel());
}

export interface MeshDialerOptions extends Omit<MeshDialOptions, "signal"> {
  /** The session to dial on; may open one (and reject ERR_MESH_DOWN when it cannot). */
  session: () => Promise<MeshSession>;
}

/**
 * `dialMesh` on a session obtained from `getSession` (which may open one): a failure to
 * get a session is ERR_MESH_DOWN with the reason.
 */
export async function dialVia(getSession: () => Promise<MeshSession>, target: MeshTarget, options: MeshDialOptions = {}): Promise<MspStream> {
  const signal = options.signal;
  let session: MeshSession;
  try {
    session = await getSession();
  } catch (err) {
    const e = signal ? failureUnder(signal, err) : toSvpError(err);
    if (e === signal?.reason || e.code === "ERR_MESH_DOWN" || e.code === "ERR_ABORTED") throw e;
    throw new SvpError("ERR_MESH_DOWN", `no mesh backend: ${e.message}`, { cause: e });
  }
  throwIfAborted(signal, "dial");
  return dialMesh(session, target, options);
}

/**
 * The socks proxy's mesh route: MDP port = the requested TCP port for node names, the
 * service's port for `<service>.svc.serval`.
 */
export function createMeshDialer(options: MeshDialerOptions): MeshDialer {
  return {
    dial(name: MeshName, port: number, signal: AbortSignal) {
      const target: MeshTarget = name.kind === "service" ? { name, service: name.service } : { name, port };
      return dialVia(options.session, target, { ...options, signal });
    },
  };
}
