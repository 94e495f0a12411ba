import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Credentials } from "../../src/socks/auth.ts";
import type { HandshakeOptions, HandshakeStep } from "../../src/socks/handshake.ts";
import { Handshake, failureReply, successReply } from "../../src/socks/handshake.ts";
import { SvpError } from "../../src/errors.ts";
import { concat } from "../helpers/wait.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (...xs: (number | string)[]) => {
  const out: number[] = [];
  for (const x of xs) {
    if (typeof x === "number") out.push(x);
    else for (const c of x) out.push(c.charCodeAt(0));
  }
  return Uint8Array.from(out);
};

interface Outcome {
  sent: string;
  kind: HandshakeStep["kind"];
  protocol?: string | undefined;
  dest?: string | undefined;
  early?: string;
  head?: string;
  user?: string | undefined;
  error?: string | undefined;
  served?: string | undefined;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

/** Run a handshake over `input` cut at `cuts`; stop at the first non-"more" step. */
function run(input: Uint8Array, cuts: number[], opts: Partial<HandshakeOptions> = {}): Outcome {
  const hs = new Handshake({ proxyAddress: "127.0.0.1:1080", ...opts });
  const sent: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    const piece = input.subarray(from, cut);
    from = cut;
    if (piece.length === 0) continue;
    const step = hs.push(piece);
    if (step.send) sent.push(step.send);
    if (step.kind === "more") continue;
    const tail = input.subarray(from);
    if (step.kind === "connect") {
      return {
        sent: hex(concat(sent)),
        kind: "connect",
        protocol: step.request.protocol,
        dest: `${step.request.dest.host}:${step.request.dest.port}`,
        early: dec(concat([step.early, tail])),
        head: step.request.head ? dec(step.request.head) : "",
        user: step.request.user,
      };
    }
    return { sent: hex(concat(sent)), kind: "close", protocol: step.protocol, error: step.error?.code, served: step.served, dest: step.dest ? `${step.dest.host}:${step.dest.port}` : undefined };
  }
  return { sent: hex(concat(sent)), kind: "more" };
}

/** The outcome must not depend on how the input is split: whole, at every offset, byte by byte. */
function everySplit(input: Uint8Array, opts: Partial<HandshakeOptions> = {}): Outcome {
  const whole = run(input, [], opts);
  for (let i = 1; i < input.length; i++) assert.deepEqual(run(input, [i], opts), whole, `split at ${i}`);
  for (let i = 1; i < input.length - 1; i += 3) assert.deepEqual(run(input, [i, i + 1, i + 2], opts), whole, `split at ${i},${i + 1},${i + 2}`);
  assert.deepEqual(run(input, Array.from({ length: input.length }, (_, i) => i + 1), opts), whole, "byte by byte");
  return whole;
}

const creds = new Credentials([{ user: "alice", pass: "pw" }]);

