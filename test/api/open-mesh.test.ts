/**
 * The library façade (src/index.ts → src/platform/mesh.ts) against two embedded nodes as
 * real daemons on loopback (in this process: real UDP overlay on port 0, real local API
 * sockets, private homes and a private discovery directory).
 *
 * docs/library.md's examples are run as written: each ```ts block of it becomes a module
 * (its `from "svp"` pointing at src/index.ts) whose exported functions the tests call.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { isSvpError, openMesh, toWebStreams, SvpError } from "../../src/index.ts";
import type { Mesh, MeshStream } from "../../src/index.ts";
import { stopDaemon } from "../../src/platform/daemon-control.ts";
import { startEmbeddedNode, type EmbeddedNode } from "../../src/platform/embedded-node.ts";
import { rejection, within } from "../helpers/wait.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
const indexUrl = pathToFileURL(join(here, "../../src/index.ts")).href;
const text = (s: string) => new TextEncoder().encode(s);

let root: string;
let nodeA: EmbeddedNode;
let nodeB: EmbeddedNode;
let sidA: string;
let sidB: string;
const opened: Mesh[] = [];
/** Homes whose daemon a test auto-started (a real `svp daemon` process): stopped in `after`. */
const autostarted: string[] = [];
const savedDiscovery = process.env.SVP_DISCOVERY_DIR;

/** The ```ts blocks of docs/library.md, each as an imported module. */
let examples: Record<string, (...args: never[]) => unknown> = {};

async function loadExamples(): Promise<void> {
  const doc = readFileSync(join(here, "../../docs/library.md"), "utf8");
  const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 6, `docs/library.md has ${blocks.length} ts examples`);
  let i = 0;
  for (const block of blocks) {
    if (!/^export /m.test(block)) continue; // the one-line import at the top
    const file = join(root, `example-${++i}.ts`);
    writeFileSync(file, block.replace(/from "svp"/g, `from "${indexUrl}"`));
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    for (const [name, fn] of Object.entries(mod)) if (typeof fn === "function") examples[name] = fn as (...args: never[]) => unknown;
  }
}

async function open(home: string): Promise<Mesh> {
  const m = await openMesh({ home, mesh: "embedded", autostart: false });
  opened.push(m);
  return m;
}

/** Everything `s` delivers until its end, as text, reading with a plain `data` listener. */
function readText(s: MeshStream): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      let t = "";
      const d = new TextDecoder();
      s.on("data", (c: Uint8Array) => (t += d.decode(c, { stream: true })));
      s.once("end", () => resolve(t));
      s.once("error", reject);
    }),
    5000,
    "a stream's end",
  );
}

function errorOf(p: Promise<unknown>): Promise<SvpError> {
  return rejection(p, 8000);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), "svp-api-"));
  process.env.SVP_DISCOVERY_DIR = join(root, "discovery");
  nodeA = await startEmbeddedNode({ home: join(root, "a"), port: 0, helloIntervalMs: 250 });
  nodeB = await startEmbeddedNode({ home: join(root, "b"), port: 0, helloIntervalMs: 250 });
  await loadExamples();
  const a = await open(nodeA.home);
  const b = await open(nodeB.home);
  sidA = a.sid;
  sidB = b.sid;
  // Both see each other as live peers (status() on each), bounded.
  await within(
    (async () => {
      for (;;) {
        const [ra, rb] = [await a.status(), await b.status()];
        if (ra.peers.some((p) => p.live && p.sid === sidB) && rb.peers.some((p) => p.live && p.sid === sidA)) return;
        await new Promise((r) => setTimeout(r, 25));
      }
    })(),
    8000,
    "the two nodes to see each other",
  );
});

after(async () => {
  await Promise.all(opened.map((m) => m.close()));
  for (const home of autostarted) await stopDaemon(home);
  await nodeA?.stop();
  await nodeB?.stop();
  if (savedDiscovery === undefined) delete process.env.SVP_DISCOVERY_DIR;
  else process.env.SVP_DISCOVERY_DIR = savedDiscovery;
  rmSync(root, { recursive: true, force: true });
});

