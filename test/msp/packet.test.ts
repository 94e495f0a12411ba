import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  MSP_FLAG,
  decodeMspPacket,
  describeMspFlags,
  encodeMspAck,
  encodeMspPacket,
  encodeMspSequenced,
  encodeMspStop,
  seqDiff,
} from "../../src/msp/packet.ts";
import { decodeMdpDatagram } from "../../src/mdp/header.ts";
import { fromHex, toHex } from "../../src/bytes/hex.ts";
import { TRACE_ROWS } from "../mdp/trace-vectors.ts";

const text = (s: string) => new TextEncoder().encode(s);

describe("MSP packet codec", () => {
  test("flag table matches msp_common.h", () => {
    assert.deepEqual({ ...MSP_FLAG }, { SHUTDOWN: 0x01, ACK: 0x02, FIRST: 0x04, STOP: 0x08 });
  });

  test("every flag combination in both forms: little-endian ack and seq, exact bytes, round trip", () => {
    for (let f = 0; f < 16; f++) {
      if (f & MSP_FLAG.STOP) continue;
      const ackOnly = encodeMspAck(f, 0x1234);
      assert.deepEqual([...ackOnly], [f, 0x34, 0x12], `ack-only flags ${f}`);
      assert.deepEqual(decodeMspPacket(ackOnly), { ok: true, packet: { form: "ack", flags: f, ack: 0x1234 } });
      for (const data of [new Uint8Array(0), Uint8Array.of(0xaa), text("HELLO-MESH"), new Uint8Array(1024).fill(7)]) {
        const seqd = encodeMspSequenced(f, 0xfffe, 0xabcd, data);
        assert.deepEqual([...seqd.subarray(0, 5)], [f, 0xfe, 0xff, 0xcd, 0xab], `sequenced flags ${f}`);
        assert.equal(seqd.length, 5 + data.length);
        const r = decodeMspPacket(seqd);
        assert.ok(r.ok && r.packet.form === "sequenced", "r.ok && r.packet.form === \"sequenced\"");
        if (r.ok && r.packet.form === "sequenced") {
          assert.equal(r.packet.flags, f);
          assert.equal(r.packet.ack, 0xfffe);
          assert.equal(r.packet.seq, 0xabcd);
          assert.deepEqual([...r.packet.data], [...data]);
          assert.deepEqual([...encodeMspPacket(r.packet)], [...seqd]);
        }
      }
    }
  });

  test("STOP: servald's 1-byte form, and STOP with any other flags or length is a STOP", () => {
    assert.deepEqual([...encodeMspStop()], [0x08]);
    for (let f = 0; f < 16; f++) {
      const flags = f | MSP_FLAG.STOP;
      for (const bytes of [Uint8Array.of(flags), Uint8Array.of(flags, 0, 0), Uint8Array.of(flags, 1, 2, 3, 4, 5)]) {
        assert.deepEqual(decodeMspPacket(bytes), { ok: true, packet: { form: "stop", flags } });
      }
    }
  });

  test("the MSP packets inside the servald traces decode to the flags, ack, seq and data shown", () => {
    let checked = 0;
    for (const row of TRACE_ROWS) {
      const mdp = decodeMdpDatagram(fromHex(row.hex)!);
      assert.ok(mdp.ok, "mdp.ok");
      if (mdp.payload.length === 0) continue;
      const what = `${row.scenario} ${row.ms} ${row.process} ${row.dir}`;
      // The connector's bind-and-send datagram shows the MSP packet as "payload <hex>".
      if (row.data.startsWith("payload ")) {
        if (row.truncated) assert.ok(row.data.slice(8).startsWith(toHex(mdp.payload)), what);
        else assert.equal(toHex(mdp.payload), row.data.slice(8), what);
        checked++;
        continue;
      }
      const r = decodeMspPacket(mdp.payload);
      assert.ok(r.ok, what);
      const p = r.packet;
      assert.equal(describeMspFlags(p.flags), row.msp, `${what}: flags`);
      if (p.form === "stop") {
        assert.equal(mdp.payload.length, 1, `${what}: servald's STOP is one byte`);
      } else {
        assert.equal(`0x${p.ack.toString(16).padStart(4, "0")}`, row.ack, `${what}: ack`);
      }
      if (p.form === "sequenced") {
        assert.equal(`0x${p.seq.toString(16).padStart(4, "0")}`, row.seq, `${what}: seq`);
        if (!row.truncated) assert.equal(new TextDecoder().decode(p.data), row.data, `${what}: data`);
        if (!row.truncated) assert.equal(toHex(encodeMspPacket(p)), toHex(mdp.payload), `${what}: re-encoding`);
      } else {
        assert.equal(row.seq, "", `${what}: no seq in a short packet`);
        assert.equal(toHex(encodeMspPacket(p)), toHex(mdp.payload), `${what}: re-encoding`);
      }
      checked++;
    }
    assert.ok(checked >= 45, `only ${checked} MSP packets checked`);
  });

  test("empty, truncated and oversize datagrams are errors with a reason, never exceptions", () => {
    assert.deepEqual(decodeMspPacket(new Uint8Array(0)), { ok: false, reason: "empty", detail: "empty MSP packet" });
    for (const n of [1, 2, 4]) {
      const r = decodeMspPacket(new Uint8Array(n)); // flags 0: not a STOP
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.reason, "truncated", `${n} bytes`);
    }
    assert.equal(decodeMspPacket(new Uint8Array(1160)).ok, true);
    const big = decodeMspPacket(new Uint8Array(1161));
    assert.equal(big.ok, false);
    if (!big.ok) assert.equal(big.reason, "oversize");
    const capped = decodeMspPacket(new Uint8Array(100), 99);
    assert.equal(capped.ok, false);
    let x = 99;
    for (let n = 0; n < 2000; n++) {
      const g = new Uint8Array(n % 1300);
      for (let i = 0; i < g.length; i++) g[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      const r = decodeMspPacket(g);
      assert.equal(typeof r.ok, "boolean");
    }
  });

  test("sequence comparison wraps at 16 bits: (int16)(a - b)", () => {
    assert.equal(seqDiff(1, 0), 1);
    assert.equal(seqDiff(0, 1), -1);
    assert.equal(seqDiff(0, 0xffff), 1);
    assert.equal(seqDiff(0xffff, 0), -1);
    assert.equal(seqDiff(5, 0xfffb), 10);
    assert.equal(seqDiff(0x7fff, 0), 0x7fff);
    assert.equal(seqDiff(0x8000, 0), -0x8000);
    assert.equal(seqDiff(0x1234, 0x1234), 0);
  });
});
