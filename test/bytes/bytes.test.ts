import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fromBase32, toBase32 } from "../../src/bytes/base32.ts";
import { concatBytes } from "../../src/bytes/concat.ts";
import { fromHex, toHex } from "../../src/bytes/hex.ts";

const enc = (s: string) => new TextEncoder().encode(s);

describe("hex", () => {
  test("round trip, either case in, lower case out", () => {
    assert.equal(toHex(Uint8Array.of(0, 1, 0xab, 0xff)), "0001abff");
    assert.deepEqual(fromHex("0001ABff"), Uint8Array.of(0, 1, 0xab, 0xff));
  });
  test("odd length and non-hex characters are rejected", () => {
    assert.equal(fromHex("abc"), undefined);
    assert.equal(fromHex("zz"), undefined);
    assert.equal(fromHex("0x"), undefined);
  });
});

describe("base32 (RFC 4648, lower case, no padding)", () => {
  // RFC 4648 section 10 vectors, padding removed.
  const vectors: [string, string][] = [["", ""], ["f", "my"], ["fo", "mzxq"], ["foo", "mzxw6"], ["foob", "mzxw6yq"], ["fooba", "mzxw6ytb"], ["foobar", "mzxw6ytboi"]];
  for (const [plain, coded] of vectors) {
    test(`"${plain}" ↔ "${coded}"`, () => {
      assert.equal(toBase32(enc(plain)), coded);
      assert.deepEqual(fromBase32(coded), enc(plain));
      assert.deepEqual(fromBase32(coded.toUpperCase()), enc(plain));
    });
  }
  test("32 bytes are 52 characters and round-trip", () => {
    const b = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    const s = toBase32(b);
    assert.equal(s.length, 52);
    assert.deepEqual(fromBase32(s), b);
  });
  test("bad characters, impossible lengths and non-zero trailing bits are rejected", () => {
    assert.equal(fromBase32("mzxw1"), undefined, "1 is not in the alphabet");
    assert.equal(fromBase32("m"), undefined, "1 character is no whole byte");
    assert.equal(fromBase32("mz"), undefined, "trailing bits set: a second spelling of 'f'");
  });
});

describe("concatBytes", () => {
  test("joins in order into a new array", () => {
    const a = Uint8Array.of(1, 2);
    const out = concatBytes([a, new Uint8Array(0), Uint8Array.of(3)]);
    assert.deepEqual(out, Uint8Array.of(1, 2, 3));
    out[0] = 9;
    assert.equal(a[0], 1, "the result shares no memory with its parts");
  });
});
