/**
 * Embedded nodes in this process over real loopback UDP (port 0, separate temp instance
 * directories, a private same-host discovery directory), with clients on the real local
 * API Unix socket.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectEmbedded, type EmbeddedNode, startEmbeddedNode, type EmbeddedNodeOptions } from "../../src/platform/embedded-node.ts";
import { type EmbeddedTransport, openEmbeddedTransport } from "../../src/node/embedded-transport.ts";
import { connectUnix } from "../../src/platform/net.ts";
import { DEFAULT_API_LIMITS, MeshNode } from "../../src/node/mesh-node.ts";
import { API_TYPE, API_VERSION, encodeApiMessage } from "../../src/node/api-codec.ts";
import { addIdentity, createIdentity } from "../../src/node/keyring.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import { bindUdp } from "../../src/platform/udp.ts";
import { sidEquals, sidToHex, SID_BROADCAST, type Sid } from "../../src/mesh/sid.ts";
import type { MdpAddress, MdpSocket } from "../../src/mdp/transport.ts";
import { isSvpError } from "../../src/errors.ts";
import { encodeProbe, HELLO_PLAIN_BYTES, MAX_DATAGRAM_BYTES, OVERLAY_VERSION } from "../../src/node/overlay-packet.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import { discoverServices, startServiceResponder } from "../../src/service/discovery.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { concat, patternBytes, within } from "../helpers/wait.ts";

let root: string;
const nodes: EmbeddedNode[] = [];
const clients: EmbeddedTransport[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), "svp-en-"));
});
after(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.stop();
  rmSync(root, { recursive: true, force: true });
  delete process.env.SVP_DISCOVERY_DIR;
});

let seq = 0;
/** A fresh discovery directory: nodes of one test find only each other. */
function isolate(): void {
  process.env.SVP_DISCOVERY_DIR = join(root, `disc-${++seq}`);
}

async function start(options: EmbeddedNodeOptions = {}, home = join(root, `home-${++seq}`)): Promise<EmbeddedNode> {
  const n = await startEmbeddedNode({ home, port: 0, helloIntervalMs: 250, ...options });
  nodes.push(n);
  return n;
}

async function client(n: EmbeddedNode, name = "test"): Promise<EmbeddedTransport> {
  const t = await connectEmbedded({ home: n.home, autostart: false, name });
  clients.push(t);
  return t;
}

async function until(pred: () => boolean, what: string, ms = 8000): Promise<void> {
  await within(
    (async () => {
      while (!pred()) await new Promise((r) => setTimeout(r, 10));
    })(),
    ms,
    what,
  );
}

function nextMessage(s: MdpSocket): Promise<{ payload: Uint8Array; from: MdpAddress; to: MdpAddress }> {
  return within(new Promise((resolve) => s.once("message", (payload, from, to) => resolve({ payload, from, to }))), 5000, "an MDP datagram");
}

const udpPort = (n: EmbeddedNode) => n.node.overlay.sockets.find((s) => s.family === "IPv4")!.local.port;
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

