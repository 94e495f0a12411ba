/**
 * The library façade `openMesh()` (src/platform/mesh.ts) on the servald backend
 * (SVP_SERVALD), on two linked servald instances A and B: one `openMesh({ mesh: "servald",
 * servaldInstance })` on each as the two parties, and servald's own `msp connect` as the
 * other end of one test:
 * - identity, description and status() of the servald backend, with B as a peer, and the
 *   instance's source (the option, or SERVALINSTANCE_PATH);
 * - dial and listen both ways, byte-exact both directions, half-close in either order;
 * - `servald msp connect` → an openMesh listener: the answer after EOF, byte-exact;
 * - a signal: before the dial, during it (nobody answers), and after it (the stream is reset);
 * - close(): the for-await ends, the peer is reset, further calls refused, and servald's
 *   binding of the port is released (another client can bind it).
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { isSvpError } from "../../src/errors.ts";
import type { SvpError } from "../../src/errors.ts";
import { openMesh } from "../../src/platform/mesh.ts";
import type { Mesh, MeshListener } from "../../src/platform/mesh.ts";
import type { MeshStream } from "../../src/platform/mesh-stream.ts";
import { ServaldMesh, SKIP_REASON } from "./servald-harness.ts";
import type { ServaldNode } from "./servald-harness.ts";
import { concat, patternBytes, rejection, within } from "../helpers/wait.ts";

const enc = new TextEncoder();
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Everything `s` delivers until its end (bounded). */
function readAll(s: MeshStream, what: string, ms = 20_000): Promise<Uint8Array> {
  return within(
    new Promise<Uint8Array>((resolve, reject) => {
      const chunks: Uint8Array[] = [];
      s.on("data", (c: Uint8Array) => chunks.push(new Uint8Array(c)));
      s.once("end", () => resolve(concat(chunks)));
      s.once("error", reject);
    }),
    ms,
    what,
  );
}

/** The first connection `l` yields. */
function firstConnection(l: MeshListener): Promise<MeshStream> {
  return within(
    (async () => {
      for await (const conn of l) return conn;
      throw new Error("the listener ended without a connection");
    })(),
    10_000,
    "an incoming connection",
  );
}

function closeOf(s: MeshStream): Promise<void> {
  return within(new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r()))), 10_000, "a stream's close");
}

function errorOf(p: Promise<unknown>, ms = 10_000): Promise<SvpError> {
  return rejection(p, ms);
}

