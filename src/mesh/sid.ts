/**
 * SIDs: a node's 32-byte Curve25519 public key, its address on the mesh. Written as 64 hex
 * digits (upper case in servald's output; svp accepts either and prints upper case) or as
 * 52 base32 characters in DNS names.
 */

import { fromBase32, toBase32 } from "../bytes/base32.ts";
import { fromHex, toHex } from "../bytes/hex.ts";

export const SID_BYTES = 32;

/** A SID is 32 bytes. Treat the array as immutable. */
export type Sid = Uint8Array;

/** All zero: "any"/"my primary identity" in MDP bind requests. */
export const SID_ANY: Sid = new Uint8Array(SID_BYTES);
/** All 0xFF: MDP broadcast. */
export const SID_BROADCAST: Sid = new Uint8Array(SID_BYTES).fill(0xff);

export function sidToHex(sid: Sid): string {
  return toHex(sid).toUpperCase();
}

export function sidToBase32(sid: Sid): string {
  return toBase32(sid);
}

/** Parse 64 hex digits; undefined if it is not exactly that. */
export function sidFromHex(text: string): Sid | undefined {
  if (text.length !== SID_BYTES * 2) return undefined;
  return fromHex(text);
}

/** Parse the 52-character base32 form; undefined otherwise. */
export function sidFromBase32(text: string): Sid | undefined {
  if (text.length !== 52) return undefined;
  const b = fromBase32(text);
  return b && b.length === SID_BYTES ? b : undefined;
}

/** Parse either form. */
export function parseSid(text: string): Sid | undefined {
  return sidFromHex(text) ?? sidFromBase32(text);
}

export function sidEquals(a: Sid, b: Sid): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isSidAny(sid: Sid): boolean {
  return sidEquals(sid, SID_ANY);
}

export function isSidBroadcast(sid: Sid): boolean {
  return sidEquals(sid, SID_BROADCAST);
}

/** Abbreviation for logs: the first 8 hex digits and an ellipsis. */
export function sidShort(sid: Sid): string {
  return sidToHex(sid).slice(0, 8) + "…";
}

/**
 * A host name or mesh name for display: every label that is a 64-hex SID in upper case, as
 * svp prints SIDs everywhere (`svp id`, `svp status`, logs; servald does the same). Other
 * labels, base32 SIDs included, stay as they are.
 */
export function upperSidLabels(name: string): string {
  return name
    .split(".")
    .map((label) => (label.length === SID_BYTES * 2 && /^[0-9a-fA-F]+$/.test(label) ? label.toUpperCase() : label))
    .join(".");
}
