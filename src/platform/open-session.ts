/**
 * The mesh session the commands and the library façade run on: the backend choice of
 * src/service/mesh-session.ts with the platform's backends wired in (servald through the
 * native addon, the embedded node's daemon, auto-started unless told not to).
 */

import type { MeshSession, OpenMeshOptions } from "../service/mesh-session.ts";
import { openMeshSession } from "../service/mesh-session.ts";
import { EmbeddedTransport } from "../node/embedded-transport.ts";
import { ensureDaemon as ensureEmbeddedDaemon } from "./daemon-control.ts";
import { connectDaemon, resolveHome as resolveEmbeddedHome } from "./embedded-node.ts";
import type { SvpCommand } from "./svp-self-command.ts";
import { sidEquals, sidToHex as sidHex } from "../mesh/sid.ts";
import { SvpError as ServiceError } from "../errors.ts";
import { mspExtensionSetting } from "./msp-env.ts";
import { connectServald } from "./servald.ts";

/**
 * Open the mesh backend the options select (`--mesh auto|servald|embedded`, see
 * src/service/mesh-session.ts): servald through its MDP socket, or the embedded node's
 * daemon, auto-started unless `autostart` is false. On the embedded node the session's live
 * streams show up in `svp status`.
 */
export async function openSession(options: OpenMeshOptions = {}, platform: { daemonCommand?: () => SvpCommand } = {}): Promise<MeshSession> {
  const ext = mspExtensionSetting();
  const session = await openMeshSession(
    {
      async servald({ instance, sid }) {
        const t = await connectServald({ ...(instance !== undefined ? { instance } : {}), ...(sid ? { sid } : {}) });
        return { transport: t, description: `servald (instance ${t.instance.path})`, started: false };
      },
      async embedded({ home, autostart, sid, name, onNote }) {
        // The command that runs `svp daemon` when one has to be started: this process's own
        // by default (the CLI); the library passes the package's CLI (src/platform/mesh.ts).
        const command = platform.daemonCommand;
        const h = home !== undefined ? resolveEmbeddedHome(home) : resolveEmbeddedHome();
        // ensureDaemon has probed it (or started it): connect without probing again.
        const { started } = await ensureEmbeddedDaemon(h, { autostart, ...(onNote ? { onNote } : {}), ...(command ? { command } : {}) });
        const t = await connectDaemon(h, { name });
        if (sid && !t.sids.some((s) => sidEquals(s, sid))) {
          t.close();
          throw new ServiceError("ERR_BAD_ADDRESS", `the embedded node has no identity ${sidHex(sid)} (its identities: ${t.sids.map(sidHex).join(", ")})`);
        }
        return { transport: t, description: `embedded node (pid ${t.daemonPid}, ${h})`, started };
      },
    },
    options,
  );
  if (session.transport instanceof EmbeddedTransport) session.transport.setStreamStatsProvider(() => session.streams.stats());
  if (ext !== undefined && (session.transport instanceof EmbeddedTransport || session.transport.kind === "servald")) (session.transport as { mspExtension: boolean }).mspExtension = ext;
  return session;
}
