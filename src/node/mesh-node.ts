/**
 * The embedded mesh node (the daemon's core): the overlay, MDP port bindings per SID and
 * the local API server logic for client processes. I/O comes in through interfaces: UDP
 * sockets from a `UdpBinder`, client connections as `ByteStream`s.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { type ErrorCode, SvpError } from "../errors.ts";
import { isSidAny, type Sid, sidEquals, sidShort, sidToBase32, sidToHex } from "../mesh/sid.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { sanitizeStreamStats, STATUS_SCHEMA, type StatusReport, type StreamStat } from "../status/status-report.ts";
import { API_TYPE, API_VERSION, type ApiMessage, decodeApiFrame, encodeApiMessage, FrameDecoder } from "./api-codec.ts";
import { type Defer, FrameBatcher } from "./frame-batcher.ts";
import { bytesKey } from "./bytes-key.ts";
import { type Keyring, primaryIdentity } from "./keyring.ts";
import type { NodeCrypto, NodeLog, RendezvousRegistry, UdpBinder, UdpEndpoint } from "./node-io.ts";
import { endpointKey, Overlay, type ReachInfo } from "./overlay.ts";
import { MAX_MDP_MTU, OVERLAY_MDP_MTU } from "./overlay-packet.ts";

/** Default overlay UDP port: next to servald's 4110, never on it. */
export const DEFAULT_OVERLAY_PORT = 4111;
/** A client whose socket has this many unread bytes queued gets its datagrams dropped. */
const CLIENT_MAX_QUEUE = 4 * 1024 * 1024;
/**
 * Receive buffer asked for on the overlay sockets. The default (~208 KiB on Linux, about 90
 * sealed 1 KiB datagrams) overflowed when many MSP packets arrived at once (e.g. 32 streams
 * × window 4, or one stream with window 128): each lost packet stalls its stream for a
 * 1.5 s retransmission. Memory is only used while datagrams wait.
 */
const OVERLAY_RECEIVE_BUFFER = 2 * 1024 * 1024;
/** Port numbers handed out for bind(0). */
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_LAST = 65535;

export interface MeshNodeOptions {
  keyring: Keyring;
  crypto: NodeCrypto;
  binder: UdpBinder;
  clock?: Clock;
  log?: NodeLog;
  /** Overlay UDP port. Default DEFAULT_OVERLAY_PORT. */
  port?: number;
  /** When the port was given explicitly, a busy port is an error instead of a fallback to an ephemeral one. */
  portExplicit?: boolean;
  /** Addresses to bind the overlay on. Default loopback: ["127.0.0.1", "::1"]. */
  bindHosts?: string[];
  staticPeers?: UdpEndpoint[];
  rendezvous?: RendezvousRegistry;
  /** LAN probe targets, or a function asked at every probe round. */
  lanTargets?: UdpEndpoint[] | (() => UdpEndpoint[]);
  /** Broadcast permission for the UDP sockets (LAN discovery). */
  lan?: boolean;
  helloIntervalMs?: number;
  peerTimeoutMs?: number;
  /** Largest MDP payload on links that are not loopback (default 1160). */
  linkMtu?: number;
  /** For status: the daemon's process id, version and instance directory. */
  info: { pid: number; version: string; home: string };
  /** Wall-clock milliseconds since the epoch (for startedAt). Default Date.now. */
  wallClock?: () => number;
  /** When frames queued for a client go out in one write (see FrameBatcher). Default queueMicrotask. */
  defer?: Defer;
}

interface Binding {
  client: ApiClient;
  sid: Sid;
  port: number;
  reuse: boolean;
}

interface ApiClient {
  id: number;
  stream: ByteStream;
  /** Every frame to this client goes through here (one write per batch). */
  out: FrameBatcher;
  decoder: FrameDecoder;
  pid: number | null;
  name: string;
  greeted: boolean;
  bindings: Set<string>;
  streams: StreamStat[];
  streamsAt: number;
  /** Asked for ROUTE messages (path MTU and hops) instead of PEER. */
  routes: boolean;
}

