/**
 * `svp status` on the servald backend: a StatusReport built from what the daemon tells a
 * client — its identities and route table over the MDP socket (or, where svp cannot open
 * that socket, the same facts from servald's own CLI: `servald status`, `id self`,
 * `route print`) — plus its pid file and, when a servald binary is at hand, its version.
 *
 * servald does not say which of its clients bound which port, nor what streams they carry,
 * so `ports` and `streams` list only what this process knows (nothing, for `svp status`).
 */

import type { Sid } from "../mesh/sid.ts";
import { sidFromHex, sidToBase32, sidToHex } from "../mesh/sid.ts";
import type { PeerStatus, RouteStatus, StatusReport } from "../status/status-report.ts";
import { STATUS_SCHEMA } from "../status/status-report.ts";
import type { ServaldInstance } from "./instance.ts";
import { REACHABLE, REACHABLE_ROUTABLE } from "./route-record.ts";
import type { RouteRecord } from "./route-record.ts";

/** servald's names for its REACHABLE_* bits (as `servald route print` spells them, lower case). */
const REACH_NAMES: readonly [number, string][] = [
  [REACHABLE.SELF, "self"],
  [REACHABLE.BROADCAST, "broadcast"],
  [REACHABLE.UNICAST, "unicast"],
  [REACHABLE.INDIRECT, "indirect"],
  [REACHABLE.ASSUMED, "assumed"],
];

/** REACHABLE_* bits as names, e.g. ["broadcast", "unicast"]; ["unreachable"] for none. */
export function reachabilityNames(reachable: number): string[] {
  const names = REACH_NAMES.filter(([bit]) => reachable & bit).map(([, n]) => n);
  return names.length ? names : ["unreachable"];
}

/** One row of `servald route print`. */
export interface CliRoute {
  sid: Sid;
  /** Routing flags, lower case ("unicast", "self", "unreachable", …). */
  flags: string[];
  interface: string | null;
  nextHop: Sid | null;
  priorHop: Sid | null;
}

/** servald's CLI tables: a column count, a header row, then rows of `:`-separated cells. */
function tableRows(text: string): string[][] {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const cols = Number(lines[0]);
  if (!Number.isInteger(cols) || cols < 1 || lines.length < 2) return [];
  return lines.slice(2).map((l) => l.split(":")).filter((cells) => cells.length === cols);
}

/** Rows of `servald route print`; malformed rows are skipped. */
export function parseRoutePrint(text: string): CliRoute[] {
  const out: CliRoute[] = [];
  for (const [sidText, flags, iface, next, prior] of tableRows(text)) {
    const sid = sidFromHex(sidText!);
    if (!sid || flags === undefined) continue;
    out.push({
      sid,
      // One name for a single REACHABLE_* bit, else the number (network_cli.c).
      flags: /^\d+$/.test(flags) ? reachabilityNames(Number(flags)) : flags.split(/[|,\s]+/).filter(Boolean).map((f) => f.toLowerCase()),
      interface: iface ? iface : null,
      nextHop: (next && sidFromHex(next)) || null,
      priorHop: (prior && sidFromHex(prior)) || null,
    });
  }
  return out;
}

/** The SIDs of `servald id self` (the unlocked identities, primary first). */
export function parseIdSelf(text: string): Sid[] {
  return tableRows(text).map(([s]) => sidFromHex(s!)).filter((s): s is Sid => s !== undefined);
}

/** `key:value` lines of `servald status` (pid, primary_sid, status, instancepath, …). */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** The version of `servald version` ("START-3912-g029adc17"), if its first line names one. */
export function parseServaldVersion(text: string): string | undefined {
  return /^Serval DNA version (\S+)/m.exec(text)?.[1];
}

