/**
 * The proxy server over in-memory streams with a manual clock: ordering of replies,
 * timers, limits, routing and shutdown, without sockets or real time.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError } from "../../src/errors.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { Relay } from "../../src/relay/relay.ts";
import type { ProxyServerOptions, StreamRecord } from "../../src/socks/server.ts";
import { ProxyServer } from "../../src/socks/server.ts";
import type { Dialer, MeshDialer } from "../../src/socks/dialer.ts";
import { createRouter, MESH_UNAVAILABLE } from "../../src/socks/dialer.ts";
import type { Destination } from "../../src/socks/destination.ts";
import type { MeshName } from "../../src/mesh/names.ts";
import { concat } from "../helpers/wait.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
const SOCKS5_CONNECT_LOCAL_80 = Uint8Array.of(5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80);

/** Let queued microtasks and promise callbacks run (bounded). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

/** Wait (real time, bounded) until `cond()` holds. */
async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function collect(s: ByteStream) {
  const chunks: Uint8Array[] = [];
  const state = { ended: false, closed: false, error: undefined as SvpError | undefined };
  s.on("data", (c) => chunks.push(c.slice()));
  s.on("end", () => (state.ended = true));
  s.on("close", (e) => {
    state.closed = true;
    state.error = e;
  });
  s.resume();
  return {
    state,
    get bytes() {
      return concat(chunks);
    },
    get text() {
      return dec(concat(chunks));
    },
  };
}

