/** PROXY protocol v2 header: exact bytes, decoding whole and split, malformed input. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { toHex } from "../../src/bytes/hex.ts";
import { isSvpError } from "../../src/errors.ts";
import { PROXY_TLV, PROXY_V2_SIGNATURE, decodeProxyV2, encodeProxyV2 } from "../../src/service/proxy-v2.ts";

const peerSid = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const localSid = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
const info = { peerSid, peerPort: 0x12345678, localSid, localPort: 80 };

describe("PROXY v2 header", () => {
  test("encodes signature, PROXY/UNSPEC, length and the four svp TLVs", () => {
    const h = encodeProxyV2(info);
    assert.equal(h.length, 16 + 84);
    assert.equal(toHex(h.subarray(0, 12)), "0d0a0d0a000d0a515549540a");
    assert.equal(h[12], 0x21);
    assert.equal(h[13], 0x00);
    assert.equal((h[14]! << 8) | h[15]!, 84);
    assert.equal(h[16], PROXY_TLV.PEER_SID);
    assert.equal(toHex(h.subarray(17, 19)), "0020");
    assert.equal(toHex(h.subarray(19, 51)), toHex(peerSid));
    assert.equal(toHex(h.subarray(51, 58)), "e1000412345678");
    assert.equal(toHex(h.subarray(58, 61)), "e20020");
    assert.equal(toHex(h.subarray(61, 93)), toHex(localSid));
    assert.equal(toHex(h.subarray(93)), "e3000400000050");
  });

  test("decodes its own header whole, and every prefix as 'more'", () => {
    const h = encodeProxyV2(info);
    const withData = new Uint8Array(h.length + 5);
    withData.set(h);
    withData.set([1, 2, 3, 4, 5], h.length);
    const r = decodeProxyV2(withData);
    assert.equal(r.kind, "header");
    if (r.kind !== "header") return;
    assert.equal(r.length, h.length);
    assert.equal(r.header.command, 1);
    assert.equal(r.header.family, 0);
    assert.equal(r.header.tlvs.length, 4);
    assert.ok(r.header.svp);
    assert.equal(toHex(r.header.svp.peerSid), toHex(peerSid));
    assert.equal(r.header.svp.peerPort, 0x12345678);
    assert.equal(toHex(r.header.svp.localSid), toHex(localSid));
    assert.equal(r.header.svp.localPort, 80);
    for (let i = 0; i < h.length; i++) assert.equal(decodeProxyV2(h.subarray(0, i)).kind, "more", `prefix of ${i} bytes`);
  });

  test("bytes that do not start with the signature are 'none'", () => {
    assert.equal(decodeProxyV2(new TextEncoder().encode("GET / HTTP/1.1\r\n")).kind, "none");
    assert.equal(decodeProxyV2(Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0b)).kind, "none");
  });

  test("malformed headers are rejected with ERR_PROTOCOL", () => {
    const good = encodeProxyV2(info);
    const bad = (mutate: (b: Uint8Array) => Uint8Array) => {
      const b = mutate(good.slice());
      assert.throws(() => decodeProxyV2(b), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
    };
    bad((b) => ((b[12] = 0x11), b)); // version 1
    bad((b) => ((b[12] = 0x22), b)); // command 2
    bad((b) => ((b[13] = 0x99), b)); // unknown family
    bad((b) => ((b[13] = 0x11), (b[14] = 0), (b[15] = 4), b.subarray(0, 20))); // IPv4 block needs 12 bytes
    bad((b) => ((b[18] = 0xff), b)); // first TLV length overruns
    bad((b) => ((b[14] = 0), (b[15] = 2), b.subarray(0, 18))); // truncated TLV
    const huge = new Uint8Array(16);
    huge.set(PROXY_V2_SIGNATURE);
    huge[12] = 0x21;
    huge[14] = 0xff;
    huge[15] = 0xff;
    assert.throws(() => decodeProxyV2(huge), (e: unknown) => isSvpError(e, "ERR_PROTOCOL") && /cap/.test((e as Error).message));
  });

  test("a header without svp's TLVs decodes without the svp fields", () => {
    const h = new Uint8Array(16);
    h.set(PROXY_V2_SIGNATURE);
    h[12] = 0x20; // LOCAL
    const r = decodeProxyV2(h);
    assert.equal(r.kind, "header");
    if (r.kind === "header") {
      assert.equal(r.header.command, 0);
      assert.equal(r.header.svp, undefined);
    }
  });
});
