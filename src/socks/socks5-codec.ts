/**
 * SOCKS5 messages (RFC 1928) and username/password sub-negotiation (RFC 1929), both
 * directions (server side for `svp socks`, client side for `--upstream socks5://`).
 *
 * Decoders take the bytes received so far and return `undefined` while the message is
 * incomplete, or the value and the number of bytes it used; they throw `SvpError` on
 * malformed input. Every message has a small fixed maximum size, so callers never need
 * more than 1 KiB of buffer.
 */

import { SvpError } from "../errors.ts";
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from "./ip.ts";

export const SOCKS5 = {
  VERSION: 0x05,
  AUTH_VERSION: 0x01,
  METHOD_NO_AUTH: 0x00,
  METHOD_USER_PASS: 0x02,
  METHOD_NONE_ACCEPTABLE: 0xff,
  CMD_CONNECT: 0x01,
  CMD_BIND: 0x02,
  CMD_UDP_ASSOCIATE: 0x03,
  ATYP_IPV4: 0x01,
  ATYP_DOMAIN: 0x03,
  ATYP_IPV6: 0x04,
  REP_SUCCEEDED: 0x00,
} as const;

/** Result of an incremental decoder: the value and its size in bytes, or undefined = need more. */
export type Decoded<T> = { value: T; size: number } | undefined;

export interface Socks5Greeting {
  methods: number[];
}

/** Client greeting: VER NMETHODS METHODS… */
export function decodeGreeting(b: Uint8Array): Decoded<Socks5Greeting> {
  if (b.length < 2) return undefined;
  if (b[0] !== SOCKS5.VERSION) throw new SvpError("ERR_PROTOCOL", `not SOCKS5 (version byte ${b[0]})`);
  const n = b[1]!;
  if (n === 0) throw new SvpError("ERR_PROTOCOL", "SOCKS5 greeting offers no authentication method");
  if (b.length < 2 + n) return undefined;
  return { value: { methods: Array.from(b.subarray(2, 2 + n)) }, size: 2 + n };
}

export function encodeGreeting(methods: number[]): Uint8Array {
  return Uint8Array.of(SOCKS5.VERSION, methods.length, ...methods);
}

/** Server's method selection: VER METHOD. */
export function encodeMethodSelection(method: number): Uint8Array {
  return Uint8Array.of(SOCKS5.VERSION, method);
}

export function decodeMethodSelection(b: Uint8Array): Decoded<number> {
  if (b.length < 2) return undefined;
  if (b[0] !== SOCKS5.VERSION) throw new SvpError("ERR_PROTOCOL", `upstream is not a SOCKS5 server (version byte ${b[0]})`);
  return { value: b[1]!, size: 2 };
}

export interface UserPass {
  /** Raw bytes as sent (RFC 1929 says nothing about their encoding). */
  user: Uint8Array;
  pass: Uint8Array;
}

/** RFC 1929 request: VER ULEN UNAME PLEN PASSWD. */
export function decodeUserPass(b: Uint8Array): Decoded<UserPass> {
  if (b.length < 2) return undefined;
  if (b[0] !== SOCKS5.AUTH_VERSION) throw new SvpError("ERR_PROTOCOL", `bad username/password sub-negotiation version ${b[0]}`);
  const ulen = b[1]!;
  if (b.length < 3 + ulen) return undefined;
  const plen = b[2 + ulen]!;
  const size = 3 + ulen + plen;
  if (b.length < size) return undefined;
  return { value: { user: b.slice(2, 2 + ulen), pass: b.slice(3 + ulen, size) }, size };
}

export function encodeUserPass(user: Uint8Array, pass: Uint8Array): Uint8Array {
  if (user.length > 255 || pass.length > 255) throw new SvpError("ERR_BAD_ADDRESS", "SOCKS5 user name and password are limited to 255 bytes");
  const out = new Uint8Array(3 + user.length + pass.length);
  out[0] = SOCKS5.AUTH_VERSION;
  out[1] = user.length;
  out.set(user, 2);
  out[2 + user.length] = pass.length;
  out.set(pass, 3 + user.length);
  return out;
}

/** RFC 1929 reply: VER STATUS (0 = success). */
export function encodeUserPassReply(ok: boolean): Uint8Array {
  return Uint8Array.of(SOCKS5.AUTH_VERSION, ok ? 0x00 : 0x01);
}

