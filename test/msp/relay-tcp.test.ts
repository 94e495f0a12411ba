/**
 * The relay, unchanged, between an MspStream and a real TCP socket on loopback: the shape
 * of `svp listen --forward` (mesh → local TCP service) and `svp connect --forward`
 * (local TCP client → mesh).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isSvpError, SvpError, toSvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspListener } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { connectTcp, listen } from "../../src/platform/net.ts";
import type { Listener } from "../../src/platform/net.ts";
import { relay } from "../../src/relay/relay.ts";
import type { RelayStats } from "../../src/relay/relay.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { closed, equalBytes, patternBytes, readAll, within, writeAll } from "../helpers/wait.ts";

/** A TCP service that answers each request, after its end, with the bytes reversed. */
async function reverseService(): Promise<Listener> {
  return listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => {
    readAll(s).then(
      (req) => writeAll(s, req.slice().reverse(), 16 * 1024),
      () => {},
    );
  });
}

/** `svp listen --forward <port>`: each MSP connection is relayed to 127.0.0.1:<port>, or refused. */
function forward(listener: MspListener, port: number, relays: Promise<RelayStats>[]): void {
  listener.on("accept", (stream) => {
    connectTcp("127.0.0.1", port, { timeoutMs: 5000 }).then(
      (tcp) => relays.push(relay(stream, tcp).done),
      (err) => stream.abort(toSvpError(err)),
    );
  });
}

const reversed = (b: Uint8Array) => b.slice().reverse();

describe("relay between MSP and TCP", () => {
  test("mesh client → MSP listener → relay → TCP service: request, half-close, response", async () => {
    const net = new MemoryMdpNetwork();
    const client = net.addNode();
    const server = net.addNode();
    const service = await reverseService();
    const listener = await listenMsp(server, 80);
    const relays: Promise<RelayStats>[] = [];
    forward(listener, service.port, relays);
    try {
      const s = await within(connectMsp(client, { sid: server.localSid, port: 80 }), 5000, "connect");
      const request = patternBytes(300_000, 21);
      const response = readAll(s);
      await within(writeAll(s, request, 20_000), 10_000, "request");
      assert.ok(equalBytes(await within(response, 10_000, "response"), reversed(request)), "response differs");
      assert.equal(await within(closed(s), 5000, "close"), undefined);
      const [stats] = await within(Promise.all(relays), 5000, "relay end");
      assert.equal(stats!.error, undefined);
      assert.equal(stats!.aToB, request.length);
      assert.equal(stats!.bToA, request.length);
    } finally {
      net.close();
      await service.close();
    }
  });

  test("a refused forward becomes STOP, and the mesh client's connect fails with ERR_REFUSED", async () => {
    const net = new MemoryMdpNetwork();
    const client = net.addNode();
    const server = net.addNode();
    const gone = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, () => {});
    const port = gone.port;
    await gone.close();
    const listener = await listenMsp(server, 80);
    forward(listener, port, []);
    try {
      await assert.rejects(
        within(connectMsp(client, { sid: server.localSid, port: 80 }, { data: new TextEncoder().encode("hi"), shutdown: true }), 5000, "connect"),
        (e: unknown) => isSvpError(e, "ERR_REFUSED"),
      );
    } finally {
      net.close();
    }
  });

  test("TCP client → relay → MSP stream → echo on the mesh (the shape of `svp connect --forward`)", async () => {
    const net = new MemoryMdpNetwork();
    const here = net.addNode();
    const there = net.addNode();
    const echo = await listenMsp(there, 7);
    echo.on("accept", (s) => {
      s.on("data", (c) => {
        if (!s.write(c)) {
          s.pause();
          s.once("drain", () => s.resume());
        }
      });
      s.on("end", () => s.closeWrite());
      s.resume();
    });
    const relays: Promise<RelayStats>[] = [];
    const front = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (tcp: ByteStream) => {
      connectMsp(here, { sid: there.localSid, port: 7 }).then(
        (msp) => relays.push(relay(tcp, msp).done),
        (err) => tcp.abort(err instanceof SvpError ? err : toSvpError(err)),
      );
    });
    try {
      const tcp = await connectTcp("127.0.0.1", front.port);
      const data = patternBytes(1 << 20, 8);
      const back = readAll(tcp);
      await within(writeAll(tcp, data, 64 * 1024), 20_000, "upload");
      assert.ok(equalBytes(await within(back, 20_000, "echo"), data), "echo differs");
      await within(closed(tcp), 5000, "tcp close");
      const [stats] = await within(Promise.all(relays), 5000, "relay end");
      assert.equal(stats!.error, undefined);
      assert.equal(stats!.aToB, data.length);
    } finally {
      net.close();
      await front.close();
    }
  });

  test("a TCP reset on the service side reaches the mesh client as a reset (STOP), not a clean end", async () => {
    const net = new MemoryMdpNetwork();
    const client = net.addNode();
    const server = net.addNode();
    const service = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => {
      s.once("data", () => s.abort(new SvpError("ERR_RESET", "service gave up")));
      s.resume();
    });
    const listener = await listenMsp(server, 80);
    forward(listener, service.port, []);
    try {
      const s: MspStream = await within(connectMsp(client, { sid: server.localSid, port: 80 }), 5000, "connect");
      s.resume();
      s.write(new Uint8Array(100));
      const err = await within(closed(s), 5000, "close");
      assert.ok(isSvpError(err, "ERR_RESET"), `closed with ${err?.code}`);
    } finally {
      net.close();
      await service.close();
    }
  });
});
