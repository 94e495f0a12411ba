/**
 * Where a mesh stream goes: a node (by SID or any mesh name form) and an MDP port, given
 * directly or as a service name resolved through service discovery.
 *
 * | destination                    | port argument | resolves to                                       |
 * |--------------------------------|---------------|---------------------------------------------------|
 * | `<SID>`, `<SID>.serval`, `<base32>[.serval]` | `80` | that node, MDP port 80                    |
 * | same                           | `http`        | that node, the port its `http` service answers    |
 * | `<anything>.<SID>.serval`      | `80`          | that node, port 80 (`anything` is a virtual host) |
 * | `http.<SID>.serval`            | (none)        | that node's `http` service                        |
 * | `http.svc.serval`              | (none or any) | the first node that answers for `http`            |
 */

import type { Clock } from "../clock.ts";
import { SvpError, throwIfAborted } from "../errors.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import type { MeshName } from "../mesh/names.ts";
import { parseMeshName } from "../mesh/names.ts";
import { parseSid, sidShort } from "../mesh/sid.ts";
import { discoverServices, isValidServiceName } from "./discovery.ts";
import type { MeshSession } from "./mesh-session.ts";
import { waitForRoute } from "./route-wait.ts";
import { DEFAULTS } from "../defaults.ts";

export interface MeshTarget {
  name: MeshName;
  /** MDP port; absent when `service` names it. */
  port?: number;
  /** Service to resolve (when `port` is absent). */
  service?: string;
}

/** Largest MDP port (ports are 32-bit). */
export const MDP_PORT_MAX = 0xffffffff;

/** Parse an MDP port argument: a whole number 1–4294967295. */
export function parseMdpPort(text: string, what = "MDP port"): number {
  if (!/^\d{1,10}$/.test(text) || Number(text) < 1 || Number(text) > MDP_PORT_MAX) {
    throw new SvpError("ERR_BAD_ADDRESS", `invalid ${what} "${text}": expected a number 1-${MDP_PORT_MAX} or a service name`);
  }
  return Number(text);
}

/**
 * Parse `svp connect`'s destination and port arguments (see the table above). Throws
 * ERR_BAD_ADDRESS naming what is wrong.
 */
export function parseMeshTarget(dest: string, portArg?: string): MeshTarget {
  let name: MeshName | undefined;
  const bare = parseSid(dest);
  if (bare) name = { kind: "node", sid: bare, prefix: "" };
  else name = parseMeshName(dest);
  if (!name) throw new SvpError("ERR_BAD_ADDRESS", `"${dest}" is not a mesh name: expected a SID (64 hex digits), <SID>.serval, <base32>.serval or <service>.svc.serval`);
  if (portArg !== undefined && portArg !== "") {
    if (/^\d+$/.test(portArg)) return { name, port: parseMdpPort(portArg) };
    if (!isValidServiceName(portArg)) throw new SvpError("ERR_BAD_ADDRESS", `invalid port or service "${portArg}": expected a number 1-${MDP_PORT_MAX} or a service name`);
    return { name, service: portArg };
  }
  if (name.kind === "service") return { name, service: name.service };
  if (name.prefix !== "" && isValidServiceName(name.prefix)) return { name, service: name.prefix };
  throw new SvpError("ERR_BAD_ADDRESS", `no port for ${dest}: give an MDP port or service name (e.g. "80" or "http"), or use <service>.<SID>.serval`);
}

/** A target for log lines: "ABCD1234…:80", "ABCD1234…:http", "http.svc". */
export function formatMeshTarget(t: MeshTarget): string {
  const where = t.name.kind === "node" ? sidShort(t.name.sid) : `${t.name.service}.svc`;
  if (t.port !== undefined) return `${where}:${t.port}`;
  return t.name.kind === "service" && t.service === t.name.service ? where : `${where}:${t.service}`;
}

export interface ResolveOptions {
  clock: Clock;
  signal?: AbortSignal | undefined;
  /** Wait this long (ms) for a node that is not reachable yet; 0 = fail at once. */
  waitRouteMs?: number;
  /** How long a service lookup may take, ms. Default 2000. */
  discoveryTimeoutMs?: number;
}

/**
 * Resolve a target to a (SID, port) on `session`. Rejects ERR_NO_ROUTE when the node is
 * not reachable (at once, unless waiting is asked for or the node is still starting up),
 * ERR_NAME_NOT_FOUND when no node answers for the service in time.
 */
export async function resolveMeshTarget(session: MeshSession, target: MeshTarget, options: ResolveOptions): Promise<MdpAddress> {
  const { clock, signal } = options;
  const discoveryTimeoutMs = options.discoveryTimeoutMs ?? DEFAULTS.serviceLookupMs;
  const t = session.transport;
  if (target.name.kind === "node") {
    const sid = target.name.sid;
    await waitForRoute(session, sid, { clock, signal, waitMs: options.waitRouteMs ?? DEFAULTS.waitRouteMs });
    if (target.port !== undefined) return { sid, port: target.port };
    const service = target.service!;
    const answers = await discoverServices(t, { target: sid, pattern: service, first: true, timeoutMs: discoveryTimeoutMs, sid: session.sid, clock, signal });
    throwIfAborted(signal, "service lookup");
    const a = answers[0];
    if (!a) throw new SvpError("ERR_NAME_NOT_FOUND", `node ${sidShort(sid)} did not answer for service "${service}" within ${seconds(discoveryTimeoutMs)}`);
    return { sid: a.sid, port: a.port };
  }
  const service = target.name.service;
  // A node that is still finding its peers gets its start-up grace for the lookup too.
  const grace = Math.max(0, session.discoveringUntil - clock.now());
  const timeoutMs = Math.max(discoveryTimeoutMs, grace, options.waitRouteMs ?? 0);
  const answers = await discoverServices(t, { pattern: service, first: true, timeoutMs, sid: session.sid, clock, signal });
  throwIfAborted(signal, "service lookup");
  const a = answers[0];
  if (!a) {
    const peers = t.peers().length;
    throw new SvpError("ERR_NAME_NOT_FOUND", `no node answered for service "${service}" within ${seconds(timeoutMs)} (${peers} reachable peer${peers === 1 ? "" : "s"} asked)`);
  }
  return { sid: a.sid, port: a.port };
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
