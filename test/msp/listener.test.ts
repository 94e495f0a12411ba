/** MspListener and connectMsp: many connections, outcomes of a connect, bad input, counters. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import type { SvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { SID_BROADCAST } from "../../src/mesh/sid.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { concat, equalBytes, patternBytes } from "../helpers/wait.ts";
import { drain, rawPeer, runFor, runUntil, collect } from "./helpers.ts";

function echo(s: MspStream): void {
  s.on("data", (c) => s.write(c));
  s.on("end", () => s.closeWrite());
  s.resume();
}


async function outcome(clock: ManualClock, p: Promise<unknown>, maxMs = 20_000): Promise<unknown> {
  let result: unknown = "pending";
  p.then(
    (v) => (result = v),
    (e) => (result = e),
  );
  await runUntil(clock, () => result !== "pending", maxMs, "connect outcome");
  return result;
}

describe("MSP listener and connect", () => {
  test("100 concurrent streams through one listener, from several nodes, each echoed intact", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock, seed: 5, conditions: { jitterMs: 3 } });
    const server = net.addNode();
    const clients = [net.addNode(), net.addNode(), net.addNode(), net.addNode()];
    const listener = await listenMsp(server, 7, { clock });
    let peak = 0;
    listener.on("accept", (s) => {
      echo(s);
      peak = Math.max(peak, listener.streams.length);
    });
    const results: ReturnType<typeof collect>[] = [];
    const payloads: Uint8Array[] = [];
    const streams: MspStream[] = [];
    for (let i = 0; i < 100; i++) {
      const data = patternBytes(5000 + i * 37, i + 1);
      payloads.push(data);
      connectMsp(clients[i % 4]!, { sid: server.localSid, port: 7 }, { clock }).then((s) => {
        streams[i] = s;
        results[i] = collect(s);
        s.resume();
        s.write(data);
        s.closeWrite();
      });
    }
    await runUntil(clock, () => results.filter((r) => r?.closed).length === 100, 120_000, "100 echoes");
    assert.equal(peak, 100, "all 100 were open at once");
    for (let i = 0; i < 100; i++) {
      assert.equal(results[i]!.error, undefined, `stream ${i}: ${results[i]!.error?.message}`);
      assert.ok(equalBytes(concat(results[i]!.chunks), payloads[i]!), `stream ${i} echo differs`);
      assert.equal(streams[i]!.stats.bytesOut, payloads[i]!.length);
    }
    await runFor(clock, 10_000);
    assert.equal(listener.connectionCount, 0);
    for (const c of clients) assert.deepEqual(c.boundPorts, []);
    listener.close();
    await drain(clock);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("per-stream counters for status: bytes and packets each way, retransmissions, RTT, state", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock, conditions: { delayMs: 20 } });
    const a = net.addNode();
    const b = net.addNode();
    const listener = await listenMsp(b, 9, { clock });
    listener.on("accept", echo);
    const p = connectMsp(a, { sid: b.localSid, port: 9 }, { clock });
    const s = (await outcome(clock, p)) as MspStream;
    const r = collect(s);
    s.resume();
    s.write(new Uint8Array(3000));
    await runUntil(clock, () => concat(r.chunks).length === 3000, 10_000, "echo");
    const st = s.stats;
    assert.equal(st.state, "open");
    assert.equal(st.role, "connector");
    assert.equal(st.bytesOut, 3000);
    assert.equal(st.bytesIn, 3000);
    assert.ok(st.packetsOut >= 4 && st.packetsIn >= 4, `packets ${st.packetsOut}/${st.packetsIn}`);
    assert.equal(st.retransmissions, 0);
    assert.equal(st.rttMs, 40, "two 20 ms hops");
    const [ls] = listener.stats();
    assert.ok(ls, "the listener lists its stream");
    assert.equal(ls.role, "listener");
    assert.equal(ls.bytesIn, 3000);
    assert.equal(ls.remote.port, s.local.port);
    assert.match(s.label, /^msp [0-9A-F]{8}…:9$/);
    listener.abort();
    await runUntil(clock, () => r.closed, 10_000, "reset");
    assert.ok(isSvpError(r.error, "ERR_RESET"), `closed with ${r.error?.code}`);
    assert.equal(s.stats.state, "failed");
    assert.equal(s.stats.error, "ERR_RESET");
    net.close();
  });

  test("connect outcomes: no route at once, bad address, refused, not accepting, over the limit, aborted", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock });
    const a = net.addNode();
    const b = net.addNode();
    const far = net.addNode();
    net.cut(a.localSid, far.localSid);
    const sentBefore = net.stats.sent;
    await assert.rejects(connectMsp(a, { sid: far.localSid, port: 80 }, { clock }), (e: unknown) => isSvpError(e, "ERR_NO_ROUTE"));
    assert.equal(net.stats.sent, sentBefore, "no packet for an unreachable SID");
    assert.deepEqual(a.boundPorts, [], "no port bound");
    await assert.rejects(connectMsp(a, { sid: b.localSid, port: 0 }, { clock }), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
    await assert.rejects(connectMsp(a, { sid: SID_BROADCAST, port: 80 }, { clock }), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
    await assert.rejects(connectMsp(a, { sid: b.localSid, port: 80 }, { clock, window: 0 }), (e: unknown) => isSvpError(e, "ERR_USAGE"));

    const silent = await listenMsp(b, 80, { clock }); // no accept handler: refuses
    assert.ok(isSvpError(await outcome(clock, connectMsp(a, { sid: b.localSid, port: 80 }, { clock })), "ERR_REFUSED"), "no accept handler → refused");
    assert.deepEqual({ ...silent.drops }, { refused: 1 });

    const limited = await listenMsp(b, 81, { clock, maxConnections: 1 });
    limited.on("accept", (s) => s.accept());
    const first = await outcome(clock, connectMsp(a, { sid: b.localSid, port: 81 }, { clock }));
    assert.ok(!(first instanceof Error), "the first connection is accepted");
    assert.ok(isSvpError(await outcome(clock, connectMsp(a, { sid: b.localSid, port: 81 }, { clock })), "ERR_REFUSED"), "over the limit → refused");
    limited.close();
    assert.ok(isSvpError(await outcome(clock, connectMsp(a, { sid: b.localSid, port: 81 }, { clock })), "ERR_REFUSED"), "closed listener → refused");
    assert.equal(limited.closed, false, "the port stays bound while its stream lives");
    (first as MspStream).abort();
    await runFor(clock, 5000);
    assert.equal(limited.closed, true, "released after the last stream");

    const server = await rawPeer(b, clock, 82); // bound but never answers
    const ac = new AbortController();
    const p = connectMsp(a, { sid: b.localSid, port: 82 }, { clock, signal: ac.signal });
    await runFor(clock, 2000);
    ac.abort();
    assert.ok(isSvpError(await outcome(clock, p), "ERR_ABORTED"), "aborted");
    assert.deepEqual(server.got.map((g) => g.hex), ["04ffff", "04ffff", "08"], "FIRST, its retransmission, then STOP");
    silent.abort();
    net.close();
  });

  test("transport loss: streams close with ERR_MESH_DOWN, the listener with the error, a pending connect rejects", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock });
    const a = net.addNode();
    const b = net.addNode();
    const listener = await listenMsp(b, 80, { clock });
    const accepted: MspStream[] = [];
    listener.on("accept", (s) => {
      accepted.push(s);
      s.accept();
    });
    let listenerErr: SvpError | undefined;
    listener.on("close", (err) => (listenerErr = err));
    const s = (await outcome(clock, connectMsp(a, { sid: b.localSid, port: 80 }, { clock }))) as MspStream;
    const atServer = collect(accepted[0]!);
    b.fail();
    await drain(clock);
    assert.ok(isSvpError(atServer.error, "ERR_MESH_DOWN"), `server stream: ${atServer.error?.code}`);
    assert.ok(isSvpError(listenerErr, "ERR_MESH_DOWN"), "listener close error");
    const c = net.addNode();
    await c.bind(5);
    const p = connectMsp(a, { sid: c.localSid, port: 5 }, { clock });
    await drain(clock);
    a.fail();
    assert.ok(isSvpError(await outcome(clock, p), "ERR_MESH_DOWN"), "pending connect");
    await drain(clock);
    assert.equal(s.closed, true);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("bad input from a stranger neither resets nor disturbs the streams in progress", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock, seed: 3 });
    const a = net.addNode();
    const b = net.addNode();
    const evil = net.addNode();
    const listener = await listenMsp(b, 80, { clock });
    const accepted: MspStream[] = [];
    listener.on("accept", (s) => {
      accepted.push(s);
      echo(s);
    });
    const s = (await outcome(clock, connectMsp(a, { sid: b.localSid, port: 80 }, { clock }))) as MspStream;
    const r = collect(s);
    const data = patternBytes(50_000, 77);
    s.write(data);
    s.closeWrite();
    const attacker = await rawPeer(evil, clock);
    const targets = [listener.local, s.local];
    let x = 1;
    for (let i = 0; i < 3000; i++) {
      const n = i % 40;
      const g = new Uint8Array(n);
      for (let k = 0; k < n; k++) g[k] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
      if (i % 7 === 0 && n > 0) g[0] = 0x08; // STOPs from a stranger
      attacker.socket.send(targets[i % 2]!, g);
    }
    s.resume();
    await runUntil(clock, () => r.closed, 60_000, "echo under attack");
    assert.equal(r.error, undefined, `the stream closed with ${r.error?.message}`);
    assert.ok(equalBytes(concat(r.chunks), data), "echo differs");
    const d = listener.drops;
    assert.ok((d["unknown-connection"] ?? 0) + (d.empty ?? 0) + (d["stop-unknown"] ?? 0) + (d.truncated ?? 0) > 100, "drops counted by reason");
    // Garbage that happens to parse as a FIRST packet is a connection request from the
    // stranger's own address; it can only ever reach the stranger's own connections.
    for (const other of accepted.slice(1)) assert.equal(other.remote.port, attacker.socket.local.port, "only the stranger's address");
    assert.ok(listener.connectionCount <= 2, `${listener.connectionCount} connections held`);
    assert.equal(accepted[0]!.stats.drops["bad-ack"] ?? 0, 0, "nothing reached the real connection");
    listener.abort();
    net.close();
  });
});