describe("embedded nodes over loopback UDP", () => {
  test("two instances on one host find each other with no flags and exchange datagrams both ways through the local API", async () => {
    isolate();
    const a = await start();
    const b = await start();
    const ta = await client(a);
    const tb = await client(b);
    await until(() => ta.reachability(b.sid) === "reachable" && tb.reachability(a.sid) === "reachable", "discovery");
    assert.ok(ta.peers().some((p) => sidEquals(p, b.sid)));
    const sa = await ta.bind(0);
    const sb = await tb.bind(80);
    assert.ok(sa.local.port >= 32768, "port 0 allocates");
    assert.ok(sidEquals(sa.local.sid, a.sid));
    const atB = nextMessage(sb);
    sa.send({ sid: b.sid, port: 80 }, text("ping"));
    const m1 = await atB;
    assert.equal(str(m1.payload), "ping");
    assert.ok(sidEquals(m1.from.sid, a.sid));
    assert.equal(m1.from.port, sa.local.port);
    assert.deepEqual(m1.to, { sid: b.sid, port: 80 });
    const atA = nextMessage(sa);
    sb.send(m1.from, new Uint8Array(1160).fill(9));
    assert.deepEqual((await atA).payload, new Uint8Array(1160).fill(9));
    const sa2 = await ta.status();
    const peer = sa2.peers.find((p) => p.sid === sidToHex(b.sid))!;
    assert.ok(peer, "status of a lists b");
    assert.equal(peer.live, true);
    assert.equal(peer.source, "local");
    assert.match(peer.address!, /^127\.0\.0\.1:\d+$/);
    assert.ok(peer.packetsIn > 0 && peer.bytesOut > 0);
    assert.equal(typeof peer.rttMs, "number");
    const sb2 = await tb.status();
    assert.ok(sb2.peers.some((p) => p.sid === sidToHex(a.sid) && p.live));
    assert.deepEqual(sb2.ports.map((p) => [p.sid, p.port, p.client]), [[sidToHex(b.sid), 80, "test"]]);
  });

  test("three instances: everyone sees everyone; broadcast reaches both others' bound port", async () => {
    isolate();
    const n = [await start(), await start(), await start()];
    const t = await Promise.all(n.map((x) => client(x)));
    await until(() => t.every((x) => x.peers().length === 2), "full mesh of 3");
    const s = await Promise.all(t.map((x) => x.bind(7)));
    const got = [nextMessage(s[1]!), nextMessage(s[2]!)];
    s[0]!.send({ sid: SID_BROADCAST, port: 7 }, text("hello all"));
    for (const g of await Promise.all(got)) {
      assert.equal(str(g.payload), "hello all");
      assert.ok(sidEquals(g.to.sid, SID_BROADCAST));
      assert.ok(sidEquals(g.from.sid, n[0]!.sid));
    }
  });

  test("with discovery off, static peers (flag on one side, svp.conf on another) still connect; unlisted nodes are not found", async () => {
    isolate();
    const b = await start({ discovery: false });
    const a = await start({ discovery: false, peers: [`127.0.0.1:${udpPort(b)}`] });
    const cHome = join(root, `home-${++seq}`);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(cHome, { recursive: true, mode: 0o700 });
    writeFileSync(join(cHome, "svp.conf"), `# static only\ndiscovery = false\npeer = [::1]:${udpPort(b)}\n`);
    const c = await start({}, cHome);
    const lonely = await start({ discovery: false });
    const tb = await client(b);
    await until(() => tb.peers().length === 2, "b hears from a and c");
    const st = await tb.status();
    assert.deepEqual(st.daemon.discovery, []);
    const cs = await (await client(c)).status();
    assert.equal(cs.peers[0]!.source, "static");
    assert.match(cs.peers[0]!.address!, /^\[::1\]:\d+$/, "IPv6 loopback works");
    assert.equal((await client(lonely)).peers().length, 0);
    assert.ok(!tb.peers().some((p) => sidEquals(p, lonely.sid)));
    assert.ok(tb.peers().some((p) => sidEquals(p, a.sid)));
  });

  test("LAN discovery path, loopback-only variant: probes go to the given targets only", async () => {
    isolate();
    const b = await start({ discovery: false });
    const a = await start({ discovery: false, lan: true, lanTargets: [`127.0.0.1:${udpPort(b)}`], bind: ["127.0.0.1"] });
    const ta = await client(a);
    await until(() => ta.reachability(b.sid) === "reachable", "LAN-probed peer");
    const st = await ta.status();
    assert.deepEqual(st.daemon.discovery, ["lan"]);
  });

  test("a client that disconnects or is killed releases all its ports", async () => {
    isolate();
    const a = await start();
    const t1 = await client(a, "first");
    const t2 = await client(a, "second");
    await t1.bind(80);
    await t1.bind(81);
    await assert.rejects(t2.bind(80), (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED") && /already bound/.test(e.message));
    assert.equal((await t2.status()).ports.length, 2);
    t1.close();
    await until(() => a.node.status().ports.length === 0, "ports released");
    const s = await t2.bind(80);
    assert.equal(s.local.port, 80);
    // A client whose connection breaks (its process was killed): the socket is destroyed under it.
    const raw = await connectUnix(a.socketPath);
    const t3 = await openEmbeddedTransport(raw, { name: "third", pid: 1 });
    await t3.bind(90);
    assert.ok(a.node.status().ports.some((p) => p.port === 90));
    const down = new Promise((r) => t3.on("down", r));
    raw.abort();
    await within(down, 5000, "client sees the connection down");
    await until(() => !a.node.status().ports.some((p) => p.port === 90), "port 90 released");
  });

  test("hostile datagrams to the UDP port are dropped and counted; the node keeps serving", async () => {
    isolate();
    const a = await start();
    const b = await start();
    const ta = await client(a);
    const tb = await client(b);
    await until(() => ta.reachability(b.sid) === "reachable", "discovery");
    const sb = await tb.bind(5);
    const sa = await ta.bind(6);
    const attacker = createSocket("udp4");
    await new Promise<void>((r) => attacker.bind(0, "127.0.0.1", () => r()));
    const send = (d: Uint8Array) => new Promise<void>((r) => attacker.send(d, udpPort(b), "127.0.0.1", () => r()));
    try {
      await send(patternBytes(300, 7).map((x, i) => (i === 0 ? 0x47 : x)));
      await send(new Uint8Array(MAX_DATAGRAM_BYTES + 1));
      await send(Uint8Array.from([0x53, 0x56, OVERLAY_VERSION]));
      const forged = new Uint8Array(92 + HELLO_PLAIN_BYTES + 16);
      forged.set([0x53, 0x56, OVERLAY_VERSION, 2]);
      forged.set(a.sid, 4);
      forged.set(b.sid, 36);
      forged[91] = 1;
      await send(forged);
      await send(encodeProbe(b.sid, new Uint8Array(8).fill(3)));
      await until(() => {
        const d = b.node.overlay.drops;
        return d.garbage >= 1 && d.oversize >= 1 && d.truncated >= 1 && d.forged >= 1 && d["bad-sid"] >= 1;
      }, "drop counters");
      const st = await tb.status();
      for (const k of ["garbage", "oversize", "truncated", "forged", "bad-sid"]) assert.ok(st.drops[k]! >= 1, k);
      const got = nextMessage(sb);
      sa.send({ sid: b.sid, port: 5 }, text("after the attack"));
      assert.equal(str((await got).payload), "after the attack");
    } finally {
      attacker.close();
    }
  });

  test("a second node on the same instance fails clearly; a restarted node keeps its SID and is found again", async () => {
    isolate();
    const home = join(root, `home-${++seq}`);
    const a = await start({}, home);
    await assert.rejects(startEmbeddedNode({ home, port: 0 }), (e: unknown) => isSvpError(e, "ERR_BUSY") && /already running/.test(e.message));
    const b = await start();
    const tb = await client(b);
    await until(() => tb.reachability(a.sid) === "reachable", "discovery");
    const sid: Sid = a.sid;
    // A client of a daemon that stops sees the backend go down, and its sockets close with the error.
    const ta = await client(a);
    const sock = await ta.bind(9);
    const down = new Promise<unknown>((r) => ta.on("down", r));
    const sockClosed = new Promise<unknown>((r) => sock.on("close", r));
    await a.stop();
    const [downErr, closeErr] = await within(Promise.all([down, sockClosed]), 5000, "down events");
    assert.ok(isSvpError(downErr, "ERR_MESH_DOWN"));
    assert.ok(isSvpError(closeErr, "ERR_MESH_DOWN"));
    assert.equal(ta.reachability(b.sid), "unreachable");
    await assert.rejects(ta.bind(10), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN"));
    const a2 = await start({}, home);
    assert.ok(sidEquals(a2.sid, sid), "same SID after restart");
    const ta2 = await client(a2);
    await until(() => ta2.reachability(b.sid) === "reachable", "re-found after restart");
    const s2 = await ta2.bind(1);
    const sb = await tb.bind(2);
    const got = nextMessage(sb);
    s2.send({ sid: b.sid, port: 2 }, text("back"));
    assert.equal(str((await got).payload), "back");
  });

  test("MSP streams across two embedded nodes: 1 MiB each way, checksummed; clients' stream reports show in status", async () => {
    isolate();
    const a = await start();
    const b = await start();
    const ta = await client(a, "svp connect");
    const tb = await client(b, "svp listen");
    await until(() => ta.reachability(b.sid) === "reachable", "discovery");
    const listener = await listenMsp(tb, 80);
    const size = 1024 * 1024;
    const up = patternBytes(size, 11);
    const down = patternBytes(size, 12);
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    const echo = new Promise<string>((resolve, reject) => {
      listener.once("accept", (s: MspStream) => {
        const chunks: Uint8Array[] = [];
        s.on("data", (c) => chunks.push(c.slice()));
        s.on("end", () => resolve(sha(concat(chunks))));
        s.on("close", (e) => e && reject(e));
        s.resume();
        void pump(s, down);
      });
    });
    const stream = await connectMsp(ta, { sid: b.sid, port: 80 });
    ta.setStreamStatsProvider(() => {
      const st = stream.stats;
      return [{ localSid: sidToHex(st.local.sid), localPort: st.local.port, remoteSid: sidToHex(st.remote.sid), remotePort: st.remote.port, state: st.state, bytesIn: st.bytesIn, bytesOut: st.bytesOut, ageMs: 0 }];
    }, 50);
    const received: Uint8Array[] = [];
    const gotAll = new Promise<void>((resolve) => stream.on("end", () => resolve()));
    stream.on("data", (c) => received.push(c.slice()));
    stream.resume();
    await pump(stream, up);
    const [upSha] = await within(Promise.all([echo, gotAll]), 60_000, "1 MiB each way");
    assert.equal(upSha, sha(up));
    assert.equal(sha(concat(received)), sha(down));
    // Reports are pushed every 50 ms: wait for one taken after both directions finished.
    await until(() => a.node.status().streams.some((s) => s.bytesIn === size && s.bytesOut === size), "stream report");
    const st = await ta.status();
    const reported = st.streams.find((s) => s.remoteSid === sidToHex(b.sid))!;
    assert.equal(reported.client, "svp connect");
    assert.equal(reported.remotePort, 80);
    assert.equal(reported.bytesOut, size);
    ta.setStreamStatsProvider(undefined);
    listener.close();
  });

  test("a chain of three (static peers only): the ends talk MSP through the middle; clients see hops and path MTU; stopping the middle makes the far end unreachable at once", async () => {
    isolate();
    // A long peer timeout: only the goodbye can make the far end unreachable quickly.
    const b = await start({ discovery: false, peerTimeoutMs: 20_000 });
    const a = await start({ discovery: false, peerTimeoutMs: 20_000, peers: [`127.0.0.1:${udpPort(b)}`] });
    const c = await start({ discovery: false, peerTimeoutMs: 20_000, peers: [`127.0.0.1:${udpPort(b)}`] });
    const ta = await client(a, "svp connect");
    const tc = await client(c, "svp listen");
    await until(() => ta.reachability(c.sid) === "reachable", "a route from a to c");
    assert.equal(ta.hops(c.sid), 2);
    assert.equal(ta.pathMtu(c.sid), 16384, "loopback links carry 16 KiB");
    assert.equal(ta.pathMtu(a.sid), 16384, "own SID: the largest");
    assert.equal(ta.pathMtu(new Uint8Array(32).fill(9)), 1160, "unknown: mtu");
    assert.ok(ta.peers().some((p) => sidEquals(p, c.sid)), "peers() lists the far node");
    // A big datagram over two hops.
    const sc = await tc.bind(9);
    const sa = await ta.bind(8);
    const got = nextMessage(sc);
    sa.send({ sid: c.sid, port: 9 }, patternBytes(16384, 3));
    const m = await got;
    assert.deepEqual(m.payload, patternBytes(16384, 3));
    assert.ok(sidEquals(m.from.sid, a.sid));
    // MSP across it.
    const listener = await listenMsp(tc, 80);
    const echoed = new Promise<string>((resolve) => {
      listener.once("accept", (s: MspStream) => {
        const chunks: Uint8Array[] = [];
        s.on("data", (ch) => chunks.push(ch.slice()));
        s.on("end", () => {
          s.write(concat(chunks));
          s.closeWrite();
          resolve("ok");
        });
        s.resume();
      });
    });
    const stream = await connectMsp(ta, { sid: c.sid, port: 80 });
    const received: Uint8Array[] = [];
    const ended = new Promise<void>((resolve) => stream.on("end", () => resolve()));
    stream.on("data", (ch) => received.push(ch.slice()));
    stream.resume();
    await pump(stream, patternBytes(200_000, 5));
    await within(Promise.all([echoed, ended]), 30_000, "200 kB echoed over two hops");
    assert.deepEqual(concat(received), patternBytes(200_000, 5));
    listener.close();
    // Discovery floods through the middle; the answer comes back routed.
    const responder = await startServiceResponder(tc, { service: "web", port: 80 });
    const found = await discoverServices(ta, { pattern: "web", timeoutMs: 3000, first: true });
    assert.equal(found.length, 1);
    assert.ok(sidEquals(found[0]!.sid, c.sid));
    assert.equal(found[0]!.port, 80);
    responder.close();
    const st = await ta.status();
    const r = st.routes!.find((x) => x.sid === sidToHex(c.sid))!;
    assert.deepEqual([r.hops, r.nextHop, r.mtu], [2, sidToHex(b.sid), 16384]);
    assert.ok(r.metric >= 512);
    assert.ok(st.routing!.packetsOut > 0);
    assert.ok((await client(b)).peers().length === 2);
    assert.ok(b.node.status().routing!.forwardedPackets > 0);
    // The middle stops cleanly: a's client hears that c is gone without any timeout.
    const t0 = Date.now();
    await b.stop();
    await until(() => ta.reachability(c.sid) === "unreachable", "c unreachable after b's goodbye", 2000);
    assert.ok(Date.now() - t0 < 1000, `within a round trip, not the peer timeout (${Date.now() - t0} ms)`);
  });

  test("a busy default port falls back to an ephemeral one (logged); an explicit busy port is an error", async () => {
    const blocker = createSocket({ type: "udp4" });
    await new Promise<void>((r) => blocker.bind(0, "127.0.0.1", () => r()));
    const busy = blocker.address().port;
    const keyring = addIdentity(undefined, createIdentity(nodeCrypto));
    const logs: string[] = [];
    const base = { keyring, crypto: nodeCrypto, binder: bindUdp, bindHosts: ["127.0.0.1"], info: { pid: 1, version: "t", home: "/x" }, log: (_l: string, m: string) => logs.push(m) };
    try {
      const fallback = new MeshNode({ ...base, port: busy });
      await fallback.start();
      const got = fallback.overlay.sockets[0]!.local.port;
      fallback.stop();
      assert.notEqual(got, busy);
      assert.ok(logs.some((l) => l.includes(`UDP port ${busy} on 127.0.0.1 is in use; using ${got} instead`)), logs.join("\n"));
      const strict = new MeshNode({ ...base, port: busy, portExplicit: true });
      await assert.rejects(strict.start(), (e: unknown) => isSvpError(e, "ERR_BUSY") && e.message.includes(`127.0.0.1:${busy}`) && /in use/.test(e.message));
    } finally {
      blocker.close();
    }
  });

  test("a local API client that sends garbage is disconnected; other clients are not disturbed", async () => {
    isolate();
    const a = await start();
    const good = await client(a, "good");
    await good.bind(3);
    const raw = await connectUnix(a.socketPath);
    // The daemon hangs up: end of stream (the client's own side stays half-open).
    const closed = new Promise<void>((r) => {
      raw.once("end", () => r());
      raw.once("close", () => r());
    });
    raw.resume();
    raw.write(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    await within(closed, 5000, "the daemon drops the bad client");
    const st = await good.status();
    assert.deepEqual(st.ports.map((p) => p.port), [3]);
    // Sending from a port the client has not bound is a protocol error too.
    const raw2 = await connectUnix(a.socketPath);
    const t2 = await openEmbeddedTransport(raw2, { name: "rogue", pid: 2 });
    const down = new Promise((r) => t2.on("down", r));
    t2._send({ sid: a.sid, port: 3 }, { sid: a.sid, port: 3 }, text("spoofed source port"));
    await within(down, 5000, "the daemon drops the rogue client");
    assert.equal((await good.status()).ports.length, 1);
  });
});

describe("the local API over its real Unix socket", () => {
  test("the daemon takes a client's pid and uid from the socket (SO_PEERCRED), not from what it claims", async () => {
    isolate();
    const a = await start();
    const raw = await connectUnix(a.socketPath);
    const liar = await openEmbeddedTransport(raw, { name: "attacker", pid: 424242 });
    clients.push(liar);
    await liar.bind(77);
    const port = (await liar.status()).ports.find((p) => p.port === 77)!;
    assert.equal(port.client, "attacker");
    // (Node and Deno both expose the accepted socket's descriptor to the addon.)
    assert.equal(port.pid, process.pid, "the kernel's pid");
    assert.equal(port.uid, process.getuid!());
    assert.deepEqual(port.clientReported, ["client"]);
  });

  test("a client that floods STATUS requests without reading is cut off; the daemon's queue for it stays bounded", async () => {
    isolate();
    const logs: string[] = [];
    const a = await start({ log: (_l, m) => logs.push(m) });
    const good = await client(a, "good");
    const raw = await connectUnix(a.socketPath);
    let closedNow = false;
    raw.on("close", () => (closedNow = true));
    raw.on("end", () => (closedNow = true));
    raw.write(encodeApiMessage({ type: API_TYPE.HELLO, json: { version: API_VERSION, pid: 1, name: "hog" } }));
    const batch = concat(Array.from({ length: 1000 }, (_, i) => encodeApiMessage({ type: API_TYPE.STATUS, reqId: i + 1 })));
    let peak = 0;
    for (let i = 0; i < 500 && !closedNow; i++) {
      if (raw.writable) raw.write(batch);
      await new Promise((r) => setTimeout(r, 2));
      peak = Math.max(peak, a.node.apiStatus().queuedBytes);
    }
    assert.ok(closedNow, "cut off");
    assert.ok(peak <= DEFAULT_API_LIMITS.maxQueueBytes + 64 * 1024, `bounded: peak ${peak}`);
    assert.ok(logs.some((m) => /"hog" .*does not read what the daemon sends/.test(m)), logs.join("\n"));
    assert.equal((await good.status()).daemon.api!.disconnected["slow-reader"], 1);
    raw.abort();
  });

  test("a client killed mid-stream: its daemon stops its MSP streams at once (the remote sees STOP, not a 10 s timeout)", async () => {
    isolate();
    const logs: string[] = [];
    const a = await start({ log: (l, m) => logs.push(`${l} ${m}`) });
    const b = await start();
    const tb = await client(b, "svp listen");
    const listener = await listenMsp(tb, 80);
    const raw = await connectUnix(a.socketPath);
    const ta = await openEmbeddedTransport(raw, { name: "svp connect", pid: 1 });
    await until(() => ta.reachability(b.sid) === "reachable", "discovery");
    // (A listener answers once its application reads: resume at once.)
    let firstData!: Promise<unknown>;
    const accepted = new Promise<MspStream>((r) =>
      listener.once("accept", (s: MspStream) => {
        firstData = new Promise((d) => s.once("data", d));
        s.resume();
        r(s);
      }),
    );
    const stream = await connectMsp(ta, { sid: b.sid, port: 80 });
    stream.write(text("hello"));
    const remote = await within(accepted, 5000, "the listener's stream");
    await within(firstData, 5000, "data");
    const ended = new Promise<unknown>((r) => remote.once("close", r));
    const t0 = Date.now();
    raw.abort(); // as kill -9 leaves it: the connection just drops, the client says nothing
    const err = await within(ended, 5000, "the remote stream to fail");
    assert.ok(isSvpError(err, "ERR_RESET"), `reset, not a timeout: ${String(err)}`);
    assert.match((err as Error).message, /STOP/);
    assert.ok(Date.now() - t0 < 5000);
    assert.ok(logs.some((m) => /^debug local API client \d+ "svp connect" .*is gone: sent MSP STOP to 1 stream it left open/.test(m)), logs.join("\n"));
    // A stream that finished cleanly both ways gets no STOP when its client leaves.
    logs.length = 0;
    const tc = await client(a, "svp connect 2");
    const accepted2 = new Promise<MspStream>((r) =>
      listener.once("accept", (s: MspStream) => {
        s.on("data", () => {});
        s.on("end", () => s.closeWrite());
        s.resume();
        r(s);
      }),
    );
    const s2 = await connectMsp(tc, { sid: b.sid, port: 80 });
    const r2 = await within(accepted2, 5000, "second stream");
    const done2 = Promise.all([new Promise((r) => r2.once("close", r)), new Promise((r) => s2.once("close", r))]);
    s2.on("data", () => {});
    s2.resume();
    s2.write(text("bye"));
    s2.closeWrite();
    const closes = await within(done2, 10_000, "a clean finish");
    assert.deepEqual(closes, [undefined, undefined]);
    tc.close();
    await until(() => a.node.apiStatus().clients === 1, "the client is gone");
    assert.ok(!logs.some((m) => /sent MSP STOP/.test(m)), logs.join("\n"));
    listener.close();
  });
});

describe("nothing accumulates", () => {
  test("200 streams opened and finished leave nothing behind in the daemon's or the client's own accounting", async () => {
    isolate();
    const a = await start();
    const b = await start();
    const ta = await client(a, "svp socks");
    const tb = await client(b, "svp listen");
    await until(() => ta.reachability(b.sid) === "reachable", "discovery");
    const listener = await listenMsp(tb, 80, { lingerMs: 200 });
    listener.on("accept", (s: MspStream) => {
      s.on("data", (d) => s.write(d));
      s.on("end", () => s.closeWrite());
      s.resume();
    });
    const one = async (i: number) => {
      const s = await connectMsp(ta, { sid: b.sid, port: 80 }, { lingerMs: 200 });
      const got: Uint8Array[] = [];
      const done = new Promise<unknown>((r) => s.once("close", r));
      s.on("data", (d) => got.push(d.slice()));
      s.resume();
      s.write(patternBytes(1000, i));
      s.closeWrite();
      assert.equal(await within(done, 15_000, `stream ${i}`), undefined);
      assert.deepEqual(concat(got), patternBytes(1000, i));
    };
    for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 20 }, (_, i) => one(round * 20 + i)));
    await until(() => ta.socketCount === 0 && listener.connectionCount === 0, "every stream released (after its linger)");
    // A port closed by the client is unbound by a message on the local API: it reaches the
    // daemon a moment after the client's own count drops.
    await until(() => a.node.apiStatus().ports === 0, "the daemon saw every unbind");
    const api = a.node.apiStatus();
    assert.equal(api.ports, 0, "the client's ports are all unbound");
    assert.equal(api.mspRemotes, 0, "no remote remembered for ports that are gone");
    assert.equal(api.queuedBytes, 0);
    assert.equal(api.partialBytes, 0);
    const apiB = b.node.apiStatus();
    assert.equal(apiB.ports, 1, "the listener's port");
    assert.ok(apiB.mspRemotes <= 200, `the listener's port remembers at most the recent callers: ${apiB.mspRemotes}`);
    assert.deepEqual((await ta.status()).streams, []);
    listener.close();
  });
});

async function pump(s: MspStream, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length; o += 16 * 1024) {
    if (!s.write(data.subarray(o, o + 16 * 1024))) await new Promise<void>((r) => s.once("drain", () => r()));
  }
  s.closeWrite();
}
