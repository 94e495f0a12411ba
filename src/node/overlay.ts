/**
 * The overlay: authenticated, encrypted datagrams between SIDs over UDP, with peer
 * discovery (static addresses, same-host rendezvous, optional LAN probes), keep-alive
 * hellos with RTT, expiry of silent peers, replay protection, and drop counters.
 *
 * Session protocol (see overlay-packet.ts for the bytes): a node that knows only an
 * address sends a PROBE carrying its SID and boot. The receiver answers with a sealed
 * HELLO REQUEST addressed to that boot; a sealed packet that carries the receiver's own
 * current boot is "fresh" (made after the receiver started), and only fresh packets
 * establish or refresh a peer and move its address. A fresh HELLO REQUEST is answered by
 * a HELLO REPLY echoing its ping id, which gives the RTT. Authentic but stale packets
 * (from before a restart) are dropped and answered, at a bounded rate, with a HELLO that
 * carries the sender's current boot, so both sides resynchronise within one round trip.
 *
 * Every identity of the keyring takes part (hellos are sent from each), so a peer knows
 * every SID of this node.
 *
 * Multi-hop (see router.ts for the protocol, overlay-packet.ts for the bytes): hellos carry
 * a number, the hello interval, the sender's reception ratio of ours and its link MTU, so
 * each session knows its link's ETX-like cost (link-quality.ts). The router runs over the
 * sealed ROUTE packets between neighbours. A datagram for a node that is not a neighbour
 * (or better reached through another one) is sealed end to end between the two SIDs and
 * carried in FORWARD packets, each hop authenticated by the neighbour key, TTL-limited.
 * The destination checks the end-to-end seal, a replay window per (source SID, source
 * boot) and that the frame names its current boot. A forwarding node can therefore drop,
 * delay or misroute frames, but cannot read, alter, replay or forge them, nor make a frame
 * look as if it came from another SID. MDP broadcasts are flooded (FLOOD packets): each
 * node delivers and relays a broadcast once (origin SID + random id in a bounded cache),
 * with a TTL and a relay rate limit; they are authenticated hop by hop only.
 *
 * A node that stops cleanly says GOODBYE (a sealed hello flag) to every live neighbour,
 * which drops it and its routes at once; a crashed one expires after the peer timeout.
 */

import type { Clock, Timer } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { toHex } from "../bytes/hex.ts";
import { isSidAny, isSidBroadcast, type Sid, sidEquals, sidShort } from "../mesh/sid.ts";
import type { Identity, Keyring } from "./keyring.ts";
import type { NodeCrypto, NodeLog, RendezvousRegistry, UdpEndpoint, UdpSocket } from "./node-io.ts";
import {
  BOOT_BYTES,
  type DropReason,
  DROP_REASONS,
  decodeCookie,
  decodeCookieEcho,
  decodeData,
  decodeFlood,
  decodeHello,
  E2E_OVERHEAD,
  encodeCookie,
  encodeFlood,
  encodeHello,
  encodeProbe,
  type HelloBody,
  HELLO_FLAG,
  MAX_MDP_MTU,
  OVERLAY_MAGIC_0,
  OVERLAY_MAGIC_1,
  OVERLAY_MDP_MTU,
  OVERLAY_VERSION,
  PACKET_TYPE,
  parseDatagram,
  SEALED_HEADER_BYTES,
  type SealedHeader,
} from "./overlay-packet.ts";
import { FloodGuard, type FloodGuardOptions, WORK_COST } from "./flood-guard.ts";
import { bytesKey } from "./bytes-key.ts";
import { LinkQuality } from "./link-quality.ts";
import { MAX_HOPS } from "./impossible-announcement.ts";
import { Router } from "./router.ts";
import { endpointKey } from "./endpoint-key.ts";
import {
  newPeerSession,
  ownLinkMtu,
  type PeerSession,
  type PeerSource,
  RESYNC_MIN_INTERVAL_MS,
  retirePeerBoot,
  sessionLinkMtu,
  sessionOwnMtu,
  sessionRecvKey,
} from "./peer-session.ts";
import { bestOf, MAX_SESSIONS, SessionTable } from "./session-table.ts";
import { SharedKeyCache } from "./shared-key-cache.ts";
import { E2eKeys, e2eKey } from "./e2e-keys.ts";
import { FrameSealer } from "./frame-sealer.ts";
import { PingTracker } from "./ping-tracker.ts";
import { BroadcastRelay } from "./broadcast-relay.ts";
import { CookieJar } from "./cookie-jar.ts";
import { FILTER_SAMPLE_ONE_IN, FILTER_UPDATE_MS, LoadFilter } from "./load-filter.ts";
import { peerSource, probeTargets } from "./probe-targets.ts";
import { DEFAULTS } from "../defaults.ts";

const ZERO_BOOT = new Uint8Array(BOOT_BYTES);