describe("openMesh() on the servald backend", { skip: SKIP_REASON }, () => {
  let mesh: ServaldMesh;
  let A: ServaldNode;
  let B: ServaldNode;
  let a: Mesh;
  let b: Mesh;
  const opened: Mesh[] = [];

  const open = async (node: ServaldNode): Promise<Mesh> => {
    const m = await within(openMesh({ mesh: "servald", servaldInstance: node.instance }), 10_000, `openMesh on ${node.name}`);
    opened.push(m);
    return m;
  };

  before(async () => {
    mesh = await ServaldMesh.start(2);
    [A, B] = mesh.nodes as [ServaldNode, ServaldNode];
    a = await open(A);
    b = await open(B);
  });

  after(async () => {
    await Promise.all(opened.map((m) => m.close()));
    await mesh?.stop();
  });

  test("backend, SID, description and status() come from the servald instance", async () => {
    assert.equal(a.backend, "servald");
    assert.equal(a.sid, A.sid);
    assert.equal(b.sid, B.sid);
    assert.ok(a.description.includes(A.instance), a.description);
    assert.match(a.description, /^servald /);
    const r = await within(a.status(), 10_000, "status()");
    assert.equal(r.backend, "servald");
    assert.equal(r.identity.sid, A.sid);
    assert.equal(r.servald?.instance, A.instance);
    assert.equal(r.servald?.instanceSource, "option");
    assert.equal(r.servald?.via, "socket");
    assert.deepEqual(r.servald?.interfaces, ["dummy1"]);
    const peer = r.peers.find((p) => p.sid === B.sid);
    assert.ok(peer, `B among the peers: ${JSON.stringify(r.peers.map((p) => p.sid))}`);
    assert.ok(peer.route?.reachable.includes("unicast"), JSON.stringify(peer.route));
    // B's own view, from its session: A is its peer.
    const rb = await within(b.status(), 10_000, "B's status()");
    assert.equal(rb.identity.sid, B.sid);
    assert.ok(rb.peers.some((p) => p.sid === A.sid));
    // Found through SERVALINSTANCE_PATH (no servaldInstance): B's daemon, and the report says so.
    const saved = process.env.SERVALINSTANCE_PATH;
    process.env.SERVALINSTANCE_PATH = B.instance;
    try {
      const m = await within(openMesh({ mesh: "servald" }), 10_000, "openMesh by SERVALINSTANCE_PATH");
      opened.push(m);
      assert.equal(m.sid, B.sid);
      const re = await within(m.status(), 10_000, "status()");
      assert.equal(re.servald?.instance, B.instance);
      assert.equal(re.servald?.instanceSource, "env");
      await m.close();
    } finally {
      if (saved === undefined) delete process.env.SERVALINSTANCE_PATH;
      else process.env.SERVALINSTANCE_PATH = saved;
    }
  });

  test("B dials A: 200 kB each way byte-exact; the client half-closes first, the server answers after EOF", async () => {
    const up = patternBytes(200_000, 11);
    const down = patternBytes(200_000, 12);
    const l = await a.listen(96);
    assert.deepEqual(l.local, { sid: A.sid, port: 96 });
    const accepted = firstConnection(l);
    const client = await within(b.dial(A.sid, 96, { signal: AbortSignal.timeout(10_000) }), 12_000, "B's dial");
    assert.deepEqual(client.peer, { sid: A.sid, port: 96 });
    assert.equal(client.local.sid, B.sid);
    const server = await accepted;
    assert.equal(server.peer.sid, B.sid);
    assert.equal(server.local.port, 96);
    // The server answers only once the client's half-close has arrived.
    const served = readAll(server, "the upload").then((got) => {
      server.end(down);
      return got;
    });
    const clientGot = readAll(client, "the download");
    client.end(up);
    const got = await served;
    assert.equal(got.length, up.length);
    assert.equal(sha(got), sha(up));
    const back = await clientGot;
    assert.equal(back.length, down.length);
    assert.equal(sha(back), sha(down));
    await closeOf(client);
    await closeOf(server);
    await l.close();
  });

  test("A dials B by <SID>.serval: the server half-closes first, the client writes after its end", async () => {
    const first = patternBytes(150_000, 21);
    const second = patternBytes(150_000, 22);
    const l = await b.listen(97);
    const accepted = firstConnection(l);
    const client = await within(a.dial(`${B.sid.toLowerCase()}.serval`, 97), 12_000, "A's dial");
    assert.deepEqual(client.peer, { sid: B.sid, port: 97 });
    const server = await accepted;
    assert.equal(server.peer.sid, A.sid);
    const serverGot = readAll(server, "the client's bytes");
    server.end(first);
    const clientGot = await readAll(client, "the server's bytes");
    assert.equal(sha(clientGot), sha(first));
    assert.ok(client.writable, "the client can still write after the server's end");
    client.write(second.subarray(0, 70_000));
    client.end(second.subarray(70_000));
    const got = await serverGot;
    assert.equal(got.length, second.length);
    assert.equal(sha(got), sha(second));
    await closeOf(client);
    await closeOf(server);
    await l.close();
  });

  test("servald msp connect → an openMesh listener: the answer after EOF, byte-exact", async () => {
    const input = patternBytes(100_000, 31);
    const l = await a.listen(98);
    const served = (async () => {
      for await (const conn of l) {
        const got = await readAll(conn, "servald's upload");
        conn.end(`got ${got.length} bytes sha256 ${sha(got)}\n`);
        return;
      }
    })();
    const r = await mesh.mspConnect(B, A.sid, 98, input, 20_000);
    await within(served, 5000, "the listener's answer");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(new TextDecoder().decode(r.stdout), `got ${input.length} bytes sha256 ${sha(input)}\n`);
    await l.close();
  });

  test("a signal: aborts before the dial, while nobody answers, and resets an open stream", async () => {
    assert.equal((await errorOf(b.dial(A.sid, 4002, { signal: AbortSignal.abort() }))).code, "ERR_ABORTED");
    const ac = new AbortController();
    const pending = b.dial(A.sid, 4002, { signal: ac.signal }); // nobody listens on A:4002
    setTimeout(() => ac.abort(), 50);
    const started = Date.now();
    assert.equal((await errorOf(pending)).code, "ERR_ABORTED");
    assert.ok(Date.now() - started < 3000, `aborted at once, not after MSP's timeout (${Date.now() - started} ms)`);
    assert.equal((await errorOf(b.dial(A.sid, 4003, { signal: AbortSignal.timeout(100) }))).code, "ERR_TIMEOUT");

    const l = await a.listen(99);
    const accepted = firstConnection(l);
    const ac2 = new AbortController();
    const client = await within(b.dial(A.sid, 99, { signal: ac2.signal }), 12_000, "the dial");
    const server = await accepted;
    const clientErr = within(new Promise<unknown>((r) => client.once("error", r)), 5000, "the client's error");
    const serverErr = within(new Promise<unknown>((r) => server.once("error", r)), 10_000, "the server's error");
    server.resume();
    ac2.abort();
    assert.ok(isSvpError(await clientErr, "ERR_ABORTED"));
    const se = await serverErr;
    assert.ok(isSvpError(se, "ERR_RESET"), `the peer sees the reset: ${String(se)}`);
    await l.close();
  });

  test("close(): the for-await ends, the peer is reset, calls are refused, and servald's port is free again", async () => {
    const a2 = await open(A);
    const l = await a2.listen(100);
    let ended = false;
    const loop = (async () => {
      for await (const conn of l) conn.on("error", () => {});
      ended = true;
    })();
    const client = await within(b.dial(A.sid, 100), 12_000, "the dial");
    const clientErr = within(new Promise<unknown>((r) => client.once("error", r)), 10_000, "the client's error");
    client.resume();
    // While a2 holds port 100, no other client of the same daemon can bind it (servald refuses).
    assert.equal((await errorOf(a.listen(100))).code, "ERR_NOT_ALLOWED");
    await within(a2.close(), 10_000, "close()");
    await within(loop, 5000, "the for-await to end");
    assert.ok(ended);
    assert.ok(isSvpError(await clientErr, "ERR_RESET"), "the peer's stream is reset");
    assert.equal((await errorOf(a2.dial(B.sid, 100))).code, "ERR_ABORTED");
    assert.equal((await errorOf(a2.listen(101))).code, "ERR_ABORTED");
    assert.equal((await errorOf(a2.status())).code, "ERR_ABORTED");
    await a2.close(); // idempotent
    // servald released the closed client's binding: the other session binds port 100 and is reached.
    const l2 = await within(a.listen(100), 10_000, "listen on the released port");
    const accepted = firstConnection(l2);
    const s = await within(b.dial(A.sid, 100), 12_000, "a dial to the new listener");
    const server = await accepted;
    const got = readAll(server, "the bytes");
    s.end(enc.encode("after close"));
    assert.equal(new TextDecoder().decode(await got), "after close");
    server.end();
    await l2.close();
  });
});
