/**
 * Names to MSP streams over the in-memory network with a ManualClock: target parsing,
 * service resolution, fail-fast and waiting for routes, refused and silent peers, and the
 * socks MeshDialer (including no mesh backend at all).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError, isSvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import type { MemoryMdpTransport } from "../helpers/memory-transport.ts";
import { sidToBase32, sidToHex } from "../../src/mesh/sid.ts";
import { parseMeshName } from "../../src/mesh/names.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { startServiceResponder } from "../../src/service/discovery.ts";
import { createMeshDialer, dialMesh } from "../../src/service/mesh-dialer.ts";
import { makeSession } from "../../src/service/mesh-session.ts";
import type { MeshSession } from "../../src/service/mesh-session.ts";
import { formatMeshTarget, parseMeshTarget } from "../../src/service/mesh-target.ts";
import { drain, runFor, runUntil } from "../msp/helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function setup() {
  const clock = new ManualClock();
  const net = new MemoryMdpNetwork({ clock, seed: 9 });
  const a = net.addNode();
  const b = net.addNode();
  const session = makeSession({ transport: a, description: "memory node a", started: false }, undefined, clock);
  return { clock, net, a, b, session };
}

/** Run `p` on the manual clock until it settles; returns the value or the error. */
async function settle<T>(clock: ManualClock, p: Promise<T>, maxMs = 60_000): Promise<{ value?: T; error?: SvpError; at: number }> {
  let out: { value?: T; error?: SvpError; at: number } | undefined;
  p.then(
    (value) => (out = { value, at: clock.now() }),
    (error: SvpError) => (out = { error, at: clock.now() }),
  );
  await runUntil(clock, () => out !== undefined, maxMs, "dial outcome");
  return out!;
}

