/**
 * A peer session: the state one of our identities keeps about one remote SID over the
 * overlay. It holds the pair's keys (a send key for our boot, receive keys per peer boot),
 * the peer's current boot and the boots it had before (packets from those are replays),
 * the replay window, the address it was last seen at, counters, link quality and MTUs.
 * The overlay decides when a session goes live; this module only makes and derives.
 */

import { concatBytes } from "../bytes/concat.ts";
import { toHex } from "../bytes/hex.ts";
import type { Sid } from "../mesh/sid.ts";
import { bytesKey } from "./bytes-key.ts";
import { isLoopbackHost } from "./endpoint-key.ts";
import type { Identity } from "./keyring.ts";
import { LinkQuality } from "./link-quality.ts";
import type { NodeCrypto, UdpEndpoint } from "./node-io.ts";
import { MAX_MDP_MTU, OVERLAY_MDP_MTU } from "./overlay-packet.ts";
import { ReplayWindow } from "./replay-window.ts";

/** How a peer was first found. */
export type PeerSource = "static" | "local" | "lan" | "incoming";

/** Boots of a peer's earlier runs remembered per session (packets from them are replays). */
export const MAX_RETIRED_BOOTS = 16;
/** Receive keys kept per session (one per peer boot). */
const MAX_RECV_KEYS = 4;
/** Least time between two answers to stale packets, probes or cookies from one place, ms. */
export const RESYNC_MIN_INTERVAL_MS = 500;

const KDF_LABEL = new TextEncoder().encode("svp-overlay-v1");

export interface PeerSession {
  local: Identity;
  remote: Sid;
  remoteHex: string;
  shared: Uint8Array;
  sendKey: Uint8Array;
  recvKeys: Map<string, Uint8Array>;
  /** The peer's current boot, learned from a fresh packet. */
  peerBoot: Uint8Array | undefined;
  /** bytesKey of the boots the peer had before (packets from them are replays). */
  retiredBoots: string[];
  window: ReplayWindow;
  address: UdpEndpoint | undefined;
  source: PeerSource;
  live: boolean;
  lastSeen: number | undefined;
  lastResync: number;
  rttMs: number | undefined;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  quality: LinkQuality;
  /** The largest MDP payload the peer takes on this link (from its hellos). */
  peerMtu: number | undefined;
  /** Our own link MTU for `mtuHost` (see sessionLinkMtu). */
  mtuHost: string | undefined;
  ownMtu: number;
}

/** Key of the session between one of our identities and a peer. */
export function sessionKey(local: Sid, remote: Sid): string {
  return bytesKey(local) + bytesKey(remote);
}

/** A new, not yet live session; `shared` is X25519(local, remote), `boot` ours (the send key is per boot). */
export function newPeerSession(crypto: NodeCrypto, boot: Uint8Array, local: Identity, remote: Sid, shared: Uint8Array, source: PeerSource): PeerSession {
  return {
    local,
    remote: remote.slice(),
    remoteHex: toHex(remote),
    shared,
    sendKey: crypto.hkdf(shared, boot, concatBytes([KDF_LABEL, local.sid, remote]), 32),
    recvKeys: new Map(),
    peerBoot: undefined,
    retiredBoots: [],
    window: new ReplayWindow(4096),
    address: undefined,
    source,
    live: false,
    lastSeen: undefined,
    lastResync: -Infinity,
    rttMs: undefined,
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    quality: new LinkQuality(),
    peerMtu: undefined,
    mtuHost: undefined,
    ownMtu: OVERLAY_MDP_MTU,
  };
}

/** The key the peer seals with in its run `boot` (derived once, a few kept per session). */
export function sessionRecvKey(s: PeerSession, crypto: NodeCrypto, boot: Uint8Array): Uint8Array {
  const bootKey = bytesKey(boot);
  let k = s.recvKeys.get(bootKey);
  if (!k) {
    k = crypto.hkdf(s.shared, boot, concatBytes([KDF_LABEL, s.remote, s.local.sid]), 32);
    if (s.recvKeys.size >= MAX_RECV_KEYS) s.recvKeys.delete(s.recvKeys.keys().next().value!);
    s.recvKeys.set(bootKey, k);
  }
  return k;
}

/** The peer's current boot (if any) becomes a retired one: its packets are replays from now on. */
export function retirePeerBoot(s: PeerSession): void {
  if (!s.peerBoot) return;
  s.retiredBoots.push(bytesKey(s.peerBoot));
  if (s.retiredBoots.length > MAX_RETIRED_BOOTS) s.retiredBoots.shift();
}

/** What this node takes on a link to `host`: loopback links MAX_MDP_MTU, others the configured link MTU (default OVERLAY_MDP_MTU). */
export function ownLinkMtu(host: string | undefined, configured: number | undefined): number {
  return host !== undefined && isLoopbackHost(host) ? MAX_MDP_MTU : Math.min(MAX_MDP_MTU, configured ?? OVERLAY_MDP_MTU);
}

/** What this node takes on the session's link (cached per address host: this runs per datagram). */
export function sessionOwnMtu(s: PeerSession, configured: number | undefined): number {
  const host = s.address?.host;
  if (host !== s.mtuHost) {
    s.mtuHost = host;
    s.ownMtu = ownLinkMtu(host, configured);
  }
  return s.ownMtu;
}

/** Largest MDP payload on the session's link: ours (sessionOwnMtu), capped by the peer's own figure. */
export function sessionLinkMtu(s: PeerSession, configured: number | undefined): number {
  const own = sessionOwnMtu(s, configured);
  return s.peerMtu === undefined ? own : Math.min(own, s.peerMtu);
}
