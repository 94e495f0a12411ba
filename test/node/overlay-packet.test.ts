import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeData,
  decodeFlood,
  decodeHello,
  E2E_OVERHEAD,
  encodeData,
  encodeFlood,
  encodeHello,
  FORWARD_OVERHEAD,
  HELLO_PLAIN_BYTES,
  MAX_MDP_MTU,
  encodeProbe,
  encodeSealedHeader,
  MAX_DATAGRAM_BYTES,
  nonceFor,
  OVERLAY_MDP_MTU,
  PACKET_TYPE,
  parseDatagram,
  PROBE_BYTES,
  readUint64,
  SEALED_HEADER_BYTES,
  TAG_BYTES,
} from "../../src/node/overlay-packet.ts";
import { toHex } from "../../src/bytes/hex.ts";

const A = new Uint8Array(32).fill(0xa1);
const B = new Uint8Array(32).fill(0xb2);
const BOOT_A = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const BOOT_B = Uint8Array.from([9, 10, 11, 12, 13, 14, 15, 16]);

function sealedDatagram(type: 2 | 3 | 4 | 5 | 6, plainLength: number): Uint8Array {
  const h = encodeSealedHeader({ type, sender: A, receiver: B, senderBoot: BOOT_A, receiverBoot: BOOT_B, counter: 7 });
  const d = new Uint8Array(h.length + plainLength + TAG_BYTES);
  d.set(h);
  return d;
}