describe("mesh targets", () => {
  const sid = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
  const hex = sidToHex(sid);
  const b32 = sidToBase32(sid);

  test("every name form with a port or a service", () => {
    const cases: [string, string | undefined, string][] = [
      [hex, "80", `${hex.slice(0, 8)}…:80`],
      [hex.toLowerCase(), "22", `${hex.slice(0, 8)}…:22`],
      [`${hex}.serval`, "4294967295", `${hex.slice(0, 8)}…:4294967295`],
      [`${b32}.serval`, "80", `${hex.slice(0, 8)}…:80`],
      [b32, "80", `${hex.slice(0, 8)}…:80`],
      [`www.${hex}.serval`, "80", `${hex.slice(0, 8)}…:80`],
      [hex, "http", `${hex.slice(0, 8)}…:http`],
      [`http.${b32}.serval`, undefined, `${hex.slice(0, 8)}…:http`],
      ["http.svc.serval", undefined, "http.svc"],
      ["http.svc.serval", "ssh", "http.svc:ssh"],
    ];
    for (const [dest, port, want] of cases) assert.equal(formatMeshTarget(parseMeshTarget(dest, port)), want, `${dest} ${port}`);
    assert.equal(parseMeshTarget(hex, "80").port, 80);
    assert.equal(parseMeshTarget(hex, "http").service, "http");
  });

  test("bad destinations and ports are ERR_BAD_ADDRESS with a reason", () => {
    const bad: [string, string | undefined, RegExp][] = [
      ["example.com", "80", /not a mesh name/],
      ["127.0.0.1", "80", /not a mesh name/],
      ["abc.serval", "80", /not a SID/],
      [hex, "0", /invalid MDP port "0"/],
      [hex, "4294967296", /invalid MDP port/],
      [hex, "-1", /invalid port or service/],
      [hex, "a b", /invalid port or service/],
      [hex, undefined, /no port for/],
      [`${hex}.serval`, "", /no port for/],
    ];
    for (const [dest, port, re] of bad) {
      assert.throws(() => parseMeshTarget(dest, port), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS") && re.test((e as Error).message), `${dest} ${port}`);
    }
  });
});

/** Listen on b:80 with a handler for each accepted stream. */
async function serve(b: MemoryMdpTransport, clock: ManualClock, port: number, onStream: (s: MspStream) => void) {
  const l = await listenMsp(b, port, { clock });
  l.on("accept", onStream);
  return l;
}

describe("dialMesh", () => {
  test("connects by SID and port; the stream is tracked for status until it closes", async () => {
    const { clock, net, b, session } = setup();
    await serve(b, clock, 80, (s) => {
      s.resume();
      s.write(enc("hello"));
      s.closeWrite();
    });
    const r = await settle(clock, dialMesh(session, parseMeshTarget(sidToHex(b.localSid), "80"), { clock }));
    assert.ok(r.value, r.error?.message);
    const stream = r.value;
    assert.equal(session.streams.size, 1);
    assert.equal(session.streams.stats()[0]!.remotePort, 80);
    const chunks: string[] = [];
    stream.on("data", (c) => chunks.push(new TextDecoder().decode(c)));
    stream.resume();
    stream.closeWrite();
    await runUntil(clock, () => stream.closed, 20_000, "close");
    assert.equal(chunks.join(""), "hello");
    assert.equal(session.streams.size, 0);
    net.close();
  });

  test("an unknown or unreachable node fails with ERR_NO_ROUTE at once, without sending anything", async () => {
    const { clock, net, a, b, session } = setup();
    let sent = 0;
    net.filter = () => void sent++;
    const unknown = Uint8Array.from({ length: 32 }, () => 0x42);
    const t0 = clock.now();
    const r1 = await settle(clock, dialMesh(session, { name: { kind: "node", sid: unknown, prefix: "" }, port: 80 }, { clock }));
    assert.ok(isSvpError(r1.error, "ERR_NO_ROUTE"), String(r1.error));
    assert.match(r1.error!.message, /no route to 4242.*not a reachable peer/);
    assert.equal(r1.at, t0);
    net.cut(a.localSid, b.localSid);
    const r2 = await settle(clock, dialMesh(session, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(isSvpError(r2.error, "ERR_NO_ROUTE"));
    assert.equal(r2.at, t0);
    assert.equal(sent, 0);
    assert.deepEqual(a.boundPorts, []);
    net.close();
  });

  test("waitRouteMs holds the request until the node becomes reachable, or fails when it does not in time", async () => {
    const { clock, net, a, b, session } = setup();
    await serve(b, clock, 80, (s) => s.resume());
    net.cut(a.localSid, b.localSid);
    const target = { name: { kind: "node" as const, sid: b.localSid, prefix: "" }, port: 80 };
    const pending = settle(clock, dialMesh(session, target, { clock, waitRouteMs: 5000 }));
    clock.setTimeout(() => net.mend(a.localSid, b.localSid), 1200);
    const r = await pending;
    assert.ok(r.value, r.error?.message);
    assert.ok(r.at >= 1200 && r.at < 1400, `connected at ${r.at}`);
    r.value.abort();
    net.cut(a.localSid, b.localSid);
    const t0 = clock.now();
    const r2 = await settle(clock, dialMesh(session, target, { clock, waitRouteMs: 2000 }));
    assert.ok(isSvpError(r2.error, "ERR_NO_ROUTE"));
    assert.match(r2.error!.message, /after waiting 2 s/);
    assert.equal(r2.at - t0, 2000);
    await runFor(clock, 5000);
    net.close();
  });

  test("a freshly started node waits for its peers for the start-up grace", async () => {
    const { clock, net, a, b } = setup();
    await serve(b, clock, 80, (s) => s.resume());
    const fresh = makeSession({ transport: a, description: "fresh", started: true }, undefined, clock, clock.now() + 3000);
    net.cut(a.localSid, b.localSid);
    clock.setTimeout(() => net.mend(a.localSid, b.localSid), 700);
    const r = await settle(clock, dialMesh(fresh, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(r.value, r.error?.message);
    r.value.abort();
    await runFor(clock, 5000);
    net.cut(a.localSid, b.localSid);
    const r2 = await settle(clock, dialMesh(fresh, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(isSvpError(r2.error, "ERR_NO_ROUTE"), "the grace is over");
    net.close();
  });

  test("STOP before any data is ERR_REFUSED; silence is ERR_TIMEOUT after 10 s; the caller's signal wins", async () => {
    const { clock, net, b, session } = setup();
    await serve(b, clock, 80, (s) => s.abort(new SvpError("ERR_NOT_ALLOWED", "no")));
    const target = (port: number) => ({ name: { kind: "node" as const, sid: b.localSid, prefix: "" }, port });
    const refused = await settle(clock, dialMesh(session, target(80), { clock }));
    assert.ok(isSvpError(refused.error, "ERR_REFUSED"), String(refused.error));
    const t0 = clock.now();
    const silent = await settle(clock, dialMesh(session, target(81), { clock }));
    assert.ok(isSvpError(silent.error, "ERR_TIMEOUT"), String(silent.error));
    assert.equal(silent.at - t0, 10_000);
    const ac = new AbortController();
    clock.setTimeout(() => ac.abort(new SvpError("ERR_TIMEOUT", "no connection within 2 s")), 2000);
    const mine = await settle(clock, dialMesh(session, target(81), { clock, signal: ac.signal }));
    assert.equal(mine.error?.message, "no connection within 2 s");
    await runFor(clock, 5000);
    assert.equal(session.streams.size, 0);
    net.close();
  });

  test("early (0-RTT, connect --forward): answerTimeoutMs aborts a stream the peer has not answered in time, with ERR_TIMEOUT", async () => {
    const { clock, net, b, session } = setup();
    // An answering peer that stays silent afterwards (no data): only the answer counts.
    await serve(b, clock, 80, (s) => s.resume());
    const target = (port: number) => ({ name: { kind: "node" as const, sid: b.localSid, prefix: "" }, port });
    const t0 = clock.now();
    const silent = await settle(clock, dialMesh(session, target(81), { clock, early: true, answerTimeoutMs: 2000 }));
    assert.ok(silent.value, "early resolves before any answer");
    let closedWith: SvpError | undefined;
    let closedAt = -1;
    silent.value.on("close", (err) => {
      closedWith = err;
      closedAt = clock.now();
    });
    silent.value.write(enc("GET / HTTP/1.0\r\n\r\n"));
    await runUntil(clock, () => closedAt >= 0, 20_000, "the unanswered stream closes");
    assert.ok(isSvpError(closedWith, "ERR_TIMEOUT"), String(closedWith));
    assert.match(closedWith!.message, /no answer from the peer within 2 s/);
    assert.equal(closedAt - t0, 2000);
    const answered = await settle(clock, dialMesh(session, target(80), { clock, early: true, answerTimeoutMs: 2000 }));
    answered.value!.write(enc("hi"));
    await runFor(clock, 5000);
    assert.equal(answered.value!.closed, false, "an answered stream outlives answerTimeoutMs");
    answered.value!.abort();
    await runFor(clock, 5000);
    net.close();
  });

  test("service names resolve through discovery: on one node, or whichever node offers it", async () => {
    const { clock, net, b, session } = setup();
    await serve(b, clock, 8080, (s) => {
      s.resume();
      s.closeWrite();
    });
    await startServiceResponder(b, { service: "http", port: 8080, clock });
    const one = await settle(clock, dialMesh(session, parseMeshTarget(sidToHex(b.localSid), "http"), { clock }));
    assert.equal(one.value?.remote.port, 8080, one.error?.message);
    const any = await settle(clock, dialMesh(session, parseMeshTarget("http.svc.serval"), { clock }));
    assert.equal(any.value?.remote.port, 8080, any.error?.message);
    assert.equal(sidToHex(any.value!.remote.sid), sidToHex(b.localSid));
    const t0 = clock.now();
    const none = await settle(clock, dialMesh(session, parseMeshTarget("gopher.svc.serval"), { clock }));
    assert.ok(isSvpError(none.error, "ERR_NAME_NOT_FOUND"));
    assert.match(none.error!.message, /no node answered for service "gopher" within 2 s \(1 reachable peer asked\)/);
    assert.equal(none.at - t0, 2000);
    const notThere = await settle(clock, dialMesh(session, parseMeshTarget(sidToHex(b.localSid), "ssh"), { clock, discoveryTimeoutMs: 500 }));
    assert.ok(isSvpError(notThere.error, "ERR_NAME_NOT_FOUND"));
    assert.match(notThere.error!.message, /did not answer for service "ssh" within 500 ms/);
    one.value!.abort();
    any.value!.abort();
    await runFor(clock, 5000);
    net.close();
  });
});

describe("the socks mesh dialer", () => {
  test("node names use the requested port; service names the service's port", async () => {
    const { clock, net, b, session } = setup();
    const ports: number[] = [];
    for (const p of [80, 9000]) await serve(b, clock, p, (s) => (ports.push(p), s.resume()));
    await startServiceResponder(b, { service: "web", port: 9000, clock });
    const dialer = createMeshDialer({ session: () => Promise.resolve(session), clock });
    const ac = new AbortController();
    const r1 = await settle(clock, dialer.dial(parseMeshName(`www.${sidToBase32(b.localSid)}.serval`)!, 80, ac.signal));
    assert.ok(r1.value, r1.error?.message);
    const r2 = await settle(clock, dialer.dial(parseMeshName("web.svc.serval")!, 443, ac.signal));
    assert.ok(r2.value, r2.error?.message);
    await drain(clock);
    assert.deepEqual(ports, [80, 9000]);
    r1.value.abort();
    r2.value.abort();
    await runFor(clock, 5000);
    net.close();
  });

  test("without a mesh backend every mesh request fails with ERR_MESH_DOWN and the reason", async () => {
    const dialer = createMeshDialer({ session: () => Promise.reject(new SvpError("ERR_TIMEOUT", "the daemon did not become ready within 15 s")) });
    const sid = Uint8Array.from({ length: 32 }, () => 1);
    await assert.rejects(dialer.dial({ kind: "node", sid, prefix: "" }, 80, new AbortController().signal), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && /no mesh backend: the daemon did not become ready/.test((e as Error).message));
    const down = createMeshDialer({ session: () => Promise.reject(new SvpError("ERR_MESH_DOWN", "no servald answers")) });
    await assert.rejects(down.dial({ kind: "node", sid, prefix: "" }, 80, new AbortController().signal), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && (e as Error).message === "no servald answers");
  });

  test("a session whose backend went away fails with ERR_MESH_DOWN", async () => {
    const { clock, net, a, b, session } = setup();
    a.fail();
    assert.equal(session.down, true);
    const r = await settle(clock, dialMesh(session as MeshSession, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(isSvpError(r.error, "ERR_MESH_DOWN"), String(r.error));
    assert.match(r.error!.message, /memory node a/);
    net.close();
  });
});
