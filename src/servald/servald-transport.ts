/**
 * The servald backend: an `MdpTransport` over a running Serval daemon's local MDP v2 socket.
 *
 * One datagram socket per transport (autobound, connected to the daemon's `mdp.2.socket`)
 * carries every binding; datagrams are demultiplexed by the header's local (SID, port).
 * Besides the bindings the transport keeps:
 * - the daemon's unlocked identities (MDP_SEARCH_IDS; the primary one is the SID servald puts
 *   in place of the "any" SID) — for `localSid` and `--sid`;
 * - its route table — for `reachability()` and `peers()`. The first client bound to
 *   SID_INTERNAL:5 gets every reachability change pushed; servald refuses that binding to any
 *   other client (its REUSE flag is not honoured on the v2 socket), so those poll the table
 *   (a request to the daemon's port 5 answers with one record per node, then CLOSE);
 * - liveness: every datagram from the daemon counts; when it has been quiet for
 *   `probeIntervalMs` the transport re-binds SID_INTERNAL:5 (answered with BIND) or polls the
 *   route table.
 *   A send that finds the socket gone (servald stopped or restarted: the connected peer is
 *   dead) or `deadAfterMs` of silence takes the transport down: every socket closes with
 *   ERR_MESH_DOWN and `down` is emitted.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { SvpError } from "../errors.ts";
import { toHex } from "../bytes/hex.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_ANY, SID_BROADCAST, SID_BYTES, isSidAny, isSidBroadcast, sidEquals, sidShort, sidToHex } from "../mesh/sid.ts";
import { MDP_FLAG, MDP_TTL_DEFAULT, decodeMdpDatagram, encodeMdpDatagram } from "../mdp/header.ts";
import type { MdpHeader } from "../mdp/header.ts";
import type {
  MdpAddress,
  MdpBindOptions,
  MdpSendOptions,
  MdpSocket,
  MdpSocketEvents,
  MdpTransport,
  MdpTransportEvents,
  Reachability,
} from "../mdp/transport.ts";
import type { DatagramSendResult, DatagramSocket, OpenDatagramSocket } from "./datagram-socket.ts";
import type { ServaldInstance } from "./instance.ts";
import { CLIENT_SOCKET_SLOTS, clientSocketName, localSocketAddress, mdpSocketAddress, resolveInstances } from "./instance.ts";
import { REACHABLE, REACHABLE_ROUTABLE, decodeRouteRecord } from "./route-record.ts";
import type { RouteRecord } from "./route-record.ts";

/** servald's special SID for daemon-internal bindings (31 zero bytes, then 1). */
export const SID_INTERNAL: Sid = (() => {
  const s = new Uint8Array(SID_BYTES);
  s[SID_BYTES - 1] = 1;
  return s;
})();

/** Command ports on the daemon itself (remote SID "any"), mdp_client.h. */
export const MDP_COMMAND = { LISTEN: 0, IDENTITY: 1, SEARCH_IDS: 2, SYNC_CONFIG: 3, INTERFACE: 4, ROUTE_TABLE: 5 } as const;

export interface ServaldTransportOptions {
  /** Opens the AF_UNIX datagram socket (the platform's native addon; wired by src/platform/servald.ts). */
  openSocket: OpenDatagramSocket;
  /** `--servald-instance DIR`: the daemon's instance (run) directory. */
  instance?: string | undefined;
  /** Environment to read SERVALINSTANCE_PATH from when `instance` is not given. */
  env?: Readonly<Record<string, string | undefined>>;
  /** `--sid`: bind on this unlocked identity by default instead of the primary one. */
  sid?: Sid | undefined;
  clock?: Clock;
  /** How long to wait for the daemon's answers when connecting. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** How long a bind may wait for its answer. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** Probe the daemon after this much silence. Default 1000 ms. */
  probeIntervalMs?: number;
  /** Declare the daemon gone after this much silence. Default 5000 ms. */
  deadAfterMs?: number;
  /** Abstract socket names (Linux servald builds). Default true. */
  abstract?: boolean;
  /** Most datagrams held while the daemon's queue is full; more are dropped. Default 1024. */
  maxQueuedDatagrams?: number;
}

