/**
 * Scripted exchanges that pin svp's MSP to servald's observable behaviour: one side is svp's
 * MSP, the other a raw MDP socket replaying servald's packets from
 * /work/shared/fixtures/servald-msp-traces.md (test/mdp/trace-vectors.ts). svp's packets
 * are compared byte for byte with what servald's tools sent in the same situation.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import type { SvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { toHex } from "../../src/bytes/hex.ts";
import { concat, equalBytes } from "../helpers/wait.ts";
import { drain, hexOf, rawPeer, recordSends, runFor, runUntil, traceSends, utf8 } from "./helpers.ts";

function setup() {
  const clock = new ManualClock(1000);
  const net = new MemoryMdpNetwork({ clock });
  const svp = net.addNode();
  const peer = net.addNode();
  const sent = recordSends(net, clock, svp);
  return { clock, net, svp, peer, sent };
}

/** Collect a stream's data and end/close; resumes it. */
function watch(s: MspStream) {
  const w = { data: [] as string[], ended: false, closed: false, error: undefined as SvpError | undefined };
  s.on("data", (c) => w.data.push(new TextDecoder().decode(c)));
  s.on("end", () => (w.ended = true));
  s.on("close", (err) => {
    w.closed = true;
    w.error = err;
  });
  return w;
}