/** What svp learnt about the daemon, from its socket and/or its CLI. */
export interface ServaldFacts {
  instance: ServaldInstance;
  /** Primary identity first. */
  identities: Sid[];
  /**
   * The route table: from the MDP socket (`RouteRecord`s) or `servald route print`. Nodes
   * that are one of `identities` or flagged self are the daemon itself.
   */
  routes: (RouteRecord | CliRoute)[];
  /** From the pid file (or `servald status`); null when neither said. */
  pid: number | null;
  /** When the daemon wrote its pid file (ms since the epoch); null when unknown. */
  startedAtMs: number | null;
  /** Version from `servald version`, when a servald binary was found. */
  version: string | undefined;
  /** The servald binary asked, or null. */
  cli: string | null;
  /** How these facts were gathered. */
  via: "socket" | "cli";
  /** Things worth saying (CLI failures, why the socket was not used). */
  notes: string[];
}

function routeOf(r: RouteRecord | CliRoute): { reach: string[]; routable: boolean; self: boolean; route: RouteStatus } {
  if ("reachable" in r) {
    return {
      reach: reachabilityNames(r.reachable),
      routable: (r.reachable & REACHABLE_ROUTABLE) !== 0,
      self: (r.reachable & REACHABLE.SELF) !== 0,
      route: {
        reachable: reachabilityNames(r.reachable),
        hops: r.hopCount ?? null,
        interface: r.interfaceName ?? null,
        nextHop: r.nextHop ? sidToHex(r.nextHop) : null,
        priorHop: r.priorHop ? sidToHex(r.priorHop) : null,
      },
    };
  }
  const routable = r.flags.some((f) => f === "broadcast" || f === "unicast" || f === "indirect");
  return {
    reach: r.flags,
    routable,
    self: r.flags.includes("self"),
    route: {
      reachable: r.flags.length ? r.flags : ["unreachable"],
      hops: r.priorHop ? 3 : r.nextHop ? 2 : r.interface ? 1 : null,
      interface: r.interface,
      nextHop: r.nextHop ? sidToHex(r.nextHop) : null,
      priorHop: r.priorHop ? sidToHex(r.priorHop) : null,
    },
  };
}

/** The StatusReport of a servald backend at `nowMs`. */
export function servaldStatusReport(f: ServaldFacts, nowMs: number): StatusReport {
  const ids = f.identities.map(sidToHex);
  const primary = f.identities[0];
  const own = new Set(ids);
  const interfaces = new Set<string>();
  const peers: PeerStatus[] = [];
  for (const r of f.routes) {
    const hex = sidToHex(r.sid);
    const { routable, self, route } = routeOf(r);
    if (self || own.has(hex)) {
      if (route.interface) interfaces.add(route.interface);
      continue;
    }
    peers.push({
      sid: hex,
      localSid: ids[0] ?? "",
      address: null,
      source: "servald",
      live: routable,
      lastSeenMs: null,
      rttMs: null,
      packetsIn: 0,
      packetsOut: 0,
      bytesIn: 0,
      bytesOut: 0,
      route,
    });
  }
  peers.sort((a, b) => Number(b.live) - Number(a.live) || a.sid.localeCompare(b.sid));
  return {
    schema: STATUS_SCHEMA,
    backend: "servald",
    identity: { sid: ids[0] ?? "", base32: primary ? sidToBase32(primary) : "", sids: ids },
    daemon: {
      pid: f.pid ?? 0,
      version: f.version !== undefined ? `servald ${f.version}` : "servald (version unknown)",
      home: f.instance.path,
      startedAt: f.startedAtMs !== null ? new Date(f.startedAtMs).toISOString() : "",
      uptimeMs: f.startedAtMs !== null ? Math.max(0, Math.round(nowMs - f.startedAtMs)) : 0,
      udp: [],
      discovery: [],
    },
    peers,
    ports: [],
    streams: [],
    drops: {},
    servald: {
      instance: f.instance.path,
      instanceSource: f.instance.source,
      via: f.via,
      cli: f.cli,
      interfaces: [...interfaces],
      notes: f.notes,
    },
  };
}
