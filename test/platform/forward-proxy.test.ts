/**
 * startForwardProxy (`svp connect --forward` as one call): real loopback TCP clients, the
 * mesh side an in-memory stream answered by an upper-casing echo.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseListenAddress } from "../../src/options.ts";
import { startForwardProxy } from "../../src/platform/forward-proxy.ts";
import type { ForwardRecord } from "../../src/service/forward-server.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { tcpRoundTrip, within } from "../helpers/wait.ts";

/** A far end that answers everything it got, upper-cased, once the client has finished. */
function upperEcho(): Promise<ByteStream> {
  const [near, far] = memoryPair();
  let text = "";
  const dec = new TextDecoder();
  far.on("data", (c) => (text += dec.decode(c, { stream: true })));
  far.on("end", () => {
    far.write(new TextEncoder().encode(text.toUpperCase()));
    far.closeWrite();
  });
  far.resume();
  return Promise.resolve(near);
}

/** Send `text`, half-close, read the answer to the end. */
const roundTrip = tcpRoundTrip;

test("startForwardProxy: each client reaches the dialled stream, half-close both ways; onConnection reports it; close stops it", async () => {
  const records: ForwardRecord[] = [];
  let dials = 0;
  const proxy = await startForwardProxy({
    listen: parseListenAddress("127.0.0.1:0"),
    targetLabel: "echo",
    dial: () => {
      dials++;
      return upperEcho();
    },
    workers: 1,
    onConnection: (r) => records.push(r),
  });
  try {
    assert.match(proxy.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(await within(roundTrip(proxy.address, "hello"), 5000, "first answer"), "HELLO");
    assert.equal(await within(roundTrip(proxy.address, "again"), 5000, "second answer"), "AGAIN");
    assert.equal(dials, 2);
    await within((async () => { while (records.length < 2) await new Promise((r) => setTimeout(r, 5)); })(), 5000, "two records");
    assert.deepEqual(records.map((r) => [r.outcome, r.up, r.down, r.target]), [["ok", 5, 5, "echo"], ["ok", 5, 5, "echo"]]);
  } finally {
    await proxy.close(0);
  }
  const r = await proxy.server.done;
  assert.equal(r.reason, "closed");
  await assert.rejects(roundTrip(proxy.address, "late"), /ECONNREFUSED/, "the listener is closed");
});

test("startForwardProxy: once serves one connection and ends with its outcome; a dial failure is that outcome", async () => {
  const proxy = await startForwardProxy({
    listen: parseListenAddress("127.0.0.1:0"),
    targetLabel: "nowhere",
    dial: () => Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
    once: true,
    workers: 1,
  });
  try {
    // The client is reset: its destination could not be opened.
    await assert.rejects(within(roundTrip(proxy.address, "x"), 5000, "the refused client's end"), /ECONNRESET/);
    const result = await within(proxy.server.done, 5000, "done after the one connection");
    assert.equal(result.reason, "once");
    assert.equal(result.error?.code, "ERR_REFUSED");
  } finally {
    await proxy.close(0);
  }
});

test("startForwardProxy: an address that cannot be bound rejects", async () => {
  const first = await startForwardProxy({ listen: parseListenAddress("127.0.0.1:0"), targetLabel: "t", dial: upperEcho, workers: 1 });
  try {
    await assert.rejects(startForwardProxy({ listen: parseListenAddress(first.address), targetLabel: "t", dial: upperEcho, workers: 1 }), (e: Error) => /EADDRINUSE|in use/i.test(e.message) || (e as { code?: string }).code === "ERR_BUSY");
  } finally {
    await first.close(0);
  }
});
