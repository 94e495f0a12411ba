/**
 * The embedded mesh node (the daemon's core): the overlay, MDP port bindings per SID and
 * the local API server logic for client processes. I/O comes in through interfaces: UDP
 * sockets from a `UdpBinder`, client connections as `ByteStream`s.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { type ErrorCode, SvpError } from "../errors.ts";
import { isSidAny, isSidBroadcast, type Sid, sidEquals, sidFromHex, sidShort, sidToBase32, sidToHex } from "../mesh/sid.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { encodeMspStop } from "../msp/packet.ts";
import { type ApiStatus, MAX_STATUS_STREAMS, sanitizeStreamStats, STATUS_SCHEMA, STREAM_CLIENT_FIELDS, type StatusReport, type StreamStat, type StreamStatus } from "../status/status-report.ts";
import { API_TYPE, API_VERSION, type ApiMessage, clientFrameLimit, decodeApiFrame, encodeApiMessage, FrameDecoder } from "./api-codec.ts";
import { type Defer, FrameBatcher } from "./frame-batcher.ts";
import { bytesKey } from "./bytes-key.ts";
import { type Keyring, primaryIdentity } from "./keyring.ts";
import { MspRemoteSet } from "./msp-remote-set.ts";
import type { NodeCrypto, NodeLog, PeerCredentials, RendezvousRegistry, UdpBinder, UdpEndpoint } from "./node-io.ts";
import { endpointKey } from "./endpoint-key.ts";
import { Overlay, type ReachInfo } from "./overlay.ts";
import { MAX_MDP_MTU, OVERLAY_MDP_MTU } from "./overlay-packet.ts";
import { DEFAULTS } from "../defaults.ts";

/** Default overlay UDP port: next to servald's 4110, never on it. */
export const DEFAULT_OVERLAY_PORT = DEFAULTS.overlayPort;
/**
 * Bounds of the local API, so that no client (buggy, stuck or hostile; the socket is
 * owner-only, so it runs as this user) can make the daemon hold memory or descriptors
 * without limit. Worst case held for clients: maxClients × (maxQueueBytes + one reply)
 * plus maxPartialBytes, and each of those only for a bounded time unless the client reads.
 */
export interface ApiLimits {
  /** A client that has not sent HELLO this long after connecting is cut off. Default 5 s. */
  helloTimeoutMs: number;
  /** Connected clients at most; more are refused (an ERROR frame saying so, then closed). Default 128. */
  maxClients: number;
  /**
   * DELIVER frames (incoming datagrams) are dropped, and counted as "client-slow", while
   * this much waits unread for a client. Default 4 MiB. MSP retransmits what was dropped.
   */
  maxDeliverQueueBytes: number;
  /**
   * A client with more than this waiting unread when a reply or notice is due (STATUS,
   * BOUND, PEER…) is cut off: it does not read. Default 8 MiB (room for replies above a
   * full DELIVER queue, so a busy but live client is never cut off).
   */
  maxQueueBytes: number;
  /** A client holding one unfinished frame this long is cut off. Default 10 s. */
  partialFrameTimeoutMs: number;
  /** Unfinished frames of all clients together at most; the client that goes over is cut off. Default 16 MiB. */
  maxPartialBytes: number;
}

export const DEFAULT_API_LIMITS: Readonly<ApiLimits> = {
  helloTimeoutMs: 5000,
  maxClients: 128,
  maxDeliverQueueBytes: 4 * 1024 * 1024,
  maxQueueBytes: 8 * 1024 * 1024,
  partialFrameTimeoutMs: 10_000,
  maxPartialBytes: 16 * 1024 * 1024,
};

/** Why clients were disconnected (or refused) by the daemon; counted in status (`daemon.api.disconnected`). */
export const API_CUT_REASONS = ["too-many-clients", "hello-timeout", "slow-reader", "partial-frame-timeout", "partial-budget", "frame-too-large", "protocol"] as const;
export type ApiCutReason = (typeof API_CUT_REASONS)[number];

/** Sent on behalf of a dead client to each remote of its streams (see MspRemoteSet). */
const MSP_STOP = encodeMspStop();
/** At most one "refused a client" log line per this long (a flood of connects must not flood the log). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
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
  /** Local API bounds; unset fields take DEFAULT_API_LIMITS. */
  apiLimits?: Partial<ApiLimits>;
  /** Start-up warnings (e.g. same-host discovery unusable): in WELCOME and status, so `svp daemon start` can say them. */
  notes?: string[];
}

