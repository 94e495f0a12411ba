/**
 * `svp status` as one library call: the status document of the backend the other commands
 * would use (servald when its socket answers under `auto`, else the embedded node), never
 * starting one. Nothing here prints.
 */

import { DEFAULTS } from "../defaults.ts";
import type { SvpError } from "../errors.ts";
import { isSvpError, toSvpError } from "../errors.ts";
import type { MeshMode } from "../service/mesh-session.ts";
import type { StatusReport } from "../status/status-report.ts";
import { queryStatus, resolveHome } from "./embedded-node.ts";
import { queryServaldStatus } from "./servald-cli.ts";
import { unixDatagramSupport } from "./unix-dgram.ts";

export interface MeshStatusOptions {
  /** Which backend to show. Default `DEFAULTS.meshMode` ("auto"). */
  mesh?: MeshMode;
  /** servald's instance directory; implies servald. */
  servaldInstance?: string | undefined;
  /** The embedded node's instance directory. Default: $SVP_HOME, else the user's state directory. */
  home?: string | undefined;
}

export type MeshStatusResult =
  | { stage: "ok"; report: StatusReport }
  /** servald was asked for (by mode or instance) and could not be reached. */
  | { stage: "servald"; error: SvpError }
  /** The embedded daemon failed to answer for another reason than not running. */
  | { stage: "daemon"; error: SvpError }
  /** No backend runs; `reasons` says why, one line each (servald's first when it was clearly meant). */
  | { stage: "down"; reasons: string[] };

/** Ask the running backend for its status. Never rejects; the stage says what failed. */
export async function queryMeshStatus(options: MeshStatusOptions = {}): Promise<MeshStatusResult> {
  const mode = options.mesh ?? DEFAULTS.meshMode;
  const instance = options.servaldInstance;
  let servaldDown: string | undefined;
  // As the other commands choose: servald when its socket answers (auto needs the native addon for that).
  if (mode === "servald" || instance !== undefined || (mode === "auto" && unixDatagramSupport().available)) {
    try {
      return { stage: "ok", report: await queryServaldStatus({ instance }) };
    } catch (err) {
      if (mode === "servald" || instance !== undefined || !isSvpError(err, "ERR_MESH_DOWN")) return { stage: "servald", error: toSvpError(err) };
      // Auto falls back to the embedded node; say why when servald was clearly meant.
      if (process.env.SERVALINSTANCE_PATH) servaldDown = err.message;
    }
  }
  const home = resolveHome(options.home);
  try {
    return { stage: "ok", report: await queryStatus(home) };
  } catch (err) {
    if (!isSvpError(err, "ERR_MESH_DOWN")) return { stage: "daemon", error: toSvpError(err) };
    return { stage: "down", reasons: [...(servaldDown ? [servaldDown] : []), err.message] };
  }
}
