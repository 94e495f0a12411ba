/**
 * The ByteStream conformance suite (src/stream/byte-stream.ts). Every implementation runs
 * it through a factory that returns two connected ends of its own kind.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { isSvpError } from "../../src/errors.ts";
import { closed, equalBytes, patternBytes, readAll, within, writeAll } from "../helpers/wait.ts";

export interface PairFactory {
  /** Two connected streams; both start paused. */
  make(): Promise<{ a: ByteStream; b: ByteStream; cleanup?: () => Promise<void> | void }>;
  /** Bytes one end may accept (write() true) before the other reads; bounds the backpressure test. */
  maxBufferedBytes: number;
  /**
   * False when the transport cannot tell a reset from a clean end (unix stream sockets
   * have no RST): the abort test then only checks that the peer stops reading. Default true.
   */
  resetVisible?: boolean;
  /** Real-time budget per test, ms. Default 10 s. */
  timeoutMs?: number;
}

export function byteStreamConformance(name: string, factory: PairFactory): void {
  const T = factory.timeoutMs ?? 10_000;
  const run = (title: string, fn: (a: ByteStream, b: ByteStream) => Promise<void>) =>
    test(title, async () => {
      const { a, b, cleanup } = await factory.make();
      try {
        await within(fn(a, b), T, title);
      } finally {
        if (!a.closed) a.abort();
        if (!b.closed) b.abort();
        await cleanup?.();
      }
    });

  describe(`ByteStream conformance: ${name}`, () => {
    run("carries 1 MiB each way intact and in order, in both directions at once", async (a, b) => {
      const up = patternBytes(1 << 20, 7);
      const down = patternBytes(1 << 20, 9);
      const [gotAtB, gotAtA] = await Promise.all([readAll(b), readAll(a), writeAll(a, up, 10_000), writeAll(b, down, 3_000)]);
      assert.ok(equalBytes(gotAtB, up), "a→b data differs");
      assert.ok(equalBytes(gotAtA, down), "b→a data differs");
      assert.equal(await closed(a), undefined);
      assert.equal(await closed(b), undefined);
    });

    run("starts paused: bytes written before resume() are delivered after it", async (a, b) => {
      let early = 0;
      b.on("data", (c) => (early += c.length));
      a.write(new TextEncoder().encode("hello"));
      a.closeWrite();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(early, 0, "data delivered while paused");
      b.off("data", () => {});
      const ended = new Promise<void>((r) => b.once("end", () => r()));
      b.resume();
      await ended;
      assert.equal(early, 5);
    });

    run("backpressure: write() returns false within the buffer bound, drain follows consumption", async (a, b) => {
      const chunk = new Uint8Array(8192).fill(1);
      let written = 0;
      while (a.write(chunk)) {
        written += chunk.length;
        assert.ok(written <= factory.maxBufferedBytes, `write() still true after ${written} bytes with the reader paused`);
      }
      written += chunk.length;
      const drained = new Promise<void>((r) => a.once("drain", () => r()));
      let got = 0;
      b.on("data", (c) => (got += c.length));
      b.resume();
      await drained;
      a.closeWrite();
      await new Promise<void>((r) => b.once("end", () => r()));
      assert.equal(got, written);
    });

    run("pause() stops delivery and resume() continues without loss", async (a, b) => {
      const data = patternBytes(256 * 1024, 3);
      const chunks: Uint8Array[] = [];
      let pausedAt = -1;
      b.on("data", (c) => {
        chunks.push(c.slice());
        if (pausedAt < 0 && chunks.length === 1) {
          b.pause();
          pausedAt = chunks.length;
          setTimeout(() => {
            assert.equal(chunks.length, pausedAt, "data delivered while paused");
            b.resume();
          }, 30);
        }
      });
      const ended = new Promise<void>((r) => b.once("end", () => r()));
      b.resume();
      await writeAll(a, data, 4096);
      await ended;
      let n = 0;
      for (const c of chunks) n += c.length;
      assert.equal(n, data.length);
      const joined = new Uint8Array(n);
      let o = 0;
      for (const c of chunks) (joined.set(c, o), (o += c.length));
      assert.ok(equalBytes(joined, data));
    });

    run("half-close a→b: b gets end after all data, then can still answer", async (a, b) => {
      const req = new TextEncoder().encode("request");
      const gotReq = readAll(b);
      a.write(req);
      a.closeWrite();
      assert.equal(a.writable, false);
      assert.equal(a.readable, true);
      assert.ok(equalBytes(await gotReq, req));
      assert.equal(b.readable, false);
      const gotResp = readAll(a);
      const resp = patternBytes(100_000, 5);
      await writeAll(b, resp, 7000);
      assert.ok(equalBytes(await gotResp, resp));
      assert.equal(await closed(a), undefined);
      assert.equal(await closed(b), undefined);
    });

    run("half-close b→a first: a keeps sending after end", async (a, b) => {
      const gotAtA = readAll(a);
      b.closeWrite();
      assert.equal((await gotAtA).length, 0);
      const data = patternBytes(50_000, 11);
      const gotAtB = readAll(b);
      await writeAll(a, data, 5000);
      assert.ok(equalBytes(await gotAtB, data));
      assert.equal(await closed(a), undefined);
      assert.equal(await closed(b), undefined);
    });

    run("close fires exactly once, after both directions finished", async (a, b) => {
      let closesA = 0;
      let closesB = 0;
      a.on("close", () => closesA++);
      b.on("close", () => closesB++);
      a.resume();
      b.resume();
      a.closeWrite();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(closesA, 0, "a closed while b could still send");
      b.closeWrite();
      await Promise.all([closed(a), closed(b)]);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(closesA, 1);
      assert.equal(closesB, 1);
      assert.equal(a.closed, true);
      assert.equal(a.writable, false);
    });

    run("abort() resets: the peer closes with an error, the aborting side closes", async (a, b) => {
      // The peer reads the data before the reset: libuv reports a RST that arrives in the
      // same poll as the last data as EOF (its POLLHUP short-circuit), which no TCP
      // adapter on Node can tell apart.
      const got = new Promise<void>((r) => b.once("data", () => r()));
      b.resume();
      a.resume();
      a.write(new Uint8Array(100));
      await got;
      const peerErr = closed(b);
      const ownClose = closed(a);
      if (factory.resetVisible === false) {
        const ended = new Promise<void>((r) => b.once("end", () => r()));
        a.abort();
        await ended;
        await ownClose;
        return;
      }
      a.abort();
      const err = await peerErr;
      assert.ok(err, "peer closed without an error after abort");
      assert.ok(isSvpError(err), "close error is not an SvpError");
      await ownClose;
      assert.equal(a.writable, false);
    });

    run("write after closeWrite() throws", async (a, b) => {
      b.resume();
      a.closeWrite();
      assert.throws(() => a.write(new Uint8Array(1)), (e: unknown) => isSvpError(e, "ERR_ABORTED"));
    });
  });
}