export interface ServaldStats {
  datagramsSent: number;
  datagramsReceived: number;
  /** Dropped: queue full, unknown binding, malformed. */
  datagramsDropped: number;
  /** ERROR answers from the daemon to data sends (e.g. broadcast without NO_CRYPT). */
  sendErrors: number;
  /** Datagrams that waited in svp's queue because the daemon's was full (EAGAIN). */
  datagramsDeferred: number;
}

interface Binding {
  sid: Sid;
  port: number;
  reuse: boolean;
  sockets: Set<ServaldMdpSocket>;
}

interface PendingBind {
  sid: Sid;
  port: number;
  reuse: boolean;
  resolve: (b: Binding) => void;
  reject: (err: SvpError) => void;
  timer: Timer;
}

const key = (sid: Sid, port: number) => `${toHex(sid)}:${port}`;

/**
 * How big a datagram servald can carry. servald wraps the payload in a frame: the two ports
 * (packed, 7 bits per byte) + payload + crypto (nonce and MAC, 24 + 16 bytes, when
 * encrypted; a 64-byte signature when only signed). Two limits, both verified with servald
 * 029adc17 over its file interface (interface MTU 1200):
 * - a frame of 1200 bytes or more makes the daemon abort (FATAL "Queued packet len … is too
 *   big", overlay_queue.c): every client of that daemon loses it;
 * - a frame that fits but does not fit an interface packet together with the overlay headers
 *   is never sent, and it holds up the frames queued behind it until it times out (seconds).
 *   Frames of up to 1187 bytes arrived here, with abbreviated addresses; full SIDs and next
 *   hops make the headers longer.
 * svp therefore never hands servald a frame over FRAME_BUDGET: 50 bytes below what arrived.
 * That still carries MSP's 1024-byte messages (1029-byte packets) with room to spare.
 */
const FRAME_BUDGET = 1150;
const CRYPTO_OVERHEAD = { encrypted: 40, signed: 64, plain: 0 } as const;

function packedLength(v: number): number {
  let n = 1;
  for (let x = v >>> 7; x !== 0; x >>>= 7) n++;
  return n;
}

/** Largest payload svp sends between these ports in the given mode (larger sends throw ERR_LIMIT). */
export function servaldPayloadLimit(dstPort: number, srcPort: number, mode: keyof typeof CRYPTO_OVERHEAD = "encrypted"): number {
  const same = dstPort === srcPort;
  const ports = packedLength(((dstPort << 1) | (same ? 1 : 0)) >>> 0) + (same ? 0 : packedLength(srcPort));
  return FRAME_BUDGET - CRYPTO_OVERHEAD[mode] - ports;
}

/** Packets in flight servald's own MSP tools allow (see `ServaldTransport.mspWindow`). */
export const SERVALD_MSP_WINDOW = 5;

/** The encrypted payload limit for any ports (ports take at most 10 bytes): the transport's `mtu`. */
export const SERVALD_MTU = FRAME_BUDGET - CRYPTO_OVERHEAD.encrypted - 10;

/** One bound MDP port on the daemon. */
class ServaldMdpSocket extends Emitter<MdpSocketEvents> implements MdpSocket {
  readonly local: MdpAddress;
  #closed = false;

