/**
 * The daemon's local API under misbehaving clients (a MeshNode in this process, clients on
 * in-memory streams, a ManualClock for every deadline): a silent client, too many clients,
 * a client that never reads its replies, unfinished and oversized frames. Each is cut off
 * (or refused) with a logged reason, the daemon's own accounting of what it holds stays
 * within its limits, and a well-behaved client next to them is not disturbed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import { sidToHex } from "../../src/mesh/sid.ts";
import { API_MAX_CLIENT_FRAME, API_TYPE, API_VERSION, type ApiMessage, decodeApiFrame, encodeApiMessage, FrameDecoder } from "../../src/node/api-codec.ts";
import { type EmbeddedTransport, openEmbeddedTransport } from "../../src/node/embedded-transport.ts";
import { addIdentity, createIdentity } from "../../src/node/keyring.ts";
import { type ApiLimits, DEFAULT_API_LIMITS, MeshNode } from "../../src/node/mesh-node.ts";
import type { PeerCredentials } from "../../src/node/node-io.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import { within } from "../helpers/wait.ts";

const tick = () => new Promise<void>((r) => setImmediate(r));

interface Lab {
  node: MeshNode;
  clock: ManualClock;
  logs: string[];
  /** A well-behaved client (the transport svp's commands use). */
  good(name?: string, peer?: PeerCredentials, pid?: number): Promise<EmbeddedTransport>;
  /** A raw connection: frames in by hand, frames out collected (when `read`). */
  raw(options?: { read?: boolean; peer?: PeerCredentials }): Raw;
}

interface Raw {
  stream: ByteStream;
  frames: ApiMessage[];
  closed: boolean;
  send(m: ApiMessage): void;
  bytes(b: Uint8Array): void;
}

function lab(limits: Partial<ApiLimits> = {}): Lab {
  const clock = new ManualClock();
  const logs: string[] = [];
  const keyring = addIdentity(undefined, createIdentity(nodeCrypto));
  const node = new MeshNode({
    keyring,
    crypto: nodeCrypto,
    binder: () => Promise.reject(new Error("no UDP in this test")),
    clock,
    log: (level, m) => logs.push(`${level} ${m}`),
    info: { pid: 4242, version: "test", home: "/nowhere" },
    apiLimits: limits,
  });
  return {
    node,
    clock,
    logs,
    good(name = "good", peer, pid = 1) {
      const [a, b] = memoryPair();
      node.acceptClient(b, peer);
      return openEmbeddedTransport(a, { name, pid, clock });
    },
    raw(options = {}) {
      const [a, b] = memoryPair();
      const r: Raw = {
        stream: a,
        frames: [],
        closed: false,
        send: (m) => a.writable && a.write(encodeApiMessage(m)),
        bytes: (x) => a.writable && a.write(x),
      };
      a.on("close", () => (r.closed = true));
      if (options.read !== false) {
        const dec = new FrameDecoder();
        a.on("data", (c) => {
          for (const f of dec.push(c).frames) {
            const m = decodeApiFrame(f);
            if (typeof m !== "string") r.frames.push(m);
          }
        });
        a.resume();
      }
      node.acceptClient(b, options.peer);
      return r;
    },
  };
}

const hello = (pid = 7, name = "raw"): ApiMessage => ({ type: API_TYPE.HELLO, json: { version: API_VERSION, pid, name } });

