/** MspStream specifics beyond the ByteStream suite: what goes on the wire, and when. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { drain, hexOf, rawPeer, recordSends, runFor, utf8 } from "./helpers.ts";

async function setup() {
  const clock = new ManualClock();
  const net = new MemoryMdpNetwork({ clock });
  const svp = net.addNode();
  const peer = net.addNode();
  const sent = recordSends(net, clock, svp);
  const listener = await listenMsp(svp, 80, { clock });
  const accepted: MspStream[] = [];
  listener.on("accept", (s) => accepted.push(s));
  const client = await rawPeer(peer, clock);
  return { clock, net, sent, listener, accepted, client, to: listener.local };
}

describe("MspStream on the wire", () => {
  test("one ack covers a burst of packets consumed together", async () => {
    const { clock, net, sent, accepted, client, to } = await setup();
    client.send(to, "04ffff");
    await drain(clock);
    const s = accepted[0]!;
    const got: string[] = [];
    s.on("data", (c) => got.push(new TextDecoder().decode(c)));
    s.resume();
    await drain(clock);
    assert.deepEqual(sent.map((x) => x.hex), ["00ffff"]);
    for (let i = 0; i < 4; i++) client.send(to, `000000${i.toString(16).padStart(2, "0")}00` + hexOf(`m${i}`));
    await drain(clock);
    assert.deepEqual(got, ["m0", "m1", "m2", "m3"]);
    assert.deepEqual(sent.map((x) => x.hex), ["00ffff", "020300"], "a single ack for four packets");
    net.close();
  });

  test("a reply written while reading carries the ack; writes of one turn keep their boundaries", async () => {
    const { clock, net, sent, accepted, client, to } = await setup();
    client.send(to, "04ffff0000" + hexOf("ping"));
    await drain(clock);
    const s = accepted[0]!;
    s.on("data", () => {
      s.write(utf8("po"));
      s.write(utf8("ng"));
    });
    s.resume();
    await drain(clock);
    assert.deepEqual(sent.map((x) => x.hex), ["0200000000" + hexOf("po"), "0200000100" + hexOf("ng")]);
    net.close();
  });

  test("an incoming stream answers only when taken: resume(), write(), closeWrite() or accept()", async () => {
    for (const take of ["resume", "write", "closeWrite", "accept"] as const) {
      const { clock, net, sent, accepted, client, to } = await setup();
      client.send(to, "04ffff");
      await runFor(clock, 5000);
      assert.equal(sent.length, 0, `${take}: silent while not taken`);
      const s = accepted[0]!;
      assert.equal(s.state, "accepting");
      if (take === "write") s.write(utf8("x"));
      else s[take]();
      await drain(clock);
      assert.equal(sent.length, 1, `${take}: one answer`);
      assert.equal(s.state, take === "closeWrite" ? "local-shutdown" : "open");
      net.close();
    }
  });

  test("write() after closeWrite() throws ERR_ABORTED; writableLength counts what waits for the window", async () => {
    const { clock, net, accepted, client, to } = await setup();
    client.send(to, "04ffff");
    await drain(clock);
    const s = accepted[0]!;
    assert.equal(s.write(new Uint8Array(10_000)), true);
    await drain(clock);
    assert.equal(s.writableLength, 10_000 - 4 * 1024, "one window is on the wire");
    assert.equal(s.write(new Uint8Array(20_000)), false, "beyond the high-water mark");
    s.closeWrite();
    assert.equal(s.writable, false);
    assert.throws(() => s.write(utf8("late")), (e: unknown) => isSvpError(e, "ERR_ABORTED"));
    net.close();
  });
});
