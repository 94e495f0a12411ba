/**
 * The client's MDP ports on the daemon: which (SID, port) pairs are bound, which bind
 * requests wait for their answer, how an answer is matched to its request, and which
 * bindings a received datagram is for. It sends nothing itself: the BIND request goes out
 * through `requestBind`, and the owner sends the CLOSE when `release` frees a port.
 */

import type { Clock, Timer } from "../clock.ts";
import { SvpError } from "../errors.ts";
import { toHex } from "../bytes/hex.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_BROADCAST, isSidBroadcast, sidEquals, sidShort, sidToHex } from "../mesh/sid.ts";
import { MDP_FLAG } from "../mdp/header.ts";
import type { MdpHeader } from "../mdp/header.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import { SID_INTERNAL } from "./mdp-command.ts";
import { ServaldMdpSocket } from "./servald-mdp-socket.ts";
import type { Binding, BindingOwner } from "./servald-mdp-socket.ts";

export interface ServaldBindingsOptions {
  /** The transport the sockets send and release through. */
  owner: BindingOwner;
  clock: Clock;
  /** How long a bind may wait for its answer (ms); then it fails with ERR_MESH_DOWN. */
  requestTimeoutMs: number;
  /** The daemon's instance directory, for messages. */
  instancePath: string;
  /** Send the daemon a BIND (with REUSE when asked) for (sid, port); port 0 asks it to allocate one. */
  requestBind: (sid: Sid, port: number, reuse: boolean) => void;
  /** Whether the daemon has `sid` unlocked: tells "port taken" from "unknown identity" in an ERROR answer. */
  isIdentity: (sid: Sid) => boolean;
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

export class ServaldBindings {
  readonly #o: ServaldBindingsOptions;
  #bindings = new Map<string, Binding>();
  #pending: PendingBind[] = [];

  constructor(options: ServaldBindingsOptions) {
    this.#o = options;
  }

  /** Bound (SID, port) pairs (not counting requests still waiting). */
  get size(): number {
    return this.#bindings.size;
  }

  /**
   * A socket on (sid, port): a new binding from the daemon, or another socket on an existing
   * one when both ask for REUSE. Rejects ERR_BAD_ADDRESS (port out of range, servald's
   * internal SID, an identity the daemon has not unlocked), ERR_NOT_ALLOWED (bound here or by
   * another client), ERR_MESH_DOWN (no answer within `requestTimeoutMs`).
   */
  bind(sid: Sid, port: number, reuse: boolean): Promise<ServaldMdpSocket> {
    if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) {
      return Promise.reject(new SvpError("ERR_BAD_ADDRESS", `MDP port ${port} is not a 32-bit unsigned integer`));
    }
    if (sidEquals(sid, SID_INTERNAL)) return Promise.reject(new SvpError("ERR_BAD_ADDRESS", "cannot bind servald's internal SID"));
    if (port !== 0) {
      const existing = this.#bindings.get(key(sid, port)) ?? this.#pending.find((p) => p.port === port && sidEquals(p.sid, sid));
      if (existing) {
        if (!(reuse && existing.reuse)) return Promise.reject(new SvpError("ERR_NOT_ALLOWED", `MDP port ${port} of ${sidShort(sid)} is already bound`));
        if ("sockets" in existing) return Promise.resolve(this.#attach(existing));
      }
    }
    return new Promise<Binding>((resolve, reject) => {
      const timer = this.#o.clock.setTimeout(() => {
        this.#pending = this.#pending.filter((p) => p !== pending);
        reject(new SvpError("ERR_MESH_DOWN", `servald at ${this.#o.instancePath} did not answer a bind of port ${port} within ${this.#o.requestTimeoutMs} ms`));
      }, this.#o.requestTimeoutMs);
      const pending: PendingBind = { sid, port, reuse, resolve, reject, timer };
      this.#pending.push(pending);
      this.#o.requestBind(sid, port, reuse);
    }).then((b) => this.#attach(b));
  }

  /**
   * The daemon's answer to a bind (BIND with the bound address, or ERROR). Answers come in
   * request order; an exact port match wins over an allocation (port 0). Returns false for an
   * ERROR that matches no request (the owner counts it as a send error).
   */
  onAnswer(h: MdpHeader): boolean {
    const error = (h.flags & MDP_FLAG.ERROR) !== 0;
    if (!error && !(h.flags & MDP_FLAG.BIND)) return true;
    let i = this.#pending.findIndex((p) => sidEquals(p.sid, h.local.sid) && p.port === h.local.port);
    if (i < 0 && !error) i = this.#pending.findIndex((p) => sidEquals(p.sid, h.local.sid) && p.port === 0);
    if (i < 0) return !error;
    const p = this.#pending.splice(i, 1)[0]!;
    p.timer.cancel();
    if (error) {
      p.reject(
        this.#o.isIdentity(p.sid)
          ? new SvpError("ERR_NOT_ALLOWED", `MDP port ${p.port} of ${sidShort(p.sid)} is already bound by another servald client`)
          : new SvpError("ERR_BAD_ADDRESS", `identity ${sidToHex(p.sid)} is not unlocked in servald at ${this.#o.instancePath}`),
      );
      return true;
    }
    const k = key(p.sid, h.local.port);
    let b = this.#bindings.get(k);
    if (!b) {
      b = { sid: p.sid, port: h.local.port, reuse: p.reuse, sockets: new Set() };
      this.#bindings.set(k, b);
    }
    p.resolve(b);
    return true;
  }

  /** Detach a closed socket. True when that freed the port (the owner tells the daemon). */
  release(s: ServaldMdpSocket): boolean {
    const b = s.binding;
    b.sockets.delete(s);
    if (b.sockets.size > 0 || this.#bindings.get(key(b.sid, b.port)) !== b) return false;
    this.#bindings.delete(key(b.sid, b.port));
    return true;
  }

  /**
   * The bindings a datagram to `to` is for: every binding of the port for a broadcast, else
   * the exact (SID, port), else a binding of the port on the broadcast SID.
   */
  targets(to: MdpAddress): Binding[] {
    if (isSidBroadcast(to.sid)) return [...this.#bindings.values()].filter((b) => b.port === to.port);
    const b = this.#bindings.get(key(to.sid, to.port)) ?? this.#bindings.get(key(SID_BROADCAST, to.port));
    return b ? [b] : [];
  }

  /** Fail every waiting bind with `err`. */
  failPending(err: SvpError): void {
    for (const p of this.#pending.splice(0)) {
      p.timer.cancel();
      p.reject(err);
    }
  }

  /** Forget every binding and return them (the owner finishes their sockets). */
  detachAll(): Binding[] {
    const all = [...this.#bindings.values()];
    this.#bindings.clear();
    return all;
  }

  #attach(b: Binding): ServaldMdpSocket {
    const s = new ServaldMdpSocket(this.#o.owner, b);
    b.sockets.add(s);
    return s;
  }
}
