/**
 * The commands' library calls: meshNetcat (`svp connect` stdio), startMeshForward
 * (`svp connect --forward` with its mesh), startMeshListen (`svp listen`), meshDiscover (`svp discover`) and
 * queryMeshStatus (`svp status`), against two embedded nodes as real daemons on
 * loopback (in this process: real UDP overlay on port 0, real local API sockets, private
 * homes and discovery directory). Node A serves an upper-casing echo through the library
 * façade; the calls under test run on node B.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseListenAddress } from "../../src/options.ts";
import { startEmbeddedNode, type EmbeddedNode } from "../../src/platform/embedded-node.ts";
import { openMesh, type Mesh, type MeshListener } from "../../src/platform/mesh.ts";
import { startMeshForward } from "../../src/platform/mesh-forward.ts";
import { meshNetcat } from "../../src/platform/mesh-netcat.ts";
import { meshDiscover } from "../../src/platform/mesh-discover.ts";
import { queryMeshStatus } from "../../src/platform/mesh-status.ts";
import { startMeshListen } from "../../src/platform/mesh-listen.ts";
import type { OpenMeshOptions } from "../../src/service/mesh-session.ts";
import { parseMeshTarget } from "../../src/service/mesh-target.ts";
import type { MeshTarget } from "../../src/service/mesh-target.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import { readAll, tcpRoundTrip, within } from "../helpers/wait.ts";

const text = (s: string) => new TextEncoder().encode(s);
const UPPER_PORT = 90;
const HOLD_PORT = 91;

let root: string;
let nodeA: EmbeddedNode;
let nodeB: EmbeddedNode;
let serverMesh: Mesh;
let listeners: MeshListener[] = [];
/** Streams accepted on HOLD_PORT: kept open, never answered, to see what the caller does to them. */
const held: { closed: Promise<unknown> }[] = [];
const savedDiscovery = process.env.SVP_DISCOVERY_DIR;

const meshB = (): OpenMeshOptions => ({ mesh: "embedded", home: nodeB.home, autostart: false, name: "mesh-netcat test" });
const targetA = (port: number): MeshTarget => parseMeshTarget(serverMesh.sid, String(port));

before(async () => {
  root = mkdtempSync(join(tmpdir(), "svp-netcat-"));
  process.env.SVP_DISCOVERY_DIR = join(root, "discovery");
  nodeA = await startEmbeddedNode({ home: join(root, "a"), port: 0, helloIntervalMs: 250 });
  nodeB = await startEmbeddedNode({ home: join(root, "b"), port: 0, helloIntervalMs: 250 });
  serverMesh = await openMesh({ home: nodeA.home, mesh: "embedded", autostart: false });
  const b = await openMesh({ home: nodeB.home, mesh: "embedded", autostart: false });
  try {
    await within(
      (async () => {
        for (;;) {
          if ((await b.status()).peers.some((p) => p.live && p.sid === serverMesh.sid)) return;
          await new Promise((r) => setTimeout(r, 25));
        }
      })(),
      8000,
      "node B to see node A",
    );
  } finally {
    await b.close();
  }
  const upper = await serverMesh.listen(UPPER_PORT, { service: "upper" });
  const hold = await serverMesh.listen(HOLD_PORT);
  listeners = [upper, hold];
  void (async () => {
    for await (const conn of upper) {
      let got = "";
      conn.setEncoding("utf8");
      conn.on("data", (c: string) => (got += c));
      conn.on("end", () => conn.end(got.toUpperCase()));
      conn.on("error", () => {});
    }
  })();
  void (async () => {
    for await (const conn of hold) {
      conn.on("error", () => {});
      conn.resume();
      held.push({ closed: new Promise((r) => conn.once("close", r)) });
    }
  })();
});

after(async () => {
  await Promise.all(listeners.map((l) => l.close()));
  await serverMesh?.close();
  await nodeA?.stop();
  await nodeB?.stop();
  if (savedDiscovery === undefined) delete process.env.SVP_DISCOVERY_DIR;
  else process.env.SVP_DISCOVERY_DIR = savedDiscovery;
  rmSync(root, { recursive: true, force: true });
});

