/**
 * The keyring: the node's X25519 identities (the public key is the SID), one of them
 * primary. Stored as a small JSON document in the instance directory; the file's
 * permissions are the platform's job (`KeyringStore`), the content is checked here.
 */

import { SvpError } from "../errors.ts";
import { fromHex, toHex } from "../bytes/hex.ts";
import { type Sid, SID_BYTES, sidEquals, sidFromHex, sidToHex } from "../mesh/sid.ts";
import type { NodeCrypto } from "./node-io.ts";

export interface Identity {
  /** The public key. */
  readonly sid: Sid;
  /** The 32-byte X25519 secret. Never logged, never sent. */
  readonly secret: Uint8Array;
}

export interface Keyring {
  /** At least one identity. */
  readonly identities: readonly Identity[];
  /** Index into `identities` of the primary identity (the one `svp id` prints). */
  readonly primary: number;
}

/** Where the keyring lives; the platform implementation enforces owner-only permissions. */
export interface KeyringStore {
  /** Human-readable location for messages. */
  readonly path: string;
  /** The file's bytes, or undefined when it does not exist. Throws when it is unsafe to use. */
  read(): Uint8Array | undefined;
  /**
   * Create the file with owner-only permissions if it does not exist yet (atomically: the
   * complete content or nothing). False when another process created it first.
   */
  create(bytes: Uint8Array): boolean;
  /** Replace the existing file atomically, owner-only. */
  write(bytes: Uint8Array): void;
}

/** Upper bound on a keyring file, so a wrong path cannot make svp read a huge file. */
export const KEYRING_MAX_BYTES = 256 * 1024;
const KEYRING_VERSION = 1;

export function primaryIdentity(keyring: Keyring): Identity {
  return keyring.identities[keyring.primary]!;
}

export function createIdentity(crypto: NodeCrypto): Identity {
  const { secret, publicKey } = crypto.generateKeyPair();
  return { sid: publicKey, secret };
}

/** A keyring with `identity` added (made primary when asked or when it is the first). */
export function addIdentity(keyring: Keyring | undefined, identity: Identity, makePrimary = false): Keyring {
  const identities = [...(keyring?.identities ?? []), identity];
  return { identities, primary: makePrimary || !keyring ? identities.length - 1 : keyring.primary };
}

export function encodeKeyring(keyring: Keyring): Uint8Array {
  const doc = {
    version: KEYRING_VERSION,
    primary: sidToHex(primaryIdentity(keyring).sid),
    identities: keyring.identities.map((id) => ({ sid: sidToHex(id.sid), secret: toHex(id.secret) })),
  };
  return new TextEncoder().encode(JSON.stringify(doc, null, 2) + "\n");
}

/**
 * Parse and check a keyring file. With `crypto`, every secret is checked against its SID,
 * so a corrupted file is reported instead of producing a node nobody can reach.
 */
export function decodeKeyring(bytes: Uint8Array, where: string, crypto?: NodeCrypto): Keyring {
  const bad = (why: string) => new SvpError("ERR_INTERNAL", `keyring ${where} is damaged: ${why} (move it away to create a new identity)`);
  if (bytes.length > KEYRING_MAX_BYTES) throw bad(`larger than ${KEYRING_MAX_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw bad("not a JSON document");
  }
  if (typeof doc !== "object" || doc === null) throw bad("not a JSON object");
  const d = doc as Record<string, unknown>;
  if (d.version !== KEYRING_VERSION) throw bad(`unsupported version ${JSON.stringify(d.version)}`);
  if (!Array.isArray(d.identities) || d.identities.length === 0) throw bad("no identities");
  const identities: Identity[] = [];
  for (const [i, raw] of d.identities.entries()) {
    const e = raw as Record<string, unknown>;
    const sid = typeof e?.sid === "string" ? sidFromHex(e.sid) : undefined;
    const secret = typeof e?.secret === "string" ? fromHex(e.secret) : undefined;
    if (!sid) throw bad(`identity ${i}: bad sid`);
    if (!secret || secret.length !== SID_BYTES) throw bad(`identity ${i}: bad secret`);
    if (crypto && !sidEquals(crypto.publicFromSecret(secret), sid)) throw bad(`identity ${i}: secret does not match its sid`);
    if (identities.some((x) => sidEquals(x.sid, sid))) throw bad(`identity ${i}: duplicate sid`);
    identities.push({ sid, secret });
  }
  const primarySid = typeof d.primary === "string" ? sidFromHex(d.primary) : undefined;
  const primary = primarySid ? identities.findIndex((x) => sidEquals(x.sid, primarySid)) : -1;
  if (primary < 0) throw bad("primary is not one of the identities");
  return { identities, primary };
}

/** Read the keyring, creating it with one fresh identity when there is none. */
export function loadOrCreateKeyring(store: KeyringStore, crypto: NodeCrypto): { keyring: Keyring; created: boolean } {
  const bytes = store.read();
  if (bytes) return { keyring: decodeKeyring(bytes, store.path, crypto), created: false };
  const keyring = addIdentity(undefined, createIdentity(crypto), true);
  if (store.create(encodeKeyring(keyring))) return { keyring, created: true };
  // Another svp process created it in the meantime: use theirs.
  const again = store.read();
  if (!again) throw new SvpError("ERR_INTERNAL", `keyring ${store.path} vanished while it was being created`);
  return { keyring: decodeKeyring(again, store.path, crypto), created: false };
}
