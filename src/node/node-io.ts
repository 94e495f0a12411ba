/**
 * What the embedded node needs from the runtime, as small interfaces. The node layer never
 * imports `src/platform/`: the composition in `src/platform/` hands it implementations
 * (node:crypto, node:dgram, the file system), and tests may hand it fakes.
 */

/**
 * Cryptographic primitives: X25519, HKDF-SHA256 and ChaCha20-Poly1305 (IETF, 12-byte
 * nonce, 16-byte tag). Keys and public keys are raw 32-byte values.
 */
import type { SocketFilterSpec } from "./socket-filter.ts";

export interface NodeCrypto {
  /** A fresh X25519 key pair; `publicKey` is the SID. */
  generateKeyPair(): { secret: Uint8Array; publicKey: Uint8Array };
  /** The public key (SID) belonging to a 32-byte secret. */
  publicFromSecret(secret: Uint8Array): Uint8Array;
  /** X25519(secret, peerPublic): 32 bytes, or undefined when the peer key is unusable (low order). */
  x25519(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array | undefined;
  /** HKDF-SHA256. */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /**
   * Encrypt and authenticate: returns ciphertext followed by the 16-byte tag. With `out`
   * (at least plaintext + 16 bytes, e.g. the datagram after its header) the result is
   * written there and a view of `out` returned: one copy less per datagram.
   */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out?: Uint8Array): Uint8Array;
  /** Verify and decrypt `sealed` (ciphertext + tag); undefined when it does not authenticate. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined;
  randomBytes(n: number): Uint8Array;
}

/** A numeric IP address and a UDP port. IPv6 addresses are written without brackets. */
export interface UdpEndpoint {
  host: string;
  port: number;
}

/** One bound UDP socket. */
export interface UdpSocket {
  /** The address actually bound (port resolved when 0 was asked). */
  readonly local: UdpEndpoint;
  readonly family: "IPv4" | "IPv6";
  /** The receive buffer the OS granted, bytes (undefined when the runtime cannot tell). */
  readonly receiveBufferBytes?: number | undefined;
  /** Send one datagram; errors (unreachable, no buffer space) are reported to `onError`, never thrown. */
  send(data: Uint8Array, to: UdpEndpoint): void;
  close(): void;
  /**
   * Filter what the kernel queues for this socket (see socket-filter.ts), or stop filtering
   * (undefined). False when the platform cannot (then everything keeps arriving). Optional.
   */
  setFilter?(spec: SocketFilterSpec | undefined): boolean;
}

export interface UdpBindRequest {
  family: "IPv4" | "IPv6";
  host: string;
  port: number;
  /** Allow sending to broadcast addresses (only with --lan). */
  broadcast?: boolean;
  /**
   * Receive buffer (SO_RCVBUF) to ask for, bytes. The OS may cap it (Linux: at
   * net.core.rmem_max); a runtime that cannot set it keeps its default.
   */
  receiveBufferBytes?: number;
  onMessage(data: Uint8Array, from: UdpEndpoint): void;
  onError(err: Error): void;
}

/** Binds a UDP socket; rejects with an error whose `code` is e.g. "EADDRINUSE". */
export type UdpBinder = (request: UdpBindRequest) => Promise<UdpSocket>;

/** One running daemon in the same-host rendezvous directory. */
export interface RendezvousEntry {
  /** UDP port of the daemon's IPv4 loopback-reachable socket. */
  port: number;
}

/**
 * Same-host discovery: a per-user, owner-only directory where each running daemon
 * registers its UDP port. Implementations drop entries of processes that are gone.
 */
export interface RendezvousRegistry {
  register(entry: RendezvousEntry): void;
  /** Every other live daemon's entry (the caller filters its own port). */
  list(): RendezvousEntry[];
  unregister(): void;
}

/** The node's log sink: one line per call, no trailing newline. */
export type NodeLog = (level: "info" | "warn" | "debug", message: string) => void;

/**
 * Who is at the other end of a local API connection, as the kernel recorded it when the
 * client connected (SO_PEERCRED on Linux): facts the client cannot forge, unlike what it
 * says in its HELLO.
 */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}
