import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { FrameBatcher } from "../../src/node/frame-batcher.ts";
import { Emitter } from "../../src/emitter.ts";
import type { ByteStream, ByteStreamEvents } from "../../src/stream/byte-stream.ts";

/** A ByteStream that records every write call. */
class Recorder extends Emitter<ByteStreamEvents> implements ByteStream {
  writes: Uint8Array[] = [];
  writable = true;
  readable = true;
  closed = false;
  writableLength = 0;
  label = "recorder";
  write(chunk: Uint8Array): boolean {
    assert.ok(this.writable, "write only while writable");
    this.writes.push(chunk.slice());
    return true;
  }
  closeWrite(): void {
    this.writable = false;
  }
  abort(): void {
    this.writable = false;
    this.closed = true;
  }
  pause(): void {}
  resume(): void {}
}

/** A defer that runs only when the test says so (one "I/O batch" ends). */
function manualDefer(): { defer: (fn: () => void) => void; run: () => number } {
  const q: (() => void)[] = [];
  return {
    defer: (fn) => void q.push(fn),
    run: () => {
      const n = q.length;
      for (const fn of q.splice(0)) fn();
      return n;
    },
  };
}

const bytes = (...xs: number[]) => Uint8Array.from(xs);

describe("FrameBatcher", () => {
  test("frames pushed within one batch go out as one write, in order, when the batch ends", () => {
    const s = new Recorder();
    const d = manualDefer();
    const b = new FrameBatcher(s, d.defer);
    b.push(bytes(1, 2));
    b.push(bytes(3));
    b.push(bytes(4, 5, 6));
    assert.equal(s.writes.length, 0, "nothing is written before the batch ends");
    assert.equal(b.queuedBytes, 6, "queued bytes count what waits in the batcher");
    assert.equal(d.run(), 1, "one deferred flush per batch");
    assert.deepEqual(s.writes, [bytes(1, 2, 3, 4, 5, 6)]);
    assert.equal(b.queuedBytes, 0, "nothing queued after the flush");
    b.push(bytes(7));
    d.run();
    assert.deepEqual(s.writes, [bytes(1, 2, 3, 4, 5, 6), bytes(7)], "the next batch is its own write");
  });

  test("queuedBytes includes what the stream itself still holds", () => {
    const s = new Recorder();
    s.writableLength = 100;
    const b = new FrameBatcher(s, manualDefer().defer);
    b.push(new Uint8Array(10));
    assert.equal(b.queuedBytes, 110);
  });

  test("flush() writes at once (before closeWrite), and the deferred flush then writes nothing twice", () => {
    const s = new Recorder();
    const d = manualDefer();
    const b = new FrameBatcher(s, d.defer);
    b.push(bytes(9, 9));
    b.flush();
    s.closeWrite();
    d.run();
    assert.deepEqual(s.writes, [bytes(9, 9)]);
  });

  test("frames for a stream that can no longer be written are dropped, not written", () => {
    const s = new Recorder();
    const d = manualDefer();
    const b = new FrameBatcher(s, d.defer);
    b.push(bytes(1));
    s.abort();
    b.push(bytes(2));
    d.run();
    assert.deepEqual(s.writes, [], "no write after abort");
    assert.equal(b.queuedBytes, 0, "queue cleared");
  });

  test("the default defer (a microtask) coalesces one synchronous burst", async () => {
    const s = new Recorder();
    const b = new FrameBatcher(s);
    for (let i = 0; i < 5; i++) b.push(bytes(i));
    await Promise.resolve();
    assert.deepEqual(s.writes, [bytes(0, 1, 2, 3, 4)]);
  });
});
