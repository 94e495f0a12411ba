import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createIdentity } from "../../src/node/keyring.ts";
import type { NodeCrypto } from "../../src/node/node-io.ts";
import { sessionKey } from "../../src/node/peer-session.ts";
import { SharedKeyCache } from "../../src/node/shared-key-cache.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

function counting(): { crypto: NodeCrypto; calls: () => number } {
  let n = 0;
  return { crypto: { ...nodeCrypto, x25519: (s, p) => (n++, nodeCrypto.x25519(s, p)) }, calls: () => n };
}

const me = createIdentity(nodeCrypto);
const peers = [0, 1, 2].map(() => createIdentity(nodeCrypto).sid);

describe("SharedKeyCache", () => {
  test("one X25519 per pair, equal to the peer's side of the agreement", () => {
    const { crypto, calls } = counting();
    const c = new SharedKeyCache(crypto);
    const other = createIdentity(nodeCrypto);
    assert.equal(c.has(me.sid, other.sid), false);
    const k = c.get(me, other.sid)!;
    assert.deepEqual(k, nodeCrypto.x25519(other.secret, me.sid));
    assert.equal(c.get(me, other.sid), k);
    assert.equal(calls(), 1);
    assert.equal(c.has(me.sid, other.sid), true);
  });

  test("an agreement known elsewhere is used; an unusable key is not cached", () => {
    const { crypto, calls } = counting();
    const held = new Uint8Array(32).fill(7);
    const c = new SharedKeyCache(crypto, (k) => (k === sessionKey(me.sid, peers[0]!) ? held : undefined));
    assert.equal(c.get(me, peers[0]!), held);
    assert.equal(calls(), 0);
    assert.equal(c.get(me, new Uint8Array(32)), undefined, "all-zero: a low-order point");
    assert.equal(c.has(me.sid, new Uint8Array(32)), false);
  });

  test("bounded: the least recently used goes", () => {
    const { crypto, calls } = counting();
    const c = new SharedKeyCache(crypto, undefined, 2);
    c.get(me, peers[0]!);
    c.get(me, peers[1]!);
    c.get(me, peers[0]!); // peers[0] is now the most recent
    c.get(me, peers[2]!); // evicts peers[1]
    assert.ok(c.has(me.sid, peers[0]!) && c.has(me.sid, peers[2]!));
    assert.equal(c.has(me.sid, peers[1]!), false);
    assert.equal(calls(), 3);
  });
});
