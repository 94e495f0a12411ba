/**
 * MeshStream (a ByteStream as a node:stream Duplex) and toWebStreams, in memory: each
 * wraps one end of a `memoryPair`, the test drives the other end as the "peer".
 * test/api/open-mesh.test.ts runs both over real MSP between two nodes.
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { MeshStream } from "../../src/platform/mesh-stream.ts";
import { toWebStreams } from "../../src/platform/web-streams.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { SvpError, isSvpError } from "../../src/errors.ts";
import { closed, readAll, within } from "../helpers/wait.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const addr = { sid: "AA".repeat(32), port: 1 };
const turn = () => new Promise((r) => setTimeout(r, 0));

function pair(): { s: MeshStream; peer: ByteStream; inner: ByteStream } {
  const [inner, peer] = memoryPair({ highWaterMark: 1024 });
  return { s: new MeshStream(inner, addr, { sid: "BB".repeat(32), port: 2 }), peer, inner };
}

test("nothing is read before a consumer: the bytes wait (backpressure), then a data listener gets them all", async () => {
  const { s, peer } = pair();
  peer.write(text("x".repeat(4000)));
  await turn();
  assert.equal(peer.writableLength, 4000, "not consumed while nobody reads");
  assert.equal(peer.write(text("y")), false, "the writer is held back");
  let got = "";
  s.on("data", (c: Uint8Array) => (got += str(c)));
  peer.closeWrite();
  await within(new Promise((r) => s.once("end", r)), 2000, "end");
  assert.equal(got, "x".repeat(4000) + "y");
  assert.deepEqual(s.peer, { sid: "BB".repeat(32), port: 2 });
});

test("half-close both ways; close comes after the inner stream closed, without error", async () => {
  const { s, peer, inner } = pair();
  peer.resume();
  const peerGot = readAll(peer);
  s.write("ab");
  s.end("cd");
  assert.equal(str(await within(peerGot, 2000, "the peer's end")), "abcd");
  assert.equal(inner.readable, true, "reading goes on after our end()");
  let got = "";
  s.on("data", (c: Uint8Array) => (got += str(c)));
  peer.write(text("reply"));
  peer.closeWrite();
  await within(new Promise((r) => s.once("close", r)), 2000, "close");
  assert.equal(got, "reply");
  assert.equal(inner.closed, true);
  assert.equal(s.errored, null);
});

test("destroy(err) resets the inner stream (the peer sees ERR_RESET); a peer reset is the Duplex's SvpError", async () => {
  const a = pair();
  a.s.on("error", () => {});
  const peerClosed = closed(a.peer);
  a.s.destroy(new SvpError("ERR_TIMEOUT", "mine"));
  const e = await within(peerClosed, 2000, "the peer's close");
  assert.ok(isSvpError(e, "ERR_RESET"));

  const b = pair();
  const err = within(new Promise<unknown>((r) => b.s.once("error", r)), 2000, "error");
  b.s.resume();
  b.peer.abort(new SvpError("ERR_ABORTED", "theirs"));
  assert.ok(isSvpError(await err, "ERR_RESET"), "the inner stream's error, as it is");
});

test("a full inner queue holds write()'s callback until the peer consumes; writing after a reset fails", async () => {
  const { s, peer, inner } = pair();
  s.on("error", () => {});
  let called = false;
  const done = new Promise<void>((r) => s.write(new Uint8Array(3000), () => ((called = true), r())));
  await turn();
  assert.equal(called, false, "not done while the peer has not consumed");
  assert.equal(inner.writableLength, 3000);
  peer.resume();
  await within(done, 2000, "the write callback");
  peer.abort();
  await within(new Promise((r) => s.once("close", r)), 2000, "close");
  const e = await new Promise<unknown>((r) => s.write(text("late"), r));
  assert.ok(e instanceof Error);
});

test("toWebStreams: reading pulls, closing the writer half-closes, cancelling resets", async () => {
  const { s, peer } = pair();
  const { readable, writable } = toWebStreams(s);
  peer.resume();
  const peerGot = readAll(peer);
  const w = writable.getWriter();
  await w.write(text("to "));
  await w.write(text("peer"));
  await w.close();
  assert.equal(str(await within(peerGot, 2000, "the peer's end")), "to peer");
  peer.write(text("back"));
  const reader = readable.getReader();
  const r = await within(reader.read(), 2000, "a chunk");
  assert.equal(str(r.value!), "back");
  const peerClosed = closed(peer);
  await reader.cancel();
  assert.ok(isSvpError(await within(peerClosed, 2000, "the peer's close"), "ERR_RESET"));
});

test("toWebStreams: a peer reset errors the reader with the SvpError; aborting the writer resets", async () => {
  const a = pair();
  const web = toWebStreams(a.s);
  const reader = web.readable.getReader();
  const pending = reader.read();
  a.peer.abort();
  const e = await within(pending.then(() => undefined, (err: unknown) => err), 2000, "the reader's error");
  assert.ok(isSvpError(e, "ERR_RESET"), String(e));

  const b = pair();
  const w = toWebStreams(b.s).writable.getWriter();
  const peerClosed = closed(b.peer);
  await w.abort(new Error("stop"));
  assert.ok(isSvpError(await within(peerClosed, 2000, "the peer's close"), "ERR_RESET"));
});
