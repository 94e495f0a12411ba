/**
 * The MDP client datagram header that servald's local socket speaks: a packed 75-byte
 * header followed by the payload.
 *
 * | bytes | field |
 * |---|---|
 * | 0–31  | local SID |
 * | 32–35 | local port, uint32, host byte order (little-endian on x86/ARM) |
 * | 36–67 | remote SID |
 * | 68–71 | remote port, uint32, host byte order |
 * | 72    | flags (`MDP_FLAG`) |
 * | 73    | qos |
 * | 74    | ttl |
 *
 * Pure functions over Uint8Array. svp only targets little-endian hosts (x86, ARM), which is
 * what "host byte order" means for every servald build it can talk to.
 */

import { SID_BYTES } from "../mesh/sid.ts";
import type { MdpAddress } from "./transport.ts";

export const MDP_HEADER_BYTES = 75;

/** servald's MDP MTU: the largest payload the daemon accepts after the header. */
export const MDP_MTU = 1160;

/** The ttl servald uses when a client leaves it to the daemon. */
export const MDP_TTL_DEFAULT = 31;

/** Header flag bits (mdp_client.h). */
export const MDP_FLAG = {
  /** Send without end-to-end encryption (broadcasts). */
  NO_CRYPT: 0x01,
  /** Send without signature. */
  NO_SIGN: 0x02,
  /** Request (client → daemon) or confirmation (daemon → client) of a port binding. */
  BIND: 0x04,
  /** Release a port binding. */
  CLOSE: 0x08,
  /** The daemon reports an error for this socket. */
  ERROR: 0x10,
  /** Allow several bindings of the same port. */
  REUSE: 0x20,
} as const;

const KNOWN_FLAGS = 0x3f;

export interface MdpHeader {
  local: MdpAddress;
  remote: MdpAddress;
  /** OR of `MDP_FLAG` bits. */
  flags: number;
  /** Quality-of-service class, 0–255. */
  qos: number;
  /** Hop limit, 0–255 (0 lets the daemon pick its default). */
  ttl: number;
}

export type MdpDecodeResult =
  | { ok: true; header: MdpHeader; payload: Uint8Array }
  | { ok: false; error: string };

const OFF_LOCAL_PORT = 32;
const OFF_REMOTE_SID = 36;
const OFF_REMOTE_PORT = 68;
const OFF_FLAGS = 72;

function checkHeader(h: MdpHeader): void {
  for (const [what, a] of [["local", h.local], ["remote", h.remote]] as const) {
    if (a.sid.length !== SID_BYTES) throw new RangeError(`MDP ${what} SID must be ${SID_BYTES} bytes, got ${a.sid.length}`);
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 0xffffffff) throw new RangeError(`MDP ${what} port ${a.port} is not a uint32`);
  }
  for (const [what, v] of [["flags", h.flags], ["qos", h.qos], ["ttl", h.ttl]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`MDP ${what} ${v} is not a byte`);
  }
  if (h.flags & ~KNOWN_FLAGS) throw new RangeError(`unknown MDP flags 0x${h.flags.toString(16)}`);
}

/** Write the 75-byte header at `offset` of `out`. Throws RangeError on out-of-range fields (a caller bug). */
export function writeMdpHeader(out: Uint8Array, offset: number, h: MdpHeader): void {
  checkHeader(h);
  if (out.length - offset < MDP_HEADER_BYTES) throw new RangeError("buffer too small for an MDP header");
  const v = new DataView(out.buffer, out.byteOffset + offset, MDP_HEADER_BYTES);
  out.set(h.local.sid, offset);
  v.setUint32(OFF_LOCAL_PORT, h.local.port, true);
  out.set(h.remote.sid, offset + OFF_REMOTE_SID);
  v.setUint32(OFF_REMOTE_PORT, h.remote.port, true);
  out[offset + OFF_FLAGS] = h.flags;
  out[offset + OFF_FLAGS + 1] = h.qos;
  out[offset + OFF_FLAGS + 2] = h.ttl;
}

/** One complete datagram: header then payload (empty for bind/close requests). */
export function encodeMdpDatagram(h: MdpHeader, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(MDP_HEADER_BYTES + payload.length);
  writeMdpHeader(out, 0, h);
  out.set(payload, MDP_HEADER_BYTES);
  return out;
}

/**
 * Parse a datagram from the daemon. Never throws: a short datagram, unknown flag bits or a
 * payload over `maxPayload` (default: servald's MTU) come back as `{ ok: false, error }`.
 * SIDs are copied; `payload` is a view into `bytes`.
 */
export function decodeMdpDatagram(bytes: Uint8Array, maxPayload: number = MDP_MTU): MdpDecodeResult {
  if (bytes.length < MDP_HEADER_BYTES) {
    return { ok: false, error: `truncated MDP datagram: ${bytes.length} bytes, the header alone is ${MDP_HEADER_BYTES}` };
  }
  const payloadLength = bytes.length - MDP_HEADER_BYTES;
  if (payloadLength > maxPayload) {
    return { ok: false, error: `oversize MDP datagram: ${payloadLength} payload bytes, limit ${maxPayload}` };
  }
  const flags = bytes[OFF_FLAGS]!;
  if (flags & ~KNOWN_FLAGS) return { ok: false, error: `unknown MDP flags 0x${flags.toString(16).padStart(2, "0")}` };
  const v = new DataView(bytes.buffer, bytes.byteOffset, MDP_HEADER_BYTES);
  const header: MdpHeader = {
    local: { sid: bytes.slice(0, SID_BYTES), port: v.getUint32(OFF_LOCAL_PORT, true) },
    remote: { sid: bytes.slice(OFF_REMOTE_SID, OFF_REMOTE_SID + SID_BYTES), port: v.getUint32(OFF_REMOTE_PORT, true) },
    flags,
    qos: bytes[OFF_FLAGS + 1]!,
    ttl: bytes[OFF_FLAGS + 2]!,
  };
  return { ok: true, header, payload: bytes.subarray(MDP_HEADER_BYTES) };
}

/** "BIND|REUSE", or "0" when no flag is set: for logs and test output. */
export function describeMdpFlags(flags: number): string {
  const names: string[] = (Object.keys(MDP_FLAG) as (keyof typeof MDP_FLAG)[]).filter((k) => flags & MDP_FLAG[k]);
  const unknown = flags & ~KNOWN_FLAGS;
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return names.length ? names.join("|") : "0";
}
