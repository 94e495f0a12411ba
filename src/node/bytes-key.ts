/**
 * Exact Map keys for short byte strings (SIDs, boots) on the per-datagram path: two bytes
 * per UTF-16 code unit, so a 32-byte SID is a 16-character string. About four times
 * cheaper than hex (`toHex` + concatenation measured ~1.4 µs per SID lookup), and
 * collision-free like hex. Not for display: the characters are arbitrary code units.
 */

const fc = String.fromCharCode;

export function bytesKey(b: Uint8Array): string {
  if (b.length === 32) {
    return fc(
      (b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!, (b[4]! << 8) | b[5]!, (b[6]! << 8) | b[7]!,
      (b[8]! << 8) | b[9]!, (b[10]! << 8) | b[11]!, (b[12]! << 8) | b[13]!, (b[14]! << 8) | b[15]!,
      (b[16]! << 8) | b[17]!, (b[18]! << 8) | b[19]!, (b[20]! << 8) | b[21]!, (b[22]! << 8) | b[23]!,
      (b[24]! << 8) | b[25]!, (b[26]! << 8) | b[27]!, (b[28]! << 8) | b[29]!, (b[30]! << 8) | b[31]!,
    );
  }
  if (b.length === 8) return fc((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!, (b[4]! << 8) | b[5]!, (b[6]! << 8) | b[7]!);
  // Other lengths (not on the hot path): the length first, so lengths never collide.
  let s = fc(b.length);
  for (let i = 0; i < b.length; i += 2) s += fc((b[i]! << 8) | (i + 1 < b.length ? b[i + 1]! : 0));
  return s;
}

/** `bytesKey` of the `len` bytes of `b` at `o` (32 or 8; others via a view), without making the view. */
export function bytesKeyAt(b: Uint8Array, o: number, len: number): string {
  if (len === 32) {
    return fc(
      (b[o]! << 8) | b[o + 1]!, (b[o + 2]! << 8) | b[o + 3]!, (b[o + 4]! << 8) | b[o + 5]!, (b[o + 6]! << 8) | b[o + 7]!,
      (b[o + 8]! << 8) | b[o + 9]!, (b[o + 10]! << 8) | b[o + 11]!, (b[o + 12]! << 8) | b[o + 13]!, (b[o + 14]! << 8) | b[o + 15]!,
      (b[o + 16]! << 8) | b[o + 17]!, (b[o + 18]! << 8) | b[o + 19]!, (b[o + 20]! << 8) | b[o + 21]!, (b[o + 22]! << 8) | b[o + 23]!,
      (b[o + 24]! << 8) | b[o + 25]!, (b[o + 26]! << 8) | b[o + 27]!, (b[o + 28]! << 8) | b[o + 29]!, (b[o + 30]! << 8) | b[o + 31]!,
    );
  }
  if (len === 8) return fc((b[o]! << 8) | b[o + 1]!, (b[o + 2]! << 8) | b[o + 3]!, (b[o + 4]! << 8) | b[o + 5]!, (b[o + 6]! << 8) | b[o + 7]!);
  return bytesKey(b.subarray(o, o + len));
}
