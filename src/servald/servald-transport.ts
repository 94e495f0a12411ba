/**
 * The servald backend: an `MdpTransport` over a running Serval daemon's local MDP v2 socket.
 *
 * One datagram socket per transport (autobound, connected to the daemon's `mdp.2.socket`)
 * carries every binding; this class runs the connection: the handshake, demultiplexing of
 * received datagrams, liveness, and going down. Its parts live beside it:
 * - the bindings and bind requests: `ServaldBindings` (servald-bindings.ts);
 * - the daemon's unlocked identities (MDP_SEARCH_IDS; the primary one is the SID servald puts
 *   in place of the "any" SID), for `localSid` and `--sid`: `IdentitySearch`;
 * - its route table, for `reachability()` and `peers()`: `ServaldRouteTable`;
 * - the ordered, EAGAIN-aware send path: `DatagramSender`; payload limits: servald-payload-limit.ts.
 * Liveness: every datagram from the daemon counts; when it has been quiet for
 * `probeIntervalMs` the transport re-binds SID_INTERNAL:5 (answered with BIND) or polls the
 * route table. A send that finds the socket gone (servald stopped or restarted: the connected
 * peer is dead) or `deadAfterMs` of silence takes the transport down: every socket closes
 * with ERR_MESH_DOWN and `down` is emitted. Connect with `connectServald()` (connect-servald.ts).
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { SvpError } from "../errors.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_ANY, isSidAny, sidEquals, sidToHex } from "../mesh/sid.ts";
import { MDP_FLAG, MDP_TTL_DEFAULT, decodeMdpDatagram, encodeMdpDatagram } from "../mdp/header.ts";
import type { MdpHeader } from "../mdp/header.ts";
import type { MdpAddress, MdpBindOptions, MdpSendOptions, MdpSocket, MdpTransport, MdpTransportEvents, Reachability } from "../mdp/transport.ts";
import type { DatagramSocket, OpenDatagramSocket } from "./datagram-socket.ts";
import { DatagramSender } from "./datagram-sender.ts";
import { errnoOf } from "./errno-of.ts";
import { IdentitySearch } from "./identity-search.ts";
import type { ServaldInstance } from "./instance.ts";
import { MDP_COMMAND, MDP_NO_ADDRESS, SID_INTERNAL, controlHeader } from "./mdp-command.ts";
import type { RouteRecord } from "./route-record.ts";
import { ServaldBindings } from "./servald-bindings.ts";
import type { Binding, ServaldMdpSocket } from "./servald-mdp-socket.ts";
import { SERVALD_MSP_WINDOW, SERVALD_MTU, servaldPayloadLimit } from "./servald-payload-limit.ts";
import { ServaldRouteTable } from "./servald-route-table.ts";

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
  readonly #probeIntervalMs: number;
  readonly #deadAfterMs: number;
  readonly #sender: DatagramSender;
  readonly #ids = new IdentitySearch();
  readonly #routes: ServaldRouteTable;
  readonly #bindings: ServaldBindings;
  #defaultSid: Sid | undefined;
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
    this.#probeIntervalMs = options.probeIntervalMs ?? 1000;
    this.#deadAfterMs = options.deadAfterMs ?? 5000;
    this.#defaultSid = options.sid;
    this.#lastHeard = this.#clock.now();
    this.#sender = new DatagramSender(socket, {
      maxQueued: options.maxQueuedDatagrams ?? 1024,
      stats: this.stats,
      onGone: (errno) => this.#goDown(`its socket is gone (${errno})`),
    });
    this.#routes = new ServaldRouteTable(() => this.#sendControl(controlHeader(MDP_NO_ADDRESS, { sid: SID_ANY, port: MDP_COMMAND.ROUTE_TABLE })));
    this.#bindings = new ServaldBindings({
      owner: this,
      clock: this.#clock,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      instancePath: instance.path,
      requestBind: (sid, port, reuse) =>
        this.#sendControl(controlHeader({ sid, port }, { sid: SID_ANY, port: MDP_COMMAND.LISTEN }, MDP_FLAG.BIND | (reuse ? MDP_FLAG.REUSE : 0))),
      isIdentity: (sid) => this.#ids.has(sid),
    });
    socket.on("message", (data) => this.#onDatagram(data));
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
    return this.#ids.primary ?? SID_ANY;
  }

  /** Every identity the daemon has unlocked (the primary first). */
  get identities(): Sid[] {
    return this.#ids.identities.slice();
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
    this.#sendControl(controlHeader(MDP_NO_ADDRESS, MDP_NO_ADDRESS, MDP_FLAG.CLOSE));
    this.#sendControl(controlHeader(MDP_NO_ADDRESS, { sid: SID_ANY, port: MDP_COMMAND.SEARCH_IDS }));
    this.#sendControl(controlHeader({ sid: SID_INTERNAL, port: MDP_COMMAND.ROUTE_TABLE }, { sid: SID_ANY, port: MDP_COMMAND.ROUTE_TABLE }, MDP_FLAG.BIND));
    try {
      await ready;
    } catch (err) {
      this.#state = "closed";
      this.#socket.close();
      throw err;
    }
    if (this.#state !== "connecting") throw this.#downError ?? new SvpError("ERR_MESH_DOWN", `servald at ${this.instance.path} went away`);
    if (this.#defaultSid && !this.#ids.has(this.#defaultSid)) {
      this.close();
      throw new SvpError(
        "ERR_BAD_ADDRESS",
        `identity ${sidToHex(this.#defaultSid)} is not unlocked in servald at ${this.instance.path} (unlocked: ${this.#ids.identities.map(sidToHex).join(", ") || "none"})`,
      );
    }
    this.#state = "open";
    this.#scheduleProbe();
  }

  bind(port: number, options: MdpBindOptions = {}): Promise<MdpSocket> {
    if (this.#state !== "open") return Promise.reject(this.#notOpen());
    const sid = options.sid && !isSidAny(options.sid) ? options.sid : this.localSid;
    return this.#bindings.bind(sid, port, options.reuse === true);
  }

  reachability(sid: Sid): Reachability {
    if (this.#ids.has(sid)) return "reachable";
    return this.#routes.reachability(sid);
  }

  peers(): Sid[] {
    return this.#routes.peers();
  }

  /** The daemon's route table as last received: every node it knows (itself included, flagged SELF). */
  routes(): RouteRecord[] {
    return this.#routes.records();
  }

  /** Releases every binding (one CLOSE for the whole client) and closes the socket. */
  close(): void {
    if (this.#state === "closed" || this.#state === "down") return;
    this.#state = "closed";
    this.#probeTimer?.cancel();
    // local port 0 + CLOSE: servald drops every binding of this client address at once.
    this.#sender.sendNow(encodeMdpDatagram(controlHeader(MDP_NO_ADDRESS, MDP_NO_ADDRESS, MDP_FLAG.CLOSE)));
    this.#shutdown();
  }

  /** @internal Called by a socket's send(). */
  sendData(b: Binding, to: MdpAddress, payload: Uint8Array, options: MdpSendOptions): void {
    if (this.#state !== "open") return;
    const mode = !options.noCrypt ? "encrypted" : options.noSign ? "plain" : "signed";
    const limit = servaldPayloadLimit(to.port, b.port, mode);
    if (payload.length > limit) {
      // servald would abort or stall on the frame (see servald-payload-limit.ts): refuse it here.
      throw new SvpError("ERR_LIMIT", `MDP payload of ${payload.length} bytes exceeds the limit of ${limit} for a ${mode} datagram through servald`);
    }
    const flags = (options.noCrypt ? MDP_FLAG.NO_CRYPT : 0) | (options.noSign ? MDP_FLAG.NO_SIGN : 0);
    this.#sender.send(encodeMdpDatagram({ local: { sid: b.sid, port: b.port }, remote: to, flags, qos: options.qos ?? 0, ttl: options.ttl ?? MDP_TTL_DEFAULT }, payload));
  }

  /** @internal Called by a socket's close(). */
  release(s: ServaldMdpSocket): void {
    const b = s.binding;
    if (this.#bindings.release(s) && this.#state === "open") {
      this.#sendControl(controlHeader({ sid: b.sid, port: b.port }, MDP_NO_ADDRESS, MDP_FLAG.CLOSE));
    }
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
      if (h.remote.port === MDP_COMMAND.SEARCH_IDS) {
        if (this.#ids.onDatagram(h, payload)) this.#checkReady();
        return;
      }
      if (h.remote.port === MDP_COMMAND.ROUTE_TABLE) return this.#onRoute(h, payload, false);
      if (h.remote.port === MDP_COMMAND.LISTEN) {
        if (!this.#bindings.onAnswer(h)) this.stats.sendErrors++;
        return;
      }
      this.stats.datagramsDropped++;
      return;
    }
    if (h.flags & MDP_FLAG.ERROR) {
      this.stats.sendErrors++;
      return;
    }
    const to = { sid: h.local.sid, port: h.local.port };
    const from = { sid: h.remote.sid, port: h.remote.port };
    const targets = this.#bindings.targets(to);
    for (const b of targets) for (const s of [...b.sockets]) s.deliver(payload, from, to);
    if (targets.length === 0) this.stats.datagramsDropped++;
  }

  #onRoute(h: MdpHeader, payload: Uint8Array, subscription: boolean): void {
    const r = this.#routes.onDatagram(h, payload, subscription);
    if (r === "complete") this.#checkReady();
    else if (r === "malformed") this.stats.datagramsDropped++;
  }

  #checkReady(): void {
    if (this.#state === "connecting" && this.#ids.done && this.#routes.complete) this.#onReady?.();
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
        if (this.#routes.subscribed) {
          this.#sendControl(controlHeader({ sid: SID_INTERNAL, port: MDP_COMMAND.ROUTE_TABLE }, MDP_NO_ADDRESS, MDP_FLAG.BIND));
        } else {
          this.#routes.poll();
        }
      }
      this.#scheduleProbe();
    }, Math.min(this.#probeIntervalMs, this.#deadAfterMs));
  }

  #sendControl(h: MdpHeader): void {
    this.#sender.send(encodeMdpDatagram(h));
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
    this.#sender.clear();
    this.#bindings.failPending(err ?? new SvpError("ERR_MESH_DOWN", "the servald transport was closed"));
    const bindings = this.#bindings.detachAll();
    this.#socket.close();
    for (const b of bindings) for (const s of [...b.sockets]) s.finish(err);
  }
}
