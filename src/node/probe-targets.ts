/**
 * Where the overlay looks for peers, and how it names the way a peer was found: static
 * addresses, same-host rendezvous entries (loopback) and LAN broadcast targets. Asked at
 * every hello round, since interfaces and rendezvous entries come and go; a failing source
 * is logged and skipped, never fatal.
 */

import { endpointKey, isLoopbackHost } from "./endpoint-key.ts";
import type { NodeLog, RendezvousRegistry, UdpEndpoint } from "./node-io.ts";
import type { PeerSource } from "./peer-session.ts";

/** The discovery part of the overlay's options. */
export interface DiscoveryOptions {
  staticPeers?: UdpEndpoint[] | undefined;
  rendezvous?: RendezvousRegistry | undefined;
  lanTargets?: UdpEndpoint[] | (() => UdpEndpoint[]) | undefined;
}

/** Addresses to probe this round: static peers, LAN targets, then other same-host nodes (not our own `ownPorts`). */
export function probeTargets(o: DiscoveryOptions, ownPorts: ReadonlySet<number>, log: NodeLog): UdpEndpoint[] {
  const lan = o.lanTargets;
  let lanTargets: UdpEndpoint[] = [];
  try {
    lanTargets = typeof lan === "function" ? lan() : (lan ?? []);
  } catch (err) {
    log("warn", `LAN discovery: ${(err as Error).message}`);
  }
  const out: UdpEndpoint[] = [...(o.staticPeers ?? []), ...lanTargets];
  if (o.rendezvous) {
    let entries: { port: number }[] = [];
    try {
      entries = o.rendezvous.list();
    } catch (err) {
      log("warn", `same-host discovery: ${(err as Error).message}`);
    }
    for (const e of entries) if (!ownPorts.has(e.port)) out.push({ host: "127.0.0.1", port: e.port });
  }
  return out;
}

/** How a peer first heard from at `from` was found. */
export function peerSource(from: UdpEndpoint, o: DiscoveryOptions): PeerSource {
  const key = endpointKey(from);
  if ((o.staticPeers ?? []).some((p) => endpointKey(p) === key)) return "static";
  if (isLoopbackHost(from.host) && o.rendezvous) return "local";
  if (o.lanTargets && !isLoopbackHost(from.host)) return "lan";
  return "incoming";
}