export function decodeUserPassReply(b: Uint8Array): Decoded<boolean> {
  if (b.length < 2) return undefined;
  if (b[0] !== SOCKS5.AUTH_VERSION) throw new SvpError("ERR_PROTOCOL", `bad username/password reply version ${b[0]}`);
  return { value: b[1] === 0, size: 2 };
}

export interface Socks5Address {
  atyp: number;
  /** Dotted quad, RFC 5952 IPv6, or the domain name exactly as sent (latin-1 decoded). */
  host: string;
  port: number;
}

export interface Socks5Request extends Socks5Address {
  command: number;
}

/**
 * Decode VER CMD RSV ATYP DST.ADDR DST.PORT (a request; a reply has the same shape with
 * REP in place of CMD). Unknown address types throw ERR_ADDRESS_TYPE as soon as the
 * ATYP byte is seen, since the message length is then unknowable.
 */
function decodeAddressed(b: Uint8Array, what: string): Decoded<Socks5Request> {
  if (b.length < 4) return undefined;
  if (b[0] !== SOCKS5.VERSION) throw new SvpError("ERR_PROTOCOL", `SOCKS5 ${what} has version byte ${b[0]}`);
  const atyp = b[3]!;
  let host: string;
  let end: number;
  if (atyp === SOCKS5.ATYP_IPV4) {
    end = 8;
    if (b.length < end + 2) return undefined;
    host = formatIpv4(b, 4);
  } else if (atyp === SOCKS5.ATYP_IPV6) {
    end = 20;
    if (b.length < end + 2) return undefined;
    host = formatIpv6(b, 4);
  } else if (atyp === SOCKS5.ATYP_DOMAIN) {
    if (b.length < 5) return undefined;
    end = 5 + b[4]!;
    if (b.length < end + 2) return undefined;
    host = "";
    for (let i = 5; i < end; i++) host += String.fromCharCode(b[i]!);
  } else {
    throw new SvpError("ERR_ADDRESS_TYPE", `SOCKS5 address type ${atyp} is not supported`);
  }
  const port = (b[end]! << 8) | b[end + 1]!;
  return { value: { command: b[1]!, atyp, host, port }, size: end + 2 };
}

export function decodeRequest(b: Uint8Array): Decoded<Socks5Request> {
  return decodeAddressed(b, "request");
}

/** A reply: `command` holds REP. */
export function decodeReply(b: Uint8Array): Decoded<Socks5Request> {
  return decodeAddressed(b, "reply");
}

function encodeAddressed(first: number, host: string, port: number): Uint8Array {
  const v4 = parseIpv4(host);
  const v6 = v4 ? undefined : parseIpv6(host);
  let addr: Uint8Array;
  let atyp: number;
  if (v4) {
    atyp = SOCKS5.ATYP_IPV4;
    addr = v4;
  } else if (v6) {
    atyp = SOCKS5.ATYP_IPV6;
    addr = v6;
  } else {
    if (host.length > 255) throw new SvpError("ERR_BAD_ADDRESS", "host name longer than 255 characters");
    atyp = SOCKS5.ATYP_DOMAIN;
    addr = new Uint8Array(1 + host.length);
    addr[0] = host.length;
    for (let i = 0; i < host.length; i++) addr[1 + i] = host.charCodeAt(i) & 0xff;
  }
  const out = new Uint8Array(4 + addr.length + 2);
  out[0] = SOCKS5.VERSION;
  out[1] = first;
  out[2] = 0;
  out[3] = atyp;
  out.set(addr, 4);
  out[4 + addr.length] = port >> 8;
  out[5 + addr.length] = port & 0xff;
  return out;
}

/** CONNECT request for `host` (IP literal or domain name) and `port`. */
export function encodeRequest(command: number, host: string, port: number): Uint8Array {
  return encodeAddressed(command, host, port);
}

const ZERO_BOUND = Uint8Array.of(SOCKS5.VERSION, 0, 0, SOCKS5.ATYP_IPV4, 0, 0, 0, 0, 0, 0);

/**
 * Reply with code `rep`. The bound address is given as 0.0.0.0:0 unless one is passed:
 * clients use it only for BIND, which svp does not offer.
 */
export function encodeReply(rep: number, bound?: { host: string; port: number }): Uint8Array {
  if (!bound) {
    const out = ZERO_BOUND.slice();
    out[1] = rep;
    return out;
  }
  return encodeAddressed(rep, bound.host, bound.port);
}