describe("docs/library.md examples, as written", () => {
  test("listen + dial by service name: data both ways, half-close", async () => {
    const server = (await examples.serveUpper!(nodeA.home as never)) as Mesh;
    opened.push(server);
    const ask = examples.askUpper as unknown as (home: string, node: string, t: string) => Promise<string>;
    assert.equal(await within(ask(nodeB.home, sidA, "hello mesh"), 8000, "askUpper"), `${sidB.slice(0, 8)} said HELLO MESH`);
    const web = examples.askUpperWeb as unknown as (home: string, node: string, t: string) => Promise<string>;
    assert.equal(await within(web(nodeB.home, `${sidA.toLowerCase()}.serval`, "web streams"), 8000, "askUpperWeb"), `${sidB.slice(0, 8)} said WEB STREAMS`);
    // The service named in the node name: on that node, and on any node offering it.
    const b = await open(nodeB.home);
    for (const name of [`upper.${sidA.toLowerCase()}.serval`, "upper.svc.serval"]) {
      const s = await b.dial(name, undefined, { signal: AbortSignal.timeout(8000) });
      assert.equal(s.peer.sid, sidA);
      assert.equal(s.peer.port, 94);
      s.end("x");
      assert.equal(await readText(s), `${sidB.slice(0, 8)} said X`);
    }
    await server.close();
  });

  test("status lists the live peer", async () => {
    const peers = examples.livePeers as unknown as (home: string) => Promise<string[]>;
    assert.deepEqual(await peers(nodeB.home), [sidA]);
  });

  test("tryDial: a deadline on a port nobody answers is ERR_TIMEOUT; a listened port connects", async () => {
    const tryDial = examples.tryDial as unknown as (home: string, node: string, port: number, ms: number) => Promise<string>;
    assert.equal(await tryDial(nodeB.home, sidA, 4000, 150), "ERR_TIMEOUT");
    const a = await open(nodeA.home);
    const l = await a.listen(4001);
    assert.equal(await tryDial(nodeB.home, sidA, 4001, 5000), "connected");
    await l.close();
  });

  test("startProxy: a real SOCKS5 request through it reaches a mesh service", async () => {
    const a = await open(nodeA.home);
    const l = await a.listen(95);
    void (async () => {
      for await (const conn of l) {
        conn.on("data", (c: Uint8Array) => conn.write(c)); // echo
        conn.on("end", () => conn.end());
        conn.on("error", () => {});
      }
    })();
    const proxy = (await (examples.startProxy as unknown as (home: string) => Promise<{ address: string; stop: () => Promise<void> }>)(nodeB.home));
    try {
      assert.match(proxy.address, /^127\.0\.0\.1:\d+$/);
      const reply = await socks5Echo(proxy.address, `${sidA.toLowerCase()}.serval`, 95, "through the proxy");
      assert.equal(reply, "through the proxy");
    } finally {
      await proxy.stop();
      await l.close();
    }
  });
});

/** A raw SOCKS5 CONNECT (no auth, domain name) through `address`; sends `payload`, half-closes, returns all it reads. */
async function socks5Echo(address: string, host: string, port: number, payload: string): Promise<string> {
  const i = address.lastIndexOf(":");
  const sock: Socket = connect(Number(address.slice(i + 1)), address.slice(0, i));
  const chunks: Buffer[] = [];
  let need = 0;
  let waiter: (() => void) | undefined;
  sock.on("data", (c: Buffer) => {
    chunks.push(c);
    if (Buffer.concat(chunks).length >= need) waiter?.();
  });
  const read = (n: number) =>
    within(
      new Promise<Uint8Array>((resolve) => {
        need = n;
        const take = () => {
          const all = Buffer.concat(chunks.splice(0));
          if (all.length < n) {
            chunks.push(all);
            return;
          }
          chunks.push(all.subarray(n));
          waiter = undefined;
          resolve(all.subarray(0, n));
        };
        waiter = take;
        take();
      }),
      8000,
      `${n} bytes from the proxy`,
    );
  await within(new Promise((r, j) => (sock.once("connect", r), sock.once("error", j))), 5000, "the proxy's TCP accept");
  sock.write(Uint8Array.of(5, 1, 0));
  assert.deepEqual([...(await read(2))], [5, 0]);
  const name = text(host);
  sock.write(Uint8Array.from([5, 1, 0, 3, name.length, ...name, port >> 8, port & 255]));
  const head = await read(4);
  assert.equal(head[1], 0, `SOCKS5 reply code ${head[1]}`);
  await read(head[3] === 1 ? 6 : head[3] === 4 ? 18 : 1 + (await read(1))[0]! + 2);
  const done = within(new Promise<void>((r) => sock.once("end", r)), 8000, "the proxied stream's end");
  sock.end(payload);
  await done;
  return new TextDecoder().decode(Buffer.concat(chunks));
}