describe("handshake: SOCKS5", () => {
  test("greeting + request + early data in one segment (pipelined), at every split", () => {
    const input = bytes(5, 1, 0, 5, 1, 0, 3, 9, "127.0.0.1", 0x1f, 0x90, "GET / HTTP/1.0\r\n\r\n");
    const out = everySplit(input);
    assert.deepEqual(out, { sent: "05 00", kind: "connect", protocol: "socks5", dest: "127.0.0.1:8080", early: "GET / HTTP/1.0\r\n\r\n", head: "", user: undefined });
  });

  test("no-auth is chosen when the client offers no-auth and user/pass and no credentials are set", () => {
    assert.equal(everySplit(bytes(5, 2, 2, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80)).sent, "05 00");
  });

  test("user/password required: right credentials pass, wrong ones and missing method are refused", () => {
    const ok = everySplit(bytes(5, 2, 0, 2, 1, 5, "alice", 2, "pw", 5, 1, 0, 1, 10, 0, 0, 1, 0, 22, "x"), { credentials: creds });
    assert.deepEqual(ok, { sent: "05 02 01 00", kind: "connect", protocol: "socks5", dest: "10.0.0.1:22", early: "x", head: "", user: "alice" });
    const wrong = everySplit(bytes(5, 1, 2, 1, 5, "alice", 2, "no", 5, 1, 0, 1, 10, 0, 0, 1, 0, 22), { credentials: creds });
    assert.deepEqual(wrong, { sent: "05 02 01 01", kind: "close", protocol: "socks5", error: "ERR_AUTH", served: undefined, dest: undefined });
    const none = everySplit(bytes(5, 1, 0), { credentials: creds });
    assert.deepEqual(none, { sent: "05 ff", kind: "close", protocol: "socks5", error: "ERR_AUTH", served: undefined, dest: undefined });
  });

  test("BIND and UDP ASSOCIATE get 0x07, unknown commands too", () => {
    for (const cmd of [2, 3, 9]) {
      const out = everySplit(bytes(5, 1, 0, 5, cmd, 0, 1, 127, 0, 0, 1, 0, 80));
      assert.equal(out.sent, "05 00 05 07 00 01 00 00 00 00 00 00", `cmd ${cmd}`);
      assert.equal(out.error, "ERR_COMMAND_UNSUPPORTED");
    }
  });

  test("unknown address type gets 0x08", () => {
    const out = everySplit(bytes(5, 1, 0, 5, 1, 0, 7, 1, 2, 3, 4, 0, 80));
    assert.equal(out.sent, "05 00 05 08 00 01 00 00 00 00 00 00");
    assert.equal(out.error, "ERR_ADDRESS_TYPE");
  });

  test("an empty domain name is refused, never taken for localhost", () => {
    const out = everySplit(bytes(5, 1, 0, 5, 1, 0, 3, 0, 0, 80));
    assert.equal(out.kind, "close");
    assert.equal(out.error, "ERR_BAD_ADDRESS");
    assert.equal(out.sent, "05 00 05 04 00 01 00 00 00 00 00 00");
    assert.equal(everySplit(bytes(5, 1, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 80)).error, "ERR_BAD_ADDRESS");
    assert.equal(everySplit(bytes(5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 0)).error, "ERR_BAD_ADDRESS");
  });

  test("garbage after the greeting and a greeting with no methods close the connection", () => {
    const bad = everySplit(bytes(5, 1, 0, 4, 1, 0, 1, 1, 2, 3, 4, 0, 80));
    assert.equal(bad.kind, "close");
    assert.equal(bad.error, "ERR_PROTOCOL");
    const empty = run(bytes(5, 0), []);
    assert.equal(empty.kind, "close");
    assert.equal(empty.sent, "");
  });

  test("incomplete input waits (the caller's timer ends it)", () => {
    assert.equal(run(bytes(5, 1, 0, 5, 1, 0, 3, 20, "abc"), []).kind, "more");
  });
});

describe("handshake: SOCKS4 and SOCKS4a", () => {
  test("SOCKS4 with an IP, SOCKS4a with a name, early data kept", () => {
    assert.deepEqual(everySplit(bytes(4, 1, 0, 80, 127, 0, 0, 1, "me", 0, "hi")), { sent: "", kind: "connect", protocol: "socks4", dest: "127.0.0.1:80", early: "hi", head: "", user: undefined });
    assert.deepEqual(everySplit(bytes(4, 1, 0, 80, 0, 0, 0, 1, 0, "localhost", 0)), { sent: "", kind: "connect", protocol: "socks4a", dest: "localhost:80", early: "", head: "", user: undefined });
  });

  test("BIND, empty SOCKS4a name and auth-required are rejected with a SOCKS4 reply", () => {
    const bind = everySplit(bytes(4, 2, 0, 80, 127, 0, 0, 1, 0));
    assert.equal(bind.sent, "00 5b 00 00 00 00 00 00");
    assert.equal(bind.error, "ERR_COMMAND_UNSUPPORTED");
    const empty = everySplit(bytes(4, 1, 0, 80, 0, 0, 0, 1, 0, 0));
    assert.equal(empty.error, "ERR_BAD_ADDRESS");
    assert.equal(empty.sent, "00 5b 00 00 00 00 00 00");
    const auth = everySplit(bytes(4, 1, 0, 80, 127, 0, 0, 1, 0), { credentials: creds });
    assert.equal(auth.error, "ERR_AUTH");
    assert.equal(auth.sent, "00 5d 00 00 00 00 00 00");
  });
});

