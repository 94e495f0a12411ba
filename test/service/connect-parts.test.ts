/**
 * The parts of `svp connect`: the --forward server (one MSP stream per local client), the
 * stdio netcat relay (-N), and mesh backend selection (--mesh, auto-start, reconnect).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError, isSvpError } from "../../src/errors.ts";
import { Emitter } from "../../src/emitter.ts";
import type { MdpTransport, MdpTransportEvents } from "../../src/mdp/transport.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { ForwardServer } from "../../src/service/forward-server.ts";
import type { ForwardRecord, ForwardResult } from "../../src/service/forward-server.ts";
import { netcat } from "../../src/service/netcat.ts";
import { MeshConnector, makeSession, openMeshSession, parseMeshMode } from "../../src/service/mesh-session.ts";
import type { MeshBackends, MeshSession } from "../../src/service/mesh-session.ts";
import { readAll, within } from "../helpers/wait.ts";
import { drain, runUntil } from "../msp/helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("connect --forward server", () => {
  test("each client gets its own remote stream; data and half-close pass both ways; one record each", async () => {
    const remotes: ByteStream[] = [];
    const server = new ForwardServer({
      targetLabel: "remote:80",
      dial: () => {
        const [near, far] = memoryPair();
        remotes.push(far);
        return Promise.resolve(near);
      },
    });
    const records: ForwardRecord[] = [];
    server.on("connection", (r) => records.push(r));
    const clients: ByteStream[] = [];
    for (let i = 0; i < 3; i++) {
      const [c, s] = memoryPair({ labels: [`client ${i}`, `tcp 127.0.0.1:${1000 + i}`] });
      clients.push(c);
      server.handle(s);
      c.write(enc(`hello ${i}`));
      c.closeWrite();
    }
    await within(
      (async () => {
        while (remotes.length < 3) await new Promise((r) => setTimeout(r, 1));
      })(),
      2000,
      "dials",
    );
    const got = await within(Promise.all(remotes.map((r) => readAll(r))), 2000, "client data");
    assert.deepEqual(got.map(dec), ["hello 0", "hello 1", "hello 2"]);
    remotes.forEach((r, i) => (r.write(enc(`answer ${i}`)), r.closeWrite()));
    const answers = await within(Promise.all(clients.map((c) => readAll(c))), 2000, "answers");
    assert.deepEqual(answers.map(dec), ["answer 0", "answer 1", "answer 2"]);
    await within(
      (async () => {
        while (records.length < 3) await new Promise((r) => setTimeout(r, 1));
      })(),
      2000,
      "records",
    );
    assert.deepEqual(records.map((r) => [r.client, r.outcome, r.up, r.down]).sort(), [
      ["tcp 127.0.0.1:1000", "ok", 7, 8],
      ["tcp 127.0.0.1:1001", "ok", 7, 8],
      ["tcp 127.0.0.1:1002", "ok", 7, 8],
    ]);
    await within(server.close(100), 1000, "close");
  });

  test("a failed dial resets the client; a dial slower than the connect timeout is abandoned", async () => {
    const clock = new ManualClock();
    let n = 0;
    const server = new ForwardServer({
      targetLabel: "remote:80",
      clock,
      connectTimeoutMs: 5000,
      dial: (signal) =>
        n++ === 0 ? Promise.reject(new SvpError("ERR_REFUSED", "connection refused")) : new Promise((_res, rej) => signal.addEventListener("abort", () => rej(signal.reason))),
    });
    const records: ForwardRecord[] = [];
    server.on("connection", (r) => records.push(r));
    const [c1, s1] = memoryPair();
    const closed1 = new Promise<SvpError | undefined>((r) => c1.once("close", r));
    server.handle(s1);
    c1.resume();
    await drain(clock);
    const err1 = await within(closed1, 1000, "client reset");
    assert.ok(isSvpError(err1), "client closed cleanly after a refused dial");
    const [c2, s2] = memoryPair();
    server.handle(s2);
    c2.resume();
    await runUntil(clock, () => records.length === 2, 10_000, "timeout record");
    assert.deepEqual(records.map((r) => r.outcome), ["ERR_REFUSED", "ERR_TIMEOUT"]);
    assert.match(records[1]!.message!, /no connection to remote:80 within 5 s/);
  });

  test("--once: the first client only; the server ends with its outcome", async () => {
    const server = new ForwardServer({ targetLabel: "r", once: true, dial: () => Promise.reject(new SvpError("ERR_NO_ROUTE", "no route")) });
    let result: ForwardResult | undefined;
    void server.done.then((r) => (result = r));
    const [c1, s1] = memoryPair();
    server.handle(s1);
    c1.resume();
    assert.equal(server.accepting, false);
    await within(server.done, 1000, "done");
    assert.equal(result?.reason, "once");
    assert.ok(isSvpError(result?.error, "ERR_NO_ROUTE"));
  });
});

describe("netcat relay (svp connect on stdio)", () => {
  test("local EOF half-closes the remote; the remote's answer after EOF still arrives", async () => {
    const [local, user] = memoryPair();
    const [remote, server] = memoryPair();
    const done = netcat(local, remote);
    user.write(enc("3\n1\n2\n"));
    user.closeWrite();
    const req = await within(readAll(server), 1000, "request");
    server.write(enc(dec(req).trim().split("\n").sort().join("\n") + "\n"));
    server.closeWrite();
    assert.equal(dec(await within(readAll(user), 1000, "answer")), "1\n2\n3\n");
    const stats = await within(done, 1000, "relay end");
    assert.equal(stats.error, undefined);
    assert.equal(stats.aToB, 6);
    assert.equal(stats.bToA, 6);
  });

  test("-N holds the local EOF back until the remote has finished", async () => {
    const [local, user] = memoryPair();
    const [remote, server] = memoryPair();
    const done = netcat(local, remote, { noShutdown: true });
    let serverEnded = false;
    const chunks: string[] = [];
    server.on("data", (c) => chunks.push(dec(c)));
    server.on("end", () => (serverEnded = true));
    server.resume();
    user.write(enc("GET"));
    user.closeWrite();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(chunks.join(""), "GET");
    assert.equal(serverEnded, false, "SHUTDOWN sent despite -N");
    server.write(enc("reply"));
    server.closeWrite();
    assert.equal(dec(await within(readAll(user), 1000, "reply")), "reply");
    await within(done, 1000, "relay end");
    assert.equal(serverEnded, true, "SHUTDOWN after the remote finished");
  });
});

class FakeTransport extends Emitter<MdpTransportEvents> {
  readonly kind: "servald" | "embedded";
  closed = false;
  constructor(kind: "servald" | "embedded") {
    super();
    this.kind = kind;
  }
  goDown(): void {
    this.emit("down", new SvpError("ERR_MESH_DOWN", "gone"));
  }
  close(): void {
    this.closed = true;
  }
}

function fakeBackends(servaldUp: boolean | SvpError) {
  const calls: string[] = [];
  const backends: MeshBackends = {
    servald: (o) => {
      calls.push(`servald ${o.instance ?? "-"}`);
      if (servaldUp === true) return Promise.resolve({ transport: new FakeTransport("servald") as unknown as MdpTransport, description: "servald", started: false });
      return Promise.reject(servaldUp === false ? new SvpError("ERR_MESH_DOWN", "no servald answers") : servaldUp);
    },
    embedded: (o) => {
      calls.push(`embedded autostart=${o.autostart} home=${o.home ?? "-"} name=${o.name}`);
      if (!o.autostart) return Promise.reject(new SvpError("ERR_MESH_DOWN", "no svp daemon is running"));
      return Promise.resolve({ transport: new FakeTransport("embedded") as unknown as MdpTransport, description: "embedded", started: true });
    },
  };
  return { backends, calls };
}

describe("mesh backend selection", () => {
  test("--mesh values", () => {
    assert.equal(parseMeshMode("auto"), "auto");
    assert.equal(parseMeshMode(" Servald "), "servald");
    assert.throws(() => parseMeshMode("tor"), (e: unknown) => isSvpError(e, "ERR_USAGE") && /expected auto, servald or embedded/.test((e as Error).message));
  });

  test("auto: servald when it answers, else the embedded node (auto-started, with a start-up grace)", async () => {
    const clock = new ManualClock(1000);
    const up = fakeBackends(true);
    const s1 = await openMeshSession(up.backends, { clock });
    assert.equal(s1.backend, "servald");
    assert.equal(s1.discoveringUntil, 0);
    assert.deepEqual(up.calls, ["servald -"]);
    const down = fakeBackends(false);
    const s2 = await openMeshSession(down.backends, { clock, home: "/h", name: "svp listen" });
    assert.equal(s2.backend, "embedded");
    assert.equal(s2.discoveringUntil, 4000);
    assert.deepEqual(down.calls, ["servald -", "embedded autostart=true home=/h name=svp listen"]);
  });

  test("explicit choices do not fall back; other servald errors are not hidden", async () => {
    const down = fakeBackends(false);
    await assert.rejects(openMeshSession(down.backends, { mesh: "servald" }), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN"));
    await assert.rejects(openMeshSession(down.backends, { servaldInstance: "/srv" }), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN"));
    assert.deepEqual(down.calls, ["servald -", "servald /srv"]);
    const s = await openMeshSession(down.backends, { mesh: "embedded" });
    assert.equal(s.backend, "embedded");
    await assert.rejects(openMeshSession(down.backends, { mesh: "embedded", autostart: false }), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN"));
    const badSid = fakeBackends(new SvpError("ERR_BAD_ADDRESS", "servald has no identity X"));
    await assert.rejects(openMeshSession(badSid.backends, {}), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
    assert.deepEqual(badSid.calls, ["servald -"]);
  });

  test("the connector opens on demand, shares one attempt, caches a failure briefly and reopens after the backend went away", async () => {
    const clock = new ManualClock();
    let opens = 0;
    let fail = true;
    const transports: FakeTransport[] = [];
    const open = (): Promise<MeshSession> => {
      opens++;
      if (fail) return Promise.reject(new SvpError("ERR_MESH_DOWN", "nothing there"));
      const t = new FakeTransport("embedded");
      transports.push(t);
      return Promise.resolve(makeSession({ transport: t as unknown as MdpTransport, description: "e", started: false }, undefined, clock));
    };
    const lost: string[] = [];
    const conn = new MeshConnector(open, { clock, retryAfterMs: 2000, onLost: (s) => lost.push(s.description) });
    await assert.rejects(conn.get(), /nothing there/);
    await assert.rejects(conn.get(), /nothing there/);
    assert.equal(opens, 1, "retried within the back-off");
    clock.advance(2000);
    fail = false;
    const [a, b] = await Promise.all([conn.get(), conn.get()]);
    assert.equal(a, b);
    assert.equal(opens, 2);
    transports[0]!.goDown();
    assert.deepEqual(lost, ["e"]);
    assert.equal(conn.current, undefined);
    const c = await conn.get();
    assert.notEqual(c, a);
    assert.equal(opens, 3);
    conn.close();
    assert.equal(transports[1]!.closed, true);
    await assert.rejects(conn.get(), (e: unknown) => isSvpError(e, "ERR_ABORTED"));
  });
});

describe("mesh connector start-up probe", () => {
  test("a failed probe is not remembered; a request during the probe waits for it, then opens normally", async () => {
    const clock = new ManualClock();
    const opened: string[] = [];
    let rejectProbe!: (e: unknown) => void;
    const session = (d: string) => makeSession({ transport: new FakeTransport("embedded") as unknown as MdpTransport, description: d, started: true }, undefined, clock);
    const conn = new MeshConnector(() => (opened.push("open"), Promise.resolve(session("auto-started"))), { clock });
    const probed = conn.probe(() => new Promise((_res, rej) => (rejectProbe = rej)));
    const during = conn.get();
    rejectProbe(new SvpError("ERR_MESH_DOWN", "no daemon running"));
    assert.equal(await probed, undefined);
    const s = await during;
    assert.equal(s.description, "auto-started");
    assert.deepEqual(opened, ["open"]);
    const again = await conn.probe(() => Promise.reject(new Error("not called")));
    assert.equal(again, s);
    conn.close();
  });
});
