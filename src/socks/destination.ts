/**
 * Where a proxy client wants to go, validated once at the edge. Every protocol (SOCKS5,
 * SOCKS4/4a, HTTP) builds its destination here, so the same names are refused the same way.
 */

import { SvpError } from "../errors.ts";
import type { MeshName } from "../mesh/names.ts";
import { parseMeshName } from "../mesh/names.ts";
import { upperSidLabels } from "../mesh/sid.ts";
import { formatHostPort, parseIpv4, parseIpv6 } from "./ip.ts";

export interface Destination {
  /** Host name (lower case, as sent) or IP literal (IPv6 without brackets). */
  readonly host: string;
  /** TCP port 1–65535 (or the mesh service port). */
  readonly port: number;
  /** Present when `host` is a mesh name: the route is the mesh, never DNS. */
  readonly mesh?: MeshName;
}

const HOST_CHARS = /^[A-Za-z0-9._-]+$/;
const NUMERIC_PART = /^(?:0x[0-9a-f]*|[0-9]+)$/i;

/**
 * Validate and classify a destination. Throws `SvpError("ERR_BAD_ADDRESS")` for an empty
 * or malformed host, port 0, the unspecified address (0.0.0.0, :: and ::ffff:0.0.0.0 reach
 * this very host) and numeric forms other than dotted-quad ("0", "127.1", "0x7f.1"), which
 * resolvers turn into addresses nobody meant (never "connect to localhost" by accident).
 */
export function makeDestination(rawHost: string, port: number): Destination {
  const bad = (why: string) => new SvpError("ERR_BAD_ADDRESS", why);
  let host = rawHost;
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
    if (!host.includes(":")) throw bad(`brackets are only for IPv6 addresses: "${printable(rawHost)}"`);
  }
  if (host.length === 0) throw bad("empty host name");
  if (host.length > 255) throw bad("host name longer than 255 characters");
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`invalid port ${port} for ${printable(host)}`);
  if (host.includes(":")) {
    const v6 = parseIpv6(host);
    if (!v6) throw bad(`invalid IPv6 address "${printable(host)}"`);
    if (v6.every((x) => x === 0)) throw bad("the unspecified address :: is not a destination");
    // ::ffff:0.0.0.0 is 0.0.0.0 in IPv4-mapped form: this host, too.
    if (v6.every((x, i) => (i === 10 || i === 11 ? x === 0xff : x === 0))) throw bad("the unspecified address 0.0.0.0 (IPv4-mapped) is not a destination");
    return { host: host.toLowerCase(), port };
  }
  if (!HOST_CHARS.test(host)) throw bad(`invalid host name "${printable(host)}"`);
  const parts = host.split(".");
  if (parts.length <= 4 && parts.every((p) => NUMERIC_PART.test(p))) {
    const v4 = parseIpv4(host);
    if (!v4) throw bad(`"${host}" is not a dotted-quad IPv4 address`);
    if (v4.every((x) => x === 0)) throw bad("the unspecified address 0.0.0.0 is not a destination");
    return { host, port };
  }
  host = host.toLowerCase();
  if (host.startsWith(".") || host.includes("..")) throw bad(`invalid host name "${host}"`);
  const mesh = parseMeshName(host);
  return mesh ? { host, port, mesh } : { host, port };
}

/** host:port as it goes on the wire (upstream CONNECT): the host exactly as received. */
export function formatDestination(d: { host: string; port: number }): string {
  return formatHostPort(d.host, d.port);
}

/**
 * host:port for logs and messages: as `formatDestination`, but a mesh name's 64-hex SID
 * label in upper case, as svp prints SIDs everywhere else (`svp id`, `svp status`, servald).
 * Base32 labels stay lower case (their canonical form).
 */
export function displayDestination(d: Destination): string {
  return d.mesh ? formatHostPort(upperSidLabels(d.host), d.port) : formatDestination(d);
}

/** A host string safe to put in a log line or error message (control bytes escaped). */
export function printable(s: string): string {
  const cut = s.length > 80 ? s.slice(0, 80) + "…" : s;
  return cut.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
