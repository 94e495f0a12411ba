import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isSvpError } from "../../src/errors.ts";
import { HttpHeadReader, getHeader, parseRequestHead, parseResponseHead } from "../../src/socks/http-head.ts";
import { RequestBodyLimit, ResponseHeadRewriter, basicCredentials, classifyRequest, parseAuthority, requestBodyLength } from "../../src/socks/http-proxy.ts";
import { pacScript } from "../../src/socks/pac.ts";
import { concat } from "../helpers/wait.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Feed `msg` to a fresh reader in pieces cut at `cuts`; return the first completed result. */
function readSplit(msg: Uint8Array, cuts: number[], max?: number) {
  const r = new HttpHeadReader(max);
  let from = 0;
  for (const cut of [...cuts, msg.length]) {
    const got = r.push(msg.subarray(from, cut));
    from = cut;
    if (got) return { got, consumedUpTo: cut };
  }
  return undefined;
}

describe("HTTP head reader", () => {
  const head = "POST http://example.org/x HTTP/1.1\r\nHost: example.org\r\nContent-Length: 5\r\n\r\n";
  const msg = enc(head + "hello");

  test("finds the head whole, split at every offset, and byte by byte; the body is left over intact", () => {
    for (let i = 0; i <= msg.length; i++) {
      const res = readSplit(msg, i === 0 || i === msg.length ? [] : [i]);
      assert.ok(res, `split at ${i}`);
      assert.equal(dec(res.got.head), head, `split at ${i}`);
      const rest = concat([res.got.rest, msg.subarray(res.consumedUpTo)]);
      assert.equal(dec(rest), "hello", `split at ${i}`);
    }
    const r = new HttpHeadReader();
    let got;
    let at = 0;
    for (; at < msg.length && !got; at++) got = r.push(msg.subarray(at, at + 1));
    assert.ok(got, "head not found byte by byte");
    assert.equal(dec(got.head), head);
    assert.equal(at, head.length);
  });

  test("bare LF line endings are accepted", () => {
    const res = readSplit(enc("GET / HTTP/1.0\nHost: x\n\nrest"), [3]);
    assert.ok(res, "LF-only head not found");
    assert.equal(dec(res.got.rest), "rest");
    assert.equal(getHeader(parseRequestHead(res.got.head).headers, "HOST"), "x");
  });

  test("oversize heads are refused (431), whole or trickled", () => {
    const big = enc("GET / HTTP/1.1\r\nX: " + "a".repeat(2000) + "\r\n\r\n");
    assert.throws(() => new HttpHeadReader(1024).push(big), (e: unknown) => isSvpError(e, "ERR_TOO_LARGE"));
    const r = new HttpHeadReader(1024);
    assert.throws(() => {
      for (let i = 0; i < big.length; i += 100) r.push(big.subarray(i, i + 100));
    }, (e: unknown) => isSvpError(e, "ERR_TOO_LARGE"));
  });

  test("request line and header parsing; malformed input is a protocol error", () => {
    const h = parseRequestHead(enc("\r\nGET /a?b HTTP/1.1\r\nHost: h\r\nX-A:  v  \r\n\r\n"));
    assert.deepEqual(h, { method: "GET", target: "/a?b", version: "HTTP/1.1", headers: [["Host", "h"], ["X-A", "v"]] });
    for (const bad of ["GET /\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nNoColon\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "\x16\x03\x01 garbage\r\n\r\n"]) {
      assert.throws(() => parseRequestHead(enc(bad)), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"), JSON.stringify(bad));
    }
    assert.equal(parseResponseHead(enc("HTTP/1.1 204\r\n\r\n")).status, 204);
  });

  test("error messages quote client bytes with control characters escaped (they go into log lines)", () => {
    const heads = ["GET http://x/ HTTP/1.1\r\n\x1b[31mfake\x07\r\n\r\n", "GET http://x/ HTTP/1.1\rfake\r\n\r\n", "GET http://x/ HTTP/1.1\r\nA\x1b: b\r\n\r\n", "GET http://x/ HTTP/1.1\r\nA: b\r\n \x1b[2J\r\n\r\n"];
    for (const head of heads) {
      assert.throws(() => parseRequestHead(enc(head)), (e: unknown) => isSvpError(e, "ERR_PROTOCOL") && !/[\x00-\x1f\x7f-\xff]/.test(e.message), JSON.stringify(head));
    }
    assert.throws(() => parseResponseHead(enc("HTTP/1.1 2\x1b[0m00 OK\r\n\r\n")), (e: unknown) => isSvpError(e, "ERR_PROTOCOL") && !/[\x00-\x1f\x7f-\xff]/.test(e.message));
    assert.throws(() => classifyRequest(parseRequestHead(enc("GET http://[\x9b31m/ HTTP/1.1\r\n\r\n"))), (e: unknown) => isSvpError(e) && !/[\x00-\x1f\x7f-\xff]/.test(e.message));
  });
});

describe("HTTP proxy requests", () => {
  test("CONNECT needs host:port", () => {
    const r = classifyRequest(parseRequestHead(enc("CONNECT [::1]:443 HTTP/1.1\r\n\r\n")));
    assert.deepEqual(r, { kind: "connect", dest: { host: "::1", port: 443 } });
    assert.throws(() => classifyRequest(parseRequestHead(enc("CONNECT example.org HTTP/1.1\r\n\r\n"))), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
    assert.throws(() => classifyRequest(parseRequestHead(enc("CONNECT :443 HTTP/1.1\r\n\r\n"))), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
  });

  test("absolute-URI requests are rewritten to origin form, one request per connection", () => {
    const head = parseRequestHead(
      enc("POST http://user@Example.org:8080?q=1#frag HTTP/1.1\r\nHost: wrong\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nProxy-Authorization: Basic eDp5\r\nTransfer-Encoding: chunked\r\nX-Keep: yes\r\n\r\n"),
    );
    const r = classifyRequest(head);
    assert.equal(r.kind, "forward");
    if (r.kind !== "forward") return;
    assert.deepEqual(r.dest, { host: "example.org", port: 8080 });
    assert.equal(dec(r.head), "POST /?q=1 HTTP/1.1\r\nHost: Example.org:8080\r\nTransfer-Encoding: chunked\r\nX-Keep: yes\r\nConnection: close\r\n\r\n");
  });

  test("websocket upgrades keep their Upgrade header", () => {
    const r = classifyRequest(parseRequestHead(enc("GET http://h/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")));
    assert.ok(r.kind === "forward", "not a forward request");
    assert.equal(dec(r.head), "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
  });

  test("the request body's length, when the head gives it; bytes past it are dropped and counted at every split", () => {
    const len = (h: string) => requestBodyLength(parseRequestHead(enc(`POST http://h/ HTTP/1.1\r\n${h}\r\n`)));
    assert.equal(len(""), 0);
    assert.equal(len("Content-Length: 12\r\n"), 12);
    assert.equal(len("Content-Length: 5, 5\r\ncontent-length: 5\r\n"), 5);
    assert.equal(len("Content-Length: 5\r\nContent-Length: 6\r\n"), undefined);
    assert.equal(len("Content-Length: -1\r\n"), undefined);
    assert.equal(len("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"), undefined);
    assert.equal(len("Connection: Upgrade\r\nUpgrade: websocket\r\n"), undefined);
    const input = enc("0123456789GET http://other/ HTTP/1.1");
    for (let cut = 0; cut <= input.length; cut++) {
      const limit = new RequestBodyLimit(10);
      const out = [...limit.push(input.subarray(0, cut)), ...limit.push(input.subarray(cut)), ...limit.flush()];
      assert.equal(dec(concat(out)), "0123456789", `cut ${cut}`);
      assert.equal(limit.dropped, input.length - 10);
    }
  });

  test("origin-form requests are for the proxy itself; other schemes are refused", () => {
    assert.deepEqual(classifyRequest(parseRequestHead(enc("GET /proxy.pac HTTP/1.1\r\n\r\n"))), { kind: "local", path: "/proxy.pac" });
    assert.throws(() => classifyRequest(parseRequestHead(enc("GET https://h/ HTTP/1.1\r\n\r\n"))), (e: unknown) => isSvpError(e, "ERR_PROTOCOL") && /CONNECT/.test(e.message));
    assert.throws(() => classifyRequest(parseRequestHead(enc("GET http:///x HTTP/1.1\r\n\r\n"))), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
  });

  test("authority and Basic credentials", () => {
    assert.deepEqual(parseAuthority("h", 80), { host: "h", port: 80 });
    assert.deepEqual(parseAuthority("[::1]:8", 80), { host: "[::1]", port: 8 });
    assert.throws(() => parseAuthority("h:x", 80));
    const creds = basicCredentials([["Proxy-Authorization", `Basic ${btoa("al:ice:pw")}`]]);
    assert.deepEqual(creds, { user: enc("al"), pass: enc("ice:pw") });
    assert.equal(basicCredentials([["Proxy-Authorization", "Basic !!!"]]), undefined);
    assert.equal(basicCredentials([["Proxy-Authorization", "Digest x"]]), undefined);
    assert.equal(basicCredentials([]), undefined);
  });

  test("PAC file sends .serval names and bare SIDs to the proxy, the rest direct", () => {
    const FindProxyForURL = new Function("dnsDomainIs", pacScript("127.0.0.1:1080") + "\nreturn FindProxyForURL;")((h: string, d: string) => h.endsWith(d)) as (u: string, h: string) => string;
    const sid = "AB".repeat(32);
    assert.equal(FindProxyForURL(`http://${sid}/`, sid), "PROXY 127.0.0.1:1080");
    assert.equal(FindProxyForURL("http://x.serval/", "x.serval"), "PROXY 127.0.0.1:1080");
    assert.equal(FindProxyForURL("http://x.SERVAL./", "x.SERVAL."), "PROXY 127.0.0.1:1080");
    assert.equal(FindProxyForURL("http://example.org/", "example.org"), "DIRECT");
    assert.equal(FindProxyForURL("http://servalx.org/", "servalx.org"), "DIRECT");
  });
});

describe("response head rewriter", () => {
  const run = (input: Uint8Array, cuts: number[]) => {
    const rw = new ResponseHeadRewriter();
    const out: Uint8Array[] = [];
    let from = 0;
    for (const cut of [...cuts, input.length]) {
      out.push(...rw.push(input.subarray(from, cut)));
      from = cut;
    }
    out.push(...rw.flush());
    return dec(concat(out));
  };

  test("Connection: close replaces keep-alive, interim 100 passes, body untouched; at every split", () => {
    const input = enc("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: keep-alive, X-H\r\nKeep-Alive: timeout=5\r\nX-H: 1\r\nContent-Length: 4\r\n\r\nbody");
    const expected = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody";
    for (let i = 0; i <= input.length; i++) assert.equal(run(input, [i]), expected, `split at ${i}`);
    const bytewise = Array.from({ length: input.length }, (_, i) => i + 1);
    assert.equal(run(input, bytewise), expected);
  });

  test("a target that sends nothing becomes a 502; one that sends part of a head, that part", () => {
    const empty = new ResponseHeadRewriter("example.com:80");
    const reply = dec(concat(empty.flush()));
    assert.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*cannot get a response from example\.com:80: /);
    assert.equal(empty.emptyReply, true);
    const partial = new ResponseHeadRewriter();
    assert.deepEqual(partial.push(enc("HTTP/1.1 2")), []);
    assert.equal(dec(concat(partial.flush())), "HTTP/1.1 2");
    assert.equal(partial.emptyReply, false);
  });

  test("101 Switching Protocols and non-HTTP answers pass through unchanged", () => {
    const ws = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00";
    assert.equal(run(enc(ws), [10]), ws);
    assert.equal(run(enc("SSH-2.0-x\r\n\r\nmore"), [3]), "SSH-2.0-x\r\n\r\nmore");
    assert.equal(run(enc("partial head without end"), [5]), "partial head without end");
  });
});
