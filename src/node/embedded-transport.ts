/**
 * The client side of the local API: an `MdpTransport` (kind "embedded") that talks to the
 * daemon over one `ByteStream` (the Unix socket). svp socks/connect/listen use it exactly
 * like any other backend; on top it offers status queries, stopping the daemon, and
 * reporting the client's live MSP streams for `svp status`.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { ERROR_TABLE, type ErrorCode, SvpError } from "../errors.ts";
import { isSidAny, type Sid, SID_ANY, SID_BROADCAST, sidEquals, sidFromHex, sidToHex } from "../mesh/sid.ts";
import type { MdpAddress, MdpBindOptions, MdpSendOptions, MdpSocket, MdpSocketEvents, MdpTransport, MdpTransportEvents, Reachability } from "../mdp/transport.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { isStatusReport, type StatusReport, type StreamStat } from "../status/status-report.ts";
import { API_MAX_STREAMS_FRAME, API_TYPE, API_VERSION, type ApiMessage, decodeApiFrame, encodeApiMessage, FrameDecoder } from "./api-codec.ts";
import { type Defer, FrameBatcher } from "./frame-batcher.ts";
import { bytesKey } from "./bytes-key.ts";

/** Datagrams are dropped (never queued without bound) once this much is waiting to go to the daemon. */
const CLIENT_SEND_QUEUE_LIMIT = 4 * 1024 * 1024;

export interface EmbeddedTransportOptions {
  /** How this client introduces itself (shown by `svp status`), e.g. "svp socks". */
  name: string;
  /** Process id of this client (shown by `svp status`). */
  pid: number;
  clock?: Clock;
  /** Give up on the handshake or a request after this long. Default 10 s. */
  requestTimeoutMs?: number;
  /** When queued frames go to the daemon in one write (see FrameBatcher). Default queueMicrotask. */
  defer?: Defer;
}

interface Pending {
  resolve: (m: ApiMessage) => void;
  reject: (e: SvpError) => void;
  timer: Timer;
}

/** Connect the transport over an already open stream to the daemon; resolves after the handshake. */
export function openEmbeddedTransport(stream: ByteStream, options: EmbeddedTransportOptions): Promise<EmbeddedTransport> {
  const t = new EmbeddedTransport(stream, options);
  return t.ready.then(() => t);
}

export class EmbeddedTransport extends Emitter<MdpTransportEvents> implements MdpTransport {
  readonly kind = "embedded" as const;
  mtu = 1160;
  /** MSP between svp endpoints uses svp's extension (servald's tools still get classic MSP). */
  mspExtension = true;
  /** Set by the handshake. */
  localSid: Sid = SID_ANY;
  /** Every identity of the daemon, primary first. */
  sids: Sid[] = [];
  /** Process id of the daemon. */
  daemonPid = 0;
  /** The daemon's start-up warnings (e.g. same-host discovery off), from its WELCOME. */
  daemonNotes: string[] = [];
  readonly ready: Promise<void>;
  #stream: ByteStream;
  #out: FrameBatcher;
  #o: EmbeddedTransportOptions;
  #clock: Clock;
  #decoder = new FrameDecoder();
  #pending = new Map<number, Pending>();
  #nextReq = 1;
  #sockets = new Map<string, EmbeddedSocket>();
  /** Reachable nodes (hex) with their path MTU and hops, as the daemon tells them. */
  #peers = new Map<string, { mtu: number; hops: number }>();
  /** The largest MDP payload the daemon takes (to its own SIDs). */
  #maxMtu = 1160;
  #down: SvpError | undefined;
  #closed = false;
  #statsTimer: Timer | undefined;

