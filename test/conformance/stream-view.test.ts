import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import { StreamView } from "../../src/stream/stream-view.ts";
import { byteStreamConformance } from "./byte-stream-suite.ts";
import { readAll, within } from "../helpers/wait.ts";

// Both ends wrapped: every contract rule must survive the view.
byteStreamConformance("stream view over a memory pair", {
  maxBufferedBytes: 64 * 1024 + 8192,
  async make() {
    const [a, b] = memoryPair();
    return { a: new StreamView(a), b: new StreamView(b) };
  },
});

describe("StreamView", () => {
  test("delivers the prefix before the inner stream's bytes", async () => {
    const [a, b] = memoryPair();
    const view = new StreamView(b, { prefix: new TextEncoder().encode("head:") });
    a.write(new TextEncoder().encode("body"));
    a.closeWrite();
    const got = await within(readAll(view), 2000, "view end");
    assert.equal(new TextDecoder().decode(got), "head:body");
  });

  test("holdEnd keeps `end` back until releaseEnd(), data still flows", async () => {
    const [a, b] = memoryPair();
    const view = new StreamView(b, { holdEnd: true });
    let ended = false;
    let bytes = 0;
    view.on("data", (c) => (bytes += c.length));
    view.on("end", () => (ended = true));
    view.resume();
    a.write(new Uint8Array(10));
    a.closeWrite();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(bytes, 10, "data did not pass while end was held");
    assert.equal(ended, false, "end was delivered while held");
    view.releaseEnd();
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(ended, true, "end was not delivered after releaseEnd()");
  });
});
