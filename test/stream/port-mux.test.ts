import { test } from "node:test";
import assert from "node:assert/strict";
import { PortMux, isMuxMessage } from "../../src/stream/port-mux.ts";
import type { MuxMessage } from "../../src/stream/port-mux.ts";
import { PortStream } from "../../src/stream/port-stream.ts";
import type { PortLike } from "../../src/stream/port-stream.ts";

/** Two muxes joined by a queue that delivers when `flush()` is called (a channel, by hand). */
function pair() {
  const toRight: MuxMessage[] = [];
  const toLeft: MuxMessage[] = [];
  const left = new PortMux((m) => toRight.push(m));
  const right = new PortMux((m) => toLeft.push(m));
  const dropped = { left: 0, right: 0 };
  const flush = () => {
    while (toRight.length + toLeft.length > 0) {
      for (const m of toRight.splice(0)) if (!right.deliver(m)) dropped.right++;
      for (const m of toLeft.splice(0)) if (!left.deliver(m)) dropped.left++;
    }
  };
  return { left, right, toRight, flush, dropped };
}

test("ports with the same id on both sides talk; other ids stay apart", () => {
  const { left, right, flush } = pair();
  const got: string[] = [];
  const l1 = left.open(1);
  const l2 = left.open(2);
  const r1 = right.open(1);
  const r2 = right.open(2);
  r1.onmessage = (ev) => got.push(`1:${String(ev.data)}`);
  r2.onmessage = (ev) => got.push(`2:${String(ev.data)}`);
  l1.postMessage("a");
  l2.postMessage("b");
  l1.postMessage("c");
  flush();
  assert.deepEqual(got, ["1:a", "2:b", "1:c"]);
  assert.equal(left.size, 2);
});

test("a closed port sends nothing and drops what arrives; unknown ids are dropped and counted", () => {
  const { left, right, toRight, flush, dropped } = pair();
  const l = left.open(5);
  const r = right.open(5);
  let got = 0;
  r.onmessage = () => got++;
  r.close();
  assert.equal(right.size, 0);
  l.postMessage("late");
  flush();
  assert.equal(got, 0);
  assert.equal(dropped.right, 1, "the message for a closed port is dropped");
  r.postMessage("from closed");
  assert.equal(toRight.length, 0);
  l.close();
  l.postMessage("after close");
  assert.equal(toRight.length, 0, "a closed port posts nothing");
});

test("closeAll closes every port (the worker is gone)", () => {
  const { left } = pair();
  const a = left.open(1);
  left.open(2);
  let got = 0;
  a.onmessage = () => got++;
  left.closeAll();
  assert.equal(left.size, 0);
  assert.equal(left.deliver({ t: "s", id: 1, m: "x" }), false);
  assert.equal(got, 0);
});

test("isMuxMessage tells stream messages from the channel's other traffic", () => {
  assert.equal(isMuxMessage({ t: "s", id: 3, m: [0] }), true);
  assert.equal(isMuxMessage({ t: "dialed", id: 3 }), false);
  assert.equal(isMuxMessage({ t: "s", id: "3" }), false);
  assert.equal(isMuxMessage(null), false);
});

test("many PortStreams over one channel: every byte arrives on its own stream, ends delivered", async () => {
  const { port1, port2 } = new MessageChannel();
  const left = new PortMux((m) => port1.postMessage(m));
  const right = new PortMux((m) => port2.postMessage(m));
  (port1 as unknown as PortLike).onmessage = (ev) => void (isMuxMessage(ev.data) && left.deliver(ev.data));
  (port2 as unknown as PortLike).onmessage = (ev) => void (isMuxMessage(ev.data) && right.deliver(ev.data));
  try {
    const n = 20;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const a = new PortStream(left.open(i + 1), { label: `a${i}` });
        const b = new PortStream(right.open(i + 1), { label: `b${i}` });
        const aClosed = new Promise<void>((resolve) => a.once("close", () => resolve()));
        return new Promise<{ i: number; text: string }>((resolve, reject) => {
          let text = "";
          b.on("data", (c: Uint8Array) => (text += new TextDecoder().decode(c)));
          b.on("end", () => b.closeWrite());
          b.on("close", (err?: Error) => (err ? reject(err) : void aClosed.then(() => resolve({ i, text }))));
          b.resume();
          a.on("data", () => {});
          a.resume();
          for (let k = 0; k < 10; k++) a.write(new TextEncoder().encode(`${i}.${k};`));
          a.closeWrite();
        });
      }),
    );
    for (const { i, text } of results) assert.equal(text, Array.from({ length: 10 }, (_, k) => `${i}.${k};`).join(""));
    // Both ends of every stream closed, and with them their ports: none is left open.
    assert.equal(left.size, 0);
    assert.equal(right.size, 0);
  } finally {
    port1.close();
    port2.close();
  }
});