interface Binding {
  client: ApiClient;
  sid: Sid;
  port: number;
  reuse: boolean;
  /** Remote ends this binding exchanged MSP packets with recently; created on first use. */
  remotes: MspRemoteSet | undefined;
}

interface ApiClient {
  id: number;
  stream: ByteStream;
  /** Every frame to this client goes through here (one write per batch). */
  out: FrameBatcher;
  decoder: FrameDecoder;
  pid: number | null;
  /** Where `pid` comes from: the kernel (the socket's peer credentials) or the client's own HELLO. */
  pidFrom: "kernel" | "client";
  uid: number | null;
  name: string;
  greeted: boolean;
  /** Bindings of this client by bindingKey. */
  bindings: Map<string, Binding>;
  streams: StreamStat[];
  streamsAt: number;
  connectedAt: number;
  /** MDP payload bytes this client sent, and that were delivered to it: upper bounds for its stream reports. */
  bytesSent: number;
  bytesDelivered: number;
  helloTimer: Timer | undefined;
  /** Bytes of an unfinished frame counted in MeshNode's partial total, and since when it is unfinished. */
  partialHeld: number;
  partialSince: number;
  partialTimer: Timer | undefined;
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
  #limits: ApiLimits;
  /** Bytes of unfinished frames held for all clients (see ApiLimits.maxPartialBytes). */
  #partialBytes = 0;
  /** Entries in all bindings' `remotes` (see MspRemoteSet). */
  #mspRemotes = 0;
  #cutOffs = Object.fromEntries(API_CUT_REASONS.map((r) => [r, 0])) as Record<ApiCutReason, number>;
  /** Refused connections waiting for their grace period to end. */
  #refused = new Set<ByteStream>();
  #refusalLoggedAt = -Infinity;
  #refusalsUnlogged = 0;
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
    this.#limits = { ...DEFAULT_API_LIMITS, ...options.apiLimits };
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