describe("local API limits", () => {
  test("a client that never sends HELLO is cut off at the deadline, logged; a client that greets in time is not", async () => {
    const l = lab();
    const silent = l.raw();
    const ok = await l.good();
    await tick();
    assert.equal(l.node.apiStatus().clients, 2);
    l.clock.advance(DEFAULT_API_LIMITS.helloTimeoutMs - 1);
    await tick();
    assert.equal(silent.closed, false, "not before the deadline");
    l.clock.advance(1);
    await tick();
    assert.equal(silent.closed, true, "cut off at the deadline");
    assert.ok(l.logs.some((m) => /^warn local API client \d+: sent no HELLO within 5000 ms; disconnecting it$/.test(m)), l.logs.join("\n"));
    const st = l.node.apiStatus();
    assert.equal(st.clients, 1);
    assert.equal(st.disconnected["hello-timeout"], 1);
    assert.equal((await ok.status()).daemon.api!.clients, 1, "the good client still gets answers");
    ok.close();
  });

  test("beyond maxClients a client is refused with a clear error (and the daemon logs it); the others keep working", async () => {
    const l = lab({ maxClients: 3 });
    const first = await Promise.all([l.good("a"), l.good("b"), l.good("c")]);
    await assert.rejects(l.good("d"), (e: unknown) => isSvpError(e, "ERR_LIMIT") && /refused this client: 3 local API clients are connected, its limit/.test(e.message));
    // A flood of connection attempts is refused too, with one log line, not one per attempt.
    for (let i = 0; i < 50; i++) l.raw();
    await tick();
    assert.equal(l.node.apiStatus().clients, 3);
    assert.equal(l.node.apiStatus().disconnected["too-many-clients"], 51);
    assert.equal(l.logs.filter((m) => /refused a client.*3 clients are connected, the limit/.test(m)).length, 1, l.logs.join("\n"));
    l.clock.advance(1000); // the refused connections' grace period: all closed
    await tick();
    for (const t of first) assert.equal((await t.status()).daemon.api!.clients, 3);
    first[0]!.close();
    await tick();
    await tick();
    const again = await l.good("e");
    assert.equal((await again.status()).daemon.api!.clients, 3, "a freed slot is usable again");
  });

  test("a client that sends STATUS requests and never reads is cut off; what the daemon queued for it stays bounded", async () => {
    const maxQueueBytes = 256 * 1024;
    const l = lab({ maxQueueBytes });
    const ok = await l.good();
    const hog = l.raw({ read: false });
    hog.send(hello(9, "hog"));
    let peak = 0;
    let sent = 0;
    for (let batch = 0; batch < 1000 && !hog.closed; batch++) {
      for (let i = 0; i < 50; i++) hog.send({ type: API_TYPE.STATUS, reqId: ++sent });
      await tick();
      peak = Math.max(peak, l.node.apiStatus().queuedBytes);
    }
    assert.equal(hog.closed, true, `cut off (after ${sent} requests)`);
    const reply = encodeApiMessage({ type: API_TYPE.STATUS_REPLY, reqId: 1, json: l.node.status() }).length;
    assert.ok(peak <= maxQueueBytes + 2 * reply, `queued at most the limit and a reply: peak ${peak}, limit ${maxQueueBytes}`);
    assert.ok(l.logs.some((m) => /client \d+ "hog" \(pid 9, as it claims\): does not read what the daemon sends \(\d+ bytes unread, limit 262144\); disconnecting it/.test(m)), l.logs.join("\n"));
    assert.equal(l.node.apiStatus().disconnected["slow-reader"], 1);
    assert.equal(l.node.apiStatus().queuedBytes, 0, "nothing is held for it afterwards");
    assert.equal((await ok.status()).daemon.api!.clients, 1);
    ok.close();
  });

  test("a half frame is held only until its deadline; steady traffic split across reads never trips it", async () => {
    const l = lab();
    const ok = await l.good();
    const sock = await ok.bind(5);
    let got = 0;
    sock.on("message", () => got++);
    // Steady traffic whose reads never end on a frame boundary: 30 s of it, no cut-off.
    const steady = l.raw();
    steady.send(hello(11, "steady"));
    steady.send({ type: API_TYPE.BIND, reqId: 1, port: 7, reuse: false, sid: new Uint8Array(32) });
    await tick();
    const b7 = steady.frames.find((f) => f.type === API_TYPE.BOUND) as Extract<ApiMessage, { type: typeof API_TYPE.BOUND }>;
    const f7 = encodeApiMessage({ type: API_TYPE.SEND, sid: b7.sid, port: 7, remoteSid: b7.sid, remotePort: 5, payload: new Uint8Array(100) });
    steady.bytes(f7.subarray(0, 50));
    for (let s = 0; s < 30; s++) {
      steady.bytes(f7.subarray(50));
      steady.bytes(f7.subarray(0, 50));
      l.clock.advance(1000);
      await tick();
    }
    assert.equal(steady.closed, false, "30 s of steady, misaligned traffic: still connected");
    assert.equal(got, 30, "every datagram arrived");
    assert.equal(l.node.apiStatus().partialBytes, 50);
    steady.bytes(f7.subarray(50));
    await tick();
    assert.equal(got, 31);
    assert.equal(l.node.apiStatus().partialBytes, 0);
    // A half frame that stays half.
    const half = l.raw();
    half.send(hello(12, "half"));
    const f = encodeApiMessage({ type: API_TYPE.SEND, sid: b7.sid, port: 7, remoteSid: b7.sid, remotePort: 5, payload: new Uint8Array(1000) });
    half.bytes(f.subarray(0, 600));
    await tick();
    assert.equal(l.node.apiStatus().partialBytes, 600, "the daemon counts what it holds");
    l.clock.advance(DEFAULT_API_LIMITS.partialFrameTimeoutMs - 1);
    await tick();
    assert.equal(half.closed, false);
    l.clock.advance(1);
    await tick();
    assert.equal(half.closed, true);
    assert.ok(l.logs.some((m) => /"half" \(pid 12, as it claims\): held an unfinished frame \(600 bytes\) for 10000 ms; disconnecting it/.test(m)), l.logs.join("\n"));
    assert.equal(l.node.apiStatus().partialBytes, 0, "released with it");
    assert.equal(steady.closed, false);
    assert.equal(l.node.apiStatus().disconnected["partial-frame-timeout"], 1);
    assert.equal((await ok.status()).ports.length, 2, "the others are unaffected");
    ok.close();
  });

  test("frame size caps depend on the type: a large HELLO is refused from its header; a large STREAMS report is fine", async () => {
    const l = lab();
    const big = l.raw();
    const header = new Uint8Array([0, 1, 0, 0, API_TYPE.HELLO]); // announces 64 KiB
    big.bytes(header);
    await tick();
    assert.equal(big.closed, true, "refused before the body came");
    assert.ok(l.logs.some((m) => m.includes(`frame of type 1 and 65536 bytes exceeds its ${API_MAX_CLIENT_FRAME}-byte limit`)), l.logs.join("\n"));
    assert.equal(l.node.apiStatus().disconnected["frame-too-large"], 1);
    const ok = await l.good();
    const stats = Array.from({ length: 2000 }, (_, i) => ({ localSid: "AA".repeat(32), localPort: i, remoteSid: "BB".repeat(32), remotePort: 80, state: "open", bytesIn: 1, bytesOut: 1, ageMs: 1 }));
    ok.reportStreams(stats); // ~300 KiB
    assert.equal((await ok.status()).daemon.api!.clients, 1, "still connected");
  });

  test("unfinished frames of all clients together stay within the daemon's budget", async () => {
    const maxPartialBytes = 100 * 1024;
    const l = lab({ maxPartialBytes });
    const streams = (n: number) => {
      const f = new Uint8Array(5 + n);
      new DataView(f.buffer).setUint32(0, 1 + 500 * 1024);
      f[4] = API_TYPE.STREAMS;
      return f;
    };
    const a = l.raw();
    a.send(hello(1, "a"));
    a.bytes(streams(60 * 1024));
    await tick();
    const b = l.raw();
    b.send(hello(2, "b"));
    b.bytes(streams(60 * 1024));
    await tick();
    assert.equal(a.closed, false);
    assert.equal(b.closed, true, "the one that went over the budget is cut off");
    assert.ok(l.node.apiStatus().partialBytes <= maxPartialBytes);
    assert.ok(l.logs.some((m) => /"b" .*unfinished frames of all clients exceed 102400 bytes/.test(m)), l.logs.join("\n"));
  });

  test("pid from the kernel wins over the claimed one; names and stream figures are marked client-reported and held to what the daemon knows", async () => {
    const l = lab();
    const trusted = await l.good("svp connect", { pid: 3333, uid: 1000, gid: 1000 }, 424242);
    const claimed = await l.good("attacker", undefined, 424242);
    const sock = await trusted.bind(0);
    await claimed.bind(9);
    const sid = sidToHex(sock.local.sid);
    sock.send({ sid: sock.local.sid, port: 9 }, new Uint8Array(1000));
    trusted.reportStreams([
      { localSid: sid, localPort: sock.local.port, remoteSid: "CC".repeat(32), remotePort: 80, state: "open\u001b[31m", bytesIn: 1e15, bytesOut: 1e15, ageMs: 1e12 },
      { localSid: sid, localPort: 1, remoteSid: "CC".repeat(32), remotePort: 80, state: "open", bytesIn: 1, bytesOut: 1, ageMs: 1 }, // a port it has not bound
      { localSid: sid, localPort: sock.local.port, remoteSid: "CC".repeat(32), remotePort: 80, state: "open", bytesIn: 1.5, bytesOut: -1, ageMs: 1 }, // not counts
    ]);
    l.clock.advance(5000);
    const st = await trusted.status();
    const mine = st.ports.find((p) => p.port === sock.local.port)!;
    assert.equal(mine.pid, 3333, "the kernel's pid, not the claimed 424242");
    assert.equal(mine.uid, 1000);
    assert.deepEqual(mine.clientReported, ["client"]);
    const theirs = st.ports.find((p) => p.port === 9)!;
    assert.equal(theirs.pid, 424242);
    assert.deepEqual(theirs.clientReported, ["client", "pid"]);
    assert.equal(st.streams.length, 1, "only the stream on a port it bound, with valid counts");
    const s = st.streams[0]!;
    assert.equal(s.bytesOut, 1000, "capped at what its datagrams carried");
    assert.equal(s.bytesIn, 0);
    assert.ok(s.ageMs <= 5000, `no older than the client's connection: ${s.ageMs}`);
    assert.equal(s.state, "open?[31m");
    assert.ok(s.clientReported!.includes("bytesIn") && s.clientReported!.includes("client") && !s.clientReported!.includes("pid"));
    trusted.close();
    claimed.close();
  });

  test("a stream report too large for one frame is cut to fit instead of failing", async () => {
    const l = lab();
    const t = await l.good();
    const s = await t.bind(0);
    const sid = sidToHex(s.local.sid);
    const many = Array.from({ length: 9000 }, () => ({ localSid: sid, localPort: s.local.port, remoteSid: "DD".repeat(32), remotePort: 80, state: "open", bytesIn: 0, bytesOut: 0, ageMs: 0 }));
    t.reportStreams(many); // ~2.6 MB as JSON: over the 1 MiB STREAMS limit
    const st = await within(t.status(), 2000, "status");
    assert.ok(st.streams.length > 1000 && st.streams.length < 9000, `${st.streams.length} streams kept`);
    assert.equal(l.node.apiStatus().clients, 1);
    t.close();
  });
});