describe("overlay packet codec", () => {
  test("probe: fixed layout, padded to PROBE_BYTES, round trip", () => {
    const p = encodeProbe(A, BOOT_A);
    assert.equal(p.length, PROBE_BYTES);
    assert.equal(toHex(p.subarray(0, 4)), "53560201");
    assert.deepEqual(p.subarray(4, 36), A);
    assert.deepEqual(p.subarray(36, 44), BOOT_A);
    assert.ok(p.subarray(44).every((b) => b === 0));
    const r = parseDatagram(p);
    assert.ok(r.ok && !("aad" in r));
    assert.deepEqual(r.packet.sender, A);
    assert.deepEqual(r.packet.senderBoot, BOOT_A);
  });

  test("a probe is never smaller than the largest hello it provokes (no amplification)", () => {
    assert.ok(PROBE_BYTES >= SEALED_HEADER_BYTES + HELLO_PLAIN_BYTES + TAG_BYTES);
  });

  test("sealed header vector", () => {
    const h = encodeSealedHeader({ type: PACKET_TYPE.DATA, sender: A, receiver: B, senderBoot: BOOT_A, receiverBoot: BOOT_B, counter: 0x0102030405 });
    assert.equal(h.length, 92);
    assert.equal(
      toHex(h),
      "53560203" + "a1".repeat(32) + "b2".repeat(32) + "0102030405060708" + "090a0b0c0d0e0f10" + "0000000102030405",
    );
    assert.equal(toHex(nonceFor(0x0102030405)), "000000000000000102030405");
    const d = sealedDatagram(3, 9);
    d.set(h);
    const r = parseDatagram(d);
    assert.ok(r.ok && "aad" in r);
    assert.equal(r.packet.counter, 0x0102030405);
    assert.equal(r.packet.type, PACKET_TYPE.DATA);
    assert.deepEqual(r.aad, h);
    assert.equal(r.sealed.length, 9 + TAG_BYTES);
  });

  test("a FORWARD splits into hop header, TTL, inner frame and hop tag; the tag covers everything before it", () => {
    const d = sealedDatagram(5, 1 + E2E_OVERHEAD + 3);
    d[SEALED_HEADER_BYTES] = 30;
    d[SEALED_HEADER_BYTES + 1] = 0x53;
    const r = parseDatagram(d);
    assert.ok(r.ok && "aad" in r);
    assert.equal(r.packet.type, PACKET_TYPE.FORWARD);
    assert.equal(r.ttl, 30);
    assert.equal(r.inner!.length, E2E_OVERHEAD + 3);
    assert.equal(r.inner![0], 0x53);
    assert.equal(r.aad.length, d.length - TAG_BYTES);
    assert.equal(r.sealed.length, TAG_BYTES);
  });

  test("garbage, bad version, bad type", () => {
    assert.deepEqual(parseDatagram(new Uint8Array(0)), { ok: false, reason: "garbage" });
    assert.deepEqual(parseDatagram(Uint8Array.from([0x47, 0x45, 0x54, 0x20, 0x2f])), { ok: false, reason: "garbage" });
    const d = sealedDatagram(2, HELLO_PLAIN_BYTES);
    d[2] = 1;
    assert.deepEqual(parseDatagram(d), { ok: false, reason: "bad-version" }, "version 1 (no routing) is refused");
    d[2] = 2;
    d[3] = 9;
    assert.deepEqual(parseDatagram(d), { ok: false, reason: "bad-type" });
  });

  test("every truncation of a hello, a data packet and a probe is rejected", () => {
    for (const full of [sealedDatagram(2, HELLO_PLAIN_BYTES), sealedDatagram(3, 9), sealedDatagram(4, 2), sealedDatagram(5, 1 + E2E_OVERHEAD), sealedDatagram(6, 49), encodeProbe(A, BOOT_A)]) {
      for (let n = 0; n < full.length; n++) {
        const r = parseDatagram(full.subarray(0, n));
        assert.equal(r.ok, false, `prefix ${n} of ${full.length}`);
        if (!r.ok) assert.ok(["truncated", "garbage"].includes(r.reason), `prefix ${n}: ${r.reason}`);
      }
      assert.equal(parseDatagram(full).ok, true);
    }
  });

  test("oversize datagrams and probes", () => {
    assert.deepEqual(parseDatagram(sealedDatagram(3, MAX_DATAGRAM_BYTES)), { ok: false, reason: "oversize" });
    // The largest datagram is a FORWARD of a MAX_MDP_MTU payload.
    assert.equal(MAX_DATAGRAM_BYTES, FORWARD_OVERHEAD + E2E_OVERHEAD + MAX_MDP_MTU);
    assert.equal(parseDatagram(sealedDatagram(5, 1 + E2E_OVERHEAD + MAX_MDP_MTU)).ok, true);
    assert.deepEqual(parseDatagram(sealedDatagram(5, 2 + E2E_OVERHEAD + MAX_MDP_MTU)), { ok: false, reason: "oversize" });
    const longProbe = new Uint8Array(PROBE_BYTES + 1);
    longProbe.set(encodeProbe(A, BOOT_A));
    assert.deepEqual(parseDatagram(longProbe), { ok: false, reason: "oversize" });
  });

  test("hello and data bodies round-trip; bad bodies are refused", () => {
    const h = { flags: 3, ping: 2 ** 40 + 5, echo: 77, seq: 0xfffe, intervalMs: 5000, ihu: 255, mtu: 16384 };
    const he = encodeHello(h);
    assert.equal(toHex(he.subarray(17)), "fffe01f4ff4000");
    assert.deepEqual(decodeHello(he), h);
    assert.equal(decodeHello(new Uint8Array(16)), undefined);
    assert.equal(decodeHello(new Uint8Array(HELLO_PLAIN_BYTES)), undefined, "hello interval 0");
    const unknownFlag = he.slice();
    unknownFlag[0] = 0x80;
    assert.equal(decodeHello(unknownFlag), undefined, "unknown flag");
    const f = { origin: A, id: BOOT_B, ttl: 31, srcPort: 7, dstPort: 11, payload: Uint8Array.from([9, 9]) };
    const fe = encodeFlood(f);
    assert.equal(toHex(fe.subarray(32)), "090a0b0c0d0e0f10" + "1f" + "00000007" + "0000000b" + "0909");
    assert.deepEqual({ ...decodeFlood(fe)! }, f);
    assert.equal(decodeFlood(fe.subarray(0, 48)), undefined, "short");
    const payload = Uint8Array.from([1, 2, 3]);
    const d = encodeData({ broadcast: true, srcPort: 0xfffffffe, dstPort: 80, payload });
    assert.equal(toHex(d), "01fffffffe00000050010203");
    const back = decodeData(d)!;
    assert.equal(back.broadcast, true);
    assert.equal(back.srcPort, 0xfffffffe);
    assert.equal(back.dstPort, 80);
    assert.deepEqual(back.payload, payload);
    d[0] = 0x80;
    assert.equal(decodeData(d), undefined, "unknown flag");
    assert.equal(decodeData(new Uint8Array(8)), undefined, "short");
    assert.equal(decodeData(new Uint8Array(9 + MAX_MDP_MTU + 1)), undefined, "over the MTU");
    assert.ok(decodeData(new Uint8Array(9 + OVERLAY_MDP_MTU + 1)), "a loopback link carries more than 1160");
  });

  test("uint64 counters above 2^53 read as Infinity (never valid)", () => {
    const b = new Uint8Array(8).fill(0xff);
    assert.equal(readUint64(b, 0), Infinity);
    b[0] = 0;
    b[1] = 0x1f;
    assert.equal(readUint64(b, 0), Number.MAX_SAFE_INTEGER);
  });
});
