/**
 * The mesh backend flags shared by connect, listen, discover and socks: --mesh (env
 * SVP_MESH), --home, --no-autostart, --servald-instance, --sid.
 */

import type { Command } from "cac";
import { DEFAULTS, parseMeshMode, parseMeshName, parseSid, UsageError } from "../src/index.ts";
import type { MeshMode, OpenMeshOptions, Sid } from "../src/index.ts";
import type { Flags } from "./command-line.ts";

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

/**
 * The backend flags of every command that reaches a node: --mesh (else SVP_MESH), --home
 * and --servald-instance, checked against each other. Throws UsageError.
 */
export function backendFlags(flags: Flags): { mesh: MeshMode; home: string | undefined; servaldInstance: string | undefined } {
  const meshText = flags.one("mesh");
  const env = process.env.SVP_MESH;
  const mesh = meshText !== undefined ? parseMeshMode(meshText) : env !== undefined && env !== "" ? parseMeshMode(env, "SVP_MESH") : DEFAULTS.meshMode;
  const home = flags.one("home");
  const servaldInstance = flags.one("servald-instance");
  if (mesh === "embedded" && servaldInstance !== undefined) throw new UsageError("--servald-instance has no effect with --mesh embedded");
  if (mesh === "servald" && home !== undefined) throw new UsageError("--home has no effect with --mesh servald");
  return { mesh, home, servaldInstance };
}

/** The mesh options of a command line (`addMeshOptions`'s flags). Throws UsageError. */
export function meshOptions(flags: Flags, name: string): OpenMeshOptions {
  const { mesh, home, servaldInstance } = backendFlags(flags);
  const sidText = flags.one("sid");
  const o: OpenMeshOptions = { mesh, autostart: !flags.has("no-autostart"), name };
  if (home !== undefined) o.home = home;
  if (servaldInstance !== undefined) o.servaldInstance = servaldInstance;
  if (sidText !== undefined) o.sid = parseSidArg(sidText, "--sid");
  return o;
}
