/**
 * RFC 4648 base32, lower case, no padding: the DNS-safe form of a SID (52 characters for
 * 32 bytes, within DNS's 63-octet label limit where 64 hex digits are not).
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";

export function toBase32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    value = (value << 8) | bytes[i]!;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/**
 * Decode unpadded base32 (either case). Returns undefined on a bad character, an
 * impossible length, or non-zero trailing bits (so every byte string has exactly one form).
 */
export function fromBase32(text: string): Uint8Array | undefined {
  const s = text.toLowerCase();
  const n = Math.floor((s.length * 5) / 8);
  if (![0, 2, 4, 5, 7].includes(s.length % 8)) return undefined;
  const out = new Uint8Array(n);
  let bits = 0;
  let value = 0;
  let o = 0;
  for (const ch of s) {
    const v = ALPHABET.indexOf(ch);
    if (v < 0) return undefined;
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out[o++] = (value >>> (bits - 8)) & 0xff;
      bits -= 8;
    }
  }
  if ((value & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}
