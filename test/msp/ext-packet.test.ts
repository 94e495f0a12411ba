/**
 * The MSP extension's packet codec (src/msp/ext-packet.ts): the documented vector, round
 * trips, every truncation and random bytes (never a throw), and the structural checks.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { toHex, fromHex } from "../../src/bytes/hex.ts";
import { SeededRandom } from "../helpers/seeded-random.ts";
import { decodeExtPacket, encodeExtPacket, extHeaderBytes, EXT_MAX_HEADER_BYTES, writeExtHeader } from "../../src/msp/ext-packet.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("MSP extension packet codec", () => {
  test("the vector in docs/msp-extension.md", () => {
    const hex = "c2" + "0400" + "8300" + "09000000" + "03000000" + "3200" + "01" + "0600" + "0600" + "0700" + "6869";
    const encoded = encodeExtPacket({ flags: 0, pn: 9, seq: 7, ack: 4, limit: 131, largest: 3, delayMs: 0.5, ranges: [6, 6], data: utf8("hi") });
    assert.equal(toHex(encoded), hex);
    const r = decodeExtPacket(fromHex(hex)!);
    assert.ok(r.ok);
    assert.deepEqual({ ...r.packet, data: toHex(r.packet.data) }, { flags: 0xc2, pn: 9, seq: 7, ack: 4, limit: 131, largest: 3, delayMs: 0.5, ranges: [6, 6], data: "6869" });
  });

  test("ack-only, SHUTDOWN, wrapped ranges and a saturated delay round-trip", () => {
    const cases = [
      { flags: 0, pn: 0, seq: -1, ack: 0xffff, limit: 127, largest: 0, delayMs: 0, ranges: [] as number[] },
      { flags: 0x01, pn: 0xffff_ffff, seq: 0xffff, ack: 0xfffe, limit: 200, largest: 77, delayMs: 655.35, ranges: [0, 3, 10, 12] },
      { flags: 0, pn: 0, seq: -1, ack: 0xfff0, limit: 0x0100, largest: 5, delayMs: 1, ranges: [0xfff2, 0xfff3, 0xfffe, 0x0002] },
    ];
    for (const c of cases) {
      const bytes = encodeExtPacket(c);
      assert.equal(bytes.length, extHeaderBytes(c.ranges.length / 2, c.seq >= 0));
      const r = decodeExtPacket(bytes);
      assert.ok(r.ok, JSON.stringify(c));
      assert.equal(r.packet.ack, c.ack);
      assert.equal(r.packet.seq, c.seq);
      assert.equal(r.packet.pn, c.pn);
      assert.deepEqual(r.packet.ranges, c.ranges);
      assert.equal(r.packet.flags & 0x01, c.flags & 0x01);
    }
    const r = decodeExtPacket(encodeExtPacket({ ...cases[0]!, delayMs: 10_000 }));
    assert.ok(r.ok);
    assert.equal(r.packet.delayMs, 655.35, "the delay saturates");
  });

  test("writeExtHeader puts the header right before the data, inside the reserved room", () => {
    const buf = new Uint8Array(EXT_MAX_HEADER_BYTES + 3);
    buf.set(utf8("abc"), EXT_MAX_HEADER_BYTES);
    const start = writeExtHeader(buf, EXT_MAX_HEADER_BYTES, 0, 5, { ack: 1, limit: 9, largest: 2, delayMs: 0, ranges: [3, 4] }, 6);
    assert.equal(start, EXT_MAX_HEADER_BYTES - extHeaderBytes(1, true));
    const r = decodeExtPacket(buf.subarray(start));
    assert.ok(r.ok);
    assert.equal(new TextDecoder().decode(r.packet.data), "abc");
    assert.equal(r.packet.seq, 6);
  });

  test("every truncation of a valid packet is refused with a reason, never a throw", () => {
    const full = encodeExtPacket({ flags: 0, pn: 3, seq: 2, ack: 0, limit: 100, largest: 1, delayMs: 0, ranges: [2, 2, 5, 9], data: new Uint8Array(0) });
    for (let n = 0; n < full.length; n++) {
      const r = decodeExtPacket(full.subarray(0, n));
      assert.equal(r.ok, false, `${n} bytes`);
      if (!r.ok) assert.ok(r.detail.length > 0);
    }
    assert.ok(decodeExtPacket(full).ok);
  });

  test("structural checks", () => {
    const base = { flags: 0, pn: 0, seq: -1, ack: 10, limit: 100, largest: 0, delayMs: 0, ranges: [] as number[] };
    const bad = (bytes: Uint8Array, re: RegExp) => {
      const r = decodeExtPacket(bytes);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.detail, re);
    };
    bad(encodeExtPacket({ ...base, ranges: [11, 12] }), /not above/); // starts right after ack: no gap
    bad(encodeExtPacket({ ...base, ranges: [13, 14, 15, 16] }), /not above/); // no gap between ranges
    bad(encodeExtPacket({ ...base, ranges: [14, 12] }), /not above/); // backwards
    bad(encodeExtPacket({ ...base, ranges: [20, 20 + 0x8000] }), /not above|half/);
    const noAck = encodeExtPacket(base);
    noAck[0] = 0x80;
    bad(noAck, /without ACK/);
    bad(encodeExtPacket({ ...base, pn: 4 }), /ack-only .* packet number/);
  });

  test("random bytes never throw", () => {
    const rng = new SeededRandom(42);
    for (let i = 0; i < 20_000; i++) {
      const bytes = rng.bytes(Math.floor(rng.next() * 120));
      if (bytes.length) bytes[0] = bytes[0]! | 0x80;
      decodeExtPacket(bytes);
    }
  });
});
