import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MDP_FLAG, MDP_HEADER_BYTES, decodeMdpDatagram, describeMdpFlags, encodeMdpDatagram, writeMdpHeader } from "../../src/mdp/header.ts";
import type { MdpHeader } from "../../src/mdp/header.ts";
import { fromHex, toHex } from "../../src/bytes/hex.ts";
import { SID_ANY, SID_BROADCAST, sidFromHex } from "../../src/mesh/sid.ts";
import { TRACE_ROWS, TRACE_SID_HEX } from "./trace-vectors.ts";

const TRACE_SID = sidFromHex(TRACE_SID_HEX)!;

/** "EE3775AE…:257" / "ANY:0" → expected SID and port. */
function parseTraceAddress(text: string): { sid: Uint8Array; port: number } {
  const [who, port] = text.split(":");
  return { sid: who === "ANY" ? SID_ANY : TRACE_SID, port: Number(port) };
}

describe("MDP header codec", () => {
  test("flag table matches mdp_client.h", () => {
    assert.deepEqual({ ...MDP_FLAG }, { NO_CRYPT: 0x01, NO_SIGN: 0x02, BIND: 0x04, CLOSE: 0x08, ERROR: 0x10, REUSE: 0x20 });
    assert.equal(MDP_HEADER_BYTES, 75);
  });

  test("every datagram of the servald traces decodes to the addresses and flags shown, and re-encodes byte for byte", () => {
    assert.equal(TRACE_ROWS.length, 75);
    for (const row of TRACE_ROWS) {
      const what = `${row.scenario} ${row.ms} ${row.process} ${row.dir}`;
      const bytes = fromHex(row.hex)!;
      const r = decodeMdpDatagram(bytes);
      assert.ok(r.ok, what);
      const { header, payload } = r;
      const local = parseTraceAddress(row.local);
      const remote = parseTraceAddress(row.remote);
      assert.deepEqual(header.local.sid, local.sid, `${what}: local SID`);
      assert.equal(header.local.port, local.port, `${what}: local port`);
      assert.deepEqual(header.remote.sid, remote.sid, `${what}: remote SID`);
      assert.equal(header.remote.port, remote.port, `${what}: remote port`);
      const [flagText, qos, ttl] = row.mdp.split(" ");
      assert.equal(describeMdpFlags(header.flags), flagText, `${what}: flags`);
      assert.equal(`qos=${header.qos}`, qos);
      assert.equal(`ttl=${header.ttl}`, ttl);
      if (!row.truncated) assert.equal(bytes.length, row.length, what);
      assert.equal(toHex(encodeMdpDatagram(header, payload)), row.hex, `${what}: re-encoding`);
    }
  });

  test("ports are uint32 little-endian (host order on x86/ARM)", () => {
    const h: MdpHeader = { local: { sid: TRACE_SID, port: 0x01020304 }, remote: { sid: SID_BROADCAST, port: 0xfffffffe }, flags: MDP_FLAG.BIND | MDP_FLAG.REUSE, qos: 2, ttl: 31 };
    const out = encodeMdpDatagram(h, Uint8Array.of(9, 8));
    assert.equal(out.length, 77);
    assert.equal(toHex(out.subarray(32, 36)), "04030201");
    assert.equal(toHex(out.subarray(68, 72)), "feffffff");
    assert.deepEqual([...out.subarray(72)], [0x24, 2, 31, 9, 8]);
    const r = decodeMdpDatagram(out);
    assert.ok(r.ok, "r.ok");
    assert.deepEqual(r.header, h);
    assert.deepEqual([...r.payload], [9, 8]);
  });

  test("a bind request for port 80 is the exact 75 bytes servald's listener sends", () => {
    const bind = encodeMdpDatagram({ local: { sid: SID_ANY, port: 80 }, remote: { sid: SID_ANY, port: 0 }, flags: MDP_FLAG.BIND, qos: 0, ttl: 0 });
    assert.equal(toHex(bind), TRACE_ROWS[0]!.hex);
  });

  test("every flag value round-trips and is described by name", () => {
    for (let f = 0; f < 0x40; f++) {
      const out = encodeMdpDatagram({ local: { sid: SID_ANY, port: 1 }, remote: { sid: SID_ANY, port: 2 }, flags: f, qos: 0, ttl: 0 });
      const r = decodeMdpDatagram(out);
      assert.ok(r.ok, "r.ok");
      assert.equal(r.header.flags, f);
      const names = describeMdpFlags(f);
      if (f === 0) assert.equal(names, "0");
      else for (const part of names.split("|")) assert.ok(f & MDP_FLAG[part as keyof typeof MDP_FLAG], `${f}: ${part}`);
    }
  });

  test("short, oversize and unknown-flag datagrams are errors, not exceptions", () => {
    for (let n = 0; n < MDP_HEADER_BYTES; n++) {
      const r = decodeMdpDatagram(new Uint8Array(n));
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.error, /truncated/);
    }
    const big = decodeMdpDatagram(new Uint8Array(MDP_HEADER_BYTES + 1161));
    assert.equal(big.ok, false);
    if (!big.ok) assert.match(big.error, /oversize/);
    assert.equal(decodeMdpDatagram(new Uint8Array(MDP_HEADER_BYTES + 1160)).ok, true);
    const bad = new Uint8Array(MDP_HEADER_BYTES);
    bad[72] = 0x40;
    const r = decodeMdpDatagram(bad);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error, /unknown MDP flags 0x40/);
    // Random garbage of every length up to 300 bytes never throws.
    let x = 12345;
    for (let n = 0; n < 300; n++) {
      const g = new Uint8Array(n);
      for (let i = 0; i < n; i++) g[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      const res = decodeMdpDatagram(g);
      assert.equal(typeof res.ok, "boolean");
    }
  });

  test("the decoder copies SIDs, so a reused receive buffer cannot change a decoded header", () => {
    const bytes = fromHex(TRACE_ROWS[1]!.hex)!;
    const r = decodeMdpDatagram(bytes);
    assert.ok(r.ok, "r.ok");
    bytes.fill(0);
    assert.deepEqual(r.header.local.sid, TRACE_SID);
  });

  test("the encoder rejects out-of-range fields (a caller bug) with RangeError", () => {
    const ok: MdpHeader = { local: { sid: SID_ANY, port: 0 }, remote: { sid: SID_ANY, port: 0 }, flags: 0, qos: 0, ttl: 0 };
    assert.throws(() => encodeMdpDatagram({ ...ok, local: { sid: new Uint8Array(31), port: 0 } }), RangeError);
    assert.throws(() => encodeMdpDatagram({ ...ok, remote: { sid: SID_ANY, port: 2 ** 32 } }), RangeError);
    assert.throws(() => encodeMdpDatagram({ ...ok, ttl: 256 }), RangeError);
    assert.throws(() => encodeMdpDatagram({ ...ok, flags: 0x80 }), RangeError);
    assert.throws(() => writeMdpHeader(new Uint8Array(74), 0, ok), RangeError);
  });
});
