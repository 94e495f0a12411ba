import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

describe("nodeCrypto AEAD", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i);
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => 100 + i);
  const aad = Uint8Array.from({ length: 92 }, (_, i) => 255 - i);
  const plain = Uint8Array.from({ length: 1033 }, (_, i) => (i * 7) & 0xff);

  test("seal into a caller's buffer writes the same bytes as seal returning a new array, and nothing beyond", () => {
    const fresh = nodeCrypto.seal(key, nonce, aad, plain);
    assert.equal(fresh.length, plain.length + 16);
    const datagram = new Uint8Array(92 + plain.length + 16 + 4).fill(0xee);
    const view = nodeCrypto.seal(key, nonce, aad, plain, datagram.subarray(92));
    assert.deepEqual(view, fresh, "same ciphertext and tag");
    assert.equal(view.buffer, datagram.buffer, "written into the caller's buffer");
    assert.deepEqual(datagram.subarray(92, 92 + fresh.length), fresh);
    assert.ok(datagram.subarray(0, 92).every((b) => b === 0xee), "bytes before the output untouched");
    assert.ok(datagram.subarray(92 + fresh.length).every((b) => b === 0xee), "bytes after the output untouched");
    assert.deepEqual(nodeCrypto.open(key, nonce, aad, view), plain, "opens to the plaintext");
  });

  test("an output buffer that is too small is refused, not overrun", () => {
    assert.throws(() => nodeCrypto.seal(key, nonce, aad, plain, new Uint8Array(plain.length + 15)), RangeError);
  });

  test("a flipped bit in ciphertext, tag or associated data does not open", () => {
    const sealed = nodeCrypto.seal(key, nonce, aad, plain);
    for (const i of [0, plain.length - 1, plain.length, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[i]! ^= 1;
      assert.equal(nodeCrypto.open(key, nonce, aad, bad), undefined, `byte ${i} flipped`);
    }
    const badAad = aad.slice();
    badAad[5]! ^= 1;
    assert.equal(nodeCrypto.open(key, nonce, badAad, sealed), undefined, "aad changed");
  });
});