describe("handshake: HTTP", () => {
  test("CONNECT with early data (a TLS hello sent before the 200)", () => {
    const out = everySplit(enc("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n\x16\x03\x01"));
    assert.deepEqual(out, { sent: "", kind: "connect", protocol: "http-connect", dest: "example.org:443", early: "\x16\x03\x01", head: "", user: undefined });
  });

  test("forward request: rewritten head, body bytes kept as early data", () => {
    const out = everySplit(enc("POST http://127.0.0.1:9/p HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 3\r\nProxy-Connection: keep-alive\r\n\r\nabc"));
    assert.equal(out.kind, "connect");
    assert.equal(out.protocol, "http");
    assert.equal(out.head, "POST /p HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
    assert.equal(out.early, "abc");
  });

  test("Proxy-Authorization: missing → 407, right → user", () => {
    const missing = everySplit(enc("CONNECT h:1 HTTP/1.1\r\n\r\n"), { credentials: creds });
    assert.equal(missing.error, "ERR_AUTH");
    assert.match(hexToText(missing.sent), /^HTTP\/1\.1 407 .*Proxy-Authenticate: Basic/s);
    const ok = run(enc(`CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Basic ${btoa("alice:pw")}\r\n\r\n`), [], { credentials: creds });
    assert.equal(ok.kind, "connect");
    assert.equal(ok.user, "alice");
  });

  test("PAC file, info page, 404 and 405 are served by the proxy itself", () => {
    const pac = everySplit(enc("GET /proxy.pac HTTP/1.1\r\nHost: localhost:3128\r\n\r\n"));
    assert.equal(pac.served, "proxy.pac");
    assert.match(hexToText(pac.sent), /PROXY localhost:3128/);
    const page = run(enc("GET / HTTP/1.1\r\n\r\n"), []);
    assert.equal(page.served, "info page");
    assert.match(hexToText(page.sent), /text\/html[\s\S]*This is svp, a proxy[\s\S]*proxy\.pac/);
    assert.match(hexToText(run(enc("GET /favicon.ico HTTP/1.1\r\n\r\n"), []).sent), /^HTTP\/1\.1 404/);
    assert.match(hexToText(run(enc("POST / HTTP/1.1\r\n\r\n"), []).sent), /^HTTP\/1\.1 405/);
  });

  test("garbage and oversize heads get 400/431", () => {
    assert.match(hexToText(run(enc("HELLO\r\n\r\n"), []).sent), /^HTTP\/1\.1 400 /);
    const big = run(enc("GET http://h/ HTTP/1.1\r\nX: " + "a".repeat(5000)), [], { maxHeadBytes: 4096 });
    assert.equal(big.error, "ERR_TOO_LARGE");
    assert.match(hexToText(big.sent), /^HTTP\/1\.1 431 /);
  });
});

describe("replies", () => {
  test("success and failure replies per protocol come from the one table", () => {
    assert.deepEqual(successReply("socks5"), bytes(5, 0, 0, 1, 0, 0, 0, 0, 0, 0));
    assert.deepEqual(successReply("socks4a"), bytes(0, 0x5a, 0, 0, 0, 0, 0, 0));
    assert.equal(dec(successReply("http-connect")!), "HTTP/1.1 200 Connection Established\r\n\r\n");
    assert.equal(successReply("http"), undefined);
    const dest = { host: "h", port: 1 };
    const cases: [string, number, number, number][] = [
      ["ERR_REFUSED", 5, 0x5b, 502],
      ["ERR_NO_ROUTE", 4, 0x5b, 502],
      ["ERR_NET_UNREACHABLE", 3, 0x5b, 502],
      ["ERR_TIMEOUT", 6, 0x5b, 504],
      ["ERR_NOT_ALLOWED", 2, 0x5b, 403],
    ];
    for (const [code, s5, s4, http] of cases) {
      const err = new SvpError(code as "ERR_REFUSED", "why");
      assert.equal(failureReply("socks5", err, dest)[1], s5, code);
      assert.equal(failureReply("socks4", err, dest)[1], s4, code);
      const text = dec(failureReply("http", err, dest));
      assert.ok(text.startsWith(`HTTP/1.1 ${http} `), code);
      assert.ok(text.endsWith("\r\n\r\ncannot connect to h:1: why\n"), code);
    }
  });
});

function hexToText(h: string): string {
  return h === "" ? "" : String.fromCharCode(...h.split(" ").map((x) => parseInt(x, 16)));
}
