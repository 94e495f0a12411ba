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
 * Direct peers only: no forwarding. Every identity of the keyring takes part (hellos are
 * sent from each), so a peer knows every SID of this node.
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
  decodeData,
  decodeHello,
  encodeData,
  encodeHello,
  encodeProbe,
  encodeSealedHeader,
  HELLO_FLAG,
  nonceFor,
  OVERLAY_MDP_MTU,
  PACKET_TYPE,
  parseDatagram,
  SEALED_HEADER_BYTES,
  TAG_BYTES,
  DATA_PLAIN_HEADER_BYTES,
  NONCE_BYTES,
  type SealedHeader,
} from "./overlay-packet.ts";
import { ReplayWindow } from "./replay-window.ts";
import { bytesKey } from "./bytes-key.ts";

const KDF_LABEL = new TextEncoder().encode("svp-overlay-v1");
const ZERO_BOOT = new Uint8Array(BOOT_BYTES);

/** How a peer was first found. */
export type PeerSource = "static" | "local" | "lan" | "incoming";

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
  /** LAN discovery probe targets (broadcast/multicast addresses); only with --lan. */
  lanTargets?: UdpEndpoint[];
  /** Boot value (8 bytes); random by default. Tests pin it. */
  boot?: Uint8Array;
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
}

export type OverlayEvents = {
  "peer-up": (sid: Sid, localSid: Sid) => void;
  "peer-down": (sid: Sid, localSid: Sid) => void;
  /** An authentic MDP datagram for one of our identities. */
  data: (localSid: Sid, dstPort: number, from: Sid, srcPort: number, payload: Uint8Array, broadcast: boolean) => void;
};

interface Session {
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
}

const MAX_SESSIONS = 4096;
const MAX_RETIRED_BOOTS = 16;
const MAX_PINGS = 1024;
const RESYNC_MIN_INTERVAL_MS = 500;
/** A session whose peer has been silent this long stops being greeted (static and discovered addresses are still probed). */
const FORGET_AFTER_MS = 10 * 60_000;