/** A dialer whose connections the test completes by hand. */
class ManualDialer implements Dialer {
  calls: { dest: Destination; signal: AbortSignal; resolve: (s: ByteStream) => void; reject: (e: unknown) => void }[] = [];
  route(dest: Destination) {
    return dest.mesh ? ("mesh" as const) : ("direct" as const);
  }
  dial(dest: Destination, signal: AbortSignal): Promise<ByteStream> {
    return new Promise((resolve, reject) => {
      this.calls.push({ dest, signal, resolve, reject });
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
  /** Complete the last dial with one end of a new pair; returns the target's end. */
  connect(i = this.calls.length - 1): ByteStream {
    const [near, far] = memoryPair({ labels: ["target near", "target far"] });
    this.calls[i]!.resolve(near);
    return far;
  }
}

function setup(opts: Partial<ProxyServerOptions> = {}, dialer: Dialer = new ManualDialer()) {
  const clock = new ManualClock();
  const records: StreamRecord[] = [];
  const server = new ProxyServer({ dialer, startRelay: (a, b, o) => new Relay(a, b, o), clock, ...opts });
  server.on("stream", (r) => records.push(r));
  const open = () => {
    const [client, serverSide] = memoryPair({ labels: ["client", "tcp 127.0.0.1:5555"] });
    server.handle(serverSide, "127.0.0.1:1080");
    return { client, got: collect(client) };
  };
  return { clock, server, records, open, dialer: dialer as ManualDialer };
}

describe("proxy server", () => {
  test("success is replied only after the connection is up; early data reaches the target first", async () => {
    const { open, dialer, records, clock } = setup();
    const { client, got } = open();
    client.write(concat([SOCKS5_CONNECT_LOCAL_80, enc("early")]));
    await settle();
    assert.equal(hex(got.bytes), "05 00", "replied before the outcome was known");
    assert.equal(dialer.calls.length, 1);
    assert.deepEqual(dialer.calls[0]!.dest, { host: "127.0.0.1", port: 80 });
    const target = dialer.connect();
    const atTarget = collect(target);
    await settle();
    assert.equal(hex(got.bytes), "05 00 05 00 00 01 00 00 00 00 00 00");
    assert.equal(atTarget.text, "early");
    assert.equal(clock.pendingCount, 0, "a timer is left running on an idle tunnel");
    client.write(enc("more"));
    target.write(enc("answer"));
    client.closeWrite();
    await until(() => atTarget.state.ended, "end at target");
    target.closeWrite();
    await until(() => records.length === 1, "stream record");
    assert.equal(atTarget.text, "earlymore");
    assert.equal(got.text.slice(12), "answer");
    const r = records[0]!;
    assert.deepEqual({ ...r, durationMs: 0 }, { client: "tcp 127.0.0.1:5555", protocol: "socks5", dest: "127.0.0.1:80", route: "direct", outcome: "ok", up: 9, down: 6, durationMs: 0 });
  });

  test("a failed connect is answered with the mapped code and logged", async () => {
    const { open, dialer, records } = setup();
    const { client, got } = open();
    client.write(SOCKS5_CONNECT_LOCAL_80);
    await settle();
    dialer.calls[0]!.reject(new SvpError("ERR_REFUSED", "connection refused"));
    await until(() => got.state.ended, "client sees end");
    assert.equal(hex(got.bytes), "05 00 05 05 00 01 00 00 00 00 00 00");
    client.closeWrite();
    await until(() => records.length === 1, "record");
    assert.equal(records[0]!.outcome, "ERR_REFUSED");
  });

  test("handshake timeout closes a stalled client (and a silent one)", async () => {
    const { open, clock, records } = setup({ handshakeTimeoutMs: 10_000 });
    const a = open();
    const b = open();
    a.client.write(Uint8Array.of(5, 1));
    await settle();
    clock.advance(9_999);
    await settle();
    assert.equal(a.got.state.ended, false);
    clock.advance(1);
    await settle();
    assert.equal(a.got.state.ended, true);
    assert.equal(b.got.state.ended, true);
    // Clients that never close are reset after the linger time.
    clock.advance(2_000);
    await until(() => records.length === 2, "records");
    assert.deepEqual(records.map((r) => r.outcome), ["ERR_TIMEOUT", "ERR_TIMEOUT"]);
    assert.match(records[0]!.message!, /handshake not completed within 10 s/);
  });

  test("connect timeout: the dial is aborted and the client gets 0x06 / 504", async () => {
    const { open, clock, dialer, records } = setup({ connectTimeoutMs: 30_000 });
    const s5 = open();
    s5.client.write(SOCKS5_CONNECT_LOCAL_80);
    const http = open();
    http.client.write(enc("CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n"));
    await settle();
    assert.equal(dialer.calls.length, 2);
    clock.advance(30_000);
    await settle();
    assert.equal(dialer.calls[0]!.signal.aborted, true);
    assert.equal(hex(s5.got.bytes), "05 00 05 06 00 01 00 00 00 00 00 00");
    assert.match(http.got.text, /^HTTP\/1\.1 504 Gateway Timeout/);
    assert.match(http.got.text, /cannot connect to 127\.0\.0\.1:80: no connection to 127\.0\.0\.1:80 within 30 s\n$/);
    s5.client.closeWrite();
    http.client.closeWrite();
    await until(() => records.length === 2, "records");
    assert.ok(records.every((r) => r.outcome === "ERR_TIMEOUT"), "a record is not ERR_TIMEOUT");
  });

  test("--max-conns: requests beyond the limit are refused cleanly, capacity returns when a stream ends", async () => {
    const { open, dialer, records } = setup({ maxConns: 1 });
    const first = open();
    first.client.write(SOCKS5_CONNECT_LOCAL_80);
    await settle();
    const target = dialer.connect();
    collect(target);
    const second = open();
    second.client.write(SOCKS5_CONNECT_LOCAL_80);
    const http = open();
    http.client.write(enc("GET http://127.0.0.1/ HTTP/1.1\r\n\r\n"));
    await until(() => second.got.state.ended && http.got.state.ended, "refusals");
    assert.equal(hex(second.got.bytes), "05 00 05 01 00 01 00 00 00 00 00 00");
    assert.match(http.got.text, /^HTTP\/1\.1 503 /);
    assert.equal(dialer.calls.length, 1, "an over-limit request was dialled");
    first.client.abort();
    await until(() => records.some((r) => r.outcome !== "ERR_LIMIT"), "first stream's record");
    const third = open();
    third.client.write(SOCKS5_CONNECT_LOCAL_80);
    await settle();
    assert.equal(dialer.calls.length, 2, "capacity did not come back");
    third.client.abort();
  });

  test("mesh destinations are refused with 0x04 until a mesh backend exists; --direct deny refuses the rest", async () => {
    const sid = "AB".repeat(32);
    const router = createRouter({ tcp: () => Promise.reject(new Error("no tcp in this test")), direct: "deny" });
    const { open, records } = setup({}, router);
    const mesh = open();
    const name = `www.${sid}.serval`;
    mesh.client.write(Uint8Array.of(5, 1, 0, 5, 1, 0, 3, name.length, ...enc(name), 0, 80));
    const other = open();
    other.client.write(enc("GET http://example.org/ HTTP/1.1\r\n\r\n"));
    await until(() => mesh.got.state.ended && other.got.state.ended, "refusals");
    assert.equal(hex(mesh.got.bytes), "05 00 05 04 00 01 00 00 00 00 00 00");
    assert.match(other.got.text, /^HTTP\/1\.1 403 Forbidden/);
    mesh.client.closeWrite();
    other.client.closeWrite();
    await until(() => records.length === 2, "records");
    const m = records.find((r) => r.route === "mesh")!;
    assert.equal(m.outcome, "ERR_NO_ROUTE");
    assert.equal(m.message, MESH_UNAVAILABLE);
    assert.match(m.message!, /mesh destinations are not available yet/);
    assert.equal(records.find((r) => r.route === "denied")?.outcome, "ERR_NOT_ALLOWED");
  });

  test("a mesh dialer plugged into the router gets the parsed name and port", async () => {
    const seen: [MeshName, number][] = [];
    const mesh: MeshDialer = {
      dial(name, port) {
        seen.push([name, port]);
        const [near, far] = memoryPair();
        collect(far);
        far.write(enc("HTTP/1.0 200 OK\r\n\r\nfrom mesh"));
        return Promise.resolve(near);
      },
    };
    const router = createRouter({ tcp: () => Promise.reject(new Error("unused")), mesh });
    const { open } = setup({}, router);
    const c = open();
    c.client.write(enc(`GET http://${"cd".repeat(32)}.serval:8080/x HTTP/1.1\r\n\r\n`));
    await until(() => c.got.text.includes("from mesh"), "mesh data");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]![0].kind, "node");
    assert.equal(seen[0]![1], 8080);
    c.client.abort();
  });

  test("client gone while connecting: the dial is aborted, a late connection is closed", async () => {
    const { open, dialer, records } = setup();
    const { client } = open();
    client.write(SOCKS5_CONNECT_LOCAL_80);
    await settle();
    client.abort();
    await until(() => records.length === 1, "record");
    assert.equal(dialer.calls[0]!.signal.aborted, true);
    assert.equal(records[0]!.outcome, "ERR_ABORTED");
  });

  test("HTTP forward: the target's response gets Connection: close, request body untouched", async () => {
    const { open, dialer, records } = setup();
    const { client, got } = open();
    client.write(enc("POST http://127.0.0.1:8000/up HTTP/1.1\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nda"));
    await settle();
    const target = dialer.connect();
    const atTarget = collect(target);
    client.write(enc("ta"));
    await until(() => atTarget.text.endsWith("data"), "request body");
    assert.equal(atTarget.text, "POST /up HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndata");
    target.write(enc("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"));
    target.closeWrite();
    await until(() => got.state.ended, "response end");
    assert.equal(got.text, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    client.closeWrite();
    await until(() => records.length === 1, "record");
    assert.equal(records[0]!.outcome, "ok");
    // The log counts what the target got (rewritten head and body) and what the client got.
    assert.equal(records[0]!.up, atTarget.text.length, "up bytes differ from what reached the target");
    assert.equal(records[0]!.down, got.text.length, "down bytes differ from what reached the client");
  });

  test("close(): handshakes and dials end at once, live tunnels get the drain time, then are cut", async () => {
    const { open, dialer, server, clock, records } = setup();
    const live = open();
    live.client.write(SOCKS5_CONNECT_LOCAL_80);
    await settle();
    const target = dialer.connect();
    const atTarget = collect(target);
    const dialing = open();
    dialing.client.write(SOCKS5_CONNECT_LOCAL_80);
    const idle = open();
    await settle();
    let closed = false;
    void server.close(5_000).then(() => (closed = true));
    await settle();
    assert.equal(idle.got.state.ended, true, "handshaking client not closed");
    assert.equal(hex(dialing.got.bytes), "05 00 05 01 00 01 00 00 00 00 00 00");
    live.client.write(enc("still flowing"));
    await until(() => atTarget.text === "still flowing", "data during drain");
    assert.equal(closed, false);
    clock.advance(5_000);
    await until(() => closed, "close() resolved");
    assert.equal(live.got.state.closed, true);
    assert.ok(records.some((r) => r.outcome === "ERR_ABORTED" && /still open after 5 s/.test(r.message ?? "")), "no record of the cut tunnel");
    // New clients are turned away.
    const late = open();
    await settle();
    assert.equal(late.got.state.closed, true);
  });

  test("--idle-timeout closes a quiet tunnel", async () => {
    const { open, dialer, clock, records } = setup({ idleTimeoutMs: 60_000 });
    const { client, got } = open();
    client.write(SOCKS5_CONNECT_LOCAL_80);
    await settle();
    collect(dialer.connect());
    await settle();
    clock.advance(59_000);
    await settle();
    assert.equal(got.state.closed, false);
    clock.advance(1_000);
    await until(() => records.length === 1, "record");
    assert.equal(records[0]!.outcome, "ERR_TIMEOUT");
  });
});
