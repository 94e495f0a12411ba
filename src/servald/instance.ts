/**
 * Finding a servald instance and naming its MDP socket.
 *
 * servald keeps its sockets in its run directory: the instance directory
 * (`SERVALINSTANCE_PATH`) when that is set, else the compiled-in run path
 * (`LOCALSTATEDIR "/run/serval"`: /usr/local/var/run/serval for a plain `./configure`,
 * /var/run/serval for distribution builds; Debian's init script runs it with
 * SERVALINSTANCE_PATH=/var/serval-node). On Linux the names are abstract: the absolute path
 * with its leading "/" replaced by a NUL byte, exactly that many bytes long.
 */

import { SvpError } from "../errors.ts";
import type { UnixAddress } from "./datagram-socket.ts";

/** Run directories servald uses when SERVALINSTANCE_PATH is unset, most likely first. */
export const SERVALD_DEFAULT_RUN_PATHS = ["/usr/local/var/run/serval", "/var/run/serval", "/var/serval-node"] as const;

/** The MDP v2 socket of the daemon (overlay_mdp.c binds "mdp.2.socket" in the run directory). */
export const MDP_SOCKET_NAME = "mdp.2.socket";

/**
 * svp's own client socket names in the run directory, `svp.<n>.socket` for the first free n
 * below this. servald keeps a binding until its client says CLOSE (it cannot tell that an
 * abstract-namespace client died), so a predictable name lets the next svp reclaim and clear
 * what a crashed one left bound.
 */
export const CLIENT_SOCKET_SLOTS = 64;

export function clientSocketName(slot: number): string {
  return `svp.${slot}.socket`;
}

/** sun_path is 108 bytes on Linux; servald needs room for its NUL-terminated path there. */
const SUN_PATH_MAX = 107;

export interface ServaldInstance {
  /** The run directory, exactly as the daemon spells it. */
  path: string;
  /** Where it came from: `--servald-instance`, SERVALINSTANCE_PATH, or servald's defaults. */
  source: "option" | "env" | "default";
}

export interface ResolveInstanceOptions {
  /** `--servald-instance DIR`. */
  instance?: string | undefined;
  /** The process environment (only SERVALINSTANCE_PATH is read). */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Candidate instances in the order to try them: the option, else SERVALINSTANCE_PATH, else
 * every default run path. Throws ERR_USAGE for a relative or overlong path (servald itself
 * requires an absolute path and compares the string as given, without normalising it).
 */
export function resolveInstances(options: ResolveInstanceOptions = {}): ServaldInstance[] {
  const fromOption = options.instance;
  if (fromOption !== undefined) return [checkPath(fromOption, "--servald-instance", "option")];
  const fromEnv = options.env?.SERVALINSTANCE_PATH;
  if (fromEnv !== undefined && fromEnv !== "") return [checkPath(fromEnv, "SERVALINSTANCE_PATH", "env")];
  return SERVALD_DEFAULT_RUN_PATHS.map((path) => ({ path, source: "default" as const }));
}

function checkPath(path: string, what: string, source: ServaldInstance["source"]): ServaldInstance {
  if (!path.startsWith("/")) throw new SvpError("ERR_USAGE", `${what} must be an absolute path (servald uses it verbatim), got ${JSON.stringify(path)}`);
  if (path.includes("\0")) throw new SvpError("ERR_USAGE", `${what} contains a NUL byte`);
  const name = joinLikeServald(path, clientSocketName(CLIENT_SOCKET_SLOTS - 1)); // the longest name used
  if (new TextEncoder().encode(name).length > SUN_PATH_MAX) {
    throw new SvpError("ERR_USAGE", `${what} is too long for a unix socket name (${name.length} > ${SUN_PATH_MAX} bytes): ${path}`);
  }
  return { path, source };
}

/** servald's strbuf_path_join: add a "/" unless the directory already ends with one. */
function joinLikeServald(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/**
 * The address of a socket `name` in the run directory `dir`: abstract (Linux, default) or a
 * filesystem path (servald builds without USE_ABSTRACT_NAMESPACE).
 */
export function localSocketAddress(dir: string, name: string, abstract = true): UnixAddress {
  const bytes = new TextEncoder().encode(joinLikeServald(dir, name));
  if (abstract) bytes[0] = 0; // the leading "/" becomes the abstract-namespace NUL
  return bytes;
}

/** The daemon's MDP v2 socket address for an instance. */
export function mdpSocketAddress(instance: ServaldInstance | string, abstract = true): UnixAddress {
  return localSocketAddress(typeof instance === "string" ? instance : instance.path, MDP_SOCKET_NAME, abstract);
}
