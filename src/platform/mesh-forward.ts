/**
 * `svp connect --forward` with its mesh as one library call: open the mesh (failing early
 * when there is none), then `startForwardProxy` (forward-proxy.ts) whose every local
 * connection gets its own MSP stream to one target. A backend lost later is reopened on
 * the next connection. Nothing here prints; `onMeshLost` says when the backend went.
 */

import { DEFAULTS } from "../defaults.ts";
import type { SvpError } from "../errors.ts";
import { toSvpError } from "../errors.ts";
import { MSP_DEFAULTS } from "../msp/params.ts";
import { dialVia } from "../service/mesh-dialer.ts";
import { MeshConnector } from "../service/mesh-session.ts";
import type { MeshSession, OpenMeshOptions } from "../service/mesh-session.ts";
import { formatMeshTarget } from "../service/mesh-target.ts";
import type { MeshTarget } from "../service/mesh-target.ts";
import type { ForwardResult } from "../service/forward-server.ts";
import { startForwardProxy } from "./forward-proxy.ts";
import type { ForwardProxy, ForwardProxyOptions } from "./forward-proxy.ts";
import { openSession } from "./open-session.ts";

export interface MeshForwardOptions extends Omit<ForwardProxyOptions, "dial" | "targetLabel" | "connectTimeoutMs"> {
  /** Which mesh backend (as `svp connect --mesh/--home/…`). */
  mesh: OpenMeshOptions;
  /** Where every connection goes: a node and an MDP port or service. */
  target: MeshTarget;
  /**
   * The peer must answer within this long (ms) or the client is reset; a wait longer than
   * MSP's silence limit raises that limit. Default: `DEFAULTS.connectTimeoutMs` (30 s) for
   * the whole open, MSP's own 10 s of silence for the answer.
   */
  waitMs?: number;
  /** Wait up to this long (ms) for the node to become reachable. Default `DEFAULTS.waitRouteMs` (0). */
  waitRouteMs?: number;
  /** Told when the mesh backend went away (the next connection reopens it). */
  onMeshLost?: (description: string) => void;
}

/** A running `svp connect --forward`. */
export interface MeshForward extends ForwardProxy {
  /** The mesh backend it was opened on, for messages. */
  readonly description: string;
  /** The target as `formatMeshTarget` writes it, as in the log lines. */
  readonly targetLabel: string;
  /** Live connections now (every event loop's). */
  readonly connections: number;
  /** Settles when the server ended: closed, or (`once`) after its one connection. */
  readonly done: Promise<ForwardResult>;
}

export type MeshForwardStart =
  /** No mesh backend could be opened. */
  | { stage: "open"; error: SvpError }
  /** The mesh is open but the local address could not be bound. */
  | { stage: "listen"; error: SvpError }
  | { stage: "running"; forward: MeshForward };

/** Open the mesh and start forwarding `listen` to `target`. Never rejects; the stage says what failed. */
export async function startMeshForward(options: MeshForwardOptions): Promise<MeshForwardStart> {
  const { mesh, target, waitMs, waitRouteMs, onMeshLost, ...proxyOptions } = options;
  // Fail early when there is no mesh at all; later losses reconnect on the next connection.
  let first: MeshSession;
  try {
    first = await openSession(mesh);
  } catch (err) {
    return { stage: "open", error: toSvpError(err) };
  }
  const connector = new MeshConnector(() => openSession(mesh), { onLost: (s) => onMeshLost?.(s.description) });
  connector.adopt(first);
  const targetLabel = formatMeshTarget(target);
  // early: the client's first bytes go out with the connection request (0-RTT), as with
  // servald's own `msp connect --forward`, saving a round trip to the first answer.
  // early resolves before the peer answers: answerTimeoutMs keeps waitMs the deadline.
  const dial = (signal: AbortSignal) =>
    dialVia(() => connector.get(), target, {
      signal,
      early: true,
      ...(waitMs !== undefined ? { answerTimeoutMs: waitMs } : {}),
      waitRouteMs: waitRouteMs ?? DEFAULTS.waitRouteMs,
      msp: { timeoutMs: Math.max(MSP_DEFAULTS.timeoutMs, waitMs ?? 0) },
    });
  let proxy: ForwardProxy;
  try {
    proxy = await startForwardProxy({ ...proxyOptions, targetLabel, dial, connectTimeoutMs: waitMs ?? DEFAULTS.connectTimeoutMs });
  } catch (err) {
    connector.close();
    return { stage: "listen", error: toSvpError(err) };
  }
  const server = proxy.server;
  // The mesh goes once the server has ended (closed, or `once` done), not before its last connection.
  const done = server.done.finally(() => connector.close());
  return {
    stage: "running",
    forward: {
      address: proxy.address,
      server,
      loopNote: proxy.loopNote,
      description: first.description,
      targetLabel,
      get connections() {
        return server.connections;
      },
      done,
      stopAccepting: () => proxy.stopAccepting(),
      close: (drainMs?: number) => proxy.close(drainMs),
    },
  };
}
