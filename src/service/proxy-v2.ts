/**
 * PROXY protocol version 2 header (haproxy's proxy-protocol.txt, section 2.2) as sent by
 * `svp listen --forward … --proxy-protocol`: the first bytes of every forwarded TCP
 * connection tell the backend which mesh node is calling.
 *
 * An MSP caller has no IP address, so the header uses command PROXY with address family
 * AF_UNSPEC (no address block: receivers that only read addresses treat the connection as
 * local) and carries the caller in application-specific TLVs (types 0xE0–0xEF are reserved
 * for applications by the specification):
 *
 * | TLV  | length | value |
 * |------|--------|-------|
 * | 0xE0 | 32     | the caller's SID, raw bytes: verified by the mesh (MSP packets from a SID are authenticated by its key) |
 * | 0xE1 | 4      | the caller's MDP port, uint32 big-endian |
 * | 0xE2 | 32     | the SID the caller connected to (this node's identity) |
 * | 0xE3 | 4      | the MDP port the caller connected to, uint32 big-endian |
 *
 * Layout: 12-byte signature `\r\n\r\n\0\r\nQUIT\n`, 0x21 (version 2, PROXY), 0x00
 * (AF_UNSPEC, UNSPEC), 2-byte big-endian length of what follows (the TLVs: 84 bytes), then
 * the TLVs (type, 2-byte big-endian length, value). 100 bytes in all.
 */

import { SvpError } from "../errors.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_BYTES } from "../mesh/sid.ts";

export const PROXY_V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);

/** svp's TLV types (application range 0xE0–0xEF). */
export const PROXY_TLV = {
  /** Caller's SID, 32 raw bytes. */
  PEER_SID: 0xe0,
  /** Caller's MDP port, uint32 big-endian. */
  PEER_PORT: 0xe1,
  /** The SID that was called, 32 raw bytes. */
  LOCAL_SID: 0xe2,
  /** The MDP port that was called, uint32 big-endian. */
  LOCAL_PORT: 0xe3,
} as const;

/** Largest header the decoder accepts (signature, fixed part and a 16-bit length could reach 65,551). */
export const PROXY_V2_MAX_BYTES = 16 + 4096;

export interface ProxyV2Info {
  peerSid: Sid;
  peerPort: number;
  localSid: Sid;
  localPort: number;
}

/** Encode the header for one forwarded MSP connection. */
export function encodeProxyV2(info: ProxyV2Info): Uint8Array {
  if (info.peerSid.length !== SID_BYTES || info.localSid.length !== SID_BYTES) throw new SvpError("ERR_INTERNAL", "PROXY header: SIDs must be 32 bytes");
  const tlvs = (3 + SID_BYTES + 3 + 4) * 2;
  const out = new Uint8Array(16 + tlvs);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x21;
  out[13] = 0x00;
  const view = new DataView(out.buffer);
  view.setUint16(14, tlvs);
  let o = 16;
  const tlv = (type: number, value: Uint8Array) => {
    out[o] = type;
    view.setUint16(o + 1, value.length);
    out.set(value, o + 3);
    o += 3 + value.length;
  };
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n >>> 0);
    return b;
  };
  tlv(PROXY_TLV.PEER_SID, info.peerSid);
  tlv(PROXY_TLV.PEER_PORT, u32(info.peerPort));
  tlv(PROXY_TLV.LOCAL_SID, info.localSid);
  tlv(PROXY_TLV.LOCAL_PORT, u32(info.localPort));
  return out;
}

export interface ProxyV2Header {
  /** 0 = LOCAL (health checks; no client info), 1 = PROXY. */
  command: 0 | 1;
  /** Address family and transport byte (0x00 for svp's headers). */
  family: number;
  /** The address block as sent (empty for AF_UNSPEC). */
  addresses: Uint8Array;
  /** Every TLV in order. */
  tlvs: { type: number; value: Uint8Array }[];
  /** svp's caller fields, when the TLVs are present and well-formed. */
  svp?: ProxyV2Info;
}

export type ProxyV2Decoded =
  | { kind: "more" }
  | { kind: "header"; header: ProxyV2Header; length: number }
  | { kind: "none" };

/**
 * Decode a header at the start of `bytes` (what a backend would do; svp's own tests use it).
 * "more": a prefix of a valid header, feed more bytes. "none": the bytes do not start with
 * the signature. Throws ERR_PROTOCOL for a malformed or oversized header.
 */
export function decodeProxyV2(bytes: Uint8Array): ProxyV2Decoded {
  const sigLen = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < sigLen; i++) if (bytes[i] !== PROXY_V2_SIGNATURE[i]) return { kind: "none" };
  if (bytes.length < 16) return { kind: "more" };
  const bad = (why: string) => new SvpError("ERR_PROTOCOL", `bad PROXY v2 header: ${why}`);
  const verCmd = bytes[12]!;
  if (verCmd >> 4 !== 2) throw bad(`version ${verCmd >> 4}`);
  const command = verCmd & 0x0f;
  if (command !== 0 && command !== 1) throw bad(`command ${command}`);
  const family = bytes[13]!;
  const len = (bytes[14]! << 8) | bytes[15]!;
  if (16 + len > PROXY_V2_MAX_BYTES) throw bad(`length ${len} over the ${PROXY_V2_MAX_BYTES - 16}-byte cap`);
  if (bytes.length < 16 + len) return { kind: "more" };
  const addrLen = ({ 0x00: 0, 0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216 } as Record<number, number>)[family];
  if (addrLen === undefined) throw bad(`address family/transport 0x${family.toString(16).padStart(2, "0")}`);
  if (addrLen > len) throw bad(`address block of ${addrLen} bytes in ${len}`);
  const body = bytes.subarray(16, 16 + len);
  const tlvs: { type: number; value: Uint8Array }[] = [];
  for (let o = addrLen; o < body.length; ) {
    if (o + 3 > body.length) throw bad("truncated TLV");
    const type = body[o]!;
    const l = (body[o + 1]! << 8) | body[o + 2]!;
    if (o + 3 + l > body.length) throw bad(`TLV 0x${type.toString(16)} overruns the header`);
    tlvs.push({ type, value: body.slice(o + 3, o + 3 + l) });
    o += 3 + l;
  }
  const header: ProxyV2Header = { command: command as 0 | 1, family, addresses: body.slice(0, addrLen), tlvs };
  const find = (t: number, l: number) => tlvs.find((x) => x.type === t && x.value.length === l)?.value;
  const peerSid = find(PROXY_TLV.PEER_SID, SID_BYTES);
  const peerPort = find(PROXY_TLV.PEER_PORT, 4);
  const localSid = find(PROXY_TLV.LOCAL_SID, SID_BYTES);
  const localPort = find(PROXY_TLV.LOCAL_PORT, 4);
  if (peerSid && peerPort && localSid && localPort) {
    const u32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
    header.svp = { peerSid, peerPort: u32(peerPort), localSid, localPort: u32(localPort) };
  }
  return { kind: "header", header, length: 16 + len };
}
