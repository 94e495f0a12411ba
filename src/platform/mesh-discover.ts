/**
 * `svp discover` as one library call: open the mesh, ask every reachable node (and this
 * one) which services it offers, close the mesh. Nothing here prints.
 */

import { DEFAULTS } from "../defaults.ts";
import type { SvpError } from "../errors.ts";
import { toSvpError } from "../errors.ts";
import { sidToHex } from "../mesh/sid.ts";
import { discoverServices } from "../service/discovery.ts";
import type { ServiceAnswer } from "../service/discovery.ts";
import type { MeshSession, OpenMeshOptions } from "../service/mesh-session.ts";
import { openSession } from "./open-session.ts";

export interface MeshDiscoverOptions {
  /** Which mesh backend (as `svp discover --mesh/--home/…`). */
  mesh: OpenMeshOptions;
  /** Only services matching this name (`*` and `?` wildcards). Default: all. */
  pattern?: string | undefined;
  /** Collect answers for this long, ms; a node started just now gets its start-up grace at least. Default `DEFAULTS.discoverTimeoutMs`. */
  timeoutMs?: number;
}

export type MeshDiscoverResult =
  /** No mesh backend could be opened. */
  | { stage: "open"; error: SvpError }
  /** The mesh was open but the question could not be asked. */
  | { stage: "ask"; error: SvpError }
  /** The answers, sorted by SID, service, port; `peers`: how many reachable peers were asked. */
  | { stage: "done"; answers: ServiceAnswer[]; peers: number };

/** Discover the services of the mesh. Never rejects; the stage says what failed. */
export async function meshDiscover(options: MeshDiscoverOptions): Promise<MeshDiscoverResult> {
  let session: MeshSession;
  try {
    session = await openSession(options.mesh);
  } catch (err) {
    return { stage: "open", error: toSvpError(err) };
  }
  // A node that was just started gets its start-up grace to find peers first.
  const grace = Math.max(0, session.discoveringUntil - performance.now());
  const timeoutMs = options.timeoutMs ?? DEFAULTS.discoverTimeoutMs;
  let answers: ServiceAnswer[];
  try {
    answers = await discoverServices(session.transport, { pattern: options.pattern, timeoutMs: Math.max(timeoutMs, grace), sid: session.sid });
  } catch (err) {
    session.close();
    return { stage: "ask", error: toSvpError(err) };
  }
  const peers = session.transport.peers().length;
  session.close();
  answers.sort((a, b) => sidToHex(a.sid).localeCompare(sidToHex(b.sid)) || a.service.localeCompare(b.service) || a.port - b.port);
  return { stage: "done", answers, peers };
}