describe("openMesh streams", () => {
  test("a dialed stream flows with only a data listener, and half-closes both ways", async () => {
    const a = await open(nodeA.home);
    const b = await open(nodeB.home);
    const l = await a.listen(96);
    const accepted = (async () => {
      for await (const conn of l) return conn;
      throw new Error("listener ended");
    })();
    const client = await b.dial(sidA, 96);
    assert.deepEqual(client.peer, { sid: sidA, port: 96 });
    const server = await within(accepted, 5000, "an incoming connection");
    assert.equal(server.peer.sid, sidB);
    assert.equal(server.local.port, 96);
    // Server half-closes first and keeps reading; the client still writes after its end.
    const serverGot = readText(server);
    server.end("from server");
    assert.equal(await readText(client), "from server");
    client.write("still ");
    client.end("writing");
    assert.equal(await serverGot, "still writing");
    await within(new Promise((r) => (client.closed ? r(undefined) : client.once("close", r))), 5000, "the client's close");
    await within(new Promise((r) => (server.closed ? r(undefined) : server.once("close", r))), 5000, "the server's close");
    await l.close();
  });

  test("backpressure: a large transfer to a reader that starts late arrives whole", async () => {
    const a = await open(nodeA.home);
    const b = await open(nodeB.home);
    const l = await a.listen(97);
    const size = 300_000;
    const data = new Uint8Array(size).map((_, i) => (i * 7) & 255);
    const sent = (async () => {
      for await (const conn of l) {
        conn.end(data);
        return;
      }
    })();
    const client = await b.dial(sidA, 97);
    client.end();
    await new Promise((r) => setTimeout(r, 100)); // nobody reads yet: the sender must be held back, not lose bytes
    const chunks: Uint8Array[] = [];
    for await (const c of client) chunks.push(c as Uint8Array);
    const got = Buffer.concat(chunks);
    assert.equal(got.length, size);
    assert.ok(Buffer.from(data).equals(got));
    await sent;
    await l.close();
  });

  test("allow refuses other callers with ERR_REFUSED; the allowed one gets through", async () => {
    const a = await open(nodeA.home);
    const b = await open(nodeB.home);
    const l = await a.listen(98, { allow: [sidA] });
    assert.equal((await errorOf(b.dial(sidA, 98))).code, "ERR_REFUSED");
    await l.close();
    const l2 = await a.listen(104, { allow: [sidB.toLowerCase()] });
    const s = await b.dial(sidA, 104);
    s.destroy();
    await l2.close();
  });

  test("a signal aborts a dial (ERR_ABORTED) and later resets the open stream", async () => {
    const b = await open(nodeB.home);
    const pre = AbortSignal.abort();
    assert.equal((await errorOf(b.dial(sidA, 4002, { signal: pre }))).code, "ERR_ABORTED");
    const ac = new AbortController();
    const pending = b.dial(sidA, 4002, { signal: ac.signal }); // nobody listens: no answer
    setTimeout(() => ac.abort(), 30);
    assert.equal((await errorOf(pending)).code, "ERR_ABORTED");

    const a = await open(nodeA.home);
    const l = await a.listen(99);
    const accepted = (async () => {
      for await (const conn of l) return conn;
      throw new Error("listener ended");
    })();
    const ac2 = new AbortController();
    const client = await b.dial(sidA, 99, { signal: ac2.signal });
    const server = await within(accepted, 5000, "an incoming connection");
    const clientErr = within(new Promise<unknown>((r) => client.once("error", r)), 5000, "the client's error");
    const serverErr = within(new Promise<unknown>((r) => server.once("error", r)), 5000, "the server's error");
    server.resume();
    ac2.abort();
    const ce = await clientErr;
    assert.ok(isSvpError(ce, "ERR_ABORTED"), String(ce));
    const se = await serverErr;
    assert.ok(isSvpError(se, "ERR_RESET"), `the peer sees the reset: ${String(se)}`);
    await l.close();
  });

  test("close ends the listener's for-await, resets open streams, and refuses further calls", async () => {
    const a = await openMesh({ home: nodeA.home, mesh: "embedded", autostart: false });
    const b = await open(nodeB.home);
    const l = await a.listen(100);
    let ended = false;
    const loop = (async () => {
      for await (const conn of l) conn.on("error", () => {});
      ended = true;
    })();
    const client = await b.dial(sidA, 100);
    const clientErr = within(new Promise<unknown>((r) => client.once("error", r)), 8000, "the client's error");
    client.resume();
    await a.close();
    await within(loop, 5000, "the for-await to end");
    assert.ok(ended);
    assert.ok(isSvpError(await clientErr, "ERR_RESET"), "the peer's stream is reset");
    assert.equal((await errorOf(a.dial(sidB, 100))).code, "ERR_ABORTED");
    assert.equal((await errorOf(a.listen(101))).code, "ERR_ABORTED");
    await a.close(); // idempotent
  });

  test("a Web Streams pair carries bytes and half-close", async () => {
    const a = await open(nodeA.home);
    const b = await open(nodeB.home);
    const l = await a.listen(102);
    void (async () => {
      for await (const conn of l) {
        const { readable, writable } = toWebStreams(conn);
        await readable.pipeTo(writable); // echo; the reader's end closes the writer (half-close)
      }
    })();
    const { readable, writable } = toWebStreams(await b.dial(sidA, 102));
    const w = writable.getWriter();
    await w.write(text("echo "));
    await w.write(text("me"));
    await w.close();
    const reader = readable.getReader();
    let got = "";
    const d = new TextDecoder();
    for (let r = await reader.read(); !r.done; r = await reader.read()) got += d.decode(r.value, { stream: true });
    assert.equal(got, "echo me");
    await l.close();
  });

  test("autostart: on a home with no daemon, openMesh starts one (the package's CLI, a real process) and says so", async () => {
    const home = join(root, "auto");
    mkdirSync(home, { mode: 0o700 });
    writeFileSync(join(home, "svp.conf"), "port = 0\nhello-interval = 250ms\n"); // not the shared default 4111
    const notes: string[] = [];
    autostarted.push(home);
    const m = await within(openMesh({ home, mesh: "embedded", onNote: (n) => notes.push(n) }), 20_000, "an auto-started daemon");
    opened.push(m);
    assert.match(notes[0] ?? "", /started the mesh daemon \(pid \d+/);
    const r = await m.status();
    assert.equal(r.identity.sid, m.sid);
    assert.notEqual(r.daemon.pid, process.pid, "a daemon process of its own");
    assert.match(m.description, /^embedded node \(pid \d+/);
    await m.close();
  });

  test("bad input is refused with a clear SvpError", async () => {
    const b = await open(nodeB.home);
    assert.equal((await errorOf(openMesh({ home: nodeB.home, bogus: 1 } as never))).code, "ERR_USAGE");
    assert.equal((await errorOf(openMesh({ mesh: "nope" as never }))).code, "ERR_USAGE");
    assert.equal((await errorOf(openMesh({ home: nodeB.home, mesh: "embedded", sid: "xyz" }))).code, "ERR_BAD_ADDRESS");
    assert.equal((await errorOf(b.dial("not-a-node", 80))).code, "ERR_BAD_ADDRESS");
    assert.equal((await errorOf(b.dial(sidA, 0))).code, "ERR_BAD_ADDRESS");
    assert.equal((await errorOf(b.dial(sidA, 1.5))).code, "ERR_BAD_ADDRESS");
    assert.equal((await errorOf(b.dial(sidA))).code, "ERR_BAD_ADDRESS"); // no port, and the name names no service
    assert.equal((await errorOf(b.dial(sidA, 80, { timeout: 5 } as never))).code, "ERR_USAGE");
    assert.equal((await errorOf(b.listen(0))).code, "ERR_BAD_ADDRESS");
    assert.equal((await errorOf(b.listen(103, { allow: ["nope"] }))).code, "ERR_BAD_ADDRESS");
    assert.equal((await errorOf(b.socks({ listen: "nowhere:x" }))).code, "ERR_USAGE");
    const missing = join(root, "no-daemon-here");
    const down = await errorOf(openMesh({ home: missing, mesh: "embedded", autostart: false }));
    assert.equal(down.code, "ERR_MESH_DOWN");
  });
});