  constructor(
    readonly transport: ServaldTransport,
    readonly binding: Binding,
  ) {
    super();
    this.local = { sid: binding.sid, port: binding.port };
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(to: MdpAddress, payload: Uint8Array, options: MdpSendOptions = {}): void {
    if (this.#closed) return;
    this.transport.sendData(this.binding, to, payload, options);
  }

  close(): void {
    if (this.#closed) return;
    this.transport.release(this);
    this.finish();
  }

  /** @internal */
  finish(err?: SvpError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close", err);
  }

  /** @internal */
  deliver(payload: Uint8Array, from: MdpAddress, to: MdpAddress): void {
    if (!this.#closed) this.emit("message", payload, from, to);
  }
}

export class ServaldTransport extends Emitter<MdpTransportEvents> implements MdpTransport {
  readonly kind = "servald" as const;
  /** 1100: the encrypted payload limit for any ports (see `servaldPayloadLimit`, which sends enforce). */
  readonly mtu = SERVALD_MTU;
  /**
   * servald's MSP keeps MAX_WINDOW_SIZE (4) packets in flight per its constant, but its
   * msp_stream_send() refuses a packet only when *more* than 4 are queued, and its proxy
   * (`msp connect/listen --forward`) sends whenever it has read input: so its tools run 5.
   * Its receiver takes any number. With 4, svp moved a fifth less than servald's own tool on
   * the same path (bench/servald.ts).
   */
  readonly mspWindow = SERVALD_MSP_WINDOW;
  /** svp endpoints behind servald daemons use svp's extension between them; servald's tools ignore the offer. */
  mspExtension = true;
  readonly instance: ServaldInstance;
  readonly stats: ServaldStats = { datagramsSent: 0, datagramsReceived: 0, datagramsDropped: 0, sendErrors: 0, datagramsDeferred: 0 };

  readonly #socket: DatagramSocket;
  readonly #clock: Clock;
  readonly #requestTimeoutMs: number;
  readonly #probeIntervalMs: number;
  readonly #deadAfterMs: number;
  readonly #maxQueued: number;
  #defaultSid: Sid | undefined;
  #primary: Sid | undefined;
  #identities: Sid[] = [];
  #identitiesDone = false;
  #searchIds: Sid[] = [];
  #routes = new Map<string, RouteRecord>();
  #routesComplete = false;
  /** Whether servald granted this client the route-change subscription (undefined: not yet known). */
  #subscribed: boolean | undefined;
  /** A polled route table being collected (replaces `#routes` when its CLOSE arrives). */
  #dump: Map<string, RouteRecord> | undefined;
  #bindings = new Map<string, Binding>();
  #pending: PendingBind[] = [];
  #queue: Uint8Array[] = [];
  #waitingWritable = false;
  #lastHeard: number;
  #probeTimer: Timer | undefined;
  #state: "connecting" | "open" | "down" | "closed" = "connecting";
  #downError: SvpError | undefined;
  #onReady: (() => void) | undefined;

  /** Use `connectServald()`; the constructor expects a socket already connected to the daemon. */
  constructor(socket: DatagramSocket, instance: ServaldInstance, options: Omit<ServaldTransportOptions, "openSocket" | "instance" | "env">) {
    super();
    this.#socket = socket;
    this.instance = instance;
    this.#clock = options.clock ?? systemClock;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.#probeIntervalMs = options.probeIntervalMs ?? 1000;
    this.#deadAfterMs = options.deadAfterMs ?? 5000;
    this.#maxQueued = options.maxQueuedDatagrams ?? 1024;
    this.#defaultSid = options.sid;
    this.#lastHeard = this.#clock.now();
    socket.on("message", (data) => this.#onDatagram(data));
    socket.on("writable", () => this.#flush());
    socket.on("close", (err) => {
      if (err) this.#goDown(`its socket failed (${err.message})`);
    });
    socket.on("error", (err) => {
      // On a socket connected to the daemon these mean the daemon's socket is gone.
      const errno = errnoOf(err);
      if (errno === "ECONNREFUSED" || errno === "ECONNRESET") this.#goDown(`its socket is gone (${errno})`);
    });
  }

  /** The identity svp acts as: `--sid` when given, else the daemon's primary identity. */
  get localSid(): Sid {
    return this.#defaultSid ?? this.primarySid;
  }

  /** The daemon's primary identity (what servald substitutes for the "any" SID). */
  get primarySid(): Sid {
    return this.#primary ?? SID_ANY;
  }

  /** Every identity the daemon has unlocked (the primary first). */
  get identities(): Sid[] {
    return this.#identities.slice();
  }

  get state(): "connecting" | "open" | "down" | "closed" {
    return this.#state;
  }

  /** @internal Runs the handshake: identities and route table, within `timeoutMs`. */
  async start(timeoutMs: number): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#onReady = undefined;
        reject(new SvpError("ERR_MESH_DOWN", `servald at ${this.instance.path} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#onReady = () => {
        timer.cancel();
        resolve();
      };
    });
    // CLOSE on port 0 first: drops whatever a crashed svp left bound under this client name.
    this.#sendControl({ local: { sid: SID_ANY, port: 0 }, remote: { sid: SID_ANY, port: 0 }, flags: MDP_FLAG.CLOSE, qos: 0, ttl: 0 });
    this.#sendControl({ local: { sid: SID_ANY, port: 0 }, remote: { sid: SID_ANY, port: MDP_COMMAND.SEARCH_IDS }, flags: 0, qos: 0, ttl: 0 });
    this.#sendControl({ local: { sid: SID_INTERNAL, port: MDP_COMMAND.ROUTE_TABLE }, remote: { sid: SID_ANY, port: MDP_COMMAND.ROUTE_TABLE }, flags: MDP_FLAG.BIND, qos: 0, ttl: 0 });
    try {
      await ready;
    } catch (err) {
      this.#state = "closed";
      this.#socket.close();
      throw err;
    }
    if (this.#state !== "connecting") throw this.#downError ?? new SvpError("ERR_MESH_DOWN", `servald at ${this.instance.path} went away`);
    if (this.#defaultSid && !this.#identities.some((s) => sidEquals(s, this.#defaultSid!))) {
      this.close();
      throw new SvpError(
        "ERR_BAD_ADDRESS",
        `identity ${sidToHex(this.#defaultSid)} is not unlocked in servald at ${this.instance.path} (unlocked: ${this.#identities.map(sidToHex).join(", ") || "none"})`,
      );
    }
    this.#state = "open";
    this.#scheduleProbe();
  }

  bind(port: number, options: MdpBindOptions = {}): Promise<MdpSocket> {
    if (this.#state !== "open") return Promise.reject(this.#notOpen());
    if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) {
      return Promise.reject(new SvpError("ERR_BAD_ADDRESS", `MDP port ${port} is not a 32-bit unsigned integer`));
    }
    const sid = options.sid && !isSidAny(options.sid) ? options.sid : this.localSid;
    if (sidEquals(sid, SID_INTERNAL)) return Promise.reject(new SvpError("ERR_BAD_ADDRESS", "cannot bind servald's internal SID"));
    const reuse = options.reuse === true;
    if (port !== 0) {
      const existing = this.#bindings.get(key(sid, port)) ?? this.#pending.find((p) => p.port === port && sidEquals(p.sid, sid));
      if (existing) {
        if (!(reuse && existing.reuse)) return Promise.reject(this.#inUse(sid, port));
        if ("sockets" in existing) return Promise.resolve(this.#attach(existing));
      }
    }
    return new Promise<Binding>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#pending = this.#pending.filter((p) => p !== pending);
        reject(new SvpError("ERR_MESH_DOWN", `servald at ${this.instance.path} did not answer a bind of port ${port} within ${this.#requestTimeoutMs} ms`));
      }, this.#requestTimeoutMs);
      const pending: PendingBind = { sid, port, reuse, resolve, reject, timer };
      this.#pending.push(pending);
      this.#sendControl({
        local: { sid, port },
        remote: { sid: SID_ANY, port: MDP_COMMAND.LISTEN },
        flags: MDP_FLAG.BIND | (reuse ? MDP_FLAG.REUSE : 0),
        qos: 0,
        ttl: 0,
      });
    }).then((b) => this.#attach(b));
  }

  reachability(sid: Sid): Reachability {
    if (this.#identities.some((s) => sidEquals(s, sid))) return "reachable";
    const r = this.#routes.get(toHex(sid));
    if (r) return r.reachable & REACHABLE_ROUTABLE ? "reachable" : "unreachable";
    return this.#routesComplete ? "unreachable" : "unknown";
  }

  peers(): Sid[] {
    const out: Sid[] = [];
    for (const r of this.#routes.values()) {
      if (r.reachable & REACHABLE_ROUTABLE && !(r.reachable & REACHABLE.SELF)) out.push(r.sid);
    }
    return out;
  }

  /** The daemon's route table as last received: every node it knows (itself included, flagged SELF). */
  routes(): RouteRecord[] {
    return [...this.#routes.values()];
  }

  /** Releases every binding (one CLOSE for the whole client) and closes the socket. */
  close(): void {
    if (this.#state === "closed" || this.#state === "down") return;
    this.#state = "closed";
    this.#probeTimer?.cancel();
    // local port 0 + CLOSE: servald drops every binding of this client address at once.
    this.#sendNow(encodeMdpDatagram({ local: { sid: SID_ANY, port: 0 }, remote: { sid: SID_ANY, port: 0 }, flags: MDP_FLAG.CLOSE, qos: 0, ttl: 0 }));
    this.#shutdown();
  }

  /** @internal Called by a socket's send(). */
  sendData(b: Binding, to: MdpAddress, payload: Uint8Array, options: MdpSendOptions): void {
    if (this.#state !== "open") return;
    const mode = !options.noCrypt ? "encrypted" : options.noSign ? "plain" : "signed";
    const limit = servaldPayloadLimit(to.port, b.port, mode);
    if (payload.length > limit) {
      // servald would abort or stall on the frame (see FRAME_BUDGET): refuse it here.
      throw new SvpError("ERR_LIMIT", `MDP payload of ${payload.length} bytes exceeds the limit of ${limit} for a ${mode} datagram through servald`);
    }
    const flags = (options.noCrypt ? MDP_FLAG.NO_CRYPT : 0) | (options.noSign ? MDP_FLAG.NO_SIGN : 0);
    this.#send(encodeMdpDatagram({ local: { sid: b.sid, port: b.port }, remote: to, flags, qos: options.qos ?? 0, ttl: options.ttl ?? MDP_TTL_DEFAULT }, payload));
  }

  /** @internal Called by a socket's close(). */
  release(s: ServaldMdpSocket): void {
    const b = s.binding;
    b.sockets.delete(s);
    if (b.sockets.size > 0 || this.#bindings.get(key(b.sid, b.port)) !== b) return;
    this.#bindings.delete(key(b.sid, b.port));
    if (this.#state === "open") {
      this.#sendControl({ local: { sid: b.sid, port: b.port }, remote: { sid: SID_ANY, port: 0 }, flags: MDP_FLAG.CLOSE, qos: 0, ttl: 0 });
    }
  }

  #attach(b: Binding): ServaldMdpSocket {
    const s = new ServaldMdpSocket(this, b);
    b.sockets.add(s);
    return s;
  }

  #inUse(sid: Sid, port: number): SvpError {
    return new SvpError("ERR_NOT_ALLOWED", `MDP port ${port} of ${sidShort(sid)} is already bound`);
  }

  #notOpen(): SvpError {
    return this.#downError ?? new SvpError("ERR_MESH_DOWN", "the servald transport is closed");
  }

  #onDatagram(bytes: Uint8Array): void {
    this.#lastHeard = this.#clock.now();
    this.stats.datagramsReceived++;
    const d = decodeMdpDatagram(bytes, 65536);
    if (!d.ok) {
      this.stats.datagramsDropped++;
      return;
    }
    const { header: h, payload } = d;
    if (sidEquals(h.local.sid, SID_INTERNAL) && h.local.port === MDP_COMMAND.ROUTE_TABLE) return this.#onRoute(h, payload, true);
    if (isSidAny(h.remote.sid)) {
      if (h.remote.port === MDP_COMMAND.SEARCH_IDS) return this.#onIdentity(h, payload);
      if (h.remote.port === MDP_COMMAND.ROUTE_TABLE) return this.#onRoute(h, payload, false);
      if (h.remote.port === MDP_COMMAND.LISTEN) return this.#onBindAnswer(h);
      this.stats.datagramsDropped++;
      return;
    }
    if (h.flags & MDP_FLAG.ERROR) {
      this.stats.sendErrors++;
      return;
    }
    const to = { sid: h.local.sid, port: h.local.port };
    const from = { sid: h.remote.sid, port: h.remote.port };
    let delivered = false;
    const deliverTo = (b: Binding | undefined) => {
      if (!b) return;
      delivered = true;
      for (const s of [...b.sockets]) s.deliver(payload, from, to);
    };
    if (isSidBroadcast(h.local.sid)) {
      for (const b of [...this.#bindings.values()]) if (b.port === h.local.port) deliverTo(b);
    } else {
      deliverTo(this.#bindings.get(key(h.local.sid, h.local.port)) ?? this.#bindings.get(key(SID_BROADCAST, h.local.port)));
    }
    if (!delivered) this.stats.datagramsDropped++;
  }

  #onIdentity(h: MdpHeader, payload: Uint8Array): void {
    if (this.#identitiesDone) return;
    if (h.flags & MDP_FLAG.CLOSE || h.flags & MDP_FLAG.ERROR) {
      // servald put its primary identity where the request said "any".
      this.#primary = h.local.sid.slice();
      this.#identities = [this.#primary, ...this.#searchIds.filter((s) => !sidEquals(s, this.#primary!))];
      this.#identitiesDone = true;
      this.#checkReady();
    } else if (payload.length >= SID_BYTES) {
      this.#searchIds.push(payload.slice(0, SID_BYTES));
    }
  }

  /** Route-table traffic: on the subscription (SID_INTERNAL:5) or answers to a poll. */
  #onRoute(h: MdpHeader, payload: Uint8Array, subscription: boolean): void {
    if (subscription && h.flags & (MDP_FLAG.BIND | MDP_FLAG.ERROR)) {
      if (this.#subscribed === undefined) {
        this.#subscribed = (h.flags & MDP_FLAG.BIND) !== 0;
        if (!this.#subscribed) this.#pollRoutes(); // another client holds the subscription
      }
      return; // otherwise a probe answer: liveness only
    }
    if (h.flags & MDP_FLAG.ERROR) return;
    if (h.flags & MDP_FLAG.CLOSE) {
      if (!subscription && this.#dump) {
        this.#routes = this.#dump;
        this.#dump = undefined;
      }
      this.#routesComplete = true;
      this.#checkReady();
      return;
    }
    const rec = decodeRouteRecord(payload);
    if (!rec) {
      this.stats.datagramsDropped++;
      return;
    }
    (subscription ? this.#routes : (this.#dump ?? this.#routes)).set(toHex(rec.sid), rec);
  }

  #pollRoutes(): void {
    this.#dump = new Map();
    this.#sendControl({ local: { sid: SID_ANY, port: 0 }, remote: { sid: SID_ANY, port: MDP_COMMAND.ROUTE_TABLE }, flags: 0, qos: 0, ttl: 0 });
  }

  #checkReady(): void {
    if (this.#state === "connecting" && this.#identitiesDone && this.#routesComplete) this.#onReady?.();
  }

  #onBindAnswer(h: MdpHeader): void {
    const error = (h.flags & MDP_FLAG.ERROR) !== 0;
    if (!error && !(h.flags & MDP_FLAG.BIND)) return;
    // Answers come in request order; an exact port match wins over an allocation (port 0).
    let i = this.#pending.findIndex((p) => sidEquals(p.sid, h.local.sid) && p.port === h.local.port);
    if (i < 0 && !error) i = this.#pending.findIndex((p) => sidEquals(p.sid, h.local.sid) && p.port === 0);
    if (i < 0) {
      if (error) this.stats.sendErrors++;
      return;
    }
    const [p] = this.#pending.splice(i, 1);
    p!.timer.cancel();
    if (error) {
      const known = this.#identities.some((s) => sidEquals(s, p!.sid));
      p!.reject(
        known
          ? new SvpError("ERR_NOT_ALLOWED", `MDP port ${p!.port} of ${sidShort(p!.sid)} is already bound by another servald client`)
          : new SvpError("ERR_BAD_ADDRESS", `identity ${sidToHex(p!.sid)} is not unlocked in servald at ${this.instance.path}`),
      );
      return;
    }
    const k = key(p!.sid, h.local.port);
    let b = this.#bindings.get(k);
    if (!b) {
      b = { sid: p!.sid, port: h.local.port, reuse: p!.reuse, sockets: new Set() };
      this.#bindings.set(k, b);
    }
    p!.resolve(b);
  }

  #scheduleProbe(): void {
    this.#probeTimer = this.#clock.setTimeout(() => {
      if (this.#state !== "open") return;
      const quiet = this.#clock.now() - this.#lastHeard;
      if (quiet >= this.#deadAfterMs) {
        this.#goDown(`it has not answered for ${Math.round(quiet)} ms`);
        return;
      }
      if (quiet >= this.#probeIntervalMs) {
        // Re-binding the route subscription is answered with BIND; without it, poll the table.
        if (this.#subscribed) {
          this.#sendControl({ local: { sid: SID_INTERNAL, port: MDP_COMMAND.ROUTE_TABLE }, remote: { sid: SID_ANY, port: 0 }, flags: MDP_FLAG.BIND, qos: 0, ttl: 0 });
        } else {
          this.#pollRoutes();
        }
      }
      this.#scheduleProbe();
    }, Math.min(this.#probeIntervalMs, this.#deadAfterMs));
  }

  #sendControl(h: MdpHeader): void {
    this.#send(encodeMdpDatagram(h));
  }

  /** Sends in order: while datagrams wait for the daemon's queue, new ones queue behind them. */
  #send(datagram: Uint8Array): void {
    if (this.#queue.length > 0) {
      this.#enqueue(datagram);
      return;
    }
    const r = this.#sendNow(datagram);
    if (r === "EAGAIN") this.#enqueue(datagram);
  }

  #enqueue(datagram: Uint8Array): void {
    if (this.#queue.length >= this.#maxQueued) {
      this.stats.datagramsDropped++;
      return;
    }
    this.#queue.push(datagram);
    this.stats.datagramsDeferred++;
    if (!this.#waitingWritable) {
      this.#waitingWritable = true;
      this.#socket.wantWritable();
    }
  }

  #flush(): void {
    this.#waitingWritable = false;
    while (this.#queue.length > 0) {
      const r = this.#sendNow(this.#queue[0]!);
      if (r === "EAGAIN") {
        this.#waitingWritable = true;
        this.#socket.wantWritable();
        return;
      }
      this.#queue.shift();
      if (this.#state === "down" || this.#state === "closed") return;
    }
  }

  #sendNow(datagram: Uint8Array): DatagramSendResult {
    const r = this.#socket.send(datagram);
    if (r === "ok") this.stats.datagramsSent++;
    else if (r === "ECONNREFUSED" || r === "ENOENT" || r === "ENOTCONN" || r === "ECONNRESET" || r === "EPIPE" || r === "EBADF") {
      this.#goDown(`its socket is gone (${r})`);
    } else if (r !== "EAGAIN") this.stats.datagramsDropped++;
    return r;
  }

  #goDown(why: string): void {
    if (this.#state === "down" || this.#state === "closed") return;
    const err = new SvpError("ERR_MESH_DOWN", `servald at ${this.instance.path} went away: ${why}`);
    this.#downError = err;
    const wasConnecting = this.#state === "connecting";
    this.#state = "down";
    this.#shutdown(err);
    if (wasConnecting) this.#onReady?.();
    else this.emit("down", err);
  }

  #shutdown(err?: SvpError): void {
    this.#probeTimer?.cancel();
    this.#queue = [];
    for (const p of this.#pending.splice(0)) {
      p.timer.cancel();
      p.reject(err ?? new SvpError("ERR_MESH_DOWN", "the servald transport was closed"));
    }
    const bindings = [...this.#bindings.values()];
    this.#bindings.clear();
    this.#socket.close();
    for (const b of bindings) for (const s of [...b.sockets]) s.finish(err);
  }
}

/**
 * Connects to servald: `options.instance`, else SERVALINSTANCE_PATH, else servald's default
 * run directories in turn. Rejects with ERR_MESH_DOWN when no daemon answers (or the native
 * addon is missing), ERR_USAGE for a bad instance path, ERR_BAD_ADDRESS for a `sid` the daemon
 * has not unlocked.
 */
export async function connectServald(options: ServaldTransportOptions): Promise<ServaldTransport> {
  const instances = resolveInstances({ instance: options.instance, env: options.env ?? {} });
  const failures: string[] = [];
  for (const instance of instances) {
    let socket: DatagramSocket;
    try {
      socket = openClientSocket(options, instance);
    } catch (err) {
      if (err instanceof SvpError && err.code === "ERR_MESH_DOWN") throw err; // the addon is unavailable
      failures.push(err instanceof Error ? err.message : String(err));
      continue;
    }
    const transport = new ServaldTransport(socket, instance, options);
    try {
      await transport.start(options.connectTimeoutMs ?? 3000);
      return transport;
    } catch (err) {
      if (err instanceof SvpError && err.code === "ERR_BAD_ADDRESS") throw err;
      failures.push(err instanceof Error ? err.message : String(err));
    }
  }
  const where = instances.length === 1 ? `instance ${instances[0]!.path}` : `any of ${instances.map((i) => i.path).join(", ")}`;
  throw new SvpError(
    "ERR_MESH_DOWN",
    `no servald answers at ${where} (${failures.join("; ")}); start it with \`servald start\`, or point --servald-instance or SERVALINSTANCE_PATH at its instance directory`,
  );
}

/** The errno name behind a platform error ("EADDRINUSE", …), if any. */
function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; typeof e === "object" && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code) && !code.startsWith("ERR")) return code;
  }
  return undefined;
}

