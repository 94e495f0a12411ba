/**
 * The kernel filter the overlay asks for while a flood is refused (pure: a description and
 * its compilation to classic BPF for Linux's SO_ATTACH_FILTER on a UDP/IPv4 socket).
 *
 * Why: the runtime's own cost of receiving a datagram (a wake-up, a buffer, a callback: about
 * 5 µs in Node) is paid before svp can look at it, so a flood from one core can fill a core
 * with datagrams that are then dropped in a microsecond. A socket filter drops them in the
 * kernel instead: datagrams from live peers' addresses (and addresses that were just sent a
 * cookie) always pass; those from addresses that kept failing are dropped; everything else
 * passes one time in `sampleOneIn`, so newcomers can still reach the node (more slowly) and
 * the node still sees the flood to count it. The kernel counts what the filter drops with
 * the socket's drops (`/proc/net/udp`).
 */

import type { UdpEndpoint } from "./node-io.ts";

export interface SocketFilterSpec {
  /** Sources whose datagrams always pass (IPv4 only; others are ignored). */
  allow: UdpEndpoint[];
  /** Sources whose datagrams never pass. */
  deny: UdpEndpoint[];
  /** Everything else passes one time in this many (a power of two, 1–65536). */
  sampleOneIn: number;
}

/** Largest number of allow plus deny entries compiled (5 instructions each; BPF_MAXINSNS is 4096). */
export const MAX_FILTER_ENTRIES = 512;

const BPF = { LD_W_ABS: 0x20, LD_H_ABS: 0x28, JEQ_K: 0x15, AND_K: 0x54, RET_K: 0x06 } as const;
/** Offsets of the kernel's ancillary data: the IP header, and a random 32-bit number. */
const SKF_NET_OFF = -0x100000;
const SKF_AD_RANDOM = -0x1000 + 56;
const PASS = 0xffff_ffff;
const DROP = 0;

/**
 * Compile `spec` into `struct sock_filter` instructions (8 bytes each, little-endian as on
 * the platforms this runs on). The program sees the UDP header at offset 0.
 */
export function compileSocketFilter(spec: SocketFilterSpec): Uint8Array {
  if (!Number.isInteger(Math.log2(spec.sampleOneIn)) || spec.sampleOneIn < 1 || spec.sampleOneIn > 65536) throw new RangeError(`sampleOneIn must be a power of two from 1 to 65536, not ${spec.sampleOneIn}`);
  const ins: [number, number, number, number][] = [];
  const entries = [...spec.deny.map((e) => [e, DROP] as const), ...spec.allow.map((e) => [e, PASS] as const)].flatMap(([e, verdict]) => {
    const ip = ipv4Number(e.host);
    return ip === undefined ? [] : [{ ip, port: e.port, verdict }];
  });
  // Denials first: an address on both lists is dropped.
  ins.push([BPF.LD_W_ABS, 0, 0, SKF_NET_OFF + 12]); // A = source address
  for (const { ip, port, verdict } of entries.slice(0, MAX_FILTER_ENTRIES)) {
    ins.push([BPF.JEQ_K, 0, 3, ip]); // not this address: skip the port check
    ins.push([BPF.LD_H_ABS, 0, 0, 0]); // A = source port (UDP header)
    ins.push([BPF.JEQ_K, 0, 1, port]);
    ins.push([BPF.RET_K, 0, 0, verdict]);
    ins.push([BPF.LD_W_ABS, 0, 0, SKF_NET_OFF + 12]); // A = source address again
  }
  ins.push([BPF.LD_W_ABS, 0, 0, SKF_AD_RANDOM]);
  ins.push([BPF.AND_K, 0, 0, spec.sampleOneIn - 1]);
  ins.push([BPF.JEQ_K, 0, 1, 0]);
  ins.push([BPF.RET_K, 0, 0, PASS]);
  ins.push([BPF.RET_K, 0, 0, DROP]);
  const out = new Uint8Array(ins.length * 8);
  const v = new DataView(out.buffer);
  ins.forEach(([code, jt, jf, k], i) => {
    v.setUint16(i * 8, code, true);
    out[i * 8 + 2] = jt;
    out[i * 8 + 3] = jf;
    v.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return out;
}

/** A dotted IPv4 address (or an IPv4-mapped IPv6 one) as a number; undefined for anything else. */
function ipv4Number(host: string): number | undefined {
  const m = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i.exec(host);
  if (!m) return undefined;
  const parts = m.slice(1, 5).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}