describe("MSP against servald's traces", () => {
  test("basic, svp connecting: 0-RTT request with SHUTDOWN, acks of the response and of its SHUTDOWN", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const server = await rawPeer(peer, clock, 80);
    let stream: MspStream | undefined;
    const p = connectMsp(svp, { sid: peer.localSid, port: 80 }, { clock, data: utf8("HELLO-MESH"), shutdown: true }).then((s) => (stream = s));
    await drain(clock);
    assert.deepEqual(server.got.map((g) => g.hex), ["05ffff000048454c4c4f2d4d455348"]);
    const from = server.got[0]!.from;
    server.send(from, "020000");
    await drain(clock);
    await p;
    assert.ok(stream, "stream");
    const w = watch(stream);
    stream.resume();
    server.send(from, "0200000000" + hexOf("RESPONSE:10"));
    await drain(clock);
    assert.deepEqual(w.data, ["RESPONSE:10"]);
    server.send(from, "0300000100");
    await drain(clock);
    assert.equal(w.ended, true);
    assert.equal(w.closed, true);
    assert.equal(w.error, undefined, "clean close");
    assert.deepEqual(sent.map((s) => s.hex), traceSends("basic", "connect").map((t) => t.hex));
    assert.deepEqual(stream.stats.state, "closed");
    // The port is released after the linger; no timer is left behind.
    await runFor(clock, 3000);
    assert.deepEqual(svp.boundPorts, []);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("basic, svp listening: ack after consuming the request, the response, then a bare SHUTDOWN", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const listener = await listenMsp(svp, 80, { clock });
    const accepted: MspStream[] = [];
    listener.on("accept", (s) => accepted.push(s));
    const client = await rawPeer(peer, clock);
    const to = listener.local;
    client.send(to, "05ffff000048454c4c4f2d4d455348");
    await drain(clock);
    assert.equal(accepted.length, 1);
    assert.equal(sent.length, 0, "nothing is sent before the application takes the connection");
    const s = accepted[0]!;
    const w = watch(s);
    s.resume();
    await drain(clock);
    assert.deepEqual(w.data, ["HELLO-MESH"]);
    assert.equal(w.ended, true);
    assert.deepEqual(sent.map((x) => x.hex), ["020000"]);
    s.write(utf8("RESPONSE:10"));
    await drain(clock);
    s.closeWrite();
    await drain(clock);
    client.send(to, "020000");
    client.send(to, "020100");
    await drain(clock);
    assert.equal(w.closed, true);
    assert.equal(w.error, undefined);
    assert.deepEqual(sent.map((x) => x.hex), traceSends("basic", "listen").map((t) => t.hex));
    assert.deepEqual(client.got.map((g) => g.hex), ["020000", "0200000000" + hexOf("RESPONSE:10"), "0300000100"]);
    listener.abort();
    await runFor(clock, 3000);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("idle, svp listening: answer, keep-alive every 1.5 s, then a half-close from the connector and a reply with SHUTDOWN", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const listener = await listenMsp(svp, 83, { clock });
    let w: ReturnType<typeof watch> | undefined;
    listener.on("accept", (s) => {
      w = watch(s);
      s.on("end", () => {
        // The service answers a moment later (servald's forward reads it from TCP).
        clock.setTimeout(() => {
          s.write(utf8("GOT:1"));
          s.closeWrite();
        }, 1);
      });
      s.resume();
    });
    const client = await rawPeer(peer, clock);
    const t0 = clock.now();
    client.send(listener.local, "04ffff");
    await runFor(clock, 1499);
    client.send(listener.local, "00ffff"); // the connector's own keep-alive
    await runFor(clock, 1475);
    client.send(listener.local, "01ffff000078");
    await runFor(clock, 1);
    client.send(listener.local, "020000");
    await drain(clock);
    assert.ok(w, "w");
    assert.deepEqual(w.data, ["x"]);
    assert.equal(w.closed, true);
    assert.equal(w.error, undefined);
    assert.deepEqual(sent.map((x) => x.hex), traceSends("idle", "listen").map((t) => t.hex));
    assert.deepEqual(sent.map((x) => x.at - t0), [0, 1500, 2974, 2975]);
    listener.close();
    await runFor(clock, 5000);
    assert.equal(listener.closed, true);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("idle, svp connecting: FIRST, keep-alives every 1.5 s, and a timeout 10 s after the peer fell silent", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const server = await rawPeer(peer, clock, 83);
    const t0 = clock.now();
    const p = connectMsp(svp, { sid: peer.localSid, port: 83 }, { clock });
    await drain(clock);
    assert.deepEqual(server.got.map((g) => g.hex), ["04ffff"]);
    await runFor(clock, 3);
    server.send(server.got[0]!.from, "00ffff");
    await drain(clock);
    const stream = await p;
    const w = watch(stream);
    await runUntil(clock, () => w.closed, 20_000, "timeout");
    assert.ok(isSvpError(w.error, "ERR_TIMEOUT"), `closed with ${w.error?.code}`);
    assert.equal(clock.now() - t0, 10_003, "10 s after the last packet from the peer");
    assert.deepEqual(sent.map((x) => [x.at - t0, x.hex]), [
      [0, "04ffff"],
      [1500, "00ffff"],
      [3000, "00ffff"],
      [4500, "00ffff"],
      [6000, "00ffff"],
      [7500, "00ffff"],
      [9000, "00ffff"],
    ]);
    // The trace's connector keep-alive is the same packet.
    assert.equal(traceSends("idle", "connect")[1]!.hex, "00ffff");
    await drain(clock);
    assert.deepEqual(svp.boundPorts, []);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("noport, svp connecting: the request is retransmitted every 1.5 s and the attempt fails with ERR_TIMEOUT at 10 s", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const t0 = clock.now();
    let err: unknown;
    connectMsp(svp, { sid: peer.localSid, port: 84 }, { clock, data: utf8("hi"), shutdown: true }).catch((e) => (err = e));
    await runUntil(clock, () => err !== undefined, 20_000, "connect failure");
    assert.ok(isSvpError(err, "ERR_TIMEOUT"), String(err));
    assert.equal(clock.now() - t0, 10_000);
    const trace = traceSends("noport", "connect");
    assert.equal(trace.length, 7);
    assert.deepEqual(sent.map((x) => x.hex), trace.map((t) => t.hex));
    assert.deepEqual(sent.map((x) => x.at - t0), [0, 1500, 3000, 4500, 6000, 7500, 9000]);
    assert.deepEqual(svp.boundPorts, [], "the port is released");
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("window: 6000 bytes with EOF are all sent (servald's tool truncates to 1024), SHUTDOWN on the last packet only", async () => {
    const { clock, net, svp, peer } = setup();
    const listener = await listenMsp(peer, 82, { clock });
    const received: Uint8Array[] = [];
    let ended = false;
    listener.on("accept", (s) => {
      s.on("data", (c) => received.push(c.slice()));
      s.on("end", () => {
        ended = true;
        s.closeWrite();
      });
      s.resume();
    });
    const data = new Uint8Array(6000).map((_, i) => i & 0xff);
    const first: string[] = [];
    net.filter = (d) => {
      if (first.length < 8) first.push(toHex(d.payload.subarray(0, 5)));
    };
    const stream = await (async () => {
      const p = connectMsp(svp, { sid: peer.localSid, port: 82 }, { clock, data, shutdown: true });
      await drain(clock);
      return p;
    })();
    stream.resume();
    await runUntil(clock, () => ended && stream.closed, 5000, "transfer");
    const got = concat(received);
    assert.equal(got.length, 6000);
    assert.ok(equalBytes(got, data), "equalBytes(got, data)");
    assert.deepEqual(received.map((c) => c.length), [1024, 1024, 1024, 1024, 1024, 880]);
    // The first window: FIRST on the four packets sent before any answer, SHUTDOWN on none of them.
    assert.deepEqual(first.slice(0, 4), ["04ffff0000", "04ffff0100", "04ffff0200", "04ffff0300"]);
    assert.equal(traceSends("window", "connect")[0]!.hex.slice(0, 10), "05ffff0000", "servald marked its only packet SHUTDOWN");
    net.close();
  });

  test("refused, svp listening: the service refuses, svp answers with a bare STOP, and again to a retransmission", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const listener = await listenMsp(svp, 81, { clock });
    let accepts = 0;
    listener.on("accept", (s) => {
      accepts++;
      s.abort(); // e.g. the forward port refused the TCP connection
    });
    const client = await rawPeer(peer, clock);
    client.send(listener.local, "05ffff00006869");
    await drain(clock);
    const trace = traceSends("refused", "listen");
    assert.equal(trace[0]!.hex, "08");
    // servald also sends an ack after its STOP (a side effect of its loop); svp stops at STOP.
    assert.deepEqual(sent.map((x) => x.hex), ["08"]);
    await runFor(clock, 1500);
    client.send(listener.local, "05ffff00006869"); // as if the STOP was lost
    await drain(clock);
    assert.deepEqual(sent.map((x) => x.hex), ["08", "08"]);
    assert.equal(accepts, 1, "a retransmitted request is not a new connection");
    listener.close();
    await runFor(clock, 20_000);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("refused, svp connecting: a STOP before any answer rejects with ERR_REFUSED (servald's tool exits 0 silently)", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const server = await rawPeer(peer, clock, 81);
    let err: unknown;
    connectMsp(svp, { sid: peer.localSid, port: 81 }, { clock, data: utf8("hi"), shutdown: true }).catch((e) => (err = e));
    await drain(clock);
    assert.deepEqual(sent.map((x) => x.hex), [traceSends("refused", "connect")[0]!.hex]);
    server.send(server.got[0]!.from, "08");
    await drain(clock);
    assert.ok(isSvpError(err, "ERR_REFUSED"), String(err));
    assert.deepEqual(svp.boundPorts, []);
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("packets for unknown connections are answered with STOP; STOP and garbage are not", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const listener = await listenMsp(svp, 90, { clock });
    listener.on("accept", () => assert.fail("no connection may be created"));
    const stranger = await rawPeer(peer, clock);
    const to = listener.local;
    stranger.send(to, "020000"); // an ack for a connection svp does not know
    stranger.send(to, "0200000000ff"); // data without FIRST
    stranger.send(to, "08"); // STOP: never answered
    stranger.send(to, ""); // empty
    stranger.send(to, "04ff"); // a FIRST that does not parse
    await drain(clock);
    assert.deepEqual(stranger.got.map((g) => g.hex), ["08", "08"]);
    assert.deepEqual(sent.map((x) => x.to.port), [stranger.socket.local.port, stranger.socket.local.port]);
    assert.deepEqual({ ...listener.drops }, { "unknown-connection": 2, "stop-unknown": 1, empty: 1, truncated: 1 });
    listener.abort();
    net.close();
  });

  test("half-close from the listener first: SHUTDOWN goes out at once, data keeps flowing the other way", async () => {
    const { clock, net, svp, peer, sent } = setup();
    const listener = await listenMsp(svp, 85, { clock });
    let w: ReturnType<typeof watch> | undefined;
    let s: MspStream | undefined;
    listener.on("accept", (stream) => {
      s = stream;
      w = watch(stream);
      stream.resume();
      stream.closeWrite();
    });
    const client = await rawPeer(peer, clock);
    client.send(listener.local, "04ffff");
    await drain(clock);
    assert.deepEqual(sent.map((x) => x.hex), ["01ffff0000"], "the answer is the SHUTDOWN itself");
    assert.ok(s && w, "s && w");
    assert.equal(s.writable, false);
    assert.equal(s.readable, true);
    client.send(listener.local, "0200000000" + hexOf("abc"));
    await drain(clock);
    assert.deepEqual(w.data, ["abc"]);
    assert.equal(w.ended, false);
    assert.equal(s.state, "local-shutdown");
    client.send(listener.local, "0300000100");
    await drain(clock);
    assert.equal(w.ended, true);
    assert.equal(w.closed, true);
    assert.equal(w.error, undefined);
    assert.deepEqual(sent.map((x) => x.hex), ["01ffff0000", "020000", "020100"]);
    listener.abort();
    net.close();
  });
});
