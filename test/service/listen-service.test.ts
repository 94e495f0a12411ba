/**
 * The listen service over the in-memory network (ManualClock): target opened before the
 * caller is answered, refusals (failed forward, --allow, --once), PROXY v2 header, half-close
 * both ways, records, shutdown and loss of the backend.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError, isSvpError } from "../../src/errors.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import type { MdpAddress } from "../../src/mdp/transport.ts";
import { sidToHex } from "../../src/mesh/sid.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { discoverServices } from "../../src/service/discovery.ts";
import { startListenService } from "../../src/service/listen-service.ts";
import type { ListenRecord, ListenResult, ListenServiceOptions, OpenTarget } from "../../src/service/listen-service.ts";
import { dialMesh } from "../../src/service/mesh-dialer.ts";
import { makeSession } from "../../src/service/mesh-session.ts";
import { decodeProxyV2 } from "../../src/service/proxy-v2.ts";
import { runFor, runUntil } from "../msp/helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function setup() {
  const clock = new ManualClock();
  const net = new MemoryMdpNetwork({ clock, seed: 3 });
  const a = net.addNode();
  const b = net.addNode();
  const c = net.addNode();
  const sa = makeSession({ transport: a, description: "a", started: false }, undefined, clock);
  const sb = makeSession({ transport: b, description: "b", started: false }, undefined, clock);
  const sc = makeSession({ transport: c, description: "c", started: false }, undefined, clock);
  return { clock, net, a, b, c, sa, sb, sc };
}

/** A target whose far end (the "local service") the test drives. */
function pairTarget() {
  const opened: { caller: MdpAddress; far: ByteStream; got: Uint8Array[] }[] = [];
  const open: OpenTarget = (caller) => {
    const [near, far] = memoryPair();
    const got: Uint8Array[] = [];
    far.on("data", (c) => got.push(c.slice()));
    far.resume();
    opened.push({ caller, far, got });
    return Promise.resolve(near);
  };
  return { open, opened };
}

async function outcome<T>(clock: ManualClock, p: Promise<T>, maxMs = 30_000): Promise<{ value?: T; error?: SvpError }> {
  let out: { value?: T; error?: SvpError } | undefined;
  p.then((value) => (out = { value }), (error: SvpError) => (out = { error }));
  await runUntil(clock, () => out !== undefined, maxMs, "outcome");
  return out!;
}

function readText(s: ByteStream): { text: () => string; ended: () => boolean } {
  let text = "";
  let ended = false;
  s.on("data", (c) => (text += dec(c)));
  s.on("end", () => (ended = true));
  s.resume();
  return { text: () => text, ended: () => ended };
}

