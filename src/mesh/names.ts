/**
 * Mesh destination names (DESIGN.md section 4, "Names"): which host names a proxy client
 * may use to mean "a node on the Serval mesh" rather than "a host on the internet".
 *
 * | form                                   | meaning                                    |
 * |----------------------------------------|--------------------------------------------|
 * | `<SID>`                                | node SID (64 hex digits, any case)         |
 * | `<SID>.serval`, `<base32>.serval`      | node SID                                   |
 * | `<anything>.<SID-or-base32>.serval`    | node SID; `prefix` = "anything" (a virtual  |
 * |                                        | host, or a service on that node)           |
 * | `<service>.svc.serval`                 | whichever node offers `service`            |
 *
 * The base32 form (52 characters, RFC 4648, no padding) exists because 64 hex digits are
 * one more than DNS's 63-octet label limit, so strict resolvers reject `<SID>.serval`.
 * Names are case-insensitive and may end in a dot.
 */

import { SvpError } from "../errors.ts";
import type { Sid } from "./sid.ts";
import { parseSid, sidFromHex } from "./sid.ts";

/** The pseudo top-level domain of mesh names. */
export const MESH_TLD = "serval";

export type MeshName =
  /**
   * A specific node. `prefix` holds the labels left of the SID label, lower-cased and
   * joined with dots ("" when there are none): a virtual host name for the node's web
   * server, or a service name that the mesh dialer may resolve through discovery.
   */
  | { kind: "node"; sid: Sid; prefix: string }
  /** A service name (`<service>.svc.serval`), resolved through service discovery. */
  | { kind: "service"; service: string };

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Parse `host` as a mesh name. Returns undefined when it is an ordinary host name or IP
 * address (route it elsewhere). Throws `SvpError("ERR_BAD_ADDRESS")` for a name under
 * `.serval` that names no node or service: such a name can never resolve on the
 * internet, so sending it to DNS would only leak it.
 */
export function parseMeshName(host: string): MeshName | undefined {
  let name = host.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name.length === 64 && !name.includes(".")) {
    const sid = sidFromHex(name);
    return sid ? { kind: "node", sid, prefix: "" } : undefined;
  }
  if (name !== MESH_TLD && !name.endsWith("." + MESH_TLD)) return undefined;
  const labels = name === MESH_TLD ? [] : name.slice(0, -(MESH_TLD.length + 1)).split(".");
  const bad = (why: string) => new SvpError("ERR_BAD_ADDRESS", `"${host}" is not a mesh name: ${why}`);
  if (labels.length === 0) throw bad("expected <SID>.serval, <base32>.serval or <service>.svc.serval");
  const last = labels[labels.length - 1]!;
  const rest = labels.slice(0, -1);
  for (const label of rest) {
    if (!LABEL.test(label)) throw bad(`bad label "${label}"`);
  }
  if (last === "svc") {
    if (rest.length === 0) throw bad("expected <service>.svc.serval");
    return { kind: "service", service: rest.join(".") };
  }
  const sid = parseSid(last);
  if (!sid) {
    throw bad(`"${last}" is not a SID (64 hex digits or 52 base32 characters)`);
  }
  return { kind: "node", sid, prefix: rest.join(".") };
}

/** True when `host` is a mesh name (valid or not): it must never go to DNS or the internet. */
export function isMeshHost(host: string): boolean {
  let name = host.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  return name === MESH_TLD || name.endsWith("." + MESH_TLD) || (name.length === 64 && /^[0-9a-f]{64}$/.test(name));
}
