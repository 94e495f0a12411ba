/**
 * Comparison of the routing protocol's 16-bit sequence numbers, which wrap: a seqno is newer
 * than another when it is ahead by less than half the space (RFC 8966 section 3.2.1).
 */

/** True when 16-bit seqno `a` is newer than `b`. */
export function seqnoNewer(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}
