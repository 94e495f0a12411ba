/** connectMsp `early`: the stream before the peer's answer, writes as 0-RTT data, outcomes as close errors. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import type { SvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { drain, hexOf, rawPeer, runFor, utf8 } from "./helpers.ts";

async function setup() {
  const clock = new ManualClock();
  const net = new MemoryMdpNetwork({ clock });
  const svp = net.addNode();
  const peer = net.addNode();
  const raw = await rawPeer(peer, clock, 80);
  return { clock, net, svp, raw, to: { sid: peer.localSid, port: 80 } };
}

describe("connectMsp early", () => {
  test("resolves before any answer; a write goes out at once, after FIRST", async () => {
    const { clock, net, svp, raw, to } = await setup();
    let resolved = false;
    const p = connectMsp(svp, to, { clock, early: true }).then((s) => ((resolved = true), s));
    await drain(clock);
    assert.ok(resolved, "resolved without an answer");
    const s = await p;
    s.write(utf8("GET /"));
    await drain(clock);
    assert.deepEqual(raw.got.map((g) => g.hex), ["04ffff", "04ffff0000" + hexOf("GET /")], "FIRST, then the data without waiting");
    // Without early, nothing resolves until the peer answers.
    let plain = false;
    void connectMsp(svp, to, { clock }).then(() => (plain = true), () => undefined);
    await runFor(clock, 1000);
    assert.equal(plain, false, "a plain connect waits for the answer");
    s.abort();
    net.close();
    await drain(clock);
  });

  test("a STOP as the answer closes the stream with ERR_REFUSED", async () => {
    const { clock, net, svp, raw, to } = await setup();
    const s = await connectMsp(svp, to, { clock, early: true });
    const closed = new Promise<SvpError | undefined>((r) => s.once("close", r));
    await drain(clock);
    raw.send(raw.got[0]!.from, "08ffff");
    await drain(clock);
    assert.equal((await closed)?.code, "ERR_REFUSED");
    net.close();
  });

  test("silence closes the stream with ERR_TIMEOUT after MSP's timeout", async () => {
    const { clock, net, svp, to } = await setup();
    const s = await connectMsp(svp, to, { clock, early: true, timeoutMs: 2000 });
    let err: SvpError | undefined;
    s.once("close", (e) => (err = e));
    await runFor(clock, 1900);
    assert.equal(s.closed, false, "still waiting before the timeout");
    await runFor(clock, 200);
    assert.equal(err?.code, "ERR_TIMEOUT");
    net.close();
  });
});
