/**
 * PipeStream (svp connect's stdin/stdout) whose reader goes away (`svp connect … | head -c 10`)
 * while the relay waits for `drain` and stdin is already at EOF: the stream closes, and the
 * remote side must be reset, not left paused forever with its data.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough, Writable } from "node:stream";
import { PipeStream, StdioStream } from "../../src/platform/stdio-stream.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import { relay } from "../../src/relay/relay.ts";
import { closed, within } from "../helpers/wait.ts";

describe("PipeStream whose output reader goes away (EPIPE)", () => {
  test("with input at EOF and the relay waiting for drain: the other side is reset", async () => {
    const input = new PassThrough();
    // A reader that stops reading: writes stay pending, so write() returns false.
    const output = new Writable({ highWaterMark: 1024, write: () => {} });
    const pipe = new PipeStream(input, output, "stdio");
    const [near, far] = memoryPair();
    const r = relay(pipe, near);
    input.end();
    const farClosed = closed(far);
    far.resume();
    far.write(new Uint8Array(4096).fill(1));
    // Let the relay pass the bytes on, meet backpressure and wait for drain.
    await within(new Promise<void>((resolve) => { const t = setInterval(() => { if (output.writableLength > 0) { clearInterval(t); resolve(); } }, 1); }), 2_000, "bytes at the output");
    far.write(new Uint8Array(4096).fill(2));
    output.destroy(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    const stats = await within(r.done, 5_000, "the relay to end after EPIPE");
    const err = await within(farClosed, 2_000, "the remote side to close");
    assert.equal(err?.code, "ERR_RESET", `the remote side is reset, got ${String(err?.code)}`);
    assert.equal(stats.error?.code, "ERR_RESET", "the relay ends with a reset");
    assert.ok(pipe.closed, "the pipe stream closed");
  });

  test("stdio with stdin still open (sleep 30 | svp connect … | head): fails at once, the remote is reset", async () => {
    const input = new PassThrough(); // never ends: stdin stays open
    const output = new Writable({ write: (_c, _e, cb) => cb() });
    const pipe = new StdioStream(input, output, "stdio");
    const [near, far] = memoryPair();
    const r = relay(pipe, near);
    const farClosed = closed(far);
    far.resume();
    output.destroy(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    far.write(new Uint8Array(100));
    const stats = await within(r.done, 2_000, "the relay to end although stdin is open");
    assert.equal(stats.error?.code, "ERR_RESET", "the relay ends with a reset");
    assert.equal((await within(farClosed, 2_000, "remote close"))?.code, "ERR_RESET", "the remote side is reset");
  });
});
