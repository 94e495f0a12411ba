/** The relay over in-memory pairs and a manual clock. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError, isSvpError } from "../../src/errors.ts";
import { Relay } from "../../src/relay/relay.ts";
import type { RelayOptions } from "../../src/relay/relay.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { closed, concat, equalBytes, patternBytes, readAll, within, writeAll } from "../helpers/wait.ts";

/** outer-a ⇄ [a relay b] ⇄ outer-b: the test plays both outer ends. */
function chain(options: RelayOptions = {}, hwm = 64 * 1024) {
  const [left, a] = memoryPair({ highWaterMark: hwm, labels: ["left", "a"] });
  const [b, right] = memoryPair({ highWaterMark: hwm, labels: ["b", "right"] });
  const relay = new Relay(a, b, options);
  return { left, right, a, b, relay };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};

describe("relay", () => {
  test("copies both ways at once, counts bytes, ends cleanly", async () => {
    const { left, right, relay } = chain();
    const up = patternBytes(300_000, 1);
    const down = patternBytes(200_000, 2);
    const [atRight, atLeft] = await within(Promise.all([readAll(right), readAll(left), writeAll(left, up, 7000), writeAll(right, down, 5000)]), 5000, "transfer");
    assert.ok(equalBytes(atRight, up), "a→b data differs");
    assert.ok(equalBytes(atLeft, down), "b→a data differs");
    const stats = await within(relay.done, 2000, "relay done");
    assert.equal(stats.aToB, up.length);
    assert.equal(stats.bToA, down.length);
    assert.equal(stats.error, undefined);
  });

  test("backpressure end to end: a paused reader stops the writer within the buffers, and all bytes arrive after", async () => {
    const hwm = 1024;
    const { left, right, relay } = chain({}, hwm);
    const chunk = new Uint8Array(256).fill(7);
    let written = 0;
    left.resume(); // it reads nothing, but must see its end for the pair to close
    right.pause();
    for (let i = 0; i < 1000; i++) {
      const ok = left.write(chunk);
      written += chunk.length;
      await settle();
      if (!ok) break;
    }
    assert.ok(written < 4 * hwm, `writer not stopped after ${written} bytes`);
    const drained = new Promise<void>((r) => left.once("drain", () => r()));
    const got: Uint8Array[] = [];
    right.on("data", (c) => got.push(c));
    right.resume();
    await within(drained, 2000, "drain at the writer");
    left.closeWrite();
    await within(new Promise<void>((r) => right.once("end", () => r())), 2000, "end");
    assert.equal(concat(got).length, written);
    right.closeWrite();
    assert.equal((await relay.done).aToB, written);
  });

  test("half-close: the end of one direction becomes closeWrite on the other leg; the other direction flows on", async () => {
    const { left, right, relay } = chain();
    const atRight = readAll(right);
    left.write(new TextEncoder().encode("request"));
    left.closeWrite();
    assert.equal(new TextDecoder().decode(await within(atRight, 2000, "end at right")), "request");
    const atLeft = readAll(left);
    await writeAll(right, patternBytes(100_000, 3), 4096);
    assert.ok(equalBytes(await within(atLeft, 2000, "answer"), patternBytes(100_000, 3)));
    const stats = await relay.done;
    assert.deepEqual([stats.aToB, stats.bToA, stats.error], [7, 100_000, undefined]);
  });

  test("half-close the other way: b's end first, a keeps sending", async () => {
    const { left, right, relay } = chain();
    const atLeft = readAll(left);
    right.closeWrite();
    assert.equal((await within(atLeft, 2000, "end at left")).length, 0);
    const atRight = readAll(right);
    await writeAll(left, patternBytes(50_000, 4), 3000);
    assert.ok(equalBytes(await within(atRight, 2000, "data after end"), patternBytes(50_000, 4)));
    assert.equal((await relay.done).error, undefined);
  });

  test("idle timeout: aborts only after no byte moved either way for the whole time", async () => {
    const clock = new ManualClock();
    const { left, right, relay } = chain({ clock, idleTimeoutMs: 1500 });
    left.resume();
    right.resume();
    const leftClosed = closed(left);
    clock.advance(1400);
    left.write(Uint8Array.of(1));
    await settle();
    clock.advance(1400);
    await settle();
    assert.equal(left.closed, false, "aborted although a byte moved 1400 ms ago");
    clock.advance(100);
    await settle();
    const stats = await within(relay.done, 1000, "relay done");
    assert.ok(isSvpError(stats.error, "ERR_TIMEOUT"));
    assert.match(stats.error.message, /no data for 1\.5 s$/);
    assert.equal(stats.idleTimeout, true, "marked as the relay's own timer (svp connect exits 5 for it, 1 for a leg's failure)");
    assert.ok(isSvpError(await within(leftClosed, 1000, "left closed"), "ERR_RESET"), "the far end did not see a reset");
    assert.equal(right.closed, true);
    assert.equal(clock.pendingCount, 0, "timer left behind");
  });

  test("linger timeout after a half-close, and no timer at all while open and idle-timeout is off", async () => {
    const clock = new ManualClock();
    const { left, right, relay } = chain({ clock, lingerMs: 5000 });
    left.resume();
    right.resume();
    await settle();
    assert.equal(clock.pendingCount, 0, "an idle tunnel holds a timer");
    left.closeWrite();
    await settle();
    assert.equal(clock.pendingCount, 1);
    clock.advance(4000);
    right.write(Uint8Array.of(1, 2));
    await settle();
    clock.advance(4000);
    await settle();
    assert.equal(right.closed, false, "linger counted from the half-close, not from the last byte");
    clock.advance(1000);
    const stats = await within(relay.done, 1000, "relay done");
    assert.ok(isSvpError(stats.error, "ERR_TIMEOUT"));
    assert.match(stats.error!.message, /half-closed/);
  });

  test("a reset on one leg aborts the other with the same error", async () => {
    const { left, right, relay } = chain();
    left.resume();
    right.resume();
    right.abort(new SvpError("ERR_RESET", "peer reset"));
    const err = await within(closed(left), 2000, "left closed");
    assert.ok(isSvpError(err), "left closed without an error");
    const stats = await relay.done;
    assert.ok(isSvpError(stats.error, "ERR_RESET"));
    assert.equal(stats.idleTimeout, undefined);
  });

  test("relay.abort() aborts both legs: both far ends see a reset", async () => {
    const { left, right, relay } = chain();
    left.resume();
    right.resume();
    const both = Promise.all([closed(left), closed(right)]);
    relay.abort(new SvpError("ERR_ABORTED", "shutdown"));
    const [l, r] = await within(both, 2000, "both closed");
    assert.ok(isSvpError(l) && isSvpError(r), "a far end closed without an error");
    assert.ok(isSvpError((await relay.done).error, "ERR_ABORTED"));
  });

  test("close events: done resolves once, after both legs closed", async () => {
    const { left, right, relay, a, b } = chain();
    let closes = 0;
    relay.on("close", () => closes++);
    left.resume();
    right.resume();
    left.closeWrite();
    right.closeWrite();
    await within(relay.done, 2000, "done");
    await settle();
    assert.equal(closes, 1);
    assert.ok((a as ByteStream).closed && (b as ByteStream).closed, "a leg is still open");
  });
});
