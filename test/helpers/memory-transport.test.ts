import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError, SvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "./memory-transport.ts";
import type { MdpAddress, MdpSocket } from "../../src/mdp/transport.ts";
import { SID_BROADCAST, sidEquals } from "../../src/mesh/sid.ts";

interface Got {
  payload: number[];
  from: MdpAddress;
  to: MdpAddress;
}

function collect(s: MdpSocket): Got[] {
  const got: Got[] = [];
  s.on("message", (payload, from, to) => got.push({ payload: [...payload], from, to }));
  return got;
}

describe("in-memory MDP network", () => {
  test("bind: port 0 allocates from 256 up, taken ports are refused, REUSE shares, close frees", async () => {
    const net = new MemoryMdpNetwork();
    const a = net.addNode();
    const s1 = await a.bind(0);
    const s2 = await a.bind(0);
    assert.equal(s1.local.port, 256);
    assert.equal(s2.local.port, 257);
    assert.ok(sidEquals(s1.local.sid, a.localSid), "sidEquals(s1.local.sid, a.localSid)");
    await a.bind(80);
    await assert.rejects(a.bind(80), (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED"));
    await assert.rejects(a.bind(80, { reuse: true }), (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED"), "existing binding did not ask for REUSE");
    const r1 = await a.bind(11, { reuse: true });
    const r2 = await a.bind(11, { reuse: true });
    assert.notEqual(r1, r2);
    await assert.rejects(a.bind(-1), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
    await assert.rejects(a.bind(2 ** 32), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
    const other = net.addNode();
    await assert.rejects(a.bind(90, { sid: other.localSid }), (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED"));
    s1.close();
    s1.close(); // idempotent
    assert.deepEqual(a.boundPorts, [11, 80, 257]);
    a.close();
    await assert.rejects(a.bind(0), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN"));
  });

  test("unicast delivery with source and destination addresses; unbound ports drop silently", async () => {
    const net = new MemoryMdpNetwork();
    const a = net.addNode();
    const b = net.addNode();
    const sa = await a.bind(0);
    const sb = await b.bind(80);
    const got = collect(sb);
    const buf = Uint8Array.of(1, 2, 3);
    sa.send({ sid: b.localSid, port: 80 }, buf);
    buf[0] = 99; // the sender may reuse its buffer after send()
    sa.send({ sid: b.localSid, port: 81 }, Uint8Array.of(4)); // nobody bound 81
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0]!.payload, [1, 2, 3]);
    assert.ok(sidEquals(got[0]!.from.sid, a.localSid), "sidEquals(got[0]!.from.sid, a.localSid)");
    assert.equal(got[0]!.from.port, sa.local.port);
    assert.equal(got[0]!.to.port, 80);
    assert.equal(net.stats.unbound, 1);
    assert.equal(net.stats.delivered, 1);
    net.close();
  });

  test("broadcast reaches every other reachable node bound on that port, and says so in `to`", async () => {
    const net = new MemoryMdpNetwork();
    const [a, b, c, d] = [net.addNode(), net.addNode(), net.addNode(), net.addNode()];
    const sa = await a.bind(11);
    const gotA = collect(sa);
    const gotB = collect(await b.bind(11));
    const gotC = collect(await c.bind(11));
    await d.bind(12); // d is bound, but not on port 11
    net.cut(a.localSid, c.localSid);
    sa.send({ sid: SID_BROADCAST, port: 11 }, Uint8Array.of(7));
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(gotA.length, 0, "a broadcast does not loop back");
    assert.equal(gotB.length, 1);
    assert.ok(sidEquals(gotB[0]!.to.sid, SID_BROADCAST), "sidEquals(gotB[0]!.to.sid, SID_BROADCAST)");
    assert.equal(gotC.length, 0, "c is cut off from a");
    net.close();
  });

  test("reachability: own SID, linked peers, cut/mend, unknown SIDs, closed nodes, 'unknown' mode", () => {
    const net = new MemoryMdpNetwork();
    const a = net.addNode();
    const b = net.addNode();
    const u = net.addNode({ reachability: "unknown" });
    assert.equal(a.reachability(a.localSid), "reachable");
    assert.equal(a.reachability(b.localSid), "reachable");
    assert.equal(a.reachability(new Uint8Array(32).fill(3)), "unreachable");
    net.cut(a.localSid, b.localSid);
    assert.equal(a.reachability(b.localSid), "unreachable");
    assert.equal(b.reachability(a.localSid), "unreachable");
    assert.equal(a.peers().length, 1);
    net.mend(b.localSid, a.localSid);
    assert.equal(a.reachability(b.localSid), "reachable");
    assert.equal(u.reachability(a.localSid), "unknown");
    assert.equal(a.peers().length, 2);
    b.close();
    assert.equal(a.reachability(b.localSid), "unreachable");
    net.close();
  });

  test("seeded loss and duplication: reproducible from the seed, rates as configured", async () => {
    const run = async (seed: number) => {
      const clock = new ManualClock();
      const net = new MemoryMdpNetwork({ clock, seed, conditions: { loss: 0.1, duplicate: 0.05 } });
      const a = net.addNode();
      const b = net.addNode();
      const sa = await a.bind(0);
      const got = collect(await b.bind(80));
      for (let i = 0; i < 2000; i++) sa.send({ sid: b.localSid, port: 80 }, Uint8Array.of(i & 0xff, i >> 8));
      clock.runUntilIdle();
      net.close();
      return { got: got.map((g) => g.payload[0]! | (g.payload[1]! << 8)), stats: { ...net.stats } };
    };
    const r1 = await run(42);
    const r2 = await run(42);
    const r3 = await run(43);
    assert.deepEqual(r1.got, r2.got, "same seed, same outcome");
    assert.notDeepEqual(r1.got, r3.got, "another seed, another outcome");
    assert.ok(r1.stats.lost > 140 && r1.stats.lost < 260, `lost ${r1.stats.lost} of 2000`);
    assert.ok(r1.stats.duplicated > 50 && r1.stats.duplicated < 160, `duplicated ${r1.stats.duplicated}`);
    assert.equal(r1.got.length, 2000 - r1.stats.lost + r1.stats.duplicated);
  });

  test("delay, jitter and reordering follow the injected clock", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock, seed: 7, conditions: { delayMs: 50, jitterMs: 20, reorder: 0.3, reorderDelayMs: 100 } });
    const a = net.addNode();
    const b = net.addNode();
    const sa = await a.bind(0);
    const got = collect(await b.bind(80));
    for (let i = 0; i < 100; i++) sa.send({ sid: b.localSid, port: 80 }, Uint8Array.of(i));
    clock.advance(49);
    assert.equal(got.length, 0, "nothing arrives before the base delay");
    clock.advance(22);
    const early = got.length;
    assert.ok(early > 40 && early < 100, `${early} arrived within delay+jitter`);
    clock.advance(200);
    assert.equal(got.length, 100);
    const order = got.map((g) => g.payload[0]!);
    assert.notDeepEqual(order, [...order].sort((x, y) => x - y), "some datagrams were reordered");
    assert.equal(clock.pendingCount, 0);
    net.close();
  });

  test("per-direction conditions and the filter hook", async () => {
    const clock = new ManualClock();
    const net = new MemoryMdpNetwork({ clock });
    const a = net.addNode();
    const b = net.addNode();
    const sa = await a.bind(0);
    const sb = await b.bind(80);
    const gotB = collect(sb);
    const gotA = collect(sa);
    net.setConditions({ loss: 1 }, a.localSid, b.localSid);
    sa.send(sb.local, Uint8Array.of(1));
    sb.send(sa.local, Uint8Array.of(2));
    clock.runUntilIdle();
    assert.equal(gotB.length, 0);
    assert.equal(gotA.length, 1);
    net.setConditions(undefined, a.localSid, b.localSid);
    const seen: number[] = [];
    net.filter = (d) => {
      seen.push(d.payload[0]!);
      return d.payload[0] !== 3;
    };
    sa.send(sb.local, Uint8Array.of(3));
    sa.send(sb.local, Uint8Array.of(4));
    clock.runUntilIdle();
    assert.deepEqual(seen, [3, 4]);
    assert.deepEqual(gotB.map((g) => g.payload[0]), [4]);
    assert.equal(net.stats.filtered, 1);
    assert.throws(() => net.setConditions({ loss: 2 }), (e: unknown) => isSvpError(e, "ERR_USAGE"));
    net.close();
  });

  test("oversize datagrams and sends on closed sockets are dropped and counted, never thrown", async () => {
    const net = new MemoryMdpNetwork({ mtu: 100 });
    const a = net.addNode();
    const b = net.addNode();
    const sa = await a.bind(0);
    const got = collect(await b.bind(80));
    sa.send({ sid: b.localSid, port: 80 }, new Uint8Array(101));
    sa.close();
    sa.send({ sid: b.localSid, port: 80 }, new Uint8Array(1));
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(got.length, 0);
    assert.equal(net.stats.oversize, 1);
    assert.equal(net.stats.closedSocket, 1);
    net.close();
  });

  test("fail() closes every socket with the error and emits down", async () => {
    const net = new MemoryMdpNetwork();
    const a = net.addNode();
    const s = await a.bind(0);
    const closes: (SvpError | undefined)[] = [];
    s.on("close", (err) => closes.push(err));
    let down: SvpError | undefined;
    a.on("down", (err) => (down = err));
    a.fail();
    assert.equal(closes.length, 1);
    assert.ok(isSvpError(closes[0], "ERR_MESH_DOWN"), "isSvpError(closes[0], \"ERR_MESH_DOWN\")");
    assert.ok(isSvpError(down, "ERR_MESH_DOWN"), "isSvpError(down, \"ERR_MESH_DOWN\")");
    assert.equal(a.reachability(net.addNode().localSid), "unreachable");
    net.close();
  });

  test("zero-delay delivery without a clock is asynchronous and keeps order", async () => {
    const net = new MemoryMdpNetwork();
    const a = net.addNode();
    const b = net.addNode();
    const sa = await a.bind(0);
    const got = collect(await b.bind(80));
    for (let i = 0; i < 1000; i++) sa.send({ sid: b.localSid, port: 80 }, Uint8Array.of(i & 0xff));
    assert.equal(got.length, 0, "nothing is delivered inside send()");
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(got.length, 1000);
    assert.deepEqual(got.map((g) => g.payload[0]), Array.from({ length: 1000 }, (_, i) => i & 0xff));
    net.close();
  });
});
