/**
 * `svp listen`: accept MSP connections on one MDP port and connect each to a local target
 * (a TCP forward, a program, or stdin/stdout), relaying both ways.
 *
 * Per connection, in this order:
 * 1. a caller not in `allow` is stopped (STOP: the caller sees "refused") and logged;
 * 2. the target is opened **before anything is sent back**: only when it is there is the
 *    MSP connection answered, so a failed forward reaches the caller as STOP (refused),
 *    never as an accepted connection that closes at once;
 * 3. with `proxyProtocol`, the target first gets a PROXY v2 header naming the caller
 *    (src/service/proxy-v2.ts);
 * 4. the relay carries both directions with backpressure and half-close.
 * Each connection ends with one `connection` record (caller, outcome, bytes, duration).
 *
 * `once`: the first allowed caller is the only one (later ones are refused); the service
 * then ends with that connection's outcome. With `service`, discovery on port 11 answers
 * for it (src/service/discovery.ts) while new connections are accepted.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError, toSvpError } from "../errors.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { isSidAny, sidEquals, sidToHex } from "../mesh/sid.ts";
import type { MspListener } from "../msp/listener.ts";
import { listenMsp } from "../msp/listener.ts";
import type { MspStream } from "../msp/msp-stream.ts";
import type { MspOptions } from "../msp/params.ts";
import { Bridge } from "../relay/bridge.ts";
import type { BridgeEvents, BridgeRecord, BridgeResult } from "../relay/bridge.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import type { ServiceResponder } from "./discovery.ts";
import { startServiceResponder } from "./discovery.ts";
import type { MeshSession } from "./mesh-session.ts";
import { encodeProxyV2 } from "./proxy-v2.ts";
import { DEFAULTS } from "../defaults.ts";

/** Opens the local end for one caller; rejects (refused, timeout…) when it cannot. Must honour `signal`. */
export type OpenTarget = (caller: MdpAddress, signal: AbortSignal) => Promise<ByteStream>;

export interface ListenServiceOptions {
  /** MDP port to listen on (1–4294967295). */
  port: number;
  open: OpenTarget;
  /** The target for log lines: "127.0.0.1:8000", "exec: sort", "stdio". */
  targetLabel: string;
  /** Only these callers; undefined = anyone. */
  allow?: Sid[] | undefined;
  once?: boolean | undefined;
  proxyProtocol?: boolean | undefined;
  /** Answer service discovery for this name. */
  service?: string | undefined;
  /**
   * Port 11 could not be bound (servald lets only one client per node bind it, so a second
   * service there cannot answer discovery). Given this callback, the service runs without
   * answering discovery and is told why; without it, starting fails.
   */
  onDiscoveryUnavailable?: ((err: SvpError) => void) | undefined;
  clock?: Clock | undefined;
  /** Give up opening the target after this long, ms. Default 10 000. */
  openTimeoutMs?: number | undefined;
  /** Close a connection when no byte moved either way for this long, ms; 0 = never (default). */
  idleTimeoutMs?: number | undefined;
  msp?: MspOptions | undefined;
  /** Connections at most; more are refused. Default 1024. */
  maxConnections?: number | undefined;
}

/** One line of the per-connection log. */
export interface ListenRecord extends BridgeRecord {
  /** Caller's SID, 64 hex digits. */
  peerSid: string;
  peerPort: number;
  target: string;
}

/**
 * How the service ended: "closed" (close() was called), "once" (the one connection of
 * `once` finished; `error` is its failure), "down" (the mesh backend went away).
 */
export type ListenResult = BridgeResult;

export type ListenServiceEvents = BridgeEvents<ListenRecord>;

/**
 * The listen service: the MSP listener (and the discovery responder) in front of a
 * `Bridge` that opens the target for each caller and relays.
 */
export class ListenService {
  readonly #listener: MspListener;
  readonly #responder: ServiceResponder | undefined;
  readonly #session: MeshSession;
  readonly #allow: Sid[] | undefined;
  readonly #bridge: Bridge<ListenRecord>;
  readonly #targetLabel: string;
  /** Resolves when the service has ended (see ListenResult); never rejects. */
  readonly done: Promise<ListenResult>;