export type MeshNodeEvents = {
  /** A client asked the daemon to stop (svp daemon stop). */
  "shutdown-requested": () => void;
};

export class MeshNode extends Emitter<MeshNodeEvents> {
  readonly overlay: Overlay;
  #o: MeshNodeOptions;
  #clock: Clock;
  #log: NodeLog;
  #bindings = new Map<string, Binding[]>();
  #clients = new Set<ApiClient>();
  #nextClient = 1;
  #nextPort = EPHEMERAL_FIRST;
  #startedAt: number;
  #startedWall: number;
  #started = false;
  #stopped = false;

  constructor(options: MeshNodeOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = options.log ?? (() => {});
    this.overlay = new Overlay({
      keyring: options.keyring,
      crypto: options.crypto,
      clock: this.#clock,
      log: this.#log,
      ...(options.helloIntervalMs !== undefined ? { helloIntervalMs: options.helloIntervalMs } : {}),
      ...(options.peerTimeoutMs !== undefined ? { peerTimeoutMs: options.peerTimeoutMs } : {}),
      ...(options.staticPeers ? { staticPeers: options.staticPeers } : {}),
      ...(options.rendezvous ? { rendezvous: options.rendezvous } : {}),
      ...(options.lanTargets ? { lanTargets: options.lanTargets } : {}),
      ...(options.linkMtu !== undefined ? { linkMtu: options.linkMtu } : {}),
    });
    this.#startedAt = this.#clock.now();
    this.#startedWall = (options.wallClock ?? Date.now)();
    this.overlay.on("data", (localSid, dstPort, from, srcPort, payload, broadcast) => this.#deliver(localSid, dstPort, from, srcPort, payload, broadcast));
    this.overlay.on("reach", (sid, info) => this.#broadcastReach(sid, info));
  }

  get primarySid(): Sid {
    return primaryIdentity(this.#o.keyring).sid;
  }

  /** Bound UDP addresses, e.g. ["127.0.0.1:4111", "[::1]:4111"]. */
  get udpAddresses(): string[] {
    return this.overlay.sockets.map((s) => endpointKey(s.local));
  }

  /** Bind the overlay's UDP sockets, register for same-host discovery and start greeting peers. */
  async start(): Promise<void> {
    if (this.#started) throw new SvpError("ERR_INTERNAL", "mesh node already started");
    this.#started = true;
    const hosts = this.#o.bindHosts ?? ["127.0.0.1", "::1"];
    let port = this.#o.port ?? DEFAULT_OVERLAY_PORT;
    for (const host of hosts) {
      const family = host.includes(":") ? "IPv6" : "IPv4";
      const bind = (p: number) =>
        this.#o.binder({
          family,
          host,
          port: p,
          ...(this.#o.lan ? { broadcast: true } : {}),
          receiveBufferBytes: OVERLAY_RECEIVE_BUFFER,
          onMessage: (data, from) => this.overlay.receive(data, from),
          onError: (err) => this.#log("debug", `udp ${host}: ${err.message}`),
        });
      try {
        const sock = await bind(port).catch(async (err: NodeJS_ErrnoLike) => {
          if (err.code === "EADDRINUSE" && !this.#o.portExplicit && port !== 0) {
            const s = await bind(0);
            this.#log("info", `UDP port ${port} on ${host} is in use; using ${s.local.port} instead (give --port to insist)`);
            return s;
          }
          throw err;
        });
        port = sock.local.port;
        this.overlay.attachSocket(sock);
      } catch (err) {
        const e = err as NodeJS_ErrnoLike;
        if (family === "IPv6" && this.overlay.sockets.length > 0 && ["EADDRNOTAVAIL", "EAFNOSUPPORT", "EINVAL"].includes(e.code ?? "")) {
          this.#log("info", `IPv6 overlay on ${host} unavailable (${e.code}); continuing on IPv4 only`);
          continue;
        }
        this.overlay.stop();
        throw new SvpError(e.code === "EADDRINUSE" ? "ERR_BUSY" : "ERR_INTERNAL", `cannot bind UDP ${host.includes(":") ? `[${host}]` : host}:${port}: ${e.code === "EADDRINUSE" ? "address already in use" : e.message}`);
      }
    }
    const v4 = this.overlay.sockets.find((s) => s.family === "IPv4");
    if (this.#o.rendezvous && v4) this.#o.rendezvous.register({ port: v4.local.port });
    this.overlay.start();
  }

  /** Stop: disconnect every client, close the sockets, leave the rendezvous directory. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.#o.rendezvous?.unregister();
    } catch {
      // best effort: the registry also drops entries of dead processes
    }
    this.overlay.stop();
    for (const c of [...this.#clients]) {
      c.out.flush(); // e.g. the OK of the stop request
      c.stream.abort(new SvpError("ERR_MESH_DOWN", "daemon stopping"));
    }
  }

  /** Serve one local API connection. */
  acceptClient(stream: ByteStream): void {
    if (this.#stopped) return stream.abort(new SvpError("ERR_MESH_DOWN", "daemon stopping"));
    const client: ApiClient = { id: this.#nextClient++, stream, out: new FrameBatcher(stream, this.#o.defer), decoder: new FrameDecoder(), pid: null, name: "client", greeted: false, bindings: new Set(), streams: [], streamsAt: 0, routes: false };
    this.#clients.add(client);
    stream.on("data", (chunk) => {
      const { frames, error } = client.decoder.push(chunk);
      for (const f of frames) {
        if (!this.#clients.has(client)) return;
        const m = decodeApiFrame(f);
        if (typeof m === "string") return this.#dropClient(client, m);
        this.#onMessage(client, m);
      }
      if (error) this.#dropClient(client, error);
    });
    stream.on("end", () => {
      client.out.flush();
      stream.closeWrite();
    });
    stream.on("close", () => this.#release(client));
    stream.resume();
  }

  /** The status document (see src/status). */
  status(): StatusReport {
    const now = this.#clock.now();
    const ids = this.#o.keyring.identities;
    const primary = this.primarySid;
    const sources = [...(this.#o.staticPeers?.length ? ["static"] : []), ...(this.#o.rendezvous ? ["local"] : []), ...(this.#o.lanTargets ? ["lan"] : [])];
    return {
      schema: STATUS_SCHEMA,
      backend: "embedded",
      identity: { sid: sidToHex(primary), base32: sidToBase32(primary), sids: [primary, ...ids.map((i) => i.sid).filter((s) => !sidEquals(s, primary))].map(sidToHex) },
      daemon: {
        pid: this.#o.info.pid,
        version: this.#o.info.version,
        home: this.#o.info.home,
        startedAt: new Date(this.#startedWall).toISOString(),
        uptimeMs: Math.round(now - this.#startedAt),
        udp: this.udpAddresses,
        discovery: sources,
      },
      peers: this.overlay.peerInfo().map((p) => ({
        sid: sidToHex(p.sid),
        localSid: sidToHex(p.localSid),
        address: p.address ? endpointKey(p.address) : null,
        source: p.source,
        live: p.live,
        lastSeenMs: p.lastSeen === undefined ? null : Math.round(now - p.lastSeen),
        rttMs: p.rttMs === undefined ? null : Math.round(p.rttMs * 10) / 10,
        packetsIn: p.packetsIn,
        packetsOut: p.packetsOut,
        bytesIn: p.bytesIn,
        bytesOut: p.bytesOut,
        linkCost: p.linkCost ?? null,
        mtu: p.mtu,
      })),
      ports: [...this.#bindings.values()].flat().map((b) => ({ sid: sidToHex(b.sid), port: b.port, pid: b.client.pid, client: b.client.name })),
      streams: [...this.#clients].flatMap((c) => c.streams.map((s) => ({ ...s, ageMs: s.ageMs + Math.round(now - c.streamsAt), pid: c.pid, client: c.name }))),
      drops: { ...this.overlay.drops },
      routes: this.overlay.routeInfo().map((r) => ({ sid: sidToHex(r.sid), nextHop: sidToHex(r.nextHop), hops: r.hops, metric: r.metric, mtu: r.mtu })),
      routing: {
        seqno: this.overlay.router.seqno,
        updateIntervalMs: this.overlay.router.updateIntervalMs,
        ...this.overlay.router.stats,
        forwardedPackets: this.overlay.forwarded.packets,
        forwardedBytes: this.overlay.forwarded.bytes,
      },
    };
  }

  #send(c: ApiClient, m: ApiMessage): void {
    if (c.stream.closed || !c.stream.writable) return;
    c.out.push(encodeApiMessage(m));
  }

  #error(c: ApiClient, reqId: number, code: ErrorCode, message: string): void {
    this.#send(c, { type: API_TYPE.ERROR, reqId, json: { code, message } });
  }

  #dropClient(c: ApiClient, why: string): void {
    this.#log("warn", `local API client ${c.name}${c.pid ? ` (pid ${c.pid})` : ""}: ${why}; disconnecting it`);
    this.#release(c);
    c.stream.abort(new SvpError("ERR_PROTOCOL", why));
  }

  #release(c: ApiClient): void {
    if (!this.#clients.delete(c)) return;
    for (const key of c.bindings) {
      const list = this.#bindings.get(key)?.filter((b) => b.client !== c) ?? [];
      if (list.length) this.#bindings.set(key, list);
      else this.#bindings.delete(key);
    }
    c.bindings.clear();
  }

  #onMessage(c: ApiClient, m: ApiMessage): void {
    if (!c.greeted && m.type !== API_TYPE.HELLO) return this.#dropClient(c, "first message was not HELLO");
    switch (m.type) {
      case API_TYPE.HELLO: {
        const j = (m.json ?? {}) as Record<string, unknown>;
        if (j.version !== API_VERSION) return this.#dropClient(c, `unsupported API version ${JSON.stringify(j.version)}`);
        c.greeted = true;
        c.pid = typeof j.pid === "number" && Number.isSafeInteger(j.pid) ? j.pid : null;
        c.name = typeof j.name === "string" ? j.name.slice(0, 64) : "client";
        c.routes = j.routes === true;
        const peers = this.overlay.peers();
        const routes = c.routes ? { routes: peers.map((p) => { const r = this.overlay.reachInfo(p); return [sidToHex(p), r?.mtu ?? OVERLAY_MDP_MTU, r?.hops ?? 1]; }) } : {};
        this.#send(c, {
          type: API_TYPE.WELCOME,
          json: { version: API_VERSION, pid: this.#o.info.pid, primary: sidToHex(this.primarySid), sids: this.#o.keyring.identities.map((i) => sidToHex(i.sid)), mtu: OVERLAY_MDP_MTU, maxMtu: MAX_MDP_MTU, peers: peers.map(sidToHex), ...routes },
        });
        return;
      }
      case API_TYPE.BIND:
        return this.#bind(c, m);
      case API_TYPE.UNBIND: {
        const sid = isSidAny(m.sid) ? this.primarySid : m.sid;
        const key = bindingKey(sid, m.port);
        if (!c.bindings.delete(key)) return;
        const list = this.#bindings.get(key)?.filter((b) => b.client !== c) ?? [];
        if (list.length) this.#bindings.set(key, list);
        else this.#bindings.delete(key);
        return;
      }
      case API_TYPE.SEND: {
        if (!c.bindings.has(bindingKey(m.sid, m.port))) return this.#dropClient(c, `send from port ${m.port} it has not bound`);
        if (m.payload.length > MAX_MDP_MTU) return void this.overlay.countDrop("oversize");
        this.overlay.send(m.sid, m.port, m.remoteSid, m.remotePort, m.payload);
        return;
      }
      case API_TYPE.STATUS:
        this.#send(c, { type: API_TYPE.STATUS_REPLY, reqId: m.reqId, json: this.status() });
        return;
      case API_TYPE.STREAMS:
        c.streams = sanitizeStreamStats(m.json);
        c.streamsAt = this.#clock.now();
        return;
      case API_TYPE.SHUTDOWN:
        this.#send(c, { type: API_TYPE.OK, reqId: m.reqId });
        this.#log("info", `stop requested by ${c.name}${c.pid ? ` (pid ${c.pid})` : ""}`);
        this.emit("shutdown-requested");
        return;
      default:
        return this.#dropClient(c, `unexpected message type ${m.type}`);
    }
  }

  #bind(c: ApiClient, m: Extract<ApiMessage, { type: typeof API_TYPE.BIND }>): void {
    const sid = isSidAny(m.sid) ? this.primarySid : m.sid;
    if (!this.overlay.isLocalSid(sid)) return this.#error(c, m.reqId, "ERR_BAD_ADDRESS", `${sidShort(sid)} is not an identity of this node`);
    let port = m.port;
    if (port === 0) {
      const start = this.#nextPort;
      do {
        const candidate = this.#nextPort;
        this.#nextPort = candidate >= EPHEMERAL_LAST ? EPHEMERAL_FIRST : candidate + 1;
        if (!this.#bindings.has(bindingKey(sid, candidate))) {
          port = candidate;
          break;
        }
      } while (this.#nextPort !== start);
      if (port === 0) return this.#error(c, m.reqId, "ERR_LIMIT", "no free MDP port");
    }
    const key = bindingKey(sid, port);
    const existing = this.#bindings.get(key) ?? [];
    if (existing.some((b) => b.client === c)) return this.#error(c, m.reqId, "ERR_NOT_ALLOWED", `MDP port ${port} is already bound by this client`);
    if (existing.length > 0 && !(m.reuse && existing.every((b) => b.reuse))) return this.#error(c, m.reqId, "ERR_NOT_ALLOWED", `MDP port ${port} is already bound${existing[0]!.client.pid ? ` by pid ${existing[0]!.client.pid}` : ""}`);
    existing.push({ client: c, sid, port, reuse: m.reuse });
    this.#bindings.set(key, existing);
    c.bindings.add(key);
    this.#send(c, { type: API_TYPE.BOUND, reqId: m.reqId, port, sid });
  }

  #deliver(localSid: Sid, dstPort: number, from: Sid, srcPort: number, payload: Uint8Array, broadcast: boolean): void {
    const list = this.#bindings.get(bindingKey(localSid, dstPort));
    if (!list || list.length === 0) return void this.overlay.countDrop("unbound");
    for (const b of list) {
      if (b.client.out.queuedBytes > CLIENT_MAX_QUEUE) {
        this.overlay.countDrop("client-slow");
        continue;
      }
      this.#send(b.client, { type: API_TYPE.DELIVER, sid: localSid, port: dstPort, remoteSid: from, remotePort: srcPort, broadcast, payload });
    }
  }

  /** A node became reachable, unreachable, or its path MTU or hops changed: tell the clients. */
  #broadcastReach(sid: Sid, info: ReachInfo | undefined): void {
    for (const c of this.#clients) {
      if (!c.greeted) continue;
      if (c.routes) this.#send(c, { type: API_TYPE.ROUTE, up: !!info, sid, mtu: info?.mtu ?? 0, hops: info?.hops ?? 0 });
      else this.#send(c, { type: API_TYPE.PEER, up: !!info, sid });
    }
  }
}

type NodeJS_ErrnoLike = Error & { code?: string };

/** Key of a port binding (looked up for every datagram; see bytes-key.ts). */
function bindingKey(sid: Sid, port: number): string {
  return bytesKey(sid) + port;
}
