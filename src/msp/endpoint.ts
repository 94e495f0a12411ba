/**
 * One bound MDP socket carrying MSP connections, keyed by the peer's (SID, port): the
 * demultiplexer under both `MspListener` (many incoming connections) and `connectMsp()`
 * (one outgoing connection on its own port, as servald's tools do).
 *
 * - A packet for a known connection goes to it (also while it lingers after closing).
 * - A FIRST packet from an unknown peer becomes a new connection when accepting.
 * - Anything else from an unknown peer is answered with a 1-byte STOP (a STOP is never
 *   answered), as servald does, so a peer that lost its connection learns it at once.
 * - Nothing a peer sends can throw out of here or touch another peer's connection;
 *   drops are counted by reason.
 */

import type { Clock } from "../clock.ts";
import { SvpError } from "../errors.ts";
import type { MdpAddress, MdpSocket } from "../mdp/transport.ts";
import { isSidBroadcast, type Sid, sidEquals } from "../mesh/sid.ts";
import type { MspRole } from "./connection.ts";
import { MspStream } from "./msp-stream.ts";
import type { MspDropReason } from "./packet.ts";
import { MSP_FLAG, decodeMspPacket, encodeMspStop } from "./packet.ts";
import type { MspParams } from "./params.ts";

export interface MspEndpointHooks {
  /** Whether a FIRST packet from an unknown peer may open a connection now. */
  accepting?: () => boolean;
  /** A new incoming connection (its first packet already processed). */
  accept?: (stream: MspStream) => void;
  /** Incoming connections at most (lingering ones included); more are refused with STOP. */
  maxConnections?: number;
  /** The socket closed (after `close()` emptied, `destroy()`, or the transport went away). */
  closed?: (err: SvpError | undefined) => void;
  /** Largest MSP packet for an extended stream to a peer (its path MTU); absent: `params.extMaxPacketBytes`. */
  pathMtu?: ((sid: Sid) => number) | undefined;
}

const STOP = encodeMspStop();

export class MspEndpoint {
  readonly socket: MdpSocket;
  readonly clock: Clock;
  readonly params: MspParams;
  /** Datagrams dropped before reaching a connection, by reason. */
  readonly drops: Partial<Record<MspDropReason, number>> = {};
  readonly #hooks: MspEndpointHooks;
  readonly #byPort = new Map<number, MspStream[]>();
  #count = 0;
  #closeWhenEmpty = false;
  #socketClosed = false;

  constructor(socket: MdpSocket, clock: Clock, params: MspParams, hooks: MspEndpointHooks = {}) {
    this.socket = socket;
    this.clock = clock;
    this.params = params;
    this.#hooks = hooks;
    socket.on("message", this.#onMessage);
    socket.on("close", this.#onSocketClose);
  }

  get local(): MdpAddress {
    return this.socket.local;
  }

  /** Connections known (open, or closed and lingering). */
  get size(): number {
    return this.#count;
  }

  /** Streams, in no particular order (lingering closed ones included). */
  streams(): MspStream[] {
    const out: MspStream[] = [];
    for (const list of this.#byPort.values()) out.push(...list);
    return out;
  }

  /** Create and register a connection to `remote`. */
  open(remote: MdpAddress, role: MspRole, onAnswered?: () => void): MspStream {
    if (this.#socketClosed) throw new SvpError("ERR_MESH_DOWN", "MDP socket closed");
    const socket = this.socket;
    const mtu = this.params.extension ? this.#hooks.pathMtu?.(remote.sid) : undefined;
    const stream = new MspStream({
      role,
      params: mtu !== undefined && mtu !== this.params.extMaxPacketBytes ? { ...this.params, extMaxPacketBytes: mtu } : this.params,
      clock: this.clock,
      local: socket.local,
      remote,
      send: (packet) => socket.send(remote, packet),
      onReleased: (s) => this.#forget(s),
      ...(onAnswered ? { onAnswered } : {}),
    });
    const list = this.#byPort.get(remote.port);
    if (list) list.push(stream);
    else this.#byPort.set(remote.port, [stream]);
    this.#count++;
    return stream;
  }

  /** Close the socket once every connection is released (now, if there is none). */
  closeWhenEmpty(): void {
    this.#closeWhenEmpty = true;
    if (this.#count === 0) this.socket.close();
  }

  /** Abort every connection and close the socket now. */
  destroy(err?: SvpError): void {
    for (const s of this.streams()) s.abort(err);
    this.socket.close();
  }

  readonly #onMessage = (payload: Uint8Array, from: MdpAddress, to: MdpAddress): void => {
    let stream: MspStream | undefined;
    try {
      if (isSidBroadcast(to.sid)) {
        this.#drop("broadcast");
        return;
      }
      stream = this.#find(from);
      const flags = payload.length > 0 ? payload[0]! : 0;
      if (stream) {
        const c = stream.connection;
        // A new connection request from the address of a cleanly finished one: the peer
        // reused its port. (After an abort, a retransmitted request gets STOP again.)
        if (!(c.closed && c.closedCleanly && flags & MSP_FLAG.FIRST && !(flags & MSP_FLAG.STOP) && this.#accepting())) {
          c.receive(payload);
          return;
        }
        c.release();
        stream = undefined;
      }
      if (payload.length === 0) {
        this.#drop("empty");
        return;
      }
      if (flags & MSP_FLAG.STOP) {
        this.#drop("stop-unknown");
        return;
      }
      if (!(flags & MSP_FLAG.FIRST) || !this.#hooks.accept) {
        this.#drop("unknown-connection");
        this.socket.send(from, STOP);
        return;
      }
      const r = decodeMspPacket(payload, this.params.maxPacketBytes);
      if (!r.ok) {
        this.#drop(r.reason);
        return;
      }
      if (!this.#accepting() || this.#count >= (this.#hooks.maxConnections ?? Infinity)) {
        this.#drop("refused");
        this.socket.send(from, STOP);
        return;
      }
      stream = this.open({ sid: from.sid, port: from.port }, "listener");
      stream.connection.receive(payload);
      this.#hooks.accept(stream);
    } catch (err) {
      // A bug, never bad input: contain it to the one connection.
      this.#drop("internal");
      if (stream && !stream.connection.closed) stream.abort(new SvpError("ERR_INTERNAL", `MSP: ${err instanceof Error ? err.message : String(err)}`));
    }
  };

  readonly #onSocketClose = (err?: SvpError): void => {
    if (this.#socketClosed) return;
    this.#socketClosed = true;
    const lost = err ?? new SvpError("ERR_MESH_DOWN", "MDP socket closed");
    for (const s of this.streams()) s.connection.transportLost(lost);
    this.#hooks.closed?.(err);
  };

  #accepting(): boolean {
    return this.#hooks.accept !== undefined && !this.#socketClosed && (this.#hooks.accepting?.() ?? true);
  }

  #find(from: MdpAddress): MspStream | undefined {
    const list = this.#byPort.get(from.port);
    if (!list) return undefined;
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      if (s.remote.sid === from.sid || sidEquals(s.remote.sid, from.sid)) return s;
    }
    return undefined;
  }

  #forget(stream: MspStream): void {
    const list = this.#byPort.get(stream.remote.port);
    if (!list) return;
    const i = list.indexOf(stream);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.#byPort.delete(stream.remote.port);
    this.#count--;
    if (this.#closeWhenEmpty && this.#count === 0 && !this.#socketClosed) this.socket.close();
  }

  #drop(reason: MspDropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }
}