export function endpointKey(e: UdpEndpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export class Overlay extends Emitter<OverlayEvents> {
  readonly boot: Uint8Array;
  readonly helloIntervalMs: number;
  readonly peerTimeoutMs: number;
  readonly drops: Record<DropReason, number>;
  #o: OverlayOptions;
  #identities: Identity[];
  #sockets: UdpSocket[] = [];
  #sessions = new Map<string, Session>();
  #probeReplies = new Map<string, number>();
  #timer: Timer | undefined;
  #stopped = false;
  #pingSeq = 0;
  /** Scratch for the DATA plaintext and the nonce: both are consumed by the AEAD at once. */
  #plain = new Uint8Array(DATA_PLAIN_HEADER_BYTES + OVERLAY_MDP_MTU);
  #nonce = new Uint8Array(NONCE_BYTES);
  /**
   * One packet counter for everything this boot sends. Keys are per (pair, boot), so a
   * node-wide counter can never repeat a nonce under a key, however sessions come and go
   * (throwaway sessions for probe replies, evictions).
   */
  #txCounter = 0;
  /** Outstanding pings by id (node-wide, so pings sent from throwaway probe-reply sessions count too). */
  #pings = new Map<number, { at: number; remoteHex: string }>();
  #log: NodeLog;

  constructor(options: OverlayOptions) {
    super();
    this.#o = options;
    this.#identities = [...options.keyring.identities];
    this.boot = options.boot ?? options.crypto.randomBytes(BOOT_BYTES);
    this.helloIntervalMs = options.helloIntervalMs ?? 5000;
    this.peerTimeoutMs = options.peerTimeoutMs ?? Math.round(this.helloIntervalMs * 3.5);
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
    this.#log = options.log ?? (() => {});
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
    this.#tick();
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    for (const s of this.#sockets) s.close();
    this.#sockets = [];
  }

  countDrop(reason: DropReason): void {
    this.drops[reason]++;
  }

  isLocalSid(sid: Sid): boolean {
    return this.#identities.some((i) => sidEquals(i.sid, sid));
  }

  /** Reachable = a live session from any of our identities, or one of our own SIDs. */
  reachability(sid: Sid): "reachable" | "unreachable" {
    if (this.isLocalSid(sid)) return "reachable";
    for (const s of this.#sessions.values()) if (s.live && sidEquals(s.remote, sid)) return "reachable";
    return "unreachable";
  }

  /** Distinct SIDs of live peers. */
  peers(): Sid[] {
    const seen = new Map<string, Sid>();
    for (const s of this.#sessions.values()) if (s.live) seen.set(s.remoteHex, s.remote);
    return [...seen.values()];
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
      }));
  }

  /**
   * Send an MDP datagram from (localSid, srcPort). Broadcast goes to every live peer as
   * individual sealed packets. A datagram for one of our own identities is delivered
   * locally. Returns false (and counts why) when it could not be sent.
   */
  send(localSid: Sid, srcPort: number, dst: Sid, dstPort: number, payload: Uint8Array): boolean {
    if (payload.length > OVERLAY_MDP_MTU) return false;
    const local = this.#identities.find((i) => sidEquals(i.sid, localSid));
    if (!local) return false;
    if (isSidBroadcast(dst)) {
      const plain = encodeData({ broadcast: true, srcPort, dstPort, payload }, this.#plain);
      for (const s of this.#sessions.values()) if (s.live && s.local === local) this.#sendSealed(s, PACKET_TYPE.DATA, plain);
      return true;
    }
    const target = this.#identities.find((i) => sidEquals(i.sid, dst));
    if (target) {
      const copy = payload.slice();
      queueMicrotask(() => this.emit("data", target.sid, dstPort, local.sid, srcPort, copy, false));
      return true;
    }
    const s = this.#sessions.get(sessionKey(local.sid, dst));
    if (!s || !s.live) {
      this.drops["no-route"]++;
      return false;
    }
    this.#sendSealed(s, PACKET_TYPE.DATA, encodeData({ broadcast: false, srcPort, dstPort, payload }, this.#plain));
    return true;
  }

  /** Handle one received UDP datagram. Never throws; bad input is counted and dropped. */
  receive(data: Uint8Array, from: UdpEndpoint): void {
    if (this.#stopped) return;
    const parsed = parseDatagram(data);
    if (!parsed.ok) return void this.drops[parsed.reason]++;
    if (!("aad" in parsed)) return this.#onProbe(parsed.packet.sender, parsed.packet.senderBoot, from);
    const h = parsed.packet;
    const local = this.#identities.find((i) => sidEquals(i.sid, h.receiver));
    if (!local) return void this.drops["not-for-us"]++;
    if (!this.#usableSid(h.sender)) return void this.drops["bad-sid"]++;
    if (!Number.isSafeInteger(h.counter) || h.counter < 1) return void this.drops.forged++;
    let s = this.#sessions.get(sessionKey(local.sid, h.sender));
    const candidate = s ?? this.#newSession(local, h.sender, this.#sourceOf(from));
    if (!candidate) return void this.drops["bad-sid"]++;
    const currentBoot = candidate.peerBoot !== undefined && sidEquals16(candidate.peerBoot, h.senderBoot);
    if (currentBoot ? !candidate.window.check(h.counter) : candidate.retiredBoots.includes(bytesKey(h.senderBoot))) return void this.drops.replay++;
    const plain = this.#o.crypto.open(this.#recvKey(candidate, h.senderBoot), nonceFor(h.counter, this.#nonce), parsed.aad, parsed.sealed);
    if (!plain) return void this.drops.forged++;
    if (!s) {
      if (!this.#admit(candidate)) return;
      s = candidate;
    }
    const fresh = sidEquals16(h.receiverBoot, this.boot);
    if (!fresh) {
      // Authentic but made before we started (or before the sender knew our boot).
      if (h.type === PACKET_TYPE.DATA) this.drops.stale++;
      this.#resync(s, h, from);
      return;
    }
    if (!currentBoot) {
      if (s.peerBoot) {
        s.retiredBoots.push(bytesKey(s.peerBoot));
        if (s.retiredBoots.length > MAX_RETIRED_BOOTS) s.retiredBoots.shift();
      }
      s.peerBoot = h.senderBoot.slice();
      s.window.reset();
    }
    s.window.accept(h.counter);
    s.address = from;
    s.lastSeen = this.#o.clock.now();
    s.packetsIn++;
    s.bytesIn += data.length;
    if (!s.live) {
      s.live = true;
      this.#log("info", `peer ${sidShort(s.remote)} up at ${endpointKey(from)} (${s.source})`);
      this.emit("peer-up", s.remote, s.local.sid);
    }
    if (h.type === PACKET_TYPE.HELLO) {
      const hello = decodeHello(plain);
      if (!hello) return void this.drops["bad-payload"]++;
      const ping = hello.flags & HELLO_FLAG.REPLY && hello.echo !== 0 ? this.#pings.get(hello.echo) : undefined;
      if (ping && ping.remoteHex === s.remoteHex) {
        s.rttMs = this.#o.clock.now() - ping.at;
        this.#pings.delete(hello.echo);
      }
      // Ask back while we have no RTT of our own yet, so both sides measure one from the first exchange.
      // (Only on a plain request: a reply is never answered with a request, so exchanges end.)
      if (hello.flags & HELLO_FLAG.REQUEST) this.#sendHello(s, HELLO_FLAG.REPLY | (s.rttMs === undefined && !(hello.flags & HELLO_FLAG.REPLY) ? HELLO_FLAG.REQUEST : 0), hello.ping);
      return;
    }
    const body = decodeData(plain);
    if (!body) return void this.drops["bad-payload"]++;
    this.emit("data", s.local.sid, body.dstPort, s.remote, body.srcPort, body.payload, body.broadcast);
  }

  #usableSid(sid: Sid): boolean {
    return !isSidAny(sid) && !isSidBroadcast(sid) && !this.isLocalSid(sid);
  }

  #onProbe(sender: Sid, senderBoot: Uint8Array, from: UdpEndpoint): void {
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
      const s = this.#sessions.get(sessionKey(local.sid, sender)) ?? this.#newSession(local, sender, this.#sourceOf(from));
      if (!s) return void this.drops["bad-sid"]++;
      this.#sendSealed(s, PACKET_TYPE.HELLO, encodeHello({ flags: HELLO_FLAG.REQUEST, ping: this.#nextPing(s), echo: 0 }), from, senderBoot);
    }
  }

  /** Answer an authentic but stale packet with a hello carrying the sender's current boot. */
  #resync(s: Session, h: SealedHeader, from: UdpEndpoint): void {
    const now = this.#o.clock.now();
    if (now - s.lastResync < RESYNC_MIN_INTERVAL_MS) return;
    s.lastResync = now;
    this.#sendSealed(s, PACKET_TYPE.HELLO, encodeHello({ flags: HELLO_FLAG.REQUEST, ping: this.#nextPing(s), echo: 0 }), from, h.senderBoot);
  }

  #nextPing(s: Session): number {
    this.#pingSeq = (this.#pingSeq % 0xffff_ffff) + 1;
    this.#pings.set(this.#pingSeq, { at: this.#o.clock.now(), remoteHex: s.remoteHex });
    if (this.#pings.size > MAX_PINGS) this.#pings.delete(this.#pings.keys().next().value!);
    return this.#pingSeq;
  }

  #sendHello(s: Session, flags: number, echo: number): void {
    const ping = flags & HELLO_FLAG.REQUEST ? this.#nextPing(s) : 0;
    this.#sendSealed(s, PACKET_TYPE.HELLO, encodeHello({ flags, ping, echo }));
  }

  #sendSealed(s: Session, type: SealedHeader["type"], plain: Uint8Array, to?: UdpEndpoint, receiverBoot?: Uint8Array): void {
    const dest = to ?? s.address;
    if (!dest) return;
    const counter = ++this.#txCounter;
    // One allocation per datagram: header and sealed body are written into it in place.
    const datagram = new Uint8Array(SEALED_HEADER_BYTES + plain.length + TAG_BYTES);
    const header = encodeSealedHeader({ type, sender: s.local.sid, receiver: s.remote, senderBoot: this.boot, receiverBoot: receiverBoot ?? s.peerBoot ?? ZERO_BOOT, counter }, datagram);
    this.#o.crypto.seal(s.sendKey, nonceFor(counter, this.#nonce), header, plain, datagram.subarray(SEALED_HEADER_BYTES));
    if (this.#transmit(datagram, dest)) {
      s.packetsOut++;
      s.bytesOut += datagram.length;
    }
  }

  #transmit(datagram: Uint8Array, to: UdpEndpoint): boolean {
    const v6 = to.host.includes(":");
    const sock = this.#sockets.find((x) => (x.family === "IPv6") === v6);
    if (!sock) return false;
    sock.send(datagram, to);
    return true;
  }

  #newSession(local: Identity, remote: Sid, source: PeerSource): Session | undefined {
    const shared = this.#o.crypto.x25519(local.secret, remote);
    if (!shared) return undefined;
    const sendKey = this.#o.crypto.hkdf(shared, this.boot, concat3(KDF_LABEL, local.sid, remote), 32);
    return {
      local,
      remote: remote.slice(),
      remoteHex: toHex(remote),
      shared,
      sendKey,
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
    };
  }

  /** Store an authenticated new session, evicting the longest-silent dead one when full. */
  #admit(s: Session): boolean {
    if (this.#sessions.size >= MAX_SESSIONS) {
      let victim: [string, Session] | undefined;
      for (const e of this.#sessions) if (!e[1].live && (!victim || (e[1].lastSeen ?? 0) < (victim[1].lastSeen ?? 0))) victim = e;
      if (!victim) return false;
      this.#sessions.delete(victim[0]);
    }
    this.#sessions.set(sessionKey(s.local.sid, s.remote), s);
    return true;
  }

  #recvKey(s: Session, boot: Uint8Array): Uint8Array {
    const bootKey = bytesKey(boot);
    let k = s.recvKeys.get(bootKey);
    if (!k) {
      k = this.#o.crypto.hkdf(s.shared, boot, concat3(KDF_LABEL, s.remote, s.local.sid), 32);
      if (s.recvKeys.size >= 4) s.recvKeys.delete(s.recvKeys.keys().next().value!);
      s.recvKeys.set(bootKey, k);
    }
    return k;
  }

  #sourceOf(from: UdpEndpoint): PeerSource {
    const key = endpointKey(from);
    if ((this.#o.staticPeers ?? []).some((p) => endpointKey(p) === key)) return "static";
    if (isLoopbackHost(from.host) && this.#o.rendezvous) return "local";
    if (this.#o.lanTargets?.length && !isLoopbackHost(from.host)) return "lan";
    return "incoming";
  }

  #tick(): void {
    if (this.#stopped) return;
    const now = this.#o.clock.now();
    for (const [key, s] of this.#sessions) {
      if (s.live && s.lastSeen !== undefined && now - s.lastSeen > this.peerTimeoutMs) {
        s.live = false;
        this.#log("info", `peer ${sidShort(s.remote)} expired (silent for ${Math.round((now - s.lastSeen) / 1000)} s)`);
        this.emit("peer-down", s.remote, s.local.sid);
      }
      if (!s.live && s.lastSeen !== undefined && now - s.lastSeen > FORGET_AFTER_MS) s.address = undefined;
      if (s.lastSeen === undefined && !s.live) this.#sessions.delete(key);
      else if (s.address) this.#sendHello(s, HELLO_FLAG.REQUEST, 0);
    }
    for (const [k, t] of this.#probeReplies) if (now - t >= RESYNC_MIN_INTERVAL_MS) this.#probeReplies.delete(k);
    const liveAt = new Set<string>();
    for (const s of this.#sessions.values()) if (s.live && s.address) liveAt.add(endpointKey(s.address));
    for (const target of this.#probeTargets()) {
      if (liveAt.has(endpointKey(target))) continue;
      for (const id of this.#identities) this.#transmit(encodeProbe(id.sid, this.boot), target);
    }
    this.#timer = this.#o.clock.setTimeout(() => this.#tick(), this.helloIntervalMs);
  }

  #probeTargets(): UdpEndpoint[] {
    const out: UdpEndpoint[] = [...(this.#o.staticPeers ?? []), ...(this.#o.lanTargets ?? [])];
    if (this.#o.rendezvous) {
      const own = new Set(this.#sockets.map((s) => s.local.port));
      let entries: { port: number }[] = [];
      try {
        entries = this.#o.rendezvous.list();
      } catch (err) {
        this.#log("warn", `same-host discovery: ${(err as Error).message}`);
      }
      for (const e of entries) if (!own.has(e.port)) out.push({ host: "127.0.0.1", port: e.port });
    }
    return out;
  }
}

/** Key of the session between one of our identities and a peer. */
function sessionKey(local: Sid, remote: Sid): string {
  return bytesKey(local) + bytesKey(remote);
}

function concat3(a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length + c.length);
  out.set(a, 0);
  out.set(b, a.length);
  out.set(c, a.length + b.length);
  return out;
}

function sidEquals16(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isLoopbackHost(host: string): boolean {
  return host === "::1" || /^127\./.test(host) || /^::ffff:127\./i.test(host);
}

