/**
 * `NodeCrypto` on node:crypto: X25519, HKDF-SHA256 and ChaCha20-Poly1305. The same code
 * runs on Node 20+ and Deno 2 (both provide these through node:crypto; checked by the
 * tests under both runtimes). Raw 32-byte X25519 keys are wrapped in the fixed DER
 * prefixes of PKCS#8 / SubjectPublicKeyInfo, which both runtimes import.
 */

import * as crypto from "node:crypto";
import type { NodeCrypto } from "../node/node-io.ts";

const PKCS8_X25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const SPKI_X25519_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00]);
const AEAD = "chacha20-poly1305";
const TAG = 16;

function wrap(prefix: Uint8Array, raw: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + raw.length);
  out.set(prefix, 0);
  out.set(raw, prefix.length);
  return out;
}

/** Parsed private keys by secret: an identity's secret is the same object for the node's life, and parsing costs more than the agreement. */
const privateKeys = new WeakMap<Uint8Array, crypto.KeyObject>();

function privateKeyOf(secret: Uint8Array): crypto.KeyObject {
  let key = privateKeys.get(secret);
  if (!key) {
    key = crypto.createPrivateKey({ key: Buffer.from(wrap(PKCS8_X25519_PREFIX, secret)), format: "der", type: "pkcs8" });
    privateKeys.set(secret, key);
  }
  return key;
}

function rawPublic(key: crypto.KeyObject): Uint8Array {
  const der = new Uint8Array(key.export({ format: "der", type: "spki" }));
  return der.slice(der.length - 32);
}

function rawSecret(key: crypto.KeyObject): Uint8Array {
  const der = new Uint8Array(key.export({ format: "der", type: "pkcs8" }));
  return der.slice(der.length - 32);
}

function u8(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export const nodeCrypto: NodeCrypto = {
  generateKeyPair() {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("x25519");
    return { secret: rawSecret(privateKey), publicKey: rawPublic(publicKey) };
  },
  publicFromSecret(secret) {
    return rawPublic(crypto.createPublicKey(privateKeyOf(secret)));
  },
  x25519(secret, peerPublic) {
    try {
      const publicKey = crypto.createPublicKey({ key: Buffer.from(wrap(SPKI_X25519_PREFIX, peerPublic)), format: "der", type: "spki" });
      const shared = new Uint8Array(crypto.diffieHellman({ privateKey: privateKeyOf(secret), publicKey }));
      // A low-order peer key yields all zeros (or an error, depending on the runtime).
      return shared.every((b) => b === 0) ? undefined : shared;
    } catch {
      return undefined;
    }
  },
  hkdf(ikm, salt, info, length) {
    return new Uint8Array(crypto.hkdfSync("sha256", ikm, salt, info, length));
  },
  seal(key, nonce, aad, plaintext, into) {
    const c = crypto.createCipheriv(AEAD, key, nonce, { authTagLength: TAG });
    c.setAAD(aad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    c.final();
    const tag = c.getAuthTag();
    if (into && into.length < body.length + TAG) throw new RangeError(`seal: output of ${into.length} bytes is too small for ${body.length + TAG}`);
    const out = into ? into.subarray(0, body.length + TAG) : new Uint8Array(body.length + TAG);
    out.set(body, 0);
    out.set(tag, body.length);
    return out;
  },
  open(key, nonce, aad, sealed) {
    if (sealed.length < TAG) return undefined;
    try {
      const d = crypto.createDecipheriv(AEAD, key, nonce, { authTagLength: TAG });
      d.setAAD(aad, { plaintextLength: sealed.length - TAG });
      d.setAuthTag(sealed.subarray(sealed.length - TAG));
      const body = d.update(sealed.subarray(0, sealed.length - TAG));
      d.final();
      return u8(body);
    } catch {
      return undefined;
    }
  },
  randomBytes(n) {
    return new Uint8Array(crypto.randomBytes(n));
  },
};