describe("meshNetcat", () => {
  test("relays the local stream both ways with half-close, reports the peer, byte counts and telemetry", async () => {
    const [near, far] = memoryPair();
    const connected: string[] = [];
    const answer = readAll(far);
    const result = meshNetcat({
      mesh: meshB(),
      target: targetA(UPPER_PORT),
      local: () => {
        // Made once connected: the first bytes and EOF go out over the established stream.
        far.write(text("hello mesh"));
        far.closeWrite();
        return near;
      },
      onConnected: ({ remote, description }) => connected.push(`${remote.port} ${description}`),
    });
    assert.equal(new TextDecoder().decode(await within(answer, 8000, "the echo")), "HELLO MESH");
    const r = await within(result, 8000, "meshNetcat's end");
    assert.equal(r.stage, "stream");
    if (r.stage !== "stream") return;
    assert.equal(r.error, undefined);
    assert.equal(r.idleTimeout, false);
    assert.deepEqual([r.stats.aToB, r.stats.bToA], [10, 10]);
    assert.equal(r.remote.port, UPPER_PORT);
    assert.match(r.description, /^embedded node \(pid \d+, /);
    assert.deepEqual(connected, [`${UPPER_PORT} ${r.description}`]);
    assert.equal(typeof r.telemetry.messageSize, "number");
  });

  test("no mesh backend: stage open, ERR_MESH_DOWN, nothing started", async () => {
    const r = await meshNetcat({ mesh: { mesh: "embedded", home: join(root, "nobody"), autostart: false }, target: targetA(UPPER_PORT), local: () => assert.fail("no local stream without a mesh") });
    assert.equal(r.stage, "open");
    assert.equal(r.error.code, "ERR_MESH_DOWN");
  });

  test("waitMs on a port nobody answers: stage connect, ERR_TIMEOUT saying the wait", async () => {
    const r = await within(meshNetcat({ mesh: meshB(), target: targetA(4099), waitMs: 300, local: () => assert.fail("never connected") }), 8000, "the timeout");
    assert.equal(r.stage, "connect");
    assert.equal(r.error.code, "ERR_TIMEOUT");
    assert.equal(r.error.message, "no answer within 300 ms");
  });

  test("the signal before the answer abandons the dial with its reason", async () => {
    const ac = new AbortController();
    ac.abort(new Error("changed my mind"));
    const r = await meshNetcat({ mesh: meshB(), target: targetA(UPPER_PORT), signal: ac.signal, local: () => assert.fail("never connected") });
    assert.notEqual(r.stage, "stream");
    assert.equal(r.error?.code, "ERR_ABORTED");
    assert.match(r.error!.message, /changed my mind/);
  });

  test("the signal after the answer resets the stream: the outcome is its reason, the remote's stream closes", async () => {
    const [near] = memoryPair();
    const ac = new AbortController();
    const before = held.length;
    const result = meshNetcat({
      mesh: meshB(),
      target: targetA(HOLD_PORT),
      signal: ac.signal,
      local: () => near,
      onConnected: () => setTimeout(() => ac.abort(new Error("stop now")), 50),
    });
    const r = await within(result, 8000, "meshNetcat's end");
    assert.equal(r.stage, "stream");
    assert.equal(r.error?.code, "ERR_ABORTED");
    assert.match(r.error!.message, /stop now/);
    assert.equal(held.length, before + 1, "the remote accepted one stream");
    await within(held[before]!.closed, 8000, "the remote stream's close");
  });
});

describe("startMeshForward", () => {
  /** One TCP client: send `payload`, half-close, read the answer to the end. */
  function roundTrip(address: string, payload: string): Promise<string> {
    return within(tcpRoundTrip(address, payload), 8000, "a forwarded round trip");
  }


  test("each local TCP connection reaches the mesh target; once ends with that connection and closes the mesh", async () => {
    const records: string[] = [];
    const started = await startMeshForward({ mesh: meshB(), target: targetA(UPPER_PORT), listen: parseListenAddress("127.0.0.1:0"), once: true, workers: 1, onConnection: (r) => records.push(`${r.outcome} ${r.up} ${r.down}`) });
    assert.equal(started.stage, "running");
    if (started.stage !== "running") return;
    const fwd = started.forward;
    assert.match(fwd.address, /^127\.0\.0\.1:\d+$/);
    assert.equal(fwd.targetLabel, `${serverMesh.sid.slice(0, 8)}…:${UPPER_PORT}`);
    assert.match(fwd.description, /^embedded node/);
    assert.equal(await roundTrip(fwd.address, "over tcp"), "OVER TCP");
    const done = await within(fwd.done, 8000, "the once server's end");
    assert.equal(done.reason, "once");
    assert.equal(done.error, undefined);
    assert.deepEqual(records, ["ok 8 8"]);
    await fwd.close(0);
  });

  test("stages: no mesh is open, an address in use is listen", async () => {
    const none = await startMeshForward({ mesh: { mesh: "embedded", home: join(root, "nobody"), autostart: false }, target: targetA(UPPER_PORT), listen: parseListenAddress("127.0.0.1:0") });
    assert.equal(none.stage, "open");
    assert.equal(none.stage === "open" && none.error.code, "ERR_MESH_DOWN");
    const first = await startMeshForward({ mesh: meshB(), target: targetA(UPPER_PORT), listen: parseListenAddress("127.0.0.1:0"), workers: 1 });
    assert.equal(first.stage, "running");
    if (first.stage !== "running") return;
    try {
      const second = await startMeshForward({ mesh: meshB(), target: targetA(UPPER_PORT), listen: parseListenAddress(first.forward.address), workers: 1 });
      assert.equal(second.stage, "listen");
      assert.equal(second.stage === "listen" && second.error.code, "ERR_USAGE");
      assert.match(second.stage === "listen" ? second.error.message : "", /address already in use/);
    } finally {
      await first.forward.close(0);
    }
    assert.equal((await first.forward.done).reason, "closed");
  });
});

describe("meshDiscover", () => {
  test("finds the service node A offers, sorted, and says how many peers were asked", async () => {
    const r = await within(meshDiscover({ mesh: meshB(), pattern: "upp*", timeoutMs: 500 }), 8000, "discovery");
    assert.equal(r.stage, "done");
    if (r.stage !== "done") return;
    assert.deepEqual(r.answers.map((a) => [a.service, a.port, a.self]), [["upper", UPPER_PORT, false]]);
    assert.equal(r.peers, 1);
    const none = await meshDiscover({ mesh: meshB(), pattern: "nothing-here", timeoutMs: 200 });
    assert.deepEqual(none.stage === "done" && none.answers, []);
  });

  test("no mesh backend: stage open", async () => {
    const r = await meshDiscover({ mesh: { mesh: "embedded", home: join(root, "nobody"), autostart: false }, timeoutMs: 100 });
    assert.equal(r.stage, "open");
    assert.equal(r.stage === "open" && r.error.code, "ERR_MESH_DOWN");
  });
});

describe("queryMeshStatus", () => {
  test("the embedded node's report; no daemon is stage down with the reason, never started", async () => {
    const r = await queryMeshStatus({ mesh: "embedded", home: nodeB.home });
    assert.equal(r.stage, "ok");
    if (r.stage !== "ok") return;
    assert.ok(r.report.peers.some((p) => p.live && p.sid === serverMesh.sid), "node A is a live peer of node B");
    const down = await queryMeshStatus({ mesh: "embedded", home: join(root, "nobody") });
    assert.equal(down.stage, "down");
    assert.equal(down.stage === "down" && down.reasons.length, 1);
  });
});

describe("startMeshListen", () => {
  test("--forward to a local TCP server: a mesh caller reaches it; once ends the service and closes the mesh", async () => {
    const tcp = createServer({ allowHalfOpen: true }, (sock) => {
      let got = "";
      sock.setEncoding("utf8");
      sock.on("data", (c: string) => (got += c));
      sock.on("end", () => sock.end(`tcp says ${got}`));
    });
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
    const port = (tcp.address() as { port: number }).port;
    try {
      const started = await startMeshListen({ mesh: { mesh: "embedded", home: nodeA.home, autostart: false }, port: 92, target: { kind: "tcp", host: "127.0.0.1", port }, once: true });
      assert.equal(started.stage, "running");
      if (started.stage !== "running") return;
      assert.equal(started.targetLabel, `127.0.0.1:${port}`);
      assert.equal(started.service.local.port, 92);
      const [near, far] = memoryPair();
      const answer = readAll(far);
      const r = meshNetcat({ mesh: meshB(), target: targetA(92), local: () => (far.write(text("hi")), far.closeWrite(), near) });
      assert.equal(new TextDecoder().decode(await within(answer, 8000, "the answer")), "tcp says hi");
      assert.equal((await r).stage, "stream");
      const done = await within(started.done, 8000, "the once service's end");
      assert.equal(done.reason, "once");
      assert.equal(done.error, undefined);
    } finally {
      tcp.close();
    }
  });

  test("stages: no mesh is open; a port already bound on the node is listen (ERR_NOT_ALLOWED)", async () => {
    const none = await startMeshListen({ mesh: { mesh: "embedded", home: join(root, "nobody"), autostart: false }, port: 93, target: { kind: "exec", command: "cat" } });
    assert.equal(none.stage, "open");
    const taken = await startMeshListen({ mesh: { mesh: "embedded", home: nodeA.home, autostart: false }, port: UPPER_PORT, target: { kind: "exec", command: "cat" } });
    assert.equal(taken.stage, "listen");
    assert.equal(taken.stage === "listen" && taken.error.code, "ERR_NOT_ALLOWED");
  });
});
