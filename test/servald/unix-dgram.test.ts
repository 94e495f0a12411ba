/**
 * The native AF_UNIX datagram addon through its platform wrapper: exact-length abstract
 * names, filesystem paths, autobind, sender addresses, connect, EAGAIN + writable, close.
 * Skipped (with the reason) where the addon is not built.
 */

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openUnixDatagram as openAnyMode, unixDatagramSupport } from "../../src/platform/unix-dgram.ts";
import type { UnixDatagramSocket } from "../../src/platform/unix-dgram.ts";
import { within } from "../helpers/wait.ts";

const support = unixDatagramSupport();
const skip = support.available ? false : `native addon unavailable: ${support.reason}`;

const enc = new TextEncoder();
const dec = new TextDecoder();

function nextMessage(s: UnixDatagramSocket): Promise<{ data: Uint8Array; from: Uint8Array }> {
  return within(new Promise((resolve) => s.once("message", (data, from) => resolve({ data, from }))), 5000, "a datagram");
}

const isNode = !("Deno" in globalThis) && !("Bun" in globalThis);

// Both ways of receiving: on Node's event loop (Node's default) and from a reader thread
// (Deno's and Bun's; Node too when asked). Under Deno both runs use the thread.
for (const mode of ["event-loop", "thread"] as const) describe(`unix datagram addon (${mode})`, { skip }, () => {
  const openUnixDatagram = (o: Parameters<typeof openAnyMode>[0]) => openAnyMode({ ...o, receiveMode: mode });
  const tag = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${mode}`;
  /** An abstract name: NUL + text, exactly that long. */
  const abstract = (name: string) => {
    const b = enc.encode(`svp-test/${tag}/${name}`);
    const out = new Uint8Array(b.length + 1);
    out.set(b, 1);
    return out;
  };

  const open: UnixDatagramSocket[] = [];
  const track = (s: UnixDatagramSocket) => (open.push(s), s);
  let dir = "";
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "svp-ud-"));
  });
  after(() => {
    for (const s of open) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("abstract names: exact length, sender address, reply to an autobound socket", async () => {
    const server = track(openUnixDatagram({ bind: abstract("server") }));
    assert.equal(server.receiveMode, mode === "event-loop" && isNode ? "event-loop" : "thread");
    assert.deepEqual(server.address, abstract("server"));
    const client = track(openUnixDatagram({ bind: new Uint8Array(0) }));
    assert.equal(client.address[0], 0, "autobind gives an abstract name");
    assert.ok(client.address.length > 1);

    const got = nextMessage(server);
    assert.equal(client.send(enc.encode("hello"), abstract("server")), "ok");
    const m = await got;
    assert.equal(dec.decode(m.data), "hello");
    assert.deepEqual(m.from, client.address);

    const back = nextMessage(client);
    assert.equal(server.send(enc.encode("hi back"), m.from), "ok");
    assert.equal(dec.decode((await back).data), "hi back");

    // One byte longer (a trailing NUL) is a different name, which nobody bound.
    const longer = new Uint8Array(abstract("server").length + 1);
    longer.set(abstract("server"));
    assert.equal(client.send(enc.encode("x"), longer), "ECONNREFUSED");
    assert.equal(client.send(enc.encode("x"), abstract("serve")), "ECONNREFUSED");
  });

  test("filesystem paths, empty and large datagrams, unnamed senders", async () => {
    const path = join(dir, "fs.sock");
    const server = track(openUnixDatagram({ bind: enc.encode(path) }));
    assert.ok(lstatSync(path).isSocket());
    assert.equal(dec.decode(server.address), path);
    const pathClient = track(openUnixDatagram({ bind: enc.encode(join(dir, "c.sock")) }));
    const unnamed = track(openUnixDatagram({}));

    let got = nextMessage(server);
    assert.equal(pathClient.send(new Uint8Array(0), enc.encode(path)), "ok");
    let m = await got;
    assert.equal(m.data.length, 0);
    assert.equal(dec.decode(m.from), join(dir, "c.sock"), "path sender without a trailing NUL");

    const big = new Uint8Array(60_000).map((_, i) => (i * 7) & 0xff);
    got = nextMessage(server);
    assert.equal(unnamed.send(big, enc.encode(path)), "ok");
    m = await got;
    assert.deepEqual(m.data, big);
    assert.equal(m.from.length, 0, "an unbound sender has no address");
  });

  test("bind errors are SvpErrors naming the address", () => {
    track(openUnixDatagram({ bind: abstract("taken") }));
    assert.throws(() => openUnixDatagram({ bind: abstract("taken") }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_USAGE");
      assert.match(e.message, /cannot bind @svp-test\/.*\/taken: .*in use/i);
      return true;
    });
    assert.throws(() => openUnixDatagram({ connect: abstract("nobody") }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_REFUSED");
      assert.match(e.message, /cannot connect to @svp-test/);
      return true;
    });
    assert.throws(() => openUnixDatagram({ bind: new Uint8Array(200) }), /too long/i);
  });

  test("connected sockets send without an address; a full peer gives EAGAIN, then writable", async () => {
    const server = track(openUnixDatagram({ bind: abstract("flow") }));
    const client = track(openUnixDatagram({ bind: new Uint8Array(0), connect: abstract("flow") }));
    let received = 0;
    let bytes = 0;
    server.on("message", (d) => {
      received++;
      bytes += d.length;
    });
    // The JS thread is busy in this loop, so the server's reader stops at its backlog limit
    // and the kernel queue fills: the connected sender must see EAGAIN within the bound.
    let sent = 0;
    let result = "ok";
    for (let i = 0; i < 100_000 && result === "ok"; i++) {
      result = client.send(new Uint8Array(100).fill(i & 0xff));
      if (result === "ok") sent++;
    }
    assert.equal(result, "EAGAIN");
    const writable = within(new Promise<void>((r) => client.once("writable", r)), 5000, "writable");
    client.wantWritable();
    await writable;
    assert.equal(client.send(new Uint8Array(100)), "ok");
    sent++;
    await within(
      (async () => {
        while (received < sent) await new Promise((r) => setTimeout(r, 5));
      })(),
      5000,
      "every datagram delivered",
    );
    assert.equal(received, sent, "nothing lost, nothing extra");
    assert.equal(bytes, sent * 100);
  });

  test("close is idempotent, stops events, and frees the name", async () => {
    const path = join(dir, "closing.sock");
    const s = openUnixDatagram({ bind: abstract("closing") });
    let closes = 0;
    let messages = 0;
    s.on("close", () => closes++);
    s.on("message", () => messages++);
    const sender = track(openUnixDatagram({}));
    assert.equal(sender.send(enc.encode("late"), abstract("closing")), "ok");
    s.close();
    s.close();
    assert.equal(closes, 1);
    assert.equal(s.send(enc.encode("x"), abstract("closing")), "EBADF");
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(messages, 0, "no event after close");
    // The abstract name is free again at once.
    track(openUnixDatagram({ bind: abstract("closing") })).close();
    assert.equal(existsSync(path), false);
  });
});
