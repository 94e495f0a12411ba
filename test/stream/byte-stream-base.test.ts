/**
 * ByteStreamBase, the shared part of every ByteStream: flags, write-after-close errors,
 * end held while paused and delivered once, close fired once (now or deferred). The
 * conformance suite (test/conformance/) runs the whole contract on each real stream.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { SvpError, isSvpError } from "../../src/errors.ts";
import { ByteStreamBase } from "../../src/stream/byte-stream-base.ts";

/** The smallest stream on the base: the test drives the transport side by hand. */
class Probe extends ByteStreamBase {
  readonly label = "probe";
  readonly writableLength = 0;
  written: Uint8Array[] = [];
  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    this.written.push(chunk);
    return true;
  }
  closeWrite(): void {
    this.markWriteClosed();
  }
  abort(err?: SvpError): void {
    this.finish(err, true);
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    this.releaseHeldEnd();
  }
  peerEnded(): void {
    this.endArrived();
  }
  done(err?: SvpError): boolean {
    return this.finish(err);
  }
  get isFinished(): boolean {
    return this.finished;
  }
  get fired(): boolean {
    return this.closeFired;
  }
}

const tick = () => new Promise<void>((r) => queueMicrotask(r));

test("base: starts paused; end is held until resume(), then delivered once, after the caller's code", async () => {
  const s = new Probe();
  let ends = 0;
  s.on("end", () => ends++);
  s.peerEnded();
  await tick();
  assert.equal(ends, 0, "no end while paused");
  assert.equal(s.readable, true);
  s.resume();
  assert.equal(ends, 0, "not inside resume()");
  await tick();
  assert.equal(ends, 1);
  assert.equal(s.readable, false);
  s.peerEnded();
  s.pause();
  s.resume();
  await tick();
  assert.equal(ends, 1, "end only once");
});

test("base: a held end is dropped when the stream pauses again or closes before the microtask", async () => {
  const s = new Probe();
  let ends = 0;
  s.on("end", () => ends++);
  s.peerEnded();
  s.resume();
  s.pause();
  await tick();
  assert.equal(ends, 0, "paused again: still held");
  s.resume();
  s.done();
  await tick();
  assert.equal(ends, 0, "closed: never delivered");
});

test("base: writes after closeWrite() or close throw ERR_ABORTED naming which", () => {
  const s = new Probe();
  s.write(new Uint8Array([1]));
  s.closeWrite();
  assert.equal(s.writable, false);
  assert.throws(() => s.write(new Uint8Array([2])), (e) => isSvpError(e, "ERR_ABORTED") && /after closeWrite/.test(e.message));
  const t = new Probe();
  t.done();
  assert.throws(() => t.write(new Uint8Array([2])), (e) => isSvpError(e, "ERR_ABORTED") && /after close$/.test(e.message));
  assert.equal(s.written.length, 1);
});

test("base: close fires exactly once, with its error; deferred close fires after the caller's code", async () => {
  const s = new Probe();
  const seen: (SvpError | undefined)[] = [];
  s.on("close", (err) => seen.push(err));
  const why = new SvpError("ERR_RESET", "reset");
  assert.equal(s.done(why), true);
  assert.equal(s.done(), false);
  assert.deepEqual(seen, [why]);
  assert.equal(s.closed, true);
  assert.equal(s.readable, false);
  assert.equal(s.writable, false);

  const d = new Probe();
  let fired = 0;
  d.on("close", () => fired++);
  d.abort();
  assert.equal(d.isFinished, true);
  assert.equal(d.fired, false);
  assert.equal(fired, 0, "not inside abort()");
  d.abort();
  await tick();
  assert.equal(fired, 1);
  assert.equal(d.fired, true);
});
