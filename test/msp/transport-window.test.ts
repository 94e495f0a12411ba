/** A transport's `mspWindow` (servald: 5) is the window of MSP streams over it unless one is given. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import type { MemoryMdpTransport } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { SERVALD_MSP_WINDOW } from "../../src/servald/servald-payload-limit.ts";
import { drain } from "./helpers.ts";

/** Two nodes; `a` advertises `window` like the servald transport does. Nothing is delivered to b's streams' readers. */
async function setup(window: number | undefined) {
  const clock = new ManualClock();
  const net = new MemoryMdpNetwork({ clock });
  const a = net.addNode();
  const b = net.addNode();
  if (window !== undefined) Object.defineProperty(a, "mspWindow", { value: window });
  /** Data packets (5+ bytes) each node sent, counted per sender. */
  const dataFrom = new Map<MemoryMdpTransport, number>([[a, 0], [b, 0]]);
  net.filter = (d) => {
    if (d.payload.length > 5) {
      const from = [a, b].find((n) => n.localSid.every((x, i) => x === d.from.sid[i]));
      if (from) dataFrom.set(from, dataFrom.get(from)! + 1);
    }
  };
  return { clock, net, a, b, dataFrom };
}

describe("MSP window from the transport", () => {
  test("servald's tools keep 5 packets in flight", () => {
    assert.equal(SERVALD_MSP_WINDOW, 5);
  });

  for (const [window, given, expected] of [
    [undefined, undefined, 4],
    [5, undefined, 5],
    [5, 3, 3],
  ] as const) {
    test(`transport window ${window ?? "unset"}, option ${given ?? "unset"}: ${expected} packets in flight both ways`, async () => {
      const { clock, net, a, b, dataFrom } = await setup(window);
      // a listens (its streams take the transport's window) and connects (likewise) to b.
      const listener = await listenMsp(a, 80, { clock, ...(given !== undefined ? { window: given } : {}) });
      const accepted: MspStream[] = [];
      listener.on("accept", (s) => accepted.push(s));
      const bListener = await listenMsp(b, 81, { clock, window: 16 });
      const bAccepted: MspStream[] = [];
      bListener.on("accept", (s) => bAccepted.push(s)); // never resumed: nothing is acknowledged

      // b → a: b's stream reads nothing; a's accepted stream writes 20 KiB.
      const fromB = connectMsp(b, listener.local, { clock, window: 16 });
      await drain(clock);
      assert.equal(accepted.length, 1, "a accepted the stream");
      dataFrom.set(a, 0);
      accepted[0]!.write(new Uint8Array(20 * 1024)); // also the answer to b's connect
      await drain(clock);
      assert.equal(dataFrom.get(a), expected, "a's listener-side stream: packets sent before any ack");
      const sb = await fromB;

      // a → b: a connects to b (whose stream is never read) and writes 20 KiB.
      const toB = connectMsp(a, bListener.local, { clock, ...(given !== undefined ? { window: given } : {}) });
      await drain(clock);
      bAccepted[0]!.accept(); // answers without reading anything
      await drain(clock);
      const sa = await toB;
      dataFrom.set(a, 0);
      sa.write(new Uint8Array(20 * 1024));
      await drain(clock);
      assert.equal(dataFrom.get(a), expected, "a's connector stream: packets sent before any ack");

      for (const s of [sa, sb, ...accepted, ...bAccepted]) s.abort();
      listener.abort();
      bListener.abort();
      await drain(clock);
      net.close();
    });
  }
});
