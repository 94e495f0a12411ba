/**
 * MSP over a seeded lossy in-memory link (10% loss, 5% duplication, reordering, variable
 * delay, both directions), on a ManualClock: minutes of virtual time in well under a second.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isSvpError } from "../../src/errors.ts";
import type { LinkConditions } from "../helpers/memory-transport.ts";
import { concat, equalBytes, patternBytes } from "../helpers/wait.ts";
import { collect, feed, mspPair, noLeaks, runFor, runUntil } from "./helpers.ts";

const LOSSY: LinkConditions = { loss: 0.1, duplicate: 0.05, reorder: 0.05, reorderDelayMs: 60, delayMs: 5, jitterMs: 20 };


function pair(seed: number, conditions: LinkConditions = LOSSY) {
  return mspPair({ seed, conditions });
}

describe("MSP over a lossy link", () => {
  test("1 MiB each way arrives intact and in order; both sides close cleanly; nothing leaks", async () => {
    const { clock, net, listener, client, server } = await pair(1);
    const up = patternBytes(1 << 20, 3);
    const down = patternBytes(1 << 20, 4);
    const atServer = collect(server);
    const atClient = collect(client);
    server.resume();
    client.resume();
    feed(client, up, 16 * 1024, true);
    feed(server, down, 10_000, true);
    await runUntil(clock, () => atServer.closed && atClient.closed, 3_600_000, "transfer");
    assert.equal(atServer.error, undefined, `server closed with ${atServer.error?.message}`);
    assert.equal(atClient.error, undefined, `client closed with ${atClient.error?.message}`);
    assert.ok(atServer.ended && atClient.ended, "both saw end");
    assert.ok(equalBytes(concat(atServer.chunks), up), "client→server bytes differ");
    assert.ok(equalBytes(concat(atClient.chunks), down), "server→client bytes differ");
    const st = client.stats;
    assert.ok(st.retransmissions > 20, `the link really lost packets (${st.retransmissions} retransmissions)`);
    assert.ok((st.drops.duplicate ?? 0) + (server.stats.drops.duplicate ?? 0) > 20, "duplicates were seen and ignored");
    assert.ok(net.stats.lost > 100 && net.stats.duplicated > 50, `lost ${net.stats.lost}, duplicated ${net.stats.duplicated}`);
    assert.equal(st.bytesOut, 1 << 20);
    assert.equal(st.bytesIn, 1 << 20);
    await noLeaks(clock, listener, net);
    net.close();
  });

  test("half-close under loss: request, end, then a response after it; clean close on both sides", async () => {
    for (const seed of [2, 3, 4]) {
      const { clock, net, listener, client, server } = await pair(seed);
      const request = patternBytes(100_000, seed);
      const response = patternBytes(60_000, seed + 100);
      const atServer = collect(server);
      const atClient = collect(client);
      server.on("end", () => feed(server, response, 4096, true));
      server.resume();
      client.resume();
      feed(client, request, 8192, true);
      await runUntil(clock, () => atServer.ended, 600_000, "request");
      assert.equal(atClient.chunks.length, 0, `seed ${seed}: no response before the request ended`);
      assert.equal(client.writable, false, "client write side closed");
      assert.equal(client.readable, true, "client still reads");
      await runUntil(clock, () => atServer.closed && atClient.closed, 600_000, "response");
      assert.equal(atServer.error, undefined, `seed ${seed}: server ${atServer.error?.message}`);
      assert.equal(atClient.error, undefined, `seed ${seed}: client ${atClient.error?.message}`);
      assert.ok(equalBytes(concat(atServer.chunks), request), `seed ${seed}: request differs`);
      assert.ok(equalBytes(concat(atClient.chunks), response), `seed ${seed}: response differs`);
      await noLeaks(clock, listener, net);
      net.close();
    }
  });

  test("abort under loss: the peer closes with ERR_RESET (not a timeout), from either side", async () => {
    for (const [seed, side] of [[5, "client"], [6, "server"], [7, "client"], [8, "server"]] as const) {
      const { clock, net, listener, client, server } = await pair(seed);
      const atServer = collect(server);
      const atClient = collect(client);
      server.resume();
      client.resume();
      feed(client, patternBytes(200_000, 1), 8192, false);
      feed(server, patternBytes(200_000, 2), 8192, false);
      await runFor(clock, 2000);
      const [aborter, peer] = side === "client" ? [client, atServer] : [server, atClient];
      const t = clock.now();
      aborter.abort();
      await runUntil(clock, () => atServer.closed && atClient.closed, 30_000, "abort");
      assert.ok(isSvpError(peer.error, "ERR_RESET"), `seed ${seed}: the ${side}'s peer closed with ${peer.error?.code}`);
      assert.ok(clock.now() - t < 9000, `seed ${seed}: reset seen after ${clock.now() - t} ms`);
      await noLeaks(clock, listener, net);
      net.close();
    }
  });

  test("a paused reader stops the writer after a window and loses nothing", async () => {
    const { clock, net, listener, client, server } = await pair(9);
    const data = patternBytes(300_000, 9);
    const atServer = collect(server);
    const writer = feed(client, data, 8192, true);
    await runFor(clock, 20_000);
    assert.equal(writer.done, false, "the writer is held back");
    assert.equal(server.connection.bufferedCount <= server.connection.params.receiveWindow, true, "receive buffer bounded");
    assert.ok(client.writableLength < 16 * 1024 + 8192, `local buffer bounded (${client.writableLength})`);
    assert.equal(atServer.chunks.length, 0, "nothing delivered while paused");
    server.resume();
    client.resume();
    await runUntil(clock, () => atServer.ended, 3_600_000, "drain");
    assert.ok(equalBytes(concat(atServer.chunks), data), "data differs");
    server.closeWrite();
    await runUntil(clock, () => atServer.closed && client.closed, 60_000, "close");
    await noLeaks(clock, listener, net);
    net.close();
  });
});
