/**
 * ServaldTransport against a fake daemon on a real AF_UNIX datagram socket (test/servald/
 * fake-servald.ts): handshake, bindings, the ERROR answer, data both ways, release, route
 * table, liveness and the daemon going away. Skipped where the native addon is not built.
 */

import { describe, test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { openUnixDatagram, unixDatagramSupport } from "../../src/platform/unix-dgram.ts";
import { connectServald, probeServald } from "../../src/servald/connect-servald.ts";
import { SID_INTERNAL } from "../../src/servald/mdp-command.ts";
import { servaldPayloadLimit } from "../../src/servald/servald-payload-limit.ts";
import type { ServaldTransport, ServaldTransportOptions } from "../../src/servald/servald-transport.ts";
import { MDP_FLAG, MDP_HEADER_BYTES } from "../../src/mdp/header.ts";
import { SID_BROADCAST, isSidAny, sidEquals, sidToHex } from "../../src/mesh/sid.ts";
import { ManualClock } from "../../src/clock.ts";
import { SvpError } from "../../src/errors.ts";
import type { MdpAddress, MdpSocket } from "../../src/mdp/transport.ts";
import { REACHABLE } from "../../src/servald/route-record.ts";
import { FakeServald, routeRecord, sidOf } from "./fake-servald.ts";
import { Emitter } from "../../src/emitter.ts";
import { decodeMdpDatagram, encodeMdpDatagram } from "../../src/mdp/header.ts";
import type { MdpHeader } from "../../src/mdp/header.ts";
import type { DatagramSendResult, DatagramSocket, DatagramSocketEvents } from "../../src/servald/datagram-socket.ts";
import { within } from "../helpers/wait.ts";

const support = unixDatagramSupport();
const skip = support.available ? false : `native addon unavailable: ${support.reason}`;

const enc = new TextEncoder();
const dec = new TextDecoder();
let counter = 0;
/** A fresh fake instance path (abstract names only: nothing is created on disk). */
const instancePath = () => `/svp-test-${process.pid}-${Date.now().toString(36)}-${counter++}/servald`;

/** Resolves when `pred` holds, polling the event loop; bounded. */
async function until(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  await within(
    (async () => {
      while (!pred()) await new Promise((r) => setTimeout(r, 2));
    })(),
    ms,
    what,
  );
}

function nextMessage(s: MdpSocket): Promise<{ payload: Uint8Array; from: MdpAddress; to: MdpAddress }> {
  return within(new Promise((resolve) => s.once("message", (payload, from, to) => resolve({ payload: payload.slice(), from, to }))), 3000, "an MDP datagram");
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SvpError, `expected SvpError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe("servald transport (fake daemon)", { skip }, () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const f of cleanup.splice(0).reverse()) f();
  });
  const daemon = (path = instancePath()) => {
    const d = new FakeServald(path);
    cleanup.push(() => d.close());
    return d;
  };
  const connect = async (d: FakeServald, extra: Partial<ServaldTransportOptions> = {}) => {
    const t = await connectServald({ openSocket: openUnixDatagram, instance: d.instance, ...extra });
    cleanup.push(() => t.close());
    return t;
  };

  test("handshake: primary SID, identities, route table, reachability", async () => {
    const d = daemon();
    const peer = sidOf(0xb1);
    const far = sidOf(0xb2);
    const gone = sidOf(0xb3);
    d.routes = [routeRecord(d.primary, REACHABLE.SELF), routeRecord(peer, REACHABLE.BROADCAST | REACHABLE.UNICAST), routeRecord(far, REACHABLE.INDIRECT, peer)];
    const t = await connect(d);
    assert.equal(t.kind, "servald");
    assert.equal(t.mtu, 1100, "1150-byte frame budget - 40 crypto - 10 for the largest ports");
    assert.deepEqual(t.localSid, d.primary);
    assert.deepEqual(t.primarySid, d.primary);
    assert.deepEqual(t.identities.map(sidToHex), d.identities.map(sidToHex));
    assert.deepEqual(t.peers().map(sidToHex).sort(), [peer, far].map(sidToHex).sort());
    assert.equal(t.reachability(peer), "reachable");
    assert.equal(t.reachability(far), "reachable");
    assert.equal(t.reachability(d.identities[1]!), "reachable");
    assert.equal(t.reachability(gone), "unreachable", "not in a complete table");
    // A pushed change (this client holds the SID_INTERNAL:5 subscription).
    d.pushRoute(routeRecord(peer, REACHABLE.NONE));
    await until(() => t.reachability(peer) === "unreachable", "route change applied");
    assert.deepEqual(t.peers().map(sidToHex), [sidToHex(far)]);

    // What svp sent: CLOSE of stale bindings, SEARCH_IDS, the route subscription.
    const [first, second, third] = d.received;
    assert.equal(first!.header.flags, MDP_FLAG.CLOSE);
    assert.equal(first!.header.local.port, 0);
    assert.equal(second!.header.remote.port, 2);
    assert.ok(isSidAny(second!.header.local.sid));
    assert.ok(sidEquals(third!.header.local.sid, SID_INTERNAL));
    assert.equal(third!.header.flags, MDP_FLAG.BIND);
    assert.equal(third!.header.remote.port, 5);
    // svp binds a predictable client name so that the next run can clear a crashed one's bindings.
    assert.match(dec.decode(Uint8Array.from(first!.client.match(/../g)!.map((h) => parseInt(h, 16))).subarray(1)), /\/servald\/svp\.0\.socket$/);
  });

  test("a second client polls the route table (servald gives SID_INTERNAL:5 to one client only)", async () => {
    const d = daemon();
    const peer = sidOf(0xc1);
    d.routes = [routeRecord(peer, REACHABLE.UNICAST)];
    const first = await connect(d);
    const clock = new ManualClock();
    const second = await connect(d, { clock });
    assert.notEqual(d.received.at(-1)!.client, d.received[0]!.client, "distinct client addresses");
    assert.equal(second.reachability(peer), "reachable");
    assert.equal(first.reachability(peer), "reachable");
    const polls = () => d.requests((r) => r.client !== d.received[0]!.client && r.header.remote.port === 5 && isSidAny(r.header.local.sid)).length;
    assert.equal(polls(), 1, "one poll after the refused subscription");
    d.routes = [];
    clock.advance(1000); // quiet for probeIntervalMs: poll again
    await until(() => second.reachability(peer) === "unreachable", "poll replaces the table");
    assert.equal(polls(), 2);
  });

  test("bind: explicit and allocated ports, the ERROR answer, identities, local conflicts, REUSE", async () => {
    const d = daemon();
    const t = await connect(d);
    const s80 = await t.bind(80);
    assert.deepEqual(s80.local, { sid: d.primary, port: 80 });
    const req = d.requests((r) => r.header.local.port === 80)[0]!;
    assert.equal(req.header.flags, MDP_FLAG.BIND);
    assert.deepEqual(req.header.local.sid, d.primary);
    assert.ok(isSidAny(req.header.remote.sid));
    assert.equal(req.header.remote.port, 0);

    const [a, b] = await Promise.all([t.bind(0), t.bind(0)]);
    assert.ok(a.local.port > 256 && b.local.port > 256 && a.local.port !== b.local.port, `${a.local.port} ${b.local.port}`);

    await rejectsWith(t.bind(80), "ERR_NOT_ALLOWED", /port 80 .*already bound/);
    const other = await connect(d);
    await rejectsWith(other.bind(80), "ERR_NOT_ALLOWED", /already bound by another servald client/);
    await rejectsWith(t.bind(81, { sid: sidOf(0x77) }), "ERR_BAD_ADDRESS", /not unlocked/);
    const second = await t.bind(81, { sid: d.identities[1]! });
    assert.deepEqual(second.local.sid, d.identities[1]);

    const r1 = await t.bind(90, { reuse: true });
    const r2 = await t.bind(90, { reuse: true });
    assert.equal(d.requests((r) => r.header.local.port === 90).length, 1, "shared locally, one binding at the daemon");
    const m1 = nextMessage(r1);
    const m2 = nextMessage(r2);
    d.deliver({ sid: d.primary, port: 90 }, { sid: sidOf(0xee), port: 5000 }, enc.encode("both"));
    assert.equal(dec.decode((await m1).payload), "both");
    assert.equal(dec.decode((await m2).payload), "both");
    r1.close();
    assert.equal(d.requests((r) => r.header.local.port === 90 && (r.header.flags & MDP_FLAG.CLOSE) !== 0).length, 0, "still used by r2");
    r2.close();
    await until(() => d.requests((r) => r.header.local.port === 90 && r.header.flags === MDP_FLAG.CLOSE).length === 1, "CLOSE for port 90");

    await rejectsWith(t.bind(-1), "ERR_BAD_ADDRESS", /not a 32-bit/);
    await rejectsWith(t.bind(2 ** 32), "ERR_BAD_ADDRESS", /not a 32-bit/);
  });

  test("--sid picks the identity; one the daemon has not unlocked is refused at connect", async () => {
    const d = daemon();
    const t = await connect(d, { sid: d.identities[1]! });
    assert.deepEqual(t.localSid, d.identities[1]);
    assert.deepEqual(t.primarySid, d.primary);
    assert.deepEqual((await t.bind(0)).local.sid, d.identities[1]);
    await rejectsWith(connectServald({ openSocket: openUnixDatagram, instance: d.instance, sid: sidOf(0x55) }), "ERR_BAD_ADDRESS", /5555.* is not unlocked in servald at .*unlocked: A1A1/);
  });

  test("datagrams both ways: header fields, payload, addresses, broadcast, MTU", async () => {
    const d = daemon();
    const t1 = await connect(d);
    const t2 = await connect(d, { sid: d.identities[1]! });
    const server = await t2.bind(7000);
    const client = await t1.bind(0);
    const got = nextMessage(server);
    client.send({ sid: d.identities[1]!, port: 7000 }, enc.encode("ping"));
    const m = await got;
    assert.equal(dec.decode(m.payload), "ping");
    assert.deepEqual(m.from, client.local);
    assert.deepEqual(m.to, server.local);
    const sent = d.requests((r) => r.header.remote.port === 7000)[0]!;
    assert.equal(sent.header.ttl, 31);
    assert.equal(sent.header.qos, 0);
    assert.equal(sent.header.flags, 0);

    const back = nextMessage(client);
    server.send(m.from, enc.encode("pong"), { noCrypt: true, noSign: true, ttl: 3, qos: 2 });
    assert.equal(dec.decode((await back).payload), "pong");
    const reply = d.requests((r) => r.header.local.port === 7000 && r.payload.length > 0)[0]!;
    assert.equal(reply.header.flags, MDP_FLAG.NO_CRYPT | MDP_FLAG.NO_SIGN);
    assert.equal(reply.header.ttl, 3);
    assert.equal(reply.header.qos, 2);

    // A broadcast arrives with the broadcast SID as its destination.
    const bc = nextMessage(server);
    d.deliver({ sid: SID_BROADCAST, port: 7000 }, { sid: sidOf(0xee), port: 11 }, enc.encode("anyone?"), MDP_FLAG.NO_CRYPT);
    assert.deepEqual((await bc).to, { sid: SID_BROADCAST, port: 7000 });

    // servald aborts on frames of 1200 bytes or more and stalls on ones too big for a packet:
    // svp refuses payloads over its frame budget (1150).
    const limit = servaldPayloadLimit(7000, client.local.port);
    assert.equal(limit, 1150 - 40 - 2 - 2, "ports 7000 and 257+ take 2 packed bytes each");
    const big = nextMessage(server);
    client.send(server.local, new Uint8Array(limit));
    assert.equal((await big).payload.length, limit);
    const before = d.received.length;
    assert.throws(() => client.send(server.local, new Uint8Array(limit + 1)), (e: SvpError) => e.code === "ERR_LIMIT" && /1107 bytes exceeds the limit of 1106 for a encrypted datagram through servald/.test(e.message));
    assert.throws(() => client.send(server.local, new Uint8Array(1083), { noCrypt: true }), /limit of 1082 for a signed datagram/);
    assert.throws(() => client.send(server.local, new Uint8Array(1147), { noCrypt: true, noSign: true }), /limit of 1146 for a plain datagram/);
    client.send(server.local, new Uint8Array(1146), { noCrypt: true, noSign: true });
    await until(() => d.received.length === before + 1, "the unsigned datagram");
    assert.equal(d.received.length, before + 1, "nothing oversize reached the daemon");
    assert.equal(MDP_HEADER_BYTES, 75);
  });

  test("close: a socket releases its port; the transport releases everything with one CLOSE", async () => {
    const d = daemon();
    const t = await connect(d);
    const s = await t.bind(5555);
    const other = await t.bind(5556);
    let closeErr: unknown = "not closed";
    other.on("close", (err) => (closeErr = err));
    s.close();
    s.close();
    await until(() => d.bindings.every((b) => b.port !== 5555), "port 5555 released");
    assert.equal(d.requests((r) => r.header.local.port === 5555 && r.header.flags === MDP_FLAG.CLOSE).length, 1);
    // Sending on a closed socket is a no-op, not an exception.
    s.send({ sid: d.primary, port: 1 }, enc.encode("x"));
    const client = d.received[0]!.client;
    t.close();
    t.close();
    assert.equal(closeErr, undefined, "sockets close without an error");
    await until(() => d.bindings.every((b) => b.port !== 5556), "all bindings dropped");
    const last = d.requests((r) => r.client === client).at(-1)!;
    assert.equal(last.header.flags, MDP_FLAG.CLOSE);
    assert.equal(last.header.local.port, 0);
    await rejectsWith(t.bind(1), "ERR_MESH_DOWN", /closed/);
  });

  test("the daemon goes away: every socket closes with ERR_MESH_DOWN, then binds fail", async () => {
    const d = daemon();
    const t = await connect(d);
    const sockets = await Promise.all([t.bind(100), t.bind(0)]);
    const closes = sockets.map((s) => new Promise<unknown>((r) => s.once("close", r)));
    const down = new Promise<SvpError>((r) => t.on("down", r));
    d.close();
    // The next datagram svp sends finds the connected peer gone.
    sockets[0]!.send({ sid: sidOf(0xb1), port: 80 }, enc.encode("hello?"));
    const err = await within(down, 3000, "down");
    assert.equal(err.code, "ERR_MESH_DOWN");
    assert.match(err.message, /^servald at \/svp-test.* went away: its socket is gone \(ECONNREFUSED\)/);
    for (const c of closes) assert.equal(((await within(c, 1000, "socket close")) as SvpError).code, "ERR_MESH_DOWN");
    assert.equal(t.state, "down");
    await rejectsWith(t.bind(1), "ERR_MESH_DOWN", /went away/);
  });

  test("a silent daemon is probed, then declared gone after deadAfterMs", async () => {
    const d = daemon();
    const clock = new ManualClock();
    const t = await connect(d, { clock, probeIntervalMs: 1000, deadAfterMs: 5000 });
    const s = await t.bind(200);
    const closed = new Promise<SvpError | undefined>((r) => s.once("close", r));
    const probes = () => d.requests((r) => sidEquals(r.header.local.sid, SID_INTERNAL) && r.header.remote.port === 0).length;
    clock.advance(1000);
    await until(() => probes() === 1, "a probe after 1 s of silence");
    await until(() => d.received.length > 0 && t.state === "open", "probe answered");
    d.silent = true;
    clock.advance(1000);
    clock.advance(1000);
    await until(() => probes() >= 2, "probes continue");
    assert.equal(t.state, "open");
    clock.advance(5000);
    const err = await within(closed, 1000, "socket closed");
    assert.equal(err?.code, "ERR_MESH_DOWN");
    assert.match(err!.message, /has not answered for \d+ ms/);
    assert.equal(clock.pendingCount, 0, "no timers left");
  });

  test("connect failures: no daemon, a daemon that does not answer, bad instance paths", async () => {
    const nowhere = instancePath();
    await rejectsWith(connectServald({ openSocket: openUnixDatagram, instance: nowhere }), "ERR_MESH_DOWN", /no servald answers at instance \/svp-test.*refused.*servald start/i);
    const probe = await probeServald({ openSocket: openUnixDatagram, instance: nowhere });
    assert.equal(probe.running, false);

    const d = daemon();
    d.silent = true;
    await rejectsWith(connectServald({ openSocket: openUnixDatagram, instance: d.instance, connectTimeoutMs: 50 }), "ERR_MESH_DOWN", /did not answer within 50 ms/);

    await rejectsWith(connectServald({ openSocket: openUnixDatagram, instance: "relative/dir" }), "ERR_USAGE", /absolute path/);
    await rejectsWith(connectServald({ openSocket: openUnixDatagram, instance: "/" + "x".repeat(100) }), "ERR_USAGE", /too long/);
    // SERVALINSTANCE_PATH is used when no instance is given.
    const live = daemon();
    const viaEnv = await connectServald({ openSocket: openUnixDatagram, env: { SERVALINSTANCE_PATH: live.instance } });
    assert.equal(viaEnv.instance.source, "env");
    viaEnv.close();
    const ok = await probeServald({ openSocket: openUnixDatagram, instance: live.instance });
    assert.ok(ok.running && sidEquals(ok.primarySid, live.primary));
  });

  test("the addon missing is reported as the servald backend being unavailable", async () => {
    const missing = () => {
      throw new SvpError("ERR_MESH_DOWN", "servald backend unavailable: native addon not built (test)");
    };
    await rejectsWith(connectServald({ openSocket: missing, instance: "/tmp/x" }), "ERR_MESH_DOWN", /^servald backend unavailable: native addon not built/);
  });

  test("datagrams queue while the daemon's queue is full, and go out in order", async () => {
    const d = daemon();
    const t: ServaldTransport = await connect(d, { maxQueuedDatagrams: 100_000 });
    const s = await t.bind(300);
    const before = d.received.length;
    const n = 3000;
    // One synchronous burst: the fake daemon (same thread) cannot read meanwhile.
    for (let i = 0; i < n; i++) s.send({ sid: d.primary, port: 301 }, Uint8Array.of(i >> 8, i & 0xff));
    await until(() => d.received.length - before >= n, `${n} datagrams at the daemon`, 10_000);
    const seqs = d.received.slice(before).filter((r) => r.header.remote.port === 301).map((r) => (r.payload[0]! << 8) | r.payload[1]!);
    assert.deepEqual(seqs, Array.from({ length: n }, (_, i) => i));
    assert.equal(t.stats.datagramsDropped, 0);
    assert.ok(t.stats.datagramsDeferred > 0, "the burst did hit a full daemon queue");

    const small = await connect(d, { maxQueuedDatagrams: 4 });
    const s2 = await small.bind(302);
    for (let i = 0; i < n; i++) s2.send({ sid: d.primary, port: 303 }, Uint8Array.of(1));
    assert.ok(small.stats.datagramsDropped > 0, "a bounded queue drops and counts");
  });
});

describe("servald transport (stub socket, no addon needed)", () => {
  /** A DatagramSocket that answers the handshake itself and records what svp sends. */
  class StubSocket extends Emitter<DatagramSocketEvents> implements DatagramSocket {
    readonly address = new Uint8Array([0, 1, 2]);
    readonly sent: MdpHeader[] = [];
    closed = false;
    send(data: Uint8Array): DatagramSendResult {
      const d = decodeMdpDatagram(data);
      assert.ok(d.ok);
      const h = d.header;
      this.sent.push(h);
      const reply = (flags: number, payload?: Uint8Array) =>
        queueMicrotask(() => this.emit("message", encodeMdpDatagram({ ...h, local: { sid: isSidAny(h.local.sid) ? sidOf(0xa1) : h.local.sid, port: h.local.port }, flags }, payload), new Uint8Array(0)));
      if (h.remote.port === 2 || h.remote.port === 5) reply(MDP_FLAG.CLOSE);
      return "ok";
    }
    wantWritable(): void {}
    ref(): void {}
    close(): void {
      if (this.closed) return;
      this.closed = true;
      this.emit("close");
    }
    fail(code: string): void {
      this.emit("error", new SvpError("ERR_RESET", `receive error: ${code}`, { cause: Object.assign(new Error(code), { code }) }));
    }
  }

  test("a receive error ECONNRESET/ECONNREFUSED on the daemon socket takes the transport down", async () => {
    for (const code of ["ECONNRESET", "ECONNREFUSED"]) {
      const stub = new StubSocket();
      const t = await connectServald({ openSocket: () => stub, instance: "/stub/instance" });
      assert.deepEqual(t.localSid, sidOf(0xa1));
      const down = new Promise<SvpError>((r) => t.on("down", r));
      stub.fail("ENOBUFS"); // survivable: nothing happens
      assert.equal(t.state, "open");
      stub.fail(code);
      assert.equal((await down).code, "ERR_MESH_DOWN");
      assert.match((await down).message, new RegExp(`went away: its socket is gone \\(${code}\\)`));
      assert.ok(stub.closed);
    }
  });

  test("the client name: the first free svp.<n>.socket slot, autobind when all are taken", async () => {
    const tried: string[] = [];
    const stub = new StubSocket();
    const t = await connectServald({
      instance: "/stub/instance",
      openSocket: (o) => {
        const name = new TextDecoder().decode(o.bind!);
        tried.push(name);
        if (name !== "" && !name.endsWith("svp.63.socket")) {
          throw new SvpError("ERR_USAGE", "in use", { cause: Object.assign(new Error("in use"), { code: "EADDRINUSE" }) });
        }
        return stub;
      },
    });
    assert.equal(tried.length, 64);
    assert.equal(tried[0], "\0stub/instance/svp.0.socket");
    t.close();
    const all: string[] = [];
    const t2 = await connectServald({
      instance: "/stub/instance",
      openSocket: (o) => {
        all.push(new TextDecoder().decode(o.bind!));
        if (o.bind!.length > 0) throw new SvpError("ERR_USAGE", "in use", { cause: Object.assign(new Error("in use"), { code: "EADDRINUSE" }) });
        return new StubSocket();
      },
    });
    assert.equal(all.length, 65);
    assert.equal(all.at(-1), "", "autobind after 64 taken names");
    t2.close();
  });
});
