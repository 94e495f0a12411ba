import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { E2eKeys, e2eKey } from "../../src/node/e2e-keys.ts";
import { createIdentity } from "../../src/node/keyring.ts";
import { SharedKeyCache } from "../../src/node/shared-key-cache.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

const a = createIdentity(nodeCrypto);
const b = createIdentity(nodeCrypto);
const bootA = new Uint8Array(8).fill(1);
const bootB = new Uint8Array(8).fill(2);

describe("E2eKeys", () => {
  test("the sender's key for a destination is the key the destination makes for that sender's boot", () => {
    const ka = new E2eKeys(nodeCrypto, bootA, new SharedKeyCache(nodeCrypto));
    const kb = new E2eKeys(nodeCrypto, bootB, new SharedKeyCache(nodeCrypto));
    const send = ka.sendKey(a, b.sid)!;
    assert.equal(ka.sendKey(a, b.sid), send, "cached");
    const key = e2eKey(b.sid, a.sid, bootA);
    const st = kb.create(b, a.sid, bootA, key)!;
    assert.deepEqual(st.key, send);
    assert.notDeepEqual(kb.create(b, a.sid, new Uint8Array(8).fill(3), e2eKey(b.sid, a.sid, new Uint8Array(8).fill(3)))!.key, send, "another boot, another key");
    assert.equal(ka.sendKey(a, new Uint8Array(32)), undefined, "an unusable destination key");
    assert.equal(kb.create(b, new Uint8Array(32), bootA, "x"), undefined);
  });

  test("a state is kept only once stored; when full the least recently used goes, and its window resumes after its floor", () => {
    const k = new E2eKeys(nodeCrypto, bootB, new SharedKeyCache(nodeCrypto), 2);
    const sources = [0, 1, 2].map(() => createIdentity(nodeCrypto).sid);
    const keys = sources.map((s) => e2eKey(b.sid, s, bootA));
    const st0 = k.create(b, sources[0]!, bootA, keys[0]!)!;
    assert.equal(k.has(keys[0]!), false, "create does not store");
    st0.window.accept(500);
    st0.usedAt = 1;
    k.store(keys[0]!, st0);
    const st1 = k.create(b, sources[1]!, bootA, keys[1]!)!;
    st1.usedAt = 2;
    k.store(keys[1]!, st1);
    k.store(keys[2]!, k.create(b, sources[2]!, bootA, keys[2]!)!);
    assert.equal(k.size, 2);
    assert.equal(k.has(keys[0]!), false, "the least recently used went");
    assert.equal(k.get(keys[1]!), st1);
    const again = k.create(b, sources[0]!, bootA, keys[0]!)!;
    assert.equal(again.window.check(500), false, "counters up to the floor are replays");
    assert.equal(again.window.check(501), true);
  });
});
