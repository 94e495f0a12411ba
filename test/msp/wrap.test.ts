/** 16-bit sequence wrap-around: a stream carrying more than 70,000 messages. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { MspConnection } from "../../src/msp/connection.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { MSP_FLAG, encodeMspAck, encodeMspSequenced } from "../../src/msp/packet.ts";
import { resolveMspParams } from "../../src/msp/params.ts";
import { runUntil } from "./helpers.ts";

const MESSAGES = 75_000;
const message = (i: number) => {
  const m = new Uint8Array((i % 8) + 1);
  for (let k = 0; k < m.length; k++) m[k] = (i * 7 + k) & 0xff;
  return m;
};

describe("MSP sequence wrap-around", () => {
  test(`${MESSAGES} messages in one stream (sequence numbers wrap), boundaries kept, duplicates ignored across the wrap`, async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock, seed: 11, conditions: { duplicate: 0.05 } });
    const a = net.addNode();
    const b = net.addNode();
    const listener = await listenMsp(b, 80, { clock });
    let server: MspStream | undefined;
    let received = 0;
    let bad = -1;
    let ended = false;
    listener.on("accept", (s) => {
      server = s;
      s.on("data", (c) => {
        const want = message(received);
        if (bad < 0 && (c.length !== want.length || c.some((v, k) => v !== want[k]))) bad = received;
        received++;
      });
      s.on("end", () => {
        ended = true;
        s.closeWrite();
      });
      s.resume();
    });
    let client: MspStream | undefined;
    connectMsp(a, { sid: b.localSid, port: 80 }, { clock }).then((s) => (client = s));
    await runUntil(clock, () => client !== undefined, 1000, "connect");
    const c = client!;
    c.resume();
    let i = 0;
    const pump = () => {
      while (i < MESSAGES) if (!c.write(message(i++))) return;
      c.off("drain", pump);
      c.closeWrite();
    };
    c.on("drain", pump);
    pump();
    await runUntil(clock, () => ended && c.closed, 10_000_000, "transfer");
    assert.equal(bad, -1, `message ${bad} arrived wrong (boundaries or content)`);
    assert.equal(received, MESSAGES);
    assert.ok(c.stats.packetsOut > 65_536, `only ${c.stats.packetsOut} packets: no wrap`);
    assert.ok((server!.stats.drops.duplicate ?? 0) > 1000, "network duplicates were dropped");
    assert.equal(c.stats.retransmissions, 0);
    net.close();
  });

  test("the state machine orders and acknowledges across 0xffff → 0x0000", () => {
    const clock = new ManualClock();
    const sent: Uint8Array[] = [];
    const c = new MspConnection("connector", resolveMspParams(), clock, {
      transmit: (p) => sent.push(p),
      readable() {},
      drain() {},
      answered() {},
      closed() {},
      released() {},
    });
    c.start();
    // Walk the receive side up to 0xfffe by consuming 65535 packets.
    for (let s = 0; s < 0xffff; s++) {
      c.receive(encodeMspSequenced(0, 0xffff, s, Uint8Array.of(s & 0xff)));
      c.read();
    }
    c.flushAck();
    assert.deepEqual([...sent.at(-1)!], [MSP_FLAG.ACK, 0xfe, 0xff]);
    c.receive(encodeMspSequenced(0, 0xffff, 0x0000, Uint8Array.of(2))); // after the wrap, arrives first
    c.receive(encodeMspSequenced(0, 0xffff, 0xffff, Uint8Array.of(1)));
    c.receive(encodeMspSequenced(0, 0xffff, 0xfffe, Uint8Array.of(9))); // old: re-acked, not delivered
    assert.deepEqual([...c.read()!], [1]);
    assert.deepEqual([...c.read()!], [2]);
    assert.equal(c.read(), undefined);
    c.flushAck();
    assert.deepEqual([...sent.at(-1)!], [MSP_FLAG.ACK, 0x00, 0x00], "ack 0x0000 after the wrap");
    // Sending side: an ack of 0xffff before anything was sent is "nothing" and is accepted.
    c.receive(encodeMspAck(MSP_FLAG.ACK, 0xffff));
    assert.equal(c.counters.drops["bad-ack"], undefined);
  });
});
