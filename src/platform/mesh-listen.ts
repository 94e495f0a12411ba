/**
 * `svp listen` with its mesh as one library call: open the mesh, then `startListenServer`
 * (listen-target.ts) on it; when the service ends, the mesh is closed (and stdin released
 * for a stdio target, so nothing keeps the process alive). Nothing here prints.
 */

import type { SvpError } from "../errors.ts";
import { toSvpError } from "../errors.ts";
import type { ListenResult, ListenService } from "../service/listen-service.ts";
import type { MeshSession, OpenMeshOptions } from "../service/mesh-session.ts";
import { startListenServer } from "./listen-target.ts";
import type { ListenServerOptions } from "./listen-target.ts";
import { openSession } from "./open-session.ts";

export interface MeshListenOptions extends ListenServerOptions {
  /** Which mesh backend (as `svp listen --mesh/--home/…`). */
  mesh: OpenMeshOptions;
}

export type MeshListenStart =
  /** No mesh backend could be opened. */
  | { stage: "open"; error: SvpError }
  /** The mesh is open but the port could not be bound (taken: ERR_NOT_ALLOWED, or another failure). */
  | { stage: "listen"; error: SvpError }
  | {
      stage: "running";
      /** The listen service: `connection` per caller, `connections`, `close(drainMs)`, `local`. */
      service: ListenService;
      /** Where callers go, for messages ("127.0.0.1:8000", "exec: sort", "stdio"). */
      targetLabel: string;
      /** The mesh backend, for messages. */
      description: string;
      /** Settles when the service has ended and the mesh is closed. */
      done: Promise<ListenResult>;
    };

/** Open the mesh and offer `options.port` on it. Never rejects; the stage says what failed. */
export async function startMeshListen(options: MeshListenOptions): Promise<MeshListenStart> {
  const { mesh, ...listenOptions } = options;
  let session: MeshSession;
  try {
    session = await openSession(mesh);
  } catch (err) {
    return { stage: "open", error: toSvpError(err) };
  }
  let started: Awaited<ReturnType<typeof startListenServer>>;
  try {
    started = await startListenServer(session, listenOptions);
  } catch (err) {
    session.close();
    return { stage: "listen", error: toSvpError(err) };
  }
  const done = started.service.done.then((result) => {
    session.close();
    if (options.target.kind === "stdio") process.stdin.destroy();
    return result;
  });
  return { stage: "running", service: started.service, targetLabel: started.targetLabel, description: session.description, done };
}
