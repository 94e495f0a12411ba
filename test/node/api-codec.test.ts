import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { API_MAX_FRAME, API_TYPE, type ApiMessage, decodeApiFrame, encodeApiMessage, FrameDecoder } from "../../src/node/api-codec.ts";
import { toHex } from "../../src/bytes/hex.ts";

const S1 = new Uint8Array(32).fill(0x11);
const S2 = new Uint8Array(32).fill(0x22);

const samples: ApiMessage[] = [
  { type: API_TYPE.HELLO, json: { version: 1, pid: 42, name: "svp socks" } },
  { type: API_TYPE.BIND, reqId: 7, port: 0xfffffff0, reuse: true, sid: S1 },
  { type: API_TYPE.UNBIND, sid: S1, port: 80 },
  { type: API_TYPE.SEND, sid: S1, port: 32768, remoteSid: S2, remotePort: 80, payload: Uint8Array.from([0, 1, 2, 255]) },
  { type: API_TYPE.STATUS, reqId: 9 },
  { type: API_TYPE.STREAMS, json: [] },
  { type: API_TYPE.SHUTDOWN, reqId: 3 },
  { type: API_TYPE.WELCOME, json: { version: 1, primary: "AB" } },
  { type: API_TYPE.BOUND, reqId: 7, port: 32768, sid: S2 },
  { type: API_TYPE.ERROR, reqId: 7, json: { code: "ERR_NOT_ALLOWED", message: "taken" } },
  { type: API_TYPE.DELIVER, sid: S1, port: 80, remoteSid: S2, remotePort: 32768, broadcast: true, payload: new Uint8Array(1160).fill(7) },
  { type: API_TYPE.STATUS_REPLY, reqId: 9, json: { schema: 1 } },
  { type: API_TYPE.PEER, up: false, sid: S2 },
  { type: API_TYPE.OK, reqId: 3 },
  { type: API_TYPE.ROUTE, up: true, sid: S1, mtu: 16384, hops: 4 },
];

function frameBody(f: Uint8Array): Uint8Array {
  return f.subarray(4);
}

describe("local API codec", () => {
  test("every message type round-trips", () => {
    for (const m of samples) assert.deepEqual(decodeApiFrame(frameBody(encodeApiMessage(m))), m, `type ${m.type}`);
  });

  test("SEND vector: length, type, raw payload bytes (no base64)", () => {
    const f = encodeApiMessage({ type: API_TYPE.SEND, sid: S1, port: 1, remoteSid: S2, remotePort: 2, payload: Uint8Array.from([0xde, 0xad]) });
    assert.equal(toHex(f), "0000004b" + "04" + "11".repeat(32) + "00000001" + "22".repeat(32) + "00000002" + "dead");
  });

  test("ROUTE vector: up, SID, path MTU (u32 BE), hops; a bad length or flag is refused", () => {
    const f = encodeApiMessage({ type: API_TYPE.ROUTE, up: true, sid: S2, mtu: 1160, hops: 3 });
    assert.equal(toHex(f), "00000027" + "88" + "01" + "22".repeat(32) + "00000488" + "03");
    assert.equal(decodeApiFrame(frameBody(f).subarray(0, 38)), "bad ROUTE frame");
    const bad = frameBody(f).slice();
    bad[1] = 2;
    assert.equal(decodeApiFrame(bad), "bad ROUTE frame");
  });

  test("a stream of frames decodes the same when split at every offset", () => {
    const all = samples.map(encodeApiMessage);
    const stream = new Uint8Array(all.reduce((n, f) => n + f.length, 0));
    let o = 0;
    for (const f of all) {
      stream.set(f, o);
      o += f.length;
    }
    for (let cut = 0; cut <= stream.length; cut += 7) {
      const d = new FrameDecoder();
      const frames = [...d.push(stream.subarray(0, cut)).frames, ...d.push(stream.subarray(cut)).frames];
      assert.equal(frames.length, samples.length, `cut ${cut}`);
      frames.forEach((f, i) => assert.deepEqual(decodeApiFrame(f), samples[i]));
      assert.equal(d.buffered, 0);
    }
    const d = new FrameDecoder();
    const frames: Uint8Array[] = [];
    for (const b of stream) frames.push(...d.push(Uint8Array.of(b)).frames);
    assert.equal(frames.length, samples.length, "byte by byte");
  });

  test("oversize and zero-length frames are errors, before any body is buffered", () => {
    const d = new FrameDecoder(1000);
    const r = d.push(Uint8Array.from([0, 0, 0x03, 0xe9, 1]));
    assert.match(r.error ?? "", /exceeds/);
    assert.equal(d.buffered, 0);
    assert.match(new FrameDecoder().push(new Uint8Array(4)).error ?? "", /zero-length/);
    assert.throws(() => encodeApiMessage({ type: API_TYPE.STREAMS, json: "x".repeat(API_MAX_FRAME) }), RangeError);
  });

  test("malformed bodies are described, not thrown", () => {
    const bad: [number[], RegExp][] = [
      [[0x02, 1, 2], /BIND/],
      [[0x04, ...new Uint8Array(10)], /short/],
      [[0x01, 0x7b], /JSON/],
      [[0x86, 2, ...S1], /PEER/],
      [[0x99], /unknown/],
      [[], /empty/],
    ];
    for (const [bytes, re] of bad) {
      const r = decodeApiFrame(Uint8Array.from(bytes));
      assert.equal(typeof r, "string");
      assert.match(r as string, re);
    }
  });
});