describe("listen service", () => {
  test("forwards a connection: data both ways, the caller's half-close reaches the target, the answer comes after it", async () => {
    const { clock, net, b, sa, sb } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "test target", clock });
    const records: ListenRecord[] = [];
    svc.on("connection", (r) => records.push(r));
    const r = await outcome(clock, dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(r.value, r.error?.message);
    const s = r.value;
    const got = readText(s);
    s.write(enc("request body"));
    s.closeWrite();
    await runUntil(clock, () => t.opened[0]?.got.length === 1 && dec(t.opened[0].got[0]!) === "request body", 5000, "request at target");
    const far = t.opened[0]!.far;
    // A server that answers only after EOF.
    await runUntil(clock, () => !far.readable, 5000, "EOF at the target");
    far.write(enc("answer"));
    far.closeWrite();
    await runUntil(clock, () => got.ended() && records.length === 1, 20_000, "answer and record");
    assert.equal(got.text(), "answer");
    assert.equal(sidToHex(t.opened[0]!.caller.sid), sidToHex(sa.transport.localSid));
    const rec = records[0]!;
    assert.equal(rec.outcome, "ok");
    assert.equal(rec.peerSid, sidToHex(sa.transport.localSid));
    assert.equal(rec.up, 12);
    assert.equal(rec.down, 6);
    assert.equal(rec.target, "test target");
    await outcome(clock, svc.close(1000));
    assert.deepEqual(await svc.done, { reason: "closed" });
    net.close();
  });

  test("the target is opened before the caller hears anything; a failed open stops the caller (refused)", async () => {
    const { clock, net, b, sa, sb } = setup();
    let rejectOpen!: (e: unknown) => void;
    let calls = 0;
    const open: OpenTarget = () => {
      calls++;
      return new Promise((_res, rej) => (rejectOpen = rej));
    };
    let fromB = 0;
    net.filter = (d) => void (d.from.sid === b.localSid || sidToHex(d.from.sid) === sidToHex(b.localSid) ? fromB++ : 0);
    const svc = await startListenService(sb, { port: 80, open, targetLabel: "127.0.0.1:8000", clock });
    const records: ListenRecord[] = [];
    svc.on("connection", (r) => records.push(r));
    const p = dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock });
    let settled = false;
    p.then(() => (settled = true), () => (settled = true));
    await runUntil(clock, () => calls === 1, 5000, "open called");
    await runFor(clock, 3000);
    assert.equal(fromB, 0, "the listener answered before its target was open");
    assert.equal(settled, false);
    rejectOpen(new SvpError("ERR_REFUSED", "connection refused"));
    const r = await outcome(clock, p);
    assert.ok(isSvpError(r.error, "ERR_REFUSED"), String(r.error));
    await runUntil(clock, () => records.length === 1, 1000, "record");
    assert.equal(records[0]!.outcome, "ERR_REFUSED");
    assert.equal(records[0]!.message, "connection refused");
    await outcome(clock, svc.close(100));
    net.close();
  });

  test("a target that does not open in time is abandoned; the caller is refused", async () => {
    const { clock, net, b, sa, sb } = setup();
    let signalSeen: AbortSignal | undefined;
    const open: OpenTarget = (_c, signal) => {
      signalSeen = signal;
      return new Promise((_res, rej) => signal.addEventListener("abort", () => rej(signal.reason)));
    };
    const svc = await startListenService(sb, { port: 80, open, targetLabel: "slow", clock, openTimeoutMs: 4000 });
    const records: ListenRecord[] = [];
    svc.on("connection", (r) => records.push(r));
    const r = await outcome(clock, dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(isSvpError(r.error, "ERR_REFUSED"), String(r.error));
    assert.equal(signalSeen?.aborted, true);
    await runUntil(clock, () => records.length === 1, 1000, "record");
    assert.equal(records[0]!.outcome, "ERR_TIMEOUT");
    assert.match(records[0]!.message!, /slow did not connect within 4 s/);
    await outcome(clock, svc.close(100));
    net.close();
  });

  test("--allow: other callers are stopped and logged; allowed ones served", async () => {
    const { clock, net, b, sa, sb, sc } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock, allow: [sc.transport.localSid] });
    const records: ListenRecord[] = [];
    svc.on("connection", (r) => records.push(r));
    const target = { name: { kind: "node" as const, sid: b.localSid, prefix: "" }, port: 80 };
    const denied = await outcome(clock, dialMesh(sa, target, { clock }));
    assert.ok(isSvpError(denied.error, "ERR_REFUSED"));
    await runUntil(clock, () => records.length === 1, 1000, "record");
    assert.equal(records[0]!.outcome, "ERR_NOT_ALLOWED");
    assert.match(records[0]!.message!, new RegExp(`caller ${sidToHex(sa.transport.localSid)} is not allowed`));
    assert.equal(t.opened.length, 0, "target opened for a caller that is not allowed");
    const ok = await outcome(clock, dialMesh(sc, target, { clock }));
    assert.ok(ok.value, ok.error?.message);
    assert.equal(t.opened.length, 1);
    ok.value.abort();
    await outcome(clock, svc.close(100));
    net.close();
  });

  test("--proxy-protocol: the target first reads a PROXY v2 header with the caller's SID and port", async () => {
    const { clock, net, b, sa, sb } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock, proxyProtocol: true });
    const r = await outcome(clock, dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    const s = r.value!;
    s.write(enc("GET /"));
    await runUntil(clock, () => t.opened[0]?.got.reduce((n, c) => n + c.length, 0) === 100 + 5, 5000, "header and data");
    const all = new Uint8Array(105);
    let o = 0;
    for (const c of t.opened[0]!.got) (all.set(c, o), (o += c.length));
    const h = decodeProxyV2(all);
    assert.equal(h.kind, "header");
    if (h.kind !== "header") return;
    assert.equal(h.length, 100);
    assert.equal(sidToHex(h.header.svp!.peerSid), sidToHex(sa.transport.localSid));
    assert.equal(h.header.svp!.peerPort, s.local.port);
    assert.equal(sidToHex(h.header.svp!.localSid), sidToHex(b.localSid));
    assert.equal(h.header.svp!.localPort, 80);
    assert.equal(dec(all.subarray(100)), "GET /");
    s.abort();
    await outcome(clock, svc.close(100));
    net.close();
  });

  test("--once: serves the first allowed caller only, refuses the rest, ends with that connection's outcome", async () => {
    const { clock, net, b, sa, sb, sc } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock, once: true, allow: [sa.transport.localSid] });
    let result: ListenResult | undefined;
    void svc.done.then((r) => (result = r));
    const target = { name: { kind: "node" as const, sid: b.localSid, prefix: "" }, port: 80 };
    const notAllowed = await outcome(clock, dialMesh(sc, target, { clock }));
    assert.ok(isSvpError(notAllowed.error, "ERR_REFUSED"));
    assert.equal(result, undefined, "a refused caller used up --once");
    const first = await outcome(clock, dialMesh(sa, target, { clock }));
    assert.ok(first.value);
    const second = await outcome(clock, dialMesh(sa, target, { clock }));
    assert.ok(isSvpError(second.error, "ERR_REFUSED"), String(second.error));
    first.value.closeWrite();
    first.value.resume();
    t.opened[0]!.far.closeWrite();
    await runUntil(clock, () => result !== undefined, 20_000, "done");
    assert.deepEqual(result, { reason: "once" });
    await runFor(clock, 5000);
    assert.deepEqual(b.boundPorts, [], "port still bound after --once");
    net.close();
  });

  test("--service answers discovery while listening and stops answering when closed", async () => {
    const { clock, net, sa, sb } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 8080, open: t.open, targetLabel: "x", clock, service: "http" });
    let found: string[] = [];
    void discoverServices(sa.transport, { clock, timeoutMs: 500 }).then((r) => (found = r.map((x) => `${x.service}=${x.port}`)));
    await runFor(clock, 500);
    assert.deepEqual(found, ["http=8080"]);
    await outcome(clock, svc.close(100));
    found = ["?"];
    void discoverServices(sa.transport, { clock, timeoutMs: 500 }).then((r) => (found = r.map((x) => `${x.service}=${x.port}`)));
    await runFor(clock, 500);
    assert.deepEqual(found, []);
    net.close();
  });

  test("port 11 taken by a client that does not share it: fails, or with onDiscoveryUnavailable serves without discovery", async () => {
    const { clock, net, b, sa, sb } = setup();
    const squatter = await b.bind(11);
    const t = pairTarget();
    await assert.rejects(startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock, service: "http" }), (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED"));
    assert.deepEqual(b.boundPorts, [11], "port 80 left bound after the failure");
    const why: string[] = [];
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock, service: "http", onDiscoveryUnavailable: (e) => why.push(e.code) });
    assert.deepEqual(why, ["ERR_NOT_ALLOWED"]);
    const r = await outcome(clock, dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(r.value, r.error?.message);
    r.value.abort();
    squatter.close();
    await outcome(clock, svc.close(100));
    net.close();
  });

  test("close() lets live connections drain for the given time, then aborts them", async () => {
    const { clock, net, b, sa, sb } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock });
    const records: ListenRecord[] = [];
    svc.on("connection", (r) => records.push(r));
    const r = await outcome(clock, dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    const s = r.value!;
    s.resume();
    let closedAt = -1;
    const t0 = clock.now();
    void svc.close(3000).then(() => (closedAt = clock.now()));
    // New callers are refused meanwhile.
    const late = await outcome(clock, dialMesh(sa, { name: { kind: "node", sid: b.localSid, prefix: "" }, port: 80 }, { clock }));
    assert.ok(isSvpError(late.error, "ERR_REFUSED"));
    await runUntil(clock, () => closedAt >= 0, 10_000, "closed");
    assert.equal(closedAt - t0, 3000);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.outcome, "ERR_ABORTED");
    await runUntil(clock, () => s.closed, 5000, "caller stream closed");
    net.close();
  });

  test("losing the mesh backend ends the service with reason 'down'", async () => {
    const { clock, net, sb, b } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock, service: "http" } as ListenServiceOptions);
    b.fail();
    await runFor(clock, 10);
    const r = await svc.done;
    assert.equal(r.reason, "down");
    assert.ok(isSvpError(r.error, "ERR_MESH_DOWN"));
    net.close();
  });

  test("many concurrent callers each get their own target", async () => {
    const { clock, net, b, sa, sb } = setup();
    const t = pairTarget();
    const svc = await startListenService(sb, { port: 80, open: t.open, targetLabel: "x", clock });
    const target = { name: { kind: "node" as const, sid: b.localSid, prefix: "" }, port: 80 };
    const streams: MspStream[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await outcome(clock, dialMesh(sa, target, { clock }));
      streams.push(r.value!);
      r.value!.write(enc(`caller ${i}`));
    }
    await runUntil(clock, () => t.opened.length === 50 && t.opened.every((o) => o.got.length > 0), 10_000, "all data");
    const texts = t.opened.map((o) => dec(o.got[0]!)).sort();
    assert.equal(new Set(texts).size, 50);
    assert.equal(svc.connections, 50);
    for (const s of streams) s.abort();
    await outcome(clock, svc.close(100));
    net.close();
  });
});
