import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bytesKey } from "../../src/node/bytes-key.ts";

describe("bytesKey", () => {
  test("equal bytes give equal keys; a change in any byte of a SID or boot gives another key", () => {
    for (const len of [32, 8]) {
      const base = Uint8Array.from({ length: len }, (_, i) => (i * 37 + 11) & 0xff);
      const k = bytesKey(base);
      assert.equal(bytesKey(base.slice()), k, `copy of ${len} bytes`);
      assert.equal(k.length, len / 2, "two bytes per character");
      const seen = new Set([k]);
      for (let i = 0; i < len; i++) {
        for (const flip of [0x01, 0x80, 0xff]) {
          const x = base.slice();
          x[i]! ^= flip;
          seen.add(bytesKey(x));
        }
      }
      assert.equal(seen.size, 1 + len * 3, `every variant of the ${len}-byte value has its own key`);
    }
  });

  test("views key by their own bytes, not by the buffer underneath", () => {
    const buf = Uint8Array.from({ length: 100 }, (_, i) => i);
    assert.equal(bytesKey(buf.subarray(3, 35)), bytesKey(buf.slice(3, 35)));
  });

  test("other lengths do not collide with each other (odd length, trailing zero)", () => {
    assert.notEqual(bytesKey(Uint8Array.of(1, 2, 3)), bytesKey(Uint8Array.of(1, 2, 3, 0)));
    assert.notEqual(bytesKey(Uint8Array.of()), bytesKey(Uint8Array.of(0)));
    assert.equal(bytesKey(Uint8Array.of(9, 8, 7)), bytesKey(Uint8Array.of(9, 8, 7)));
  });
});
