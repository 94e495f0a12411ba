/**
 * The mesh backend flags shared by connect, listen, discover and socks: --mesh (env
 * SVP_MESH), --home, --no-autostart, --servald-instance, --sid.
 */

import type { Command } from "cac";
import { UsageError } from "../src/errors.ts";
import { parseMeshName } from "../src/mesh/names.ts";
import { parseSid } from "../src/mesh/sid.ts";
import type { Sid } from "../src/mesh/sid.ts";
import { parseMeshMode } from "../src/service/mesh-session.ts";
import type { OpenMeshOptions } from "../src/service/mesh-session.ts";
import { hasFlag, rawValue } from "./flags.ts";
import { DEFAULTS } from "../src/defaults.ts";

/** The value-taking flags `addMeshOptions` adds (for `rawPositionals`). */
export const MESH_VALUE_FLAGS = ["mesh", "home", "servald-instance", "sid"] as const;

export function addMeshOptions(cmd: Command): Command {
  return cmd
    .option("--mesh <backend>", "Mesh backend: auto (servald when it answers, else the embedded node), servald or embedded (default: $SVP_MESH, else auto)")
    .option("--home <dir>", "Embedded node instance directory (default: $SVP_HOME, else $XDG_STATE_HOME/svp or ~/.local/state/svp)")
    .option("--no-autostart", "Do not start the embedded node's daemon when none runs")
    .option("--servald-instance <dir>", "servald instance directory (default: $SERVALINSTANCE_PATH, else servald's default run directories)")
    .option("--sid <SID>", "Use this identity of the node instead of its primary one");
}

/** Parse a SID given as 64 hex digits, 52 base32 characters or <SID>.serval. */
export function parseSidArg(text: string, what: string): Sid {
  const sid = parseSid(text) ?? (() => {
    try {
      const n = parseMeshName(text);
      return n?.kind === "node" && n.prefix === "" ? n.sid : undefined;
    } catch {
      return undefined;
    }
  })();
  if (!sid) throw new UsageError(`invalid ${what} "${text}": expected a SID (64 hex digits, or 52 base32 characters)`);
  return sid;
}

/** The mesh options of a command line (flags first, then SVP_MESH). Throws UsageError. */
export function meshOptions(argv: readonly string[], name: string): OpenMeshOptions {
  const one = (n: string) => rawValue(argv, n, (m) => new UsageError(m));
  const meshText = one("mesh");
  const env = process.env.SVP_MESH;
  const mesh = meshText !== undefined ? parseMeshMode(meshText) : env !== undefined && env !== "" ? parseMeshMode(env, "SVP_MESH") : DEFAULTS.meshMode;
  const home = one("home");
  const servaldInstance = one("servald-instance");
  const sidText = one("sid");
  if (mesh === "embedded" && servaldInstance !== undefined) throw new UsageError("--servald-instance has no effect with --mesh embedded");
  if (mesh === "servald" && home !== undefined) throw new UsageError("--home has no effect with --mesh servald");
  const o: OpenMeshOptions = { mesh, autostart: !hasFlag(argv, "no-autostart"), name };
  if (home !== undefined) o.home = home;
  if (servaldInstance !== undefined) o.servaldInstance = servaldInstance;
  if (sidText !== undefined) o.sid = parseSidArg(sidText, "--sid");
  return o;
}

/**
 * cac hands mri its boolean flags by their camelCase names, so mri does not know that
 * `--proxy-protocol` takes no value and swallows the next argument (`--proxy-protocol 80`
 * loses the port). Give such options their kebab-case name first, which is what mri sees.
 */
export function kebabBooleans(cmd: Command): Command {
  for (const o of cmd.options) {
    if (!o.isBoolean || o.negated) continue;
    const kebab = o.rawName.replace(/^.*--/, "").trim();
    if (kebab.includes("-") && !o.names.includes(kebab)) o.names.unshift(kebab);
  }
  return cmd;
}
