/**
 * SOCKS4 and SOCKS4a requests and replies (server side).
 *
 * Request: VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL; SOCKS4a marks "name follows" with
 * DSTIP 0.0.0.x (x ≠ 0) and appends HOSTNAME NUL. User id and host name are capped at
 * 255 bytes each, so a request never exceeds 520 bytes.
 */

import { SvpError } from "../errors.ts";
import { formatIpv4 } from "./ip.ts";
import type { Decoded } from "./socks5-codec.ts";

export const SOCKS4 = {
  VERSION: 0x04,
  CMD_CONNECT: 0x01,
  CMD_BIND: 0x02,
  REPLY_VERSION: 0x00,
  GRANTED: 0x5a,
  REJECTED: 0x5b,
  NO_IDENTD: 0x5c,
  IDENT_MISMATCH: 0x5d,
  MAX_FIELD: 255,
} as const;

export interface Socks4Request {
  command: number;
  port: number;
  /** Dotted-quad for SOCKS4, the name for SOCKS4a. */
  host: string;
  /** True when the request carried a host name (SOCKS4a). */
  is4a: boolean;
  user: Uint8Array;
}

/** Index of the NUL ending a field that starts at `from`, -1 while incomplete; throws past the cap. */
function findNul(b: Uint8Array, from: number, what: string): number {
  const limit = Math.min(b.length, from + SOCKS4.MAX_FIELD + 1);
  for (let i = from; i < limit; i++) if (b[i] === 0) return i;
  if (b.length > from + SOCKS4.MAX_FIELD) throw new SvpError("ERR_PROTOCOL", `SOCKS4 ${what} longer than ${SOCKS4.MAX_FIELD} bytes`);
  return -1;
}

export function decodeSocks4Request(b: Uint8Array): Decoded<Socks4Request> {
  if (b.length < 1) return undefined;
  if (b[0] !== SOCKS4.VERSION) throw new SvpError("ERR_PROTOCOL", `not SOCKS4 (version byte ${b[0]})`);
  if (b.length < 8) return undefined;
  const userEnd = findNul(b, 8, "user id");
  if (userEnd < 0) return undefined;
  const port = (b[2]! << 8) | b[3]!;
  const is4a = b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] !== 0;
  const user = b.slice(8, userEnd);
  if (!is4a) return { value: { command: b[1]!, port, host: formatIpv4(b, 4), is4a, user }, size: userEnd + 1 };
  const hostEnd = findNul(b, userEnd + 1, "host name");
  if (hostEnd < 0) return undefined;
  let host = "";
  for (let i = userEnd + 1; i < hostEnd; i++) host += String.fromCharCode(b[i]!);
  return { value: { command: b[1]!, port, host, is4a, user }, size: hostEnd + 1 };
}

/** VN=0 CD DSTPORT DSTIP; the address fields are only meaningful for BIND, so zero. */
export function encodeSocks4Reply(code: number): Uint8Array {
  return Uint8Array.of(SOCKS4.REPLY_VERSION, code, 0, 0, 0, 0, 0, 0);
}