  /** Stop: stop the streams of every client, disconnect them, close the sockets, leave the rendezvous directory. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.#o.rendezvous?.unregister();
    } catch {
      // best effort: the registry also drops entries of dead processes
    }
    // While the overlay still runs: the remotes see STOP now instead of a 10 s timeout.
    for (const c of this.#clients) this.#stopMspStreams(c);
    this.overlay.stop();
    for (const c of [...this.#clients]) {
      c.out.flush(); // e.g. the OK of the stop request
      this.#release(c);
      c.stream.abort(new SvpError("ERR_MESH_DOWN", "daemon stopping"));
    }
    for (const s of [...this.#refused]) s.abort();
  }

  /**
   * Serve one local API connection. `peer`: the connecting process as the kernel knows it
   * (SO_PEERCRED), when the platform can tell; without it the pid is what the client claims.
   */
  acceptClient(stream: ByteStream, peer?: PeerCredentials): void {
    if (this.#stopped) return stream.abort(new SvpError("ERR_MESH_DOWN", "daemon stopping"));
    if (this.#clients.size >= this.#limits.maxClients) return this.#refuse(stream, peer);
    const now = this.#clock.now();
    const client: ApiClient = {
      id: this.#nextClient++,
      stream,
      out: new FrameBatcher(stream, this.#o.defer),
      decoder: new FrameDecoder(undefined, clientFrameLimit),
      pid: peer ? peer.pid : null,
      pidFrom: peer ? "kernel" : "client",
      uid: peer ? peer.uid : null,
      name: "client",
      greeted: false,
      bindings: new Map(),
      streams: [],
      streamsAt: 0,
      connectedAt: now,
      bytesSent: 0,
      bytesDelivered: 0,
      helloTimer: undefined,
      partialHeld: 0,
      partialSince: now,
      partialTimer: undefined,
      routes: false,
    };
    this.#clients.add(client);
    const helloMs = this.#limits.helloTimeoutMs;
    client.helloTimer = this.#clock.setTimeout(() => this.#cutOff(client, "hello-timeout", `sent no HELLO within ${helloMs} ms`), helloMs);
    stream.on("data", (chunk) => this.#onData(client, chunk));
    stream.on("end", () => {
      client.out.flush();
      stream.closeWrite();
    });
    stream.on("close", () => this.#release(client));
    stream.resume();
  }

  /** The daemon's own accounting of its local API (also in status as `daemon.api`). */
  apiStatus(): ApiStatus {
    let queued = 0;
    for (const c of this.#clients) queued += c.out.queuedBytes;
    return {
      clients: this.#clients.size,
      maxClients: this.#limits.maxClients,
      queuedBytes: queued,
      partialBytes: this.#partialBytes,
      ports: [...this.#bindings.values()].reduce((n, l) => n + l.length, 0),
      mspRemotes: this.#mspRemotes,
      disconnected: { ...this.#cutOffs },
    };
  }

  /** The status document (see src/status). */
  status(): StatusReport {
    const now = this.#clock.now();
    const ids = this.#o.keyring.identities;
    const primary = this.primarySid;
    const sources = [...(this.#o.staticPeers?.length ? ["static"] : []), ...(this.#o.rendezvous ? ["local"] : []), ...(this.#o.lanTargets ? ["lan"] : [])];
    const streams: StreamStatus[] = [];
    let omitted = 0;
    for (const c of this.#clients) {
      for (const s of c.streams) {
        if (streams.length >= MAX_STATUS_STREAMS) {
          omitted++;
          continue;
        }
        streams.push({ ...s, ageMs: s.ageMs + Math.round(now - c.streamsAt), pid: c.pid, client: c.name, clientReported: c.pidFrom === "kernel" ? [...STREAM_CLIENT_FIELDS] : [...STREAM_CLIENT_FIELDS, "pid"] });
      }
    }
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
        notes: [...(this.#o.notes ?? [])],
        api: this.apiStatus(),
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
      ports: [...this.#bindings.values()].flat().map((b) => ({ sid: sidToHex(b.sid), port: b.port, pid: b.client.pid, uid: b.client.uid, client: b.client.name, clientReported: b.client.pidFrom === "kernel" ? ["client"] : ["client", "pid"] })),
      streams,
      ...(omitted > 0 ? { streamsOmitted: omitted } : {}),
      drops: { ...this.overlay.drops },
      routes: this.overlay.routeInfo().map((r) => ({ sid: sidToHex(r.sid), nextHop: sidToHex(r.nextHop), hops: r.hops, metric: r.metric, mtu: r.mtu })),
      routing: {
        seqno: this.overlay.router.seqno,
        updateIntervalMs: this.overlay.router.updateIntervalMs,
        ...this.overlay.router.stats,
        forwardedPackets: this.overlay.forwarded.packets,
        forwardedBytes: this.overlay.forwarded.bytes,
      },
      floodGuard: { underLoad: this.overlay.guard.underLoad, kernelFilter: this.overlay.kernelFilter, ...this.overlay.guard.stats },
    };
  }

  /** "client 3 "svp socks" (pid 123)" for logs; a claimed pid says so. */
  #who(c: ApiClient): string {
    const pid = c.pid === null ? "" : ` (pid ${c.pid}${c.pidFrom === "client" ? ", as it claims" : ""})`;
    return `local API client ${c.id}${c.greeted ? ` "${c.name}"` : ""}${pid}`;
  }

  /**
   * Queue a reply or notice for `c`. A client that leaves more than maxQueueBytes unread is
   * cut off here (its DELIVERs were already being dropped): it does not read. False when
   * nothing was queued.
   */
  #send(c: ApiClient, m: ApiMessage): boolean {
    if (c.stream.closed || !c.stream.writable) return false;
    const queued = c.out.queuedBytes;
    if (queued > this.#limits.maxQueueBytes) {
      this.#cutOff(c, "slow-reader", `does not read what the daemon sends (${queued} bytes unread, limit ${this.#limits.maxQueueBytes})`);
      return false;
    }
    let frame: Uint8Array;
    try {
      frame = encodeApiMessage(m);
    } catch (err) {
      // Only a reply larger than a frame can be (a status document); never a crash.
      this.#log("warn", `${this.#who(c)}: cannot send a frame of type ${m.type}: ${(err as Error).message}`);
      if ("reqId" in m && m.type !== API_TYPE.ERROR) this.#error(c, m.reqId, "ERR_TOO_LARGE", (err as Error).message);
      return false;
    }
    c.out.push(frame);
    return true;
  }

  #error(c: ApiClient, reqId: number, code: ErrorCode, message: string): void {
    this.#send(c, { type: API_TYPE.ERROR, reqId, json: { code, message } });
  }

  #onData(c: ApiClient, chunk: Uint8Array): void {
    if (!this.#clients.has(c)) return;
    const { frames, error } = c.decoder.push(chunk);
    for (const f of frames) {
      if (!this.#clients.has(c)) return;
      const m = decodeApiFrame(f);
      if (typeof m === "string") return this.#cutOff(c, "protocol", m);
      this.#onMessage(c, m);
    }
    if (!this.#clients.has(c)) return;
    if (error) return this.#cutOff(c, /exceeds/.test(error) ? "frame-too-large" : "protocol", error);
    this.#trackPartial(c, frames.length > 0);
  }

  /**
   * Account for the unfinished frame `c` leaves behind after a read, and time it: a frame
   * that stays unfinished for partialFrameTimeoutMs cuts the client off, as does going over
   * the daemon-wide maxPartialBytes. One timer per client at most, re-armed lazily.
   */
  #trackPartial(c: ApiClient, completedSome: boolean): void {
    const held = c.decoder.buffered;
    const before = c.partialHeld;
    this.#partialBytes += held - before;
    c.partialHeld = held;
    if (held === 0) return;
    if (this.#partialBytes > this.#limits.maxPartialBytes) {
      return this.#cutOff(c, "partial-budget", `unfinished frames of all clients exceed ${this.#limits.maxPartialBytes} bytes (this one holds ${held})`);
    }
    // A new unfinished frame (the last one completed, or there was none): its time starts now.
    if (completedSome || before === 0) c.partialSince = this.#clock.now();
    if (c.partialTimer !== undefined) return;
    const limit = this.#limits.partialFrameTimeoutMs;
    const check = () => {
      c.partialTimer = undefined;
      if (!this.#clients.has(c) || c.decoder.buffered === 0) return;
      const left = c.partialSince + limit - this.#clock.now();
      if (left > 0) c.partialTimer = this.#clock.setTimeout(check, left);
      else this.#cutOff(c, "partial-frame-timeout", `held an unfinished frame (${c.decoder.buffered} bytes) for ${limit} ms`);
    };
    c.partialTimer = this.#clock.setTimeout(check, limit);
  }

  /** Disconnect `c` for `why`, logged and counted; it is told why in an ERROR frame (reqId 0) when it still reads. */
  #cutOff(c: ApiClient, reason: ApiCutReason, why: string): void {
    if (!this.#clients.has(c)) return;
    this.#cutOffs[reason]++;
    this.#log("warn", `${this.#who(c)}: ${why}; disconnecting it`);
    if (reason !== "slow-reader" && c.stream.writable) {
      try {
        c.out.push(encodeApiMessage({ type: API_TYPE.ERROR, reqId: 0, json: { code: reason === "protocol" || reason === "frame-too-large" ? "ERR_PROTOCOL" : "ERR_LIMIT", message: `the svp daemon disconnected this client: it ${why}` } }));
        c.out.flush();
      } catch {
        // the stream went away meanwhile
      }
    }
    this.#release(c);
    c.stream.abort(new SvpError(reason === "protocol" || reason === "frame-too-large" ? "ERR_PROTOCOL" : "ERR_LIMIT", why));
  }

  /** Too many clients: tell this one why (ERROR, reqId 0), close it after a grace period for reading that. */
  #refuse(stream: ByteStream, peer: PeerCredentials | undefined): void {
    this.#cutOffs["too-many-clients"]++;
    const max = this.#limits.maxClients;
    const now = this.#clock.now();
    if (now - this.#refusalLoggedAt >= REFUSAL_LOG_INTERVAL_MS) {
      const more = this.#refusalsUnlogged > 0 ? ` (and ${this.#refusalsUnlogged} more since the last such line)` : "";
      this.#log("warn", `local API: refused a client${peer ? ` (pid ${peer.pid})` : ""}: ${max} clients are connected, the limit${more}`);
      this.#refusalLoggedAt = now;
      this.#refusalsUnlogged = 0;
    } else this.#refusalsUnlogged++;
    this.#refused.add(stream);
    const done = () => {
      this.#refused.delete(stream);
      timer.cancel();
      stream.abort();
    };
    const timer = this.#clock.setTimeout(done, 1000);
    stream.on("close", done);
    stream.on("end", done);
    try {
      stream.write(encodeApiMessage({ type: API_TYPE.ERROR, reqId: 0, json: { code: "ERR_LIMIT", message: `the svp daemon refused this client: ${max} local API clients are connected, its limit` } }));
      stream.closeWrite();
    } catch {
      done();
    }
    stream.resume();
  }

  #release(c: ApiClient): void {
    if (!this.#clients.delete(c)) return;
    c.helloTimer?.cancel();
    c.partialTimer?.cancel();
    this.#partialBytes -= c.partialHeld;
    c.partialHeld = 0;
    if (!this.#stopped) this.#stopMspStreams(c);
    for (const [key, b] of c.bindings) this.#unbind(key, b);
    c.bindings.clear();
  }

  #unbind(key: string, b: Binding): void {
    if (b.remotes) {
      this.#mspRemotes -= b.remotes.size;
      b.remotes = undefined;
    }
    const list = this.#bindings.get(key)?.filter((x) => x !== b) ?? [];
    if (list.length) this.#bindings.set(key, list);
    else this.#bindings.delete(key);
  }

  /**
   * The client is gone (closed, crashed, killed) or the daemon stops: send a 1-byte MSP STOP
   * from each of its bindings to each remote that binding exchanged MSP packets with
   * recently, so the far ends fail their streams now (connection reset) instead of after
   * MSP's 10 s of silence. Streams that finished cleanly (SHUTDOWN both ways) or were
   * stopped already are left alone.
   */
  #stopMspStreams(c: ApiClient): void {
    const now = this.#clock.now();
    let sent = 0;
    for (const b of c.bindings.values()) {
      if (!b.remotes) continue;
      for (const r of b.remotes.openAt(now)) {
        this.overlay.send(b.sid, b.port, r.sid, r.port, MSP_STOP);
        sent++;
      }
      this.#mspRemotes -= b.remotes.size;
      b.remotes = undefined;
    }
    if (sent > 0) this.#log("debug", `${this.#who(c)} is gone: sent MSP STOP to ${sent} stream${sent === 1 ? "" : "s"} it left open`);
  }

  /** Note a datagram between binding `b` and a remote (`out`: sent by the client), for #stopMspStreams. */
  #noteMsp(b: Binding, remoteSid: Sid, remotePort: number, payload: Uint8Array, out: boolean): void {
    this.#mspRemotes += (b.remotes ??= new MspRemoteSet()).note(remoteSid, remotePort, payload, out, this.#clock.now());
  }

  #onMessage(c: ApiClient, m: ApiMessage): void {
    if (!c.greeted && m.type !== API_TYPE.HELLO) return this.#cutOff(c, "protocol", "sent another message before HELLO");
    switch (m.type) {
      case API_TYPE.HELLO: {
        const j = (m.json ?? {}) as Record<string, unknown>;
        if (j.version !== API_VERSION) return this.#cutOff(c, "protocol", `speaks unsupported API version ${JSON.stringify(j.version)}`);
        if (c.greeted) return this.#cutOff(c, "protocol", "sent HELLO twice");
        c.greeted = true;
        c.helloTimer?.cancel();
        c.helloTimer = undefined;
        // The kernel's pid wins; a claimed one is shown as claimed.
        if (c.pidFrom === "client") c.pid = typeof j.pid === "number" && Number.isSafeInteger(j.pid) && j.pid > 0 ? j.pid : null;
        c.name = typeof j.name === "string" ? j.name.replace(/[\u0000-\u001f\u007f]/g, "?").slice(0, 64) : "client";
        c.routes = j.routes === true;
        const peers = this.overlay.peers();
        const routes = c.routes ? { routes: peers.map((p) => { const r = this.overlay.reachInfo(p); return [sidToHex(p), r?.mtu ?? OVERLAY_MDP_MTU, r?.hops ?? 1]; }) } : {};
        this.#send(c, {
          type: API_TYPE.WELCOME,
          json: { version: API_VERSION, pid: this.#o.info.pid, primary: sidToHex(this.primarySid), sids: this.#o.keyring.identities.map((i) => sidToHex(i.sid)), mtu: OVERLAY_MDP_MTU, maxMtu: MAX_MDP_MTU, peers: peers.map(sidToHex), ...routes, notes: this.#o.notes ?? [] },
        });
        return;
      }
      case API_TYPE.BIND:
        return this.#bind(c, m);
      case API_TYPE.UNBIND: {
        const sid = isSidAny(m.sid) ? this.primarySid : m.sid;
        const key = bindingKey(sid, m.port);
        const b = c.bindings.get(key);
        if (!b) return;
        c.bindings.delete(key);
        this.#unbind(key, b);
        return;
      }
      case API_TYPE.SEND: {
        const b = c.bindings.get(bindingKey(m.sid, m.port));
        if (!b) return this.#cutOff(c, "protocol", `sent from MDP port ${m.port}, which it has not bound`);
        if (m.payload.length > MAX_MDP_MTU) return void this.overlay.countDrop("oversize");
        c.bytesSent += m.payload.length;
        if (m.payload.length > 0 && !isSidBroadcast(m.remoteSid)) this.#noteMsp(b, m.remoteSid, m.remotePort, m.payload, true);
        this.overlay.send(m.sid, m.port, m.remoteSid, m.remotePort, m.payload);
        return;
      }
      case API_TYPE.STATUS:
        this.#send(c, { type: API_TYPE.STATUS_REPLY, reqId: m.reqId, json: this.status() });
        return;
      case API_TYPE.STREAMS:
        c.streams = this.#checkStreams(c, sanitizeStreamStats(m.json));
        c.streamsAt = this.#clock.now();
        return;
      case API_TYPE.SHUTDOWN:
        this.#send(c, { type: API_TYPE.OK, reqId: m.reqId });
        this.#log("info", `stop requested by ${this.#who(c)}`);
        this.emit("shutdown-requested");
        return;
      default:
        return this.#cutOff(c, "protocol", `sent unexpected message type ${m.type}`);
    }
  }

  /**
   * Hold a client's stream report to what the daemon knows: a stream must be on a port that
   * client has bound, and no stream can have moved more bytes than the client's datagrams
   * carried, or be older than the client's connection. (What is left is still the
   * client's word: status marks it as client-reported.)
   */
  #checkStreams(c: ApiClient, stats: StreamStat[]): StreamStat[] {
    const age = Math.round(this.#clock.now() - c.connectedAt);
    const out: StreamStat[] = [];
    for (const s of stats) {
      const sid = sidFromHex(s.localSid);
      if (!sid || !c.bindings.has(bindingKey(sid, s.localPort))) continue;
      out.push({ ...s, bytesIn: Math.min(s.bytesIn, c.bytesDelivered), bytesOut: Math.min(s.bytesOut, c.bytesSent), ageMs: Math.min(s.ageMs, age) });
    }
    return out;
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
    const binding: Binding = { client: c, sid, port, reuse: m.reuse, remotes: undefined };
    existing.push(binding);
    this.#bindings.set(key, existing);
    c.bindings.set(key, binding);
    this.#send(c, { type: API_TYPE.BOUND, reqId: m.reqId, port, sid });
  }

  #deliver(localSid: Sid, dstPort: number, from: Sid, srcPort: number, payload: Uint8Array, broadcast: boolean): void {
    const list = this.#bindings.get(bindingKey(localSid, dstPort));
    if (!list || list.length === 0) return void this.overlay.countDrop("unbound");
    for (const b of list) {
      const c = b.client;
      if (c.out.queuedBytes > this.#limits.maxDeliverQueueBytes) {
        this.overlay.countDrop("client-slow");
        continue;
      }
      if (!c.stream.writable) continue;
      if (!broadcast && payload.length > 0) this.#noteMsp(b, from, srcPort, payload, false);
      c.bytesDelivered += payload.length;
      c.out.push(encodeApiMessage({ type: API_TYPE.DELIVER, sid: localSid, port: dstPort, remoteSid: from, remotePort: srcPort, broadcast, payload }));
    }
  }

  /** A node became reachable, unreachable, or its path MTU or hops changed: tell the clients. */
  #broadcastReach(sid: Sid, info: ReachInfo | undefined): void {
    for (const c of [...this.#clients]) {
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