/** Binds the first free `svp.<n>.socket` (autobind when all are taken) and connects to the daemon. */
function openClientSocket(options: ServaldTransportOptions, instance: ServaldInstance): DatagramSocket {
  const abstract = options.abstract ?? true;
  const connect = mdpSocketAddress(instance, abstract);
  for (let slot = 0; slot < CLIENT_SOCKET_SLOTS; slot++) {
    try {
      return options.openSocket({ bind: localSocketAddress(instance.path, clientSocketName(slot), abstract), connect });
    } catch (err) {
      if (errnoOf(err) !== "EADDRINUSE") throw err;
    }
  }
  return options.openSocket({ bind: new Uint8Array(0), connect });
}

export type ServaldProbe =
  | { running: true; instance: ServaldInstance; primarySid: Sid; identities: Sid[]; peers: Sid[] }
  | { running: false; reason: string };

/** Whether a servald answers (for `--mesh auto` and `svp status`). Never throws. */
export async function probeServald(options: ServaldTransportOptions): Promise<ServaldProbe> {
  try {
    const t = await connectServald({ connectTimeoutMs: 1000, ...options });
    const result: ServaldProbe = { running: true, instance: t.instance, primarySid: t.primarySid, identities: t.identities, peers: t.peers() };
    t.close();
    return result;
  } catch (err) {
    return { running: false, reason: err instanceof Error ? err.message : String(err) };
  }
}