export interface OverlayOptions {
  keyring: Keyring;
  crypto: NodeCrypto;
  clock: Clock;
  log?: NodeLog;
  /** Keep-alive hello and probe period in ms. Default 5000. */
  helloIntervalMs?: number;
  /** A peer silent for this long is expired. Default 3.5 hello intervals. */
  peerTimeoutMs?: number;
  /** Static peer addresses (numeric hosts). */
  staticPeers?: UdpEndpoint[];
  /** Same-host discovery (undefined = off, as with --no-discovery). */
  rendezvous?: RendezvousRegistry;
  /**
   * LAN discovery probe targets (broadcast addresses); only with --lan. A function is asked
   * at every probe round (interfaces come and go).
   */
  lanTargets?: UdpEndpoint[] | (() => UdpEndpoint[]);
  /** Boot value (8 bytes); random by default. Tests pin it. */
  boot?: Uint8Array;
  /** Largest MDP payload on a link that is not loopback. Default OVERLAY_MDP_MTU (1160); loopback links carry MAX_MDP_MTU. */
  linkMtu?: number;
  /** Route table bound (destinations). Default 10,000. */
  maxRoutes?: number;
  /** Period of full routing dumps, ms. Default 4 hello intervals. */
  updateIntervalMs?: number;
  /** Uniform [0, 1) for the jitter of routing dumps (tests pin it). Default Math.random. */
  random?: () => number;
  /** Budgets of the flood guard (defaults in flood-guard.ts). */
  floodGuard?: Omit<FloodGuardOptions, "clock" | "crypto">;
}

export interface PeerInfo {
  sid: Sid;
  /** The local identity this session belongs to. */
  localSid: Sid;
  address: UdpEndpoint | undefined;
  source: PeerSource;
  live: boolean;
  /** Clock time of the last fresh authentic packet (undefined: never). */
  lastSeen: number | undefined;
  rttMs: number | undefined;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** The link's routing cost (256 = perfect; undefined while not live). */
  linkCost: number | undefined;
  /** Largest MDP payload on this link. */
  mtu: number;
}

/** How a reachable SID is reached (status). */
export interface RouteInfo {
  sid: Sid;
  nextHop: Sid;
  hops: number;
  metric: number;
  mtu: number;
}

/** Hops and path MTU of a reachable SID. */
export interface ReachInfo {
  hops: number;
  mtu: number;
}

export type OverlayEvents = {
  "peer-up": (sid: Sid, localSid: Sid) => void;
  "peer-down": (sid: Sid, localSid: Sid) => void;
  /** An authentic MDP datagram for one of our identities. */
  data: (localSid: Sid, dstPort: number, from: Sid, srcPort: number, payload: Uint8Array, broadcast: boolean) => void;
  /** A SID (not ours) became reachable, unreachable (undefined), or its hops or path MTU changed. */
  reach: (sid: Sid, info: ReachInfo | undefined) => void;
};

/** A refused node is probed again with its cookie after this long, ms (> FILTER_UPDATE_MS, so its filter lets us through). */
const COOKIE_PROBE_DELAY_MS = 300;
/** A session whose peer has been silent this long stops being greeted (static and discovered addresses are still probed). */
const FORGET_AFTER_MS = 10 * 60_000;

export class Overlay extends Emitter<OverlayEvents> {
  readonly boot: Uint8Array;
  readonly helloIntervalMs: number;
  readonly peerTimeoutMs: number;
  readonly drops: Record<DropReason, number>;
  #o: OverlayOptions;
  #identities: Identity[];
  #sockets: UdpSocket[] = [];
  #sessions = new SessionTable();
  /** Probe replies sent, by address and SID, for their rate limit. */
  #probeReplies = new Map<string, number>();
  #timer: Timer | undefined;
  #stopped = false;
  #sealer: FrameSealer;
  #pings = new PingTracker();
  #log: NodeLog;
  /** The routing protocol (see router.ts). */
  readonly router: Router;
  /** Number of our periodic hellos: every session's hellos carry it, so each peer sees consecutive numbers. */
  #helloSeq = 0;
  #shared: SharedKeyCache;
  #e2e: E2eKeys;
  #broadcasts = new BroadcastRelay();
  #reach = new Map<string, ReachInfo>();
  #cookies = new CookieJar();
  /** The kernel filter while under load (see #filterTick), and its update timer. */
  #loadFilter = new LoadFilter();
  #filterTimer: Timer | undefined;
  /** Pays for crypto done for senders that are not live peers at their address (flood resistance). */
  readonly guard: FloodGuard;
  /** Frames this node forwarded for others (status, benchmarks). */
  readonly forwarded = { packets: 0, bytes: 0 };