  constructor(stream: ByteStream, options: EmbeddedTransportOptions) {
    super();
    this.#stream = stream;
    this.#out = new FrameBatcher(stream, options.defer);
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    let welcomed!: () => void;
    let failed!: (e: SvpError) => void;
    this.ready = new Promise<void>((res, rej) => {
      welcomed = res;
      failed = rej;
    });
    const timer = this.#clock.setTimeout(() => this.#fail(new SvpError("ERR_TIMEOUT", "the svp daemon did not answer the local API handshake")), this.#timeoutMs);
    this.#welcome = (m) => {
      timer.cancel();
      const j = (m ?? {}) as Record<string, unknown>;
      const primary = typeof j.primary === "string" ? sidFromHex(j.primary) : undefined;
      if (j.version !== API_VERSION || !primary) return this.#fail(new SvpError("ERR_PROTOCOL", "the svp daemon speaks another local API version (restart it with this svp)"));
      this.localSid = primary;
      this.sids = Array.isArray(j.sids) ? j.sids.map((s) => (typeof s === "string" ? sidFromHex(s) : undefined)).filter((s): s is Sid => !!s) : [primary];
      if (typeof j.mtu === "number") this.mtu = j.mtu;
      if (typeof j.pid === "number") this.daemonPid = j.pid;
      if (Array.isArray(j.notes)) this.daemonNotes = j.notes.filter((n): n is string => typeof n === "string");
      if (typeof j.maxMtu === "number" && j.maxMtu >= this.mtu) this.#maxMtu = j.maxMtu;
      if (Array.isArray(j.peers)) for (const p of j.peers) if (typeof p === "string" && p.length === 64) this.#peers.set(p.toUpperCase(), { mtu: this.mtu, hops: 1 });
      if (Array.isArray(j.routes)) {
        for (const r of j.routes) {
          if (Array.isArray(r) && typeof r[0] === "string" && r[0].length === 64 && typeof r[1] === "number" && typeof r[2] === "number") this.#peers.set(r[0].toUpperCase(), { mtu: r[1], hops: r[2] });
        }
      }
      welcomed();
    };
    this.#failReady = (e) => {
      timer.cancel();
      failed(e);
    };
    stream.on("data", (chunk) => this.#onData(chunk));
    stream.on("end", () => this.#fail(new SvpError("ERR_MESH_DOWN", "the svp daemon closed the connection")));
    stream.on("close", (err) => this.#fail(new SvpError("ERR_MESH_DOWN", `lost the connection to the svp daemon${err ? `: ${err.message}` : ""}`)));
    stream.resume();
    // routes: ask for ROUTE messages (path MTU and hops per node) rather than PEER.
    this.#write({ type: API_TYPE.HELLO, json: { version: API_VERSION, pid: options.pid, name: options.name, routes: true } });
  }

  #welcome: (json: unknown) => void;
  #failReady: (e: SvpError) => void;

  get #timeoutMs(): number {
    return this.#o.requestTimeoutMs ?? 10_000;
  }

  /** Bound MDP sockets still open (the transport's own accounting; 0 when every stream has finished). */
  get socketCount(): number {
    return this.#sockets.size;
  }

  get isDown(): boolean {
    return this.#down !== undefined;
  }

  async bind(port: number, options: MdpBindOptions = {}): Promise<MdpSocket> {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) throw new SvpError("ERR_BAD_ADDRESS", `invalid MDP port ${port}`);
    const sid = options.sid ?? SID_ANY;
    const reply = await this.#request((reqId) => ({ type: API_TYPE.BIND, reqId, port, reuse: options.reuse ?? false, sid }));
    if (reply.type !== API_TYPE.BOUND) throw new SvpError("ERR_PROTOCOL", "unexpected answer to bind");
    const sock = new EmbeddedSocket(this, { sid: reply.sid, port: reply.port });
    this.#sockets.set(socketKey(reply.sid, reply.port), sock);
    return sock;
  }

  /** Reachable: one of the daemon's SIDs, or any node it has a route to (a neighbour or further). */
  reachability(sid: Sid): Reachability {
    if (this.#down) return "unreachable";
    if (this.sids.some((s) => sidEquals(s, sid))) return "reachable";
    return this.#peers.has(sidToHex(sid)) ? "reachable" : "unreachable";
  }

  /** Every reachable node (neighbours and nodes further away). */
  peers(): Sid[] {
    return [...this.#peers.keys()].map((h) => sidFromHex(h)!);
  }

  /** Largest MDP payload that reaches `sid` now: the daemon's own SIDs, the largest it takes; unknown, `mtu`. */
  pathMtu(sid: Sid): number {
    if (this.sids.some((s) => sidEquals(s, sid))) return this.#maxMtu;
    return this.#peers.get(sidToHex(sid))?.mtu ?? this.mtu;
  }

  /** Hops to `sid` as the daemon last said (undefined: unreachable or unknown). */
  hops(sid: Sid): number | undefined {
    return this.#peers.get(sidToHex(sid))?.hops;
  }

  /** The daemon's status document. */
  async status(): Promise<StatusReport> {
    const reply = await this.#request((reqId) => ({ type: API_TYPE.STATUS, reqId }));
    if (reply.type !== API_TYPE.STATUS_REPLY || !isStatusReport(reply.json)) throw new SvpError("ERR_PROTOCOL", "the svp daemon sent a malformed status document");
    return reply.json;
  }

  /** Ask the daemon to stop; resolves when it acknowledged (it exits right after). */
  async shutdownDaemon(): Promise<void> {
    await this.#request((reqId) => ({ type: API_TYPE.SHUTDOWN, reqId }));
  }

  /**
   * Replace this client's list of live MSP streams shown by `svp status`. A list too long
   * for the daemon's STREAMS frame limit (thousands of streams) is cut to what fits.
   */
  reportStreams(stats: StreamStat[]): void {
    let list = stats;
    for (;;) {
      const frame = encodeApiMessage({ type: API_TYPE.STREAMS, json: list });
      if (frame.length - 4 <= API_MAX_STREAMS_FRAME || list.length === 0) {
        if (this.#stream.writable) this.#out.push(frame);
        return;
      }
      list = list.slice(0, Math.floor((list.length * API_MAX_STREAMS_FRAME) / (frame.length - 4) * 0.95));
    }
  }

  /**
   * Report `provider()` now and every `intervalMs` (default 1 s) until the transport
   * closes or another provider is set (undefined stops reporting).
   */
  setStreamStatsProvider(provider: (() => StreamStat[]) | undefined, intervalMs = 1000): void {
    this.#statsTimer?.cancel();
    this.#statsTimer = undefined;
    if (!provider) return;
    const tick = () => {
      if (this.#down || this.#closed) return;
      this.reportStreams(provider());
      this.#statsTimer = this.#clock.setTimeout(tick, intervalMs);
    };
    tick();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#statsTimer?.cancel();
    for (const s of [...this.#sockets.values()]) s._closed(undefined);
    this.#sockets.clear();
    this.#rejectAll(new SvpError("ERR_ABORTED", "transport closed"));
    this.#out.flush();
    this.#stream.closeWrite();
    // Do not wait for the daemon to answer the half-close: the process may be exiting.
    this.#clock.setTimeout(() => this.#stream.abort(), 0);
  }

  /** @internal used by EmbeddedSocket */
  _send(from: MdpAddress, to: MdpAddress, payload: Uint8Array): void {
    if (this.#down || this.#closed) return;
    if (payload.length > this.#maxMtu) return;
    if (this.#out.queuedBytes > CLIENT_SEND_QUEUE_LIMIT) return;
    this.#write({ type: API_TYPE.SEND, sid: from.sid, port: from.port, remoteSid: to.sid, remotePort: to.port, payload });
  }

  /** @internal */
  _unbind(s: EmbeddedSocket): void {
    const key = socketKey(s.local.sid, s.local.port);
    if (this.#sockets.get(key) !== s) return;
    this.#sockets.delete(key);
    if (!this.#down && !this.#closed) this.#write({ type: API_TYPE.UNBIND, sid: s.local.sid, port: s.local.port });
  }

  #write(m: ApiMessage): void {
    if (this.#stream.writable) this.#out.push(encodeApiMessage(m));
  }

  #request(make: (reqId: number) => ApiMessage): Promise<ApiMessage> {
    if (this.#down) return Promise.reject(this.#down);
    if (this.#closed) return Promise.reject(new SvpError("ERR_ABORTED", "transport closed"));
    const reqId = this.#nextReq++;
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#pending.delete(reqId);
        reject(new SvpError("ERR_TIMEOUT", "the svp daemon did not answer in time"));
      }, this.#timeoutMs);
      this.#pending.set(reqId, { resolve, reject, timer });
      this.#write(make(reqId));
    });
  }

  #onData(chunk: Uint8Array): void {
    const { frames, error } = this.#decoder.push(chunk);
    for (const f of frames) {
      const m = decodeApiFrame(f);
      if (typeof m === "string") return this.#protocolError(m);
      this.#dispatch(m);
    }
    if (error) this.#protocolError(error);
  }

  #protocolError(why: string): void {
    const e = new SvpError("ERR_PROTOCOL", `bad message from the svp daemon: ${why}`);
    this.#fail(e);
    this.#stream.abort(e);
  }

  #dispatch(m: ApiMessage): void {
    switch (m.type) {
      case API_TYPE.WELCOME:
        return this.#welcome(m.json);
      case API_TYPE.DELIVER: {
        const s = this.#sockets.get(socketKey(m.sid, m.port));
        if (!s) return;
        s._message(m.payload, { sid: m.remoteSid, port: m.remotePort }, { sid: m.broadcast ? SID_BROADCAST : m.sid, port: m.port });
        return;
      }
      case API_TYPE.PEER:
        if (m.up) this.#peers.set(sidToHex(m.sid), { mtu: this.mtu, hops: 1 });
        else this.#peers.delete(sidToHex(m.sid));
        return;
      case API_TYPE.ROUTE:
        if (m.up) this.#peers.set(sidToHex(m.sid), { mtu: m.mtu, hops: m.hops });
        else this.#peers.delete(sidToHex(m.sid));
        return;
      case API_TYPE.BOUND:
      case API_TYPE.STATUS_REPLY:
      case API_TYPE.OK:
      case API_TYPE.ERROR: {
        if (m.type === API_TYPE.ERROR && m.reqId === 0) {
          // No request's answer: the daemon refused or is disconnecting this client, and says why.
          const j = (m.json ?? {}) as Record<string, unknown>;
          const code = typeof j.code === "string" && j.code in ERROR_TABLE ? (j.code as ErrorCode) : "ERR_MESH_DOWN";
          return this.#fail(new SvpError(code, typeof j.message === "string" ? j.message : "the svp daemon disconnected this client"));
        }
        const p = this.#pending.get(m.reqId);
        if (!p) return;
        this.#pending.delete(m.reqId);
        p.timer.cancel();
        if (m.type === API_TYPE.ERROR) {
          const j = (m.json ?? {}) as Record<string, unknown>;
          const code = typeof j.code === "string" && j.code in ERROR_TABLE ? (j.code as ErrorCode) : "ERR_INTERNAL";
          p.reject(new SvpError(code, typeof j.message === "string" ? j.message : undefined));
        } else p.resolve(m);
        return;
      }
      default:
        return this.#protocolError(`unexpected message type ${m.type}`);
    }
  }

  #rejectAll(e: SvpError): void {
    for (const p of this.#pending.values()) {
      p.timer.cancel();
      p.reject(e);
    }
    this.#pending.clear();
  }

  #fail(e: SvpError): void {
    if (this.#down) return;
    this.#down = e;
    this.#statsTimer?.cancel();
    this.#failReady(e);
    this.#rejectAll(e);
    const sockets = [...this.#sockets.values()];
    this.#sockets.clear();
    this.#peers.clear();
    if (!this.#closed) {
      for (const s of sockets) s._closed(e);
      this.emit("down", e);
    }
    if (!this.#stream.closed) this.#stream.abort();
  }
}

class EmbeddedSocket extends Emitter<MdpSocketEvents> implements MdpSocket {
  readonly local: MdpAddress;
  #t: EmbeddedTransport;
  #closed = false;

  constructor(t: EmbeddedTransport, local: MdpAddress) {
    super();
    this.#t = t;
    this.local = local;
  }

  send(to: MdpAddress, payload: Uint8Array, _options?: MdpSendOptions): void {
    if (this.#closed) return;
    this.#t._send(this.local, to, payload);
  }

  close(): void {
    if (this.#closed) return;
    this.#t._unbind(this);
    this._closed(undefined);
  }

  /** @internal */
  _message(payload: Uint8Array, from: MdpAddress, to: MdpAddress): void {
    if (!this.#closed) this.emit("message", payload, from, to);
  }

  /** @internal */
  _closed(err: SvpError | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close", err);
  }
}

/** Key of a bound socket (looked up for every datagram; see bytes-key.ts). */
function socketKey(sid: Sid, port: number): string {
  return (isSidAny(sid) ? "any:" : bytesKey(sid)) + port;
}