describe("the daemon's memory of MSP remotes (to stop a dead client's streams)", () => {
  test("bounded per port and forgotten after 30 s of silence; released with the port", async () => {
    const l = lab();
    const t = await l.good();
    const s = await t.bind(0);
    const remote = (i: number) => {
      const sid = new Uint8Array(32);
      sid[0] = 1;
      sid[30] = i >> 8;
      sid[31] = i & 0xff;
      return sid;
    };
    const ack = Uint8Array.of(0x02 | 0x04, 0xff, 0xff); // a classic connect request (FIRST|ACK)
    for (let i = 0; i < 1500; i++) s.send({ sid: remote(i), port: 80 }, ack);
    s.send({ sid: remote(0), port: 11 }, new TextEncoder().encode("http.msp.port=80")); // not MSP: not remembered
    await tick();
    assert.equal(l.node.apiStatus().mspRemotes, 1024, "at most 1,024 per port: the oldest are forgotten");
    l.clock.advance(30_001);
    s.send({ sid: remote(2000), port: 80 }, ack);
    await tick();
    assert.equal(l.node.apiStatus().mspRemotes, 1, "silent ones are forgotten");
    s.send({ sid: remote(2000), port: 80 }, Uint8Array.of(0x08)); // a STOP: that stream is over
    await tick();
    assert.equal(l.node.apiStatus().mspRemotes, 0);
    s.send({ sid: remote(3000), port: 80 }, ack);
    await tick();
    assert.equal(l.node.apiStatus().mspRemotes, 1);
    s.close();
    await tick();
    assert.deepEqual([l.node.apiStatus().mspRemotes, l.node.apiStatus().ports], [0, 0], "released with the port");
    t.close();
  });
});