  /** @internal Use `startListenService()`. */
  constructor(listener: MspListener, responder: ServiceResponder | undefined, session: MeshSession, options: ListenServiceOptions) {
    this.#listener = listener;
    this.#responder = responder;
    this.#session = session;
    this.#allow = options.allow;
    this.#targetLabel = options.targetLabel;
    const timeoutMs = options.openTimeoutMs ?? DEFAULTS.listenOpenTimeoutMs;
    this.#bridge = new Bridge<ListenRecord>({
      open: (caller, signal) => options.open((caller as MspStream).remote, signal),
      openTimeoutMs: timeoutMs,
      openTimeoutMessage: `${options.targetLabel} did not connect within ${Math.round(timeoutMs / 100) / 10} s`,
      beforeRelay: options.proxyProtocol
        ? (caller, target) => {
            const remote = (caller as MspStream).remote;
            const local = this.local;
            target.write(encodeProxyV2({ peerSid: remote.sid, peerPort: remote.port, localSid: local.sid, localPort: local.port }));
          }
        : undefined,
      idleTimeoutMs: options.idleTimeoutMs,
      once: options.once,
      clock: options.clock,
      onEnd: (result) => {
        this.#responder?.close();
        if (result.reason !== "closed") this.#listener.close();
      },
    });
    this.done = this.#bridge.done;
    listener.on("accept", (s) => this.#onAccept(s));
    listener.on("close", (err) => {
      this.#responder?.close();
      if (err) this.#bridge.end({ reason: "down", error: err });
    });
  }

  on(event: "connection", fn: (record: ListenRecord) => void): this {
    this.#bridge.on(event, fn);
    return this;
  }

  /** The bound address: this node's SID and the MDP port. */
  get local(): MdpAddress {
    const l = this.#listener.local;
    return isSidAny(l.sid) ? { sid: this.#session.sid ?? this.#session.transport.localSid, port: l.port } : l;
  }

  /** Connections being opened or relayed. */
  get connections(): number {
    return this.#bridge.connections;
  }

  /**
   * Stop accepting (new callers are refused), abandon targets still being opened, let live
   * connections finish for up to `drainMs`, then abort them. Resolves when all are gone.
   */
  async close(drainMs: number = DEFAULTS.drainMs): Promise<void> {
    this.#listener.close();
    this.#responder?.close();
    await this.#bridge.close(drainMs);
  }

  #onAccept(s: MspStream): void {
    this.#session.streams.add(s);
    const record: ListenRecord = { peerSid: sidToHex(s.remote.sid), peerPort: s.remote.port, target: this.#targetLabel, outcome: "ok", up: 0, down: 0, durationMs: 0 };
    const refuse = callerRefusal(this.#allow, s.remote.sid);
    this.#bridge.handle(s, record, refuse);
    // --once: the one caller is taken; stop listening (and answering discovery) now.
    if (!this.#bridge.accepting) {
      this.#listener.close();
      this.#responder?.close();
    }
  }
}

/**
 * Why a caller is refused (`ERR_NOT_ALLOWED`), or undefined when `allow` admits it
 * (undefined `allow` = anyone). The one allow check of `svp listen` and the library's `listen`.
 */
export function callerRefusal(allow: readonly Sid[] | undefined, caller: Sid): SvpError | undefined {
  if (!allow || allow.some((sid) => sidEquals(sid, caller))) return undefined;
  return new SvpError("ERR_NOT_ALLOWED", `caller ${sidToHex(caller)} is not allowed (--allow)`);
}

/** What `bindListenPort` needs: the port, and what `ListenServiceOptions` says about discovery, MSP and limits. */
export type ListenPortOptions = Pick<ListenServiceOptions, "port" | "service" | "onDiscoveryUnavailable" | "clock" | "msp" | "maxConnections">;

/**
 * Bind the MDP port (on the session's identity) and, for `service`, the discovery
 * responder on port 11. Shared by `startListenService` and the library's `listen`.
 */
export async function bindListenPort(session: MeshSession, options: ListenPortOptions): Promise<{ listener: MspListener; responder: ServiceResponder | undefined }> {
  const clock = options.clock ?? systemClock;
  const listener = await listenMsp(session.transport, options.port, {
    ...options.msp,
    clock,
    ...(session.sid ? { sid: session.sid } : {}),
    ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
  });
  let responder: ServiceResponder | undefined;
  if (options.service !== undefined) {
    try {
      responder = await startServiceResponder(session.transport, { service: options.service, port: listener.local.port, sid: session.sid, clock });
    } catch (err) {
      const e = toSvpError(err);
      if (e.code === "ERR_NOT_ALLOWED" && options.onDiscoveryUnavailable) options.onDiscoveryUnavailable(e);
      else {
        listener.abort();
        throw e;
      }
    }
  }
  return { listener, responder };
}

/** Bind the port (and port 11 for `service`) and start serving. */
export async function startListenService(session: MeshSession, options: ListenServiceOptions): Promise<ListenService> {
  const { listener, responder } = await bindListenPort(session, options);
  return new ListenService(listener, responder, session, options);
}
