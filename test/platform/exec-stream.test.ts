/**
 * A program that stops reading its stdin (exits early, or never reads) while the caller
 * keeps sending: its output still arrives, then the caller's stream is reset. Before,
 * the relay waited forever for a `drain` from a pipe nobody reads any more, so the
 * caller's stream hung open (`svp listen --exec 'head -c 5 >/dev/null; echo ok'`).
 * The same for stdout of `svp connect` when its reader goes away (`| head -c 10`).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnExec } from "../../src/platform/exec-stream.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import { relay } from "../../src/relay/relay.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { closed, concat, within } from "../helpers/wait.ts";

/** Write until the stream stops being writable or `max` bytes are out; honours backpressure. */
async function flood(s: ByteStream, max: number): Promise<number> {
  const chunk = new Uint8Array(16 * 1024).fill(0x61);
  let sent = 0;
  while (sent < max && s.writable) {
    sent += chunk.length;
    if (!s.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          s.off("drain", done);
          s.off("close", done);
          resolve();
        };
        s.on("drain", done);
        s.on("close", done);
      });
    }
  }
  return sent;
}

for (const [name, command, expected, lateReader] of [
  ["reads 5 bytes, answers, exits", "head -c 5 >/dev/null; echo got5", "got5\n", false],
  ["never reads, writes, exits", "echo hello", "hello\n", false],
  ["exits at once", "exit 0", "", false],
  ["never reads, writes 300 kB, exits (caller reads only after the exit)", "head -c 300000 /dev/zero | tr '\\0' x", "x".repeat(300_000), true],
] as const) {
  describe(`exec program that ${name} while the caller keeps sending`, () => {
    test("its output arrives, then the caller is reset (no hang)", async () => {
      const exec = await spawnExec(command);
      // The late reader leaves the output queued in `near` when the program exits: it must
      // still arrive whole before the reset.
      const [near, far] = memoryPair({ highWaterMark: 1024 * 1024 });
      const r = relay(exec, near);
      const got: Uint8Array[] = [];
      far.on("data", (c) => got.push(c.slice()));
      if (lateReader) exec.once("close", () => setTimeout(() => far.resume(), 50));
      else far.resume();
      const farClosed = closed(far);
      void flood(far, 64 * 1024 * 1024);
      const stats = await within(r.done, 10_000, "the relay to end after the program exited");
      const err = await within(farClosed, 2_000, "the caller's stream to close");
      const out = new TextDecoder().decode(concat(got));
      assert.ok(out === expected, `the program's output is delivered whole: ${out.length} of ${expected.length} bytes`);
      assert.equal(err?.code, "ERR_RESET", `the caller sees a reset, got ${String(err?.code)}`);
      assert.equal(stats.error?.code, "ERR_RESET", "the relay ends with a reset");
      assert.ok(stats.aToB < 64 * 1024 * 1024, "the caller did not get to send everything");
    });
  });
}
