/**
 * The `MdpTransport` interface: MDP datagrams between (SID, port) addresses. MSP, listen,
 * connect, socks and discover are written against this interface only, so they run
 * unchanged on the in-memory transport (tests), the embedded node and servald.
 */

import type { Sid } from "../mesh/sid.ts";
import type { SvpError } from "../errors.ts";

/** An MDP address: a SID and a 32-bit port. */
export interface MdpAddress {
  sid: Sid;
  port: number;
}

export interface MdpSendOptions {
  /** Send without encryption (MDP NO_CRYPT); servald uses it for broadcasts. */
  noCrypt?: boolean;
  /** Send without signature (MDP NO_SIGN). */
  noSign?: boolean;
  /** Time to live in hops. Default 31, servald's default. */
  ttl?: number;
  /** Quality of service class. Default 0. */
  qos?: number;
}

export type MdpSocketEvents = {
  /** A datagram arrived for this binding. `to` is the address it was sent to (it may be broadcast). */
  message: (payload: Uint8Array, from: MdpAddress, to: MdpAddress) => void;
  /** The binding is gone: closed locally (no error) or lost (backend went away). */
  close: (err?: SvpError) => void;
};

/** One bound MDP port. */
export interface MdpSocket {
  /** The bound address: the SID actually used and the port (allocated when 0 was asked). */
  readonly local: MdpAddress;
  /**
   * Send one datagram. Never throws for network conditions; datagrams may be lost. The
   * payload is copied (or sent) before this returns: the caller may reuse its bytes.
   */
  send(to: MdpAddress, payload: Uint8Array, options?: MdpSendOptions): void;
  /** Release the port. Idempotent. */
  close(): void;
  on<K extends keyof MdpSocketEvents>(event: K, fn: MdpSocketEvents[K]): this;
  once<K extends keyof MdpSocketEvents>(event: K, fn: MdpSocketEvents[K]): this;
  off<K extends keyof MdpSocketEvents>(event: K, fn: MdpSocketEvents[K]): this;
}

export interface MdpBindOptions {
  /** Bind on this identity instead of the primary one. */
  sid?: Sid;
  /** Allow sharing the port with other bindings (MDP REUSE). */
  reuse?: boolean;
}

/** What the backend knows about reaching a SID right now. */
export type Reachability = "reachable" | "unreachable" | "unknown";

export type MdpTransportEvents = {
  /** The backend went away (daemon stopped, socket lost); every socket has closed with `err`. */
  down: (err: SvpError) => void;
};

export interface MdpTransport {
  /** Which backend this is, for `svp status` and logs. */
  readonly kind: "memory" | "embedded" | "servald";
  /** Largest MDP payload in bytes (servald: 1160). */
  readonly mtu: number;
  /**
   * The MSP window (packets in flight) the nodes behind this backend use themselves, for
   * MSP streams over it that set none; absent: MSP_DEFAULTS.window. servald's tools run 5.
   */
  readonly mspWindow?: number;
  /**
   * Whether MSP streams over this backend offer and accept svp's extension
   * (docs/msp-extension.md) unless told otherwise; absent: no. The embedded and servald
   * backends say yes (a peer that does not speak it still gets servald's exact behaviour).
   */
  readonly mspExtension?: boolean;
  /**
   * Largest MDP payload that reaches `sid` now, bytes (may exceed `mtu` where the path
   * carries more, e.g. between nodes on one host); absent or unknown: `mtu`.
   */
  pathMtu?(sid: Sid): number;
  /** The primary identity of this node. */
  readonly localSid: Sid;
  /**
   * Bind a port (0 = allocate an unused one). Rejects with ERR_REFUSED-like SvpErrors:
   * "ERR_NOT_ALLOWED" when the port is taken, "ERR_MESH_DOWN" when the backend is gone.
   */
  bind(port: number, options?: MdpBindOptions): Promise<MdpSocket>;
  /** Whether `sid` can be reached now (lets callers fail fast instead of after 10 s). */
  reachability(sid: Sid): Reachability;
  /** SIDs this node currently knows as reachable peers (for discovery and status). */
  peers(): Sid[];
  /** Close every binding and disconnect from the backend. */
  close(): void;
  on<K extends keyof MdpTransportEvents>(event: K, fn: MdpTransportEvents[K]): this;
  off<K extends keyof MdpTransportEvents>(event: K, fn: MdpTransportEvents[K]): this;
}
