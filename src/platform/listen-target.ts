/**
 * What `svp listen` connects each caller to, opened with the platform's sockets, programs
 * or stdio, and `svp listen` itself as one library call (`startListenServer`).
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError, failureUnder } from "../errors.ts";
import { startListenService } from "../service/listen-service.ts";
import type { ListenService, ListenServiceOptions, OpenTarget } from "../service/listen-service.ts";
import type { MeshSession } from "../service/mesh-session.ts";
import { sidToHex as sidHex } from "../mesh/sid.ts";
import { formatHostPort } from "../socks/ip.ts";
import { connectTcp } from "./net.ts";
import { spawnExec as spawnExecStream } from "./exec-stream.ts";
import { stdioStream as openStdio } from "./stdio-stream.ts";

/** What `svp listen` connects each caller to. */
export type ListenTargetSpec = { kind: "tcp"; host: string; port: number } | { kind: "exec"; command: string } | { kind: "stdio" };

/** The platform's opener for a listen target, and its label for log lines. */
export function listenTarget(spec: ListenTargetSpec, clock: Clock = systemClock): { open: OpenTarget; label: string } {
  if (spec.kind === "tcp") {
    const label = formatHostPort(spec.host, spec.port);
    return {
      label,
      open: async (_caller, signal) => {
        try {
          return await connectTcp(spec.host, spec.port, { signal, timeoutMs: 0, clock });
        } catch (err) {
          const e = failureUnder(signal, err);
          if (e === signal.reason) throw e;
          throw new SvpError(e.code, `forward to ${label}: ${e.message}`, { cause: e });
        }
      },
    };
  }
  if (spec.kind === "exec") {
    return {
      label: `exec: ${spec.command}`,
      open: (caller, signal) => spawnExecStream(spec.command, { signal, env: { SVP_PEER_SID: sidHex(caller.sid), SVP_PEER_PORT: String(caller.port) } }),
    };
  }
  let used = false;
  return {
    label: "stdio",
    open: () => {
      if (used) return Promise.reject(new SvpError("ERR_NOT_ALLOWED", "stdin/stdout already carry a connection"));
      used = true;
      return Promise.resolve(openStdio());
    },
  };
}

export interface ListenServerOptions extends Omit<ListenServiceOptions, "open" | "targetLabel"> {
  /** Where callers go: a TCP port, a program per caller, or stdin/stdout for one connection. */
  target: ListenTargetSpec;
}

/**
 * `svp listen` as one library call: the platform's opener for `target` behind a listen
 * service on `session` (the MSP listener, the allow list, discovery). The service's
 * `done` says how it ended; `targetLabel` names the target in log lines.
 */
export async function startListenServer(session: MeshSession, options: ListenServerOptions): Promise<{ service: ListenService; targetLabel: string }> {
  const { target, ...rest } = options;
  const { open, label } = listenTarget(target, options.clock ?? systemClock);
  const service = await startListenService(session, { ...rest, open, targetLabel: label });
  return { service, targetLabel: label };
}
