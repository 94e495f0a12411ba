/**
 * The overlay's kernel filter: its compiled program (pure), and the program at work on a real
 * UDP socket on loopback (Linux, through the native addon; skipped where it cannot be set).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import { compileSocketFilter, MAX_FILTER_ENTRIES } from "../../src/node/socket-filter.ts";
import { bindUdp } from "../../src/platform/udp.ts";
import type { UdpEndpoint } from "../../src/node/node-io.ts";

describe("socket filter", () => {
  test("compiles allow and deny entries (IPv4 only, bounded) and a sampling tail; refuses a sampling rate that is not a power of two", () => {
    const ep = (host: string, port: number) => ({ host, port });
    const empty = compileSocketFilter({ allow: [], deny: [], sampleOneIn: 8 });
    assert.equal(empty.length, 6 * 8);
    const some = compileSocketFilter({ allow: [ep("127.0.0.1", 5), ep("::1", 5)], deny: [ep("::ffff:10.0.0.1", 7)], sampleOneIn: 8 });
    assert.equal(some.length, (6 + 2 * 5) * 8, "the IPv6 entry is left out");
    const v = new DataView(some.buffer);
    // The first entry checks the denied address (10.0.0.1) and drops.
    assert.equal(v.getUint32(8 + 4, true), 0x0a000001);
    assert.equal(v.getUint32(8 * 4 + 4, true), 0);
    const many = Array.from({ length: 2000 }, (_, i) => ep(`10.0.${i >> 8}.${i & 255}`, 1));
    assert.equal(compileSocketFilter({ allow: many, deny: [], sampleOneIn: 1 }).length, (6 + 5 * MAX_FILTER_ENTRIES) * 8);
    assert.throws(() => compileSocketFilter({ allow: [], deny: [], sampleOneIn: 3 }), /power of two/);
  });

  test("on a real socket: allowed senders pass, denied ones do not, the rest is sampled; detached, everything passes", async (t) => {
    const got: string[] = [];
    const sock = await bindUdp({ family: "IPv4", host: "127.0.0.1", port: 0, onMessage: (d) => got.push(new TextDecoder().decode(d)), onError: () => {} });
    const senders = await Promise.all([0, 1, 2].map(() => new Promise<dgram.Socket>((r) => {
      const s = dgram.createSocket("udp4");
      s.bind(0, "127.0.0.1", () => r(s));
    })));
    const at = (s: dgram.Socket): UdpEndpoint => ({ host: "127.0.0.1", port: s.address().port });
    const [friend, foe, stranger] = senders as [dgram.Socket, dgram.Socket, dgram.Socket];
    try {
      if (!sock.setFilter?.({ allow: [at(friend)], deny: [at(foe)], sampleOneIn: 65536 })) {
        t.skip("socket filters cannot be set here (no native addon, not Linux, or not Node)");
        return;
      }
      const send = async (s: dgram.Socket, tag: string, n: number) => {
        for (let i = 0; i < n; i++) await new Promise<void>((r) => s.send(tag, sock.local.port, "127.0.0.1", () => r()));
      };
      await send(friend, "friend", 20);
      await send(foe, "foe", 20);
      await send(stranger, "stranger", 20);
      await send(friend, "end", 1);
      const deadline = Date.now() + 5000;
      while (!got.includes("end") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(got.filter((x) => x === "friend").length, 20);
      assert.equal(got.filter((x) => x === "foe").length, 0);
      assert.ok(got.filter((x) => x === "stranger").length <= 2, "sampled at 1 in 65536");
      assert.equal(sock.setFilter({ allow: [], deny: [], sampleOneIn: 1 }), true);
      assert.equal(sock.setFilter(undefined), true);
      assert.equal(sock.setFilter(undefined), true, "detaching twice is fine");
      got.length = 0;
      await send(foe, "foe", 3);
      await send(friend, "end", 1);
      while (!got.includes("end") && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 5));
      assert.equal(got.filter((x) => x === "foe").length, 3);
    } finally {
      sock.close();
      for (const s of senders) s.close();
    }
  });
});