  constructor(options: OverlayOptions) {
    super();
    this.#o = options;
    this.#identities = [...options.keyring.identities];
    this.boot = options.boot ?? options.crypto.randomBytes(BOOT_BYTES);
    this.helloIntervalMs = options.helloIntervalMs ?? DEFAULTS.helloIntervalMs;
    this.peerTimeoutMs = options.peerTimeoutMs ?? Math.round(this.helloIntervalMs * DEFAULTS.peerTimeoutHellos);
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.#log = options.log ?? (() => {});
    this.#sealer = new FrameSealer(options.crypto, this.boot);
    this.#shared = new SharedKeyCache(options.crypto, (k) => this.#sessions.getByKey(k)?.shared);
    this.#e2e = new E2eKeys(options.crypto, this.boot, this.#shared);
    this.guard = new FloodGuard({ clock: options.clock, crypto: options.crypto, ...options.floodGuard });
    this.router = new Router({
      clock: options.clock,
      selfSids: this.#identities.map((i) => i.sid),
      selfBoot: this.boot,
      helloIntervalMs: this.helloIntervalMs,
      ...(options.updateIntervalMs !== undefined ? { updateIntervalMs: options.updateIntervalMs } : {}),
      transmit: (to, packets) => this.#sendRoute(to, packets),
      maxPacketBytes: OVERLAY_MDP_MTU,
      ...(options.maxRoutes !== undefined ? { maxDestinations: options.maxRoutes } : {}),
      ownMtu: MAX_MDP_MTU,
      countDrop: (r) => this.drops[r]++,
      log: (level, m) => this.#log(level, m),
      ...(options.random ? { random: options.random } : {}),
    });
    this.router.on("route", (dest) => this.#updateReach(dest));
  }

  get identities(): readonly Identity[] {
    return this.#identities;
  }

  get sockets(): readonly UdpSocket[] {
    return this.#sockets;
  }

  /** Take datagrams from (and send through) `socket`. The caller routes its messages to `receive`. */
  attachSocket(socket: UdpSocket): void {
    this.#sockets.push(socket);
  }

  /** Start greeting: one round at once, then every hello interval. */
  start(): void {
    this.router.start();
    this.#tick();
  }

  /**
   * Stop: say GOODBYE to every live neighbour (they drop us and our routes at once), then
   * close the sockets (the platform lets queued datagrams go first).
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#filterTimer?.cancel();
    this.#filterTimer = undefined;
    this.router.stop();
    for (const s of this.#sessions.values()) if (s.live && s.address) this.#sendHello(s, HELLO_FLAG.GOODBYE, 0);
    for (const s of this.#sockets) s.close();
    this.#sockets = [];
  }

  /** True while the sockets carry a kernel filter against a flood (see #filterTick). */
  get kernelFilter(): boolean {
    return this.#loadFilter.on;
  }

  countDrop(reason: DropReason): void {
    this.drops[reason]++;
  }

  isLocalSid(sid: Sid): boolean {
    return this.#identities.some((i) => sidEquals(i.sid, sid));
  }

  /** Reachable = one of our own SIDs, a live neighbour, or a SID with a route. */
  reachability(sid: Sid): "reachable" | "unreachable" {
    if (this.isLocalSid(sid)) return "reachable";
    return this.#reach.has(bytesKey(sid)) || this.#liveSession(bytesKey(sid)) || this.router.route(sid) ? "reachable" : "unreachable";
  }

  /** Distinct SIDs of live neighbours and of every node with a route. */
  peers(): Sid[] {
    const seen = new Map<string, Sid>();
    for (const s of this.#sessions.values()) if (s.live) seen.set(s.remoteHex, s.remote);
    for (const r of this.router.routes()) seen.set(toHex(r.dest), r.dest);
    return [...seen.values()];
  }

  /** Hops and path MTU to `sid` (undefined: unreachable or ours). */
  reachInfo(sid: Sid): ReachInfo | undefined {
    return this.#reach.get(bytesKey(sid));
  }

  /** Largest MDP payload that reaches `sid` now: ours, the largest; unknown, OVERLAY_MDP_MTU. */
  pathMtu(sid: Sid): number {
    if (this.isLocalSid(sid)) return MAX_MDP_MTU;
    return this.#reach.get(bytesKey(sid))?.mtu ?? OVERLAY_MDP_MTU;
  }

  /** Every reachable node with its next hop, hops, metric and path MTU. */
  routeInfo(): RouteInfo[] {
    const out = new Map<string, RouteInfo>();
    for (const r of this.router.routes()) out.set(bytesKey(r.dest), { sid: r.dest, nextHop: r.nextHop, hops: r.hops, metric: r.metric, mtu: r.mtu });
    for (const [key, set] of this.#sessions.byRemote()) {
      const s = bestOf(set);
      const r = out.get(key);
      if (s && (!r || r.hops === 1 || sidEquals(r.nextHop, s.remote))) out.set(key, { sid: s.remote, nextHop: s.remote, hops: 1, metric: s.quality.cost, mtu: this.#linkMtu(s) });
    }
    return [...out.values()];
  }

  peerInfo(): PeerInfo[] {
    return [...this.#sessions.values()]
      .filter((s) => s.lastSeen !== undefined)
      .map((s) => ({
        sid: s.remote,
        localSid: s.local.sid,
        address: s.address,
        source: s.source,
        live: s.live,
        lastSeen: s.lastSeen,
        rttMs: s.rttMs,
        packetsIn: s.packetsIn,
        packetsOut: s.packetsOut,
        bytesIn: s.bytesIn,
        bytesOut: s.bytesOut,
        linkCost: s.live ? s.quality.cost : undefined,
        mtu: this.#linkMtu(s),
      }));
  }

  /**
   * Send an MDP datagram from (localSid, srcPort). Broadcast is flooded to the whole mesh
   * (within the TTL). A datagram for one of our own identities is delivered locally; for a
   * live neighbour it goes directly (sealed once), unless the router reaches it better
   * through another node; for a node further away it is sealed end to end and forwarded.
   * Returns false (and counts why) when it could not be sent.
   */
  send(localSid: Sid, srcPort: number, dst: Sid, dstPort: number, payload: Uint8Array): boolean {
    if (payload.length > MAX_MDP_MTU) {
      this.drops["too-big"]++;
      return false;
    }
    const local = this.#identities.find((i) => sidEquals(i.sid, localSid));
    if (!local) return false;
    if (isSidBroadcast(dst)) return this.#originateFlood(local, srcPort, dstPort, payload);
    const target = this.#identities.find((i) => sidEquals(i.sid, dst));
    if (target) {
      const copy = payload.slice();
      queueMicrotask(() => this.emit("data", target.sid, dstPort, local.sid, srcPort, copy, false));
      return true;
    }
    const s = this.#sessions.get(local.sid, dst);
    const route = this.router.route(dst);
    if (s && s.live && (!route || route.hops === 1)) {
      if (payload.length > this.#linkMtu(s)) {
        this.drops["too-big"]++;
        return false;
      }
      this.#sendSealed(s, PACKET_TYPE.DATA, this.#sealer.data({ broadcast: false, srcPort, dstPort, payload }));
      return true;
    }
    const next = route ? this.#liveSession(bytesKey(route.nextHop)) : undefined;
    if (!route || !next) {
      this.drops["no-route"]++;
      return false;
    }
    if (payload.length > Math.min(route.mtu, this.#linkMtu(next))) {
      this.drops["too-big"]++;
      return false;
    }
    this.#originateForward(next, local, dst, route.boot, srcPort, dstPort, payload);
    return true;
  }

  /**
   * Handle one received UDP datagram. Never throws; bad input is counted and dropped.
   * Cheap checks come first; crypto for anything but a live peer at its own address is
   * paid from the flood guard's budget (see flood-guard.ts).
   */
  receive(data: Uint8Array, from: UdpEndpoint): void {
    if (this.#stopped) return;
    let cookie: Uint8Array | undefined;
    if (data.length >= 4 && data[0] === OVERLAY_MAGIC_0 && data[1] === OVERLAY_MAGIC_1 && data[2] === OVERLAY_VERSION) {
      if (data[3] === PACKET_TYPE.COOKIE) return this.#onCookie(data, from);
      if (data[3] === PACKET_TYPE.COOKIE_ECHO) {
        const w = decodeCookieEcho(data);
        if (!w.ok) return void this.drops[w.reason]++;
        cookie = w.cookie;
        data = w.inner;
      }
    }
    const parsed = parseDatagram(data);
    if (!parsed.ok) return void this.drops[parsed.reason]++;
    if (!("aad" in parsed)) {
      // A live peer's LAN probe (sent to a broadcast address every hello interval) is free.
      const known = this.#sessions.get(this.#identities[0]!.sid, parsed.packet.sender);
      const fromPeer = known !== undefined && known.live && known.address?.port === from.port && known.address.host === from.host;
      if (!fromPeer && !this.#earn(WORK_COST.handshake, from, cookie, parsed.packet.senderBoot)) return;
      return this.#onProbe(parsed.packet.sender, parsed.packet.senderBoot, from);
    }
    const h = parsed.packet;
    const local = this.#identities.find((i) => sidEquals(i.sid, h.receiver));
    if (!local) return void this.drops["not-for-us"]++;
    if (!this.#usableSid(h.sender)) return void this.drops["bad-sid"]++;
    if (!Number.isSafeInteger(h.counter) || h.counter < 1) return void this.drops.forged++;
    let s = this.#sessions.get(local.sid, h.sender);
    const trusted = s !== undefined && s.live && s.address !== undefined && s.address.port === from.port && s.address.host === from.host;
    if (trusted && h.type === PACKET_TYPE.FORWARD && parsed.inner!.length >= SEALED_HEADER_BYTES) {
      // The last hop, from a live neighbour's address, of a frame whose source we already
      // hold keys for: the end-to-end seal, the source's replay window and our boot in it
      // are all the checks the frame needs (a forged or replayed one fails them at the cost
      // the hop tag would have had), so the hop tag is not checked: one AEAD operation less
      // per frame. Nothing about the hop's session is learnt from it either. A frame from a
      // new source takes the full path, so only a neighbour's word can cost an X25519.
      const inner = parsed.inner!;
      const me = this.#identities.find((i) => sidEquals(i.sid, inner.subarray(36, 68)));
      if (me) {
        const key = e2eKey(me.sid, inner.subarray(4, 36), inner.subarray(68, 76));
        if (this.#e2e.has(key)) return this.#onInner(me, inner, key);
      }
    }
    if (!trusted && !this.#earn(s || this.#shared.has(local.sid, h.sender) ? WORK_COST.check : WORK_COST.handshake, from, cookie, h.senderBoot)) return;
    const candidate = s ?? this.#newSession(local, h.sender, peerSource(from, this.#o));
    if (!candidate) return void this.drops["bad-sid"]++;
    const currentBoot = candidate.peerBoot !== undefined && sidEquals16(candidate.peerBoot, h.senderBoot);
    if (currentBoot ? !candidate.window.check(h.counter) : candidate.retiredBoots.includes(bytesKey(h.senderBoot))) return void this.drops.replay++;
    const plain = this.#sealer.open(sessionRecvKey(candidate, this.#o.crypto, h.senderBoot), h.counter, parsed.aad, parsed.sealed);
    if (!plain) return void this.drops.forged++;
    if (!s) {
      if (!this.#sessions.admit(candidate)) return;
      s = candidate;
    }
    if (h.type === PACKET_TYPE.FORWARD && plain.length !== 0) return void this.drops.forged++;
    const fresh = sidEquals16(h.receiverBoot, this.boot);
    if (!fresh) {
      // Authentic but made before we started (or before the sender knew our boot).
      if (h.type !== PACKET_TYPE.HELLO) this.drops.stale++;
      this.#resync(s, h, from);
      return;
    }
    let hello: HelloBody | undefined;
    if (h.type === PACKET_TYPE.HELLO) {
      hello = decodeHello(plain);
      if (!hello) {
        s.window.accept(h.counter);
        return void this.drops["bad-payload"]++;
      }
      if (hello.flags & HELLO_FLAG.GOODBYE) {
        s.window.accept(h.counter);
        return this.#goodbye(s);
      }
    }
    let changed = false;
    if (!currentBoot) {
      if (s.peerBoot) {
        // The peer restarted: everything learnt from its previous run goes.
        retirePeerBoot(s);
        s.quality = new LinkQuality();
        this.router.neighbourDown(s.remote);
      }
      s.peerBoot = h.senderBoot.slice();
      s.window.reset();
      changed = true;
    }
    s.window.accept(h.counter);
    s.address = from;
    s.lastSeen = this.#o.clock.now();
    s.packetsIn++;
    s.bytesIn += data.length;
    if (!s.live) {
      s.live = true;
      changed = true;
      this.#log("info", `peer ${sidShort(s.remote)} up at ${endpointKey(from)} (${s.source})`);
      this.emit("peer-up", s.remote, s.local.sid);
    }
    if (hello) {
      this.#onHello(s, hello);
      changed = true;
    }
    if (changed) this.#syncNeighbour(s.remote);
    switch (h.type) {
      case PACKET_TYPE.DATA: {
        const body = decodeData(plain);
        if (!body) return void this.drops["bad-payload"]++;
        this.emit("data", s.local.sid, body.dstPort, s.remote, body.srcPort, body.payload, body.broadcast);
        return;
      }
      case PACKET_TYPE.ROUTE:
        return this.router.receive(s.remote, plain);
      case PACKET_TYPE.FORWARD:
        return this.#onForward(s, parsed.ttl!, parsed.inner!);
      case PACKET_TYPE.FLOOD:
        return this.#onFlood(s, plain);
    }
  }

  /**
   * Pay for unearned work, or refuse it: a refused datagram is counted as "overload" and
   * answered with a cookie (at a bounded rate), which the sender brings back to prove that it
   * receives at its address.
   */
  #earn(cost: number, from: UdpEndpoint, cookie: Uint8Array | undefined, senderBoot: Uint8Array): boolean {
    if (this.guard.admit(cost, from, cookie)) return true;
    this.drops.overload++;
    const now = this.#o.clock.now();
    const reply = this.guard.cookieReply(from);
    if (reply) {
      this.#transmit(encodeCookie(senderBoot, reply), from);
      this.#loadFilter.cookieSent(from, now);
    }
    // An address that keeps being refused is left to the kernel filter to drop.
    this.#loadFilter.refused(from, now);
    if (!this.#filterTimer) this.#filterTick();
    return false;
  }

  /** While under load, keep the sockets' kernel filter in step with load-filter.ts, every FILTER_UPDATE_MS; stop once it says idle. */
  #filterTick(): void {
    this.#filterTimer = undefined;
    if (this.#stopped) return;
    const step = this.#loadFilter.update(this.#o.clock.now(), this.guard.underLoad, () => {
      const allow: UdpEndpoint[] = [];
      for (const s of this.#sessions.values()) if (s.live && s.address) allow.push(s.address);
      return allow;
    });
    if (step.kind === "idle") {
      if (step.remove) {
        for (const sock of this.#sockets) sock.setFilter?.(undefined);
        this.#log("info", "flood over: kernel filter removed");
      }
      return;
    }
    const spec = step.apply;
    if (spec) {
      let applied = false;
      for (const sock of this.#sockets) applied = sock.setFilter?.(spec) === true || applied;
      if (step.first) this.#log(applied ? "warn" : "info", applied ? `under a flood: kernel filter on (${spec.allow.length} addresses pass, ${spec.deny.length} refused, 1 in ${FILTER_SAMPLE_ONE_IN} of the rest)` : "under a flood: no kernel filter on this platform; refusing in the node");
    }
    this.#filterTimer = this.#o.clock.setTimeout(() => this.#filterTick(), FILTER_UPDATE_MS);
  }

  /** A node under load refused one of our datagrams: keep its cookie for that address, and probe again with it at once. */
  #onCookie(data: Uint8Array, from: UdpEndpoint): void {
    const c = decodeCookie(data);
    if (!c) return void this.drops.truncated++;
    // Only an answer to something we sent counts (the echo is our boot): a stray cookie is ignored.
    if (!sidEquals16(c.echoBoot, this.boot)) return void this.drops.forged++;
    // At most one probe per address per resync interval, so a peer that keeps refusing cannot make a loop of us.
    if (!this.#cookies.store(from, c.cookie, this.#o.clock.now())) return;
    // Probe again with the cookie, a little later: a node under load lets the address we were
    // refused at through its kernel filter at its next filter update (FILTER_UPDATE_MS).
    this.#o.clock.setTimeout(() => {
      if (this.#stopped) return;
      for (const id of this.#identities) this.#transmit(encodeProbe(id.sid, this.boot), from, true);
    }, COOKIE_PROBE_DELAY_MS);
  }

  #onHello(s: PeerSession, hello: HelloBody): void {
    const now = this.#o.clock.now();
    s.quality.onHello(hello.seq, hello.intervalMs, hello.ihu, now);
    s.peerMtu = hello.mtu >= 256 ? hello.mtu : undefined;
    const rtt = hello.flags & HELLO_FLAG.REPLY ? this.#pings.answer(hello.echo, s.remoteHex, now) : undefined;
    if (rtt !== undefined) {
      s.rttMs = rtt;
      s.quality.onRtt(s.rttMs);
    }
    // Ask back while we have no RTT of our own yet, so both sides measure one from the first exchange.
    // (Only on a plain request: a reply is never answered with a request, so exchanges end.)
    if (hello.flags & HELLO_FLAG.REQUEST) this.#sendHello(s, HELLO_FLAG.REPLY | (s.rttMs === undefined && !(hello.flags & HELLO_FLAG.REPLY) ? HELLO_FLAG.REQUEST : 0), hello.ping);
  }

  /** The peer stopped cleanly: it is gone now, and so is anything it sent from this boot. */
  #goodbye(s: PeerSession): void {
    retirePeerBoot(s);
    s.peerBoot = undefined;
    s.window.reset();
    s.quality = new LinkQuality();
    if (!s.live) return;
    s.live = false;
    this.#log("info", `peer ${sidShort(s.remote)} said goodbye`);
    this.emit("peer-down", s.remote, s.local.sid);
    this.#syncNeighbour(s.remote);
  }

  /** Tell the router how the best live session to `remote` is (or that there is none), and update reachability. */
  #syncNeighbour(remote: Sid): void {
    const best = this.#sessions.live(bytesKey(remote));
    if (!best) this.router.neighbourDown(remote);
    else if (this.router.isNeighbour(remote)) this.router.neighbourChanged(remote, best.quality.cost, this.#linkMtu(best));
    else this.router.neighbourUp(remote, best.quality.cost, this.#linkMtu(best));
    this.#updateReach(remote);
  }

  #liveSession(remoteKey: string): PeerSession | undefined {
    return this.#sessions.live(remoteKey);
  }

  /** Largest MDP payload on this session's link (see peer-session.ts). */
  #linkMtu(s: PeerSession): number {
    return sessionLinkMtu(s, this.#o.linkMtu);
  }

  #updateReach(sid: Sid): void {
    if (this.isLocalSid(sid)) return;
    const key = bytesKey(sid);
    const direct = this.#liveSession(key);
    const route = this.router.route(sid);
    const info: ReachInfo | undefined = direct && (!route || route.hops === 1) ? { hops: 1, mtu: this.#linkMtu(direct) } : route ? { hops: route.hops, mtu: route.mtu } : undefined;
    const old = this.#reach.get(key);
    if (!info && !old) return;
    if (info && old && info.hops === old.hops && info.mtu === old.mtu) return;
    if (info) this.#reach.set(key, info);
    else this.#reach.delete(key);
    this.emit("reach", sid, info);
  }

  #sendRoute(to: Sid, packets: Uint8Array[]): void {
    const s = this.#liveSession(bytesKey(to));
    if (!s) return;
    for (const p of packets) this.#sendSealed(s, PACKET_TYPE.ROUTE, p);
  }

  /** An inner frame addressed to our identity `local`: only data travels end to end (routing is between neighbours). */
  #onInner(local: Identity, inner: Uint8Array, key: string): void {
    const p = parseDatagram(inner);
    if (!p.ok || !("aad" in p)) return void this.drops["bad-payload"]++;
    const h = p.packet;
    if (h.type !== PACKET_TYPE.DATA) return void this.drops[h.type === PACKET_TYPE.ROUTE ? "route-not-neighbour" : "bad-payload"]++;
    this.#deliverE2e(local, h, p.aad, p.sealed, key);
  }

  /** A FORWARD from neighbour `s` (its hop tag checked) for another node: pass it on. */
  #onForward(s: PeerSession, ttl: number, inner: Uint8Array): void {
    const p = parseDatagram(inner);
    if (!p.ok || !("aad" in p)) return void this.drops["bad-payload"]++;
    const h = p.packet;
    // Only data travels end to end: routing is between neighbours.
    if (h.type !== PACKET_TYPE.DATA) return void this.drops[h.type === PACKET_TYPE.ROUTE ? "route-not-neighbour" : "bad-payload"]++;
    const local = this.#identities.find((i) => sidEquals(i.sid, h.receiver));
    if (local) return this.#deliverE2e(local, h, p.aad, p.sealed);
    if (isSidAny(h.receiver) || isSidBroadcast(h.receiver) || isSidAny(h.sender) || isSidBroadcast(h.sender)) return void this.drops["bad-sid"]++;
    if (ttl <= 1) return void this.drops["ttl-expired"]++;
    const route = this.router.route(h.receiver);
    const next = route ? this.#liveSession(bytesKey(route.nextHop)) : this.#liveSession(bytesKey(h.receiver));
    if (!next) return void this.drops["no-route"]++;
    if (inner.length - E2E_OVERHEAD > this.#linkMtu(next)) return void this.drops["too-big"]++;
    this.forwarded.packets++;
    this.forwarded.bytes += inner.length;
    this.#sendForward(next, ttl - 1, this.#sealer.forwardOf(inner));
    void s;
  }

  /** Seal an end-to-end frame from `local` to `dst` straight into a FORWARD datagram for `next`. */
  #originateForward(next: PeerSession, local: Identity, dst: Sid, dstBoot: Uint8Array, srcPort: number, dstPort: number, payload: Uint8Array): void {
    const key = this.#e2e.sendKey(local, dst);
    if (!key) return void this.drops["bad-sid"]++;
    this.#sendForward(next, MAX_HOPS, this.#sealer.e2eForward(local, dst, dstBoot, key, { broadcast: false, srcPort, dstPort, payload }));
  }

  /** Fill in the hop layer of a FORWARD whose inner frame is in place, and send it to `s`. */
  #sendForward(s: PeerSession, ttl: number, datagram: Uint8Array): void {
    this.#sealer.hop(s, ttl, datagram);
    if (s.address && this.#transmit(datagram, s.address)) {
      s.packetsOut++;
      s.bytesOut += datagram.length;
    }
  }

  /** An end-to-end frame for one of our identities: check boot, replay window and seal, then deliver. */
  #deliverE2e(local: Identity, h: SealedHeader, aad: Uint8Array, sealed: Uint8Array, key?: string): void {
    if (!this.#usableSid(h.sender)) return void this.drops["bad-sid"]++;
    if (!Number.isSafeInteger(h.counter) || h.counter < 1) return void this.drops.forged++;
    if (!sidEquals16(h.receiverBoot, this.boot)) return void this.drops.stale++;
    const k = key ?? e2eKey(local.sid, h.sender, h.senderBoot);
    let st = this.#e2e.get(k);
    let created = false;
    if (!st) {
      st = this.#e2e.create(local, h.sender, h.senderBoot, k);
      if (!st) return void this.drops["bad-sid"]++;
      created = true;
    }
    if (!st.window.check(h.counter)) return void this.drops.replay++;
    const plain = this.#sealer.open(st.key, h.counter, aad, sealed);
    if (!plain) return void this.drops.forged++;
    // Only authentic frames create state.
    if (created) this.#e2e.store(k, st);
    st.window.accept(h.counter);
    st.usedAt = this.#o.clock.now();
    const body = decodeData(plain);
    if (!body) return void this.drops["bad-payload"]++;
    this.emit("data", local.sid, body.dstPort, h.sender, body.srcPort, body.payload, false);
  }

  /** Our own MDP broadcast: flooded to every live neighbour with a fresh id. */
  #originateFlood(local: Identity, srcPort: number, dstPort: number, payload: Uint8Array): boolean {
    const id = this.#o.crypto.randomBytes(8);
    this.#broadcasts.firstSight(local.sid, id);
    this.#relayFlood(encodeFlood({ origin: local.sid, id, ttl: MAX_HOPS, srcPort, dstPort, payload }), payload.length, undefined, undefined);
    return true;
  }

  #onFlood(s: PeerSession, plain: Uint8Array): void {
    const b = decodeFlood(plain);
    if (!b) return void this.drops["bad-payload"]++;
    if (this.isLocalSid(b.origin)) return; // our own, come back round
    if (isSidAny(b.origin) || isSidBroadcast(b.origin)) return void this.drops["bad-sid"]++;
    if (!this.#broadcasts.firstSight(b.origin, b.id)) return; // a duplicate: normal in a mesh, not counted
    for (const id of this.#identities) this.emit("data", id.sid, b.dstPort, b.origin, b.srcPort, b.payload, true);
    if (b.ttl <= 1) return void this.drops["ttl-expired"]++;
    if (!this.#broadcasts.takeToken(this.#o.clock.now())) return void this.drops["flood-limit"]++;
    const relay = plain.slice();
    relay[32 + 8] = b.ttl - 1;
    this.#relayFlood(relay, b.payload.length, s.remote, b.origin);
  }

  /** Send a FLOOD plaintext to every live neighbour but `except` and the origin. */
  #relayFlood(plain: Uint8Array, payloadLength: number, except: Sid | undefined, origin: Sid | undefined): void {
    let tooBig = false;
    for (const [, set] of this.#sessions.byRemote()) {
      const s = bestOf(set);
      if (!s || (except && sidEquals(s.remote, except)) || (origin && sidEquals(s.remote, origin))) continue;
      if (payloadLength > this.#linkMtu(s)) {
        tooBig = true;
        continue;
      }
      this.#sendSealed(s, PACKET_TYPE.FLOOD, plain);
    }
    if (tooBig) this.drops["too-big"]++;
  }

  #usableSid(sid: Sid): boolean {
    return !isSidAny(sid) && !isSidBroadcast(sid) && !this.isLocalSid(sid);
  }

  #onProbe(sender: Sid, senderBoot: Uint8Array, from: UdpEndpoint): void {
    // Our own LAN broadcast probe, heard back: not an attack, nothing to count.
    if (this.isLocalSid(sender) && sidEquals16(senderBoot, this.boot)) return;
    if (!this.#usableSid(sender)) return void this.drops["bad-sid"]++;
    if (sidEquals16(senderBoot, ZERO_BOOT)) return void this.drops["bad-payload"]++;
    const now = this.#o.clock.now();
    const rk = endpointKey(from) + "/" + toHex(sender);
    const last = this.#probeReplies.get(rk);
    if (last !== undefined && now - last < RESYNC_MIN_INTERVAL_MS) return;
    if (this.#probeReplies.size >= MAX_SESSIONS) return;
    this.#probeReplies.set(rk, now);
    for (const local of this.#identities) {
      // An unauthenticated probe must not create state: use a throwaway session unless one exists.
      const s = this.#sessions.get(local.sid, sender) ?? this.#newSession(local, sender, peerSource(from, this.#o));
      if (!s) return void this.drops["bad-sid"]++;
      this.#sendSealed(s, PACKET_TYPE.HELLO, this.#helloBody(s, HELLO_FLAG.REQUEST, this.#nextPing(s), 0, from), from, senderBoot);
    }
  }

  /** Answer an authentic but stale packet with a hello carrying the sender's current boot. */
  #resync(s: PeerSession, h: SealedHeader, from: UdpEndpoint): void {
    const now = this.#o.clock.now();
    if (now - s.lastResync < RESYNC_MIN_INTERVAL_MS) return;
    s.lastResync = now;
    this.#sendSealed(s, PACKET_TYPE.HELLO, this.#helloBody(s, HELLO_FLAG.REQUEST, this.#nextPing(s), 0, from), from, h.senderBoot);
  }

  #nextPing(s: PeerSession): number {
    return this.#pings.next(s.remoteHex, this.#o.clock.now());
  }

  #sendHello(s: PeerSession, flags: number, echo: number): void {
    const ping = flags & HELLO_FLAG.REQUEST ? this.#nextPing(s) : 0;
    this.#sendSealed(s, PACKET_TYPE.HELLO, this.#helloBody(s, flags, ping, echo));
  }

  #helloBody(s: PeerSession, flags: number, ping: number, echo: number, to?: UdpEndpoint): Uint8Array {
    // A probe reply goes to the prober's address (the session may have none yet).
    const own = to ? ownLinkMtu(to.host, this.#o.linkMtu) : sessionOwnMtu(s, this.#o.linkMtu);
    return encodeHello({ flags, ping, echo, seq: this.#helloSeq, intervalMs: this.helloIntervalMs, ihu: s.quality.ihu, mtu: own });
  }

  #sendSealed(s: PeerSession, type: SealedHeader["type"], plain: Uint8Array, to?: UdpEndpoint, receiverBoot?: Uint8Array): void {
    const dest = to ?? s.address;
    if (!dest) return;
    const datagram = this.#sealer.sealed(s, type, plain, receiverBoot);
    if (this.#transmit(datagram, dest, type === PACKET_TYPE.HELLO)) {
      s.packetsOut++;
      s.bytesOut += datagram.length;
    }
  }

  /**
   * Send a datagram. `handshake` (probes and hellos): when we hold a cookie from `to`, it
   * goes in front, so that a node under load still answers.
   */
  #transmit(datagram: Uint8Array, to: UdpEndpoint, handshake = false): boolean {
    const v6 = to.host.includes(":");
    const sock = this.#sockets.find((x) => (x.family === "IPv6") === v6);
    if (!sock) return false;
    if (handshake && this.#cookies.size > 0) datagram = this.#cookies.wrap(datagram, to, this.#o.clock.now());
    sock.send(datagram, to);
    return true;
  }

  #newSession(local: Identity, remote: Sid, source: PeerSource): PeerSession | undefined {
    const shared = this.#shared.get(local, remote);
    return shared ? newPeerSession(this.#o.crypto, this.boot, local, remote, shared, source) : undefined;
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    this.#helloSeq = (this.#helloSeq + 1) & 0xffff;
    const changed = new Map<string, Sid>();
    for (const [key, s] of this.#sessions.entries()) {
      if (s.live && s.lastSeen !== undefined && now - s.lastSeen > this.peerTimeoutMs) {
        s.live = false;
        this.#log("info", `peer ${sidShort(s.remote)} expired (silent for ${Math.round((now - s.lastSeen) / 1000)} s)`);
        this.emit("peer-down", s.remote, s.local.sid);
        changed.set(s.remoteHex, s.remote);
      }
      if (s.live) {
        s.quality.tick(now);
        changed.set(s.remoteHex, s.remote);
      }
      if (!s.live && s.lastSeen !== undefined && now - s.lastSeen > FORGET_AFTER_MS) s.address = undefined;
      if (s.lastSeen === undefined && !s.live) this.#sessions.forget(key, s);
      else if (s.address) this.#sendHello(s, HELLO_FLAG.REQUEST, 0);
    }
    // Link costs may have moved (silence counts as loss); expired peers take their routes with them.
    for (const sid of changed.values()) this.#syncNeighbour(sid);
    for (const [k, t] of this.#probeReplies) if (now - t >= RESYNC_MIN_INTERVAL_MS) this.#probeReplies.delete(k);
    const liveAt = new Set<string>();
    for (const s of this.#sessions.values()) if (s.live && s.address) liveAt.add(endpointKey(s.address));
    for (const target of probeTargets(this.#o, new Set(this.#sockets.map((s) => s.local.port)), this.#log)) {
      if (liveAt.has(endpointKey(target))) continue;
      for (const id of this.#identities) this.#transmit(encodeProbe(id.sid, this.boot), target, true);
    }
    this.#timer = this.#o.clock.setTimeout(() => this.#tick(), this.helloIntervalMs);
  }

}

function sidEquals16(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
