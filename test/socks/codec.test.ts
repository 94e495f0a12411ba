import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isSvpError } from "../../src/errors.ts";
import type { Decoded } from "../../src/socks/socks5-codec.ts";
import {
  SOCKS5,
  decodeGreeting,
  decodeMethodSelection,
  decodeReply,
  decodeRequest,
  decodeUserPass,
  decodeUserPassReply,
  encodeGreeting,
  encodeMethodSelection,
  encodeReply,
  encodeRequest,
  encodeUserPass,
  encodeUserPassReply,
} from "../../src/socks/socks5-codec.ts";
import { SOCKS4, decodeSocks4Request, encodeSocks4Reply } from "../../src/socks/socks4-codec.ts";
import { formatIpv6, parseIpv4, parseIpv6 } from "../../src/socks/ip.ts";
import { makeDestination } from "../../src/socks/destination.ts";

const bytes = (...xs: (number | string | Uint8Array)[]) => {
  const out: number[] = [];
  for (const x of xs) {
    if (typeof x === "number") out.push(x);
    else if (typeof x === "string") for (const c of x) out.push(c.charCodeAt(0));
    else out.push(...x);
  }
  return Uint8Array.from(out);
};

/** Every proper prefix is "need more"; the whole message decodes to `expected` with its exact size; trailing bytes are left alone. */
function checkIncremental<T>(decode: (b: Uint8Array) => Decoded<T>, msg: Uint8Array, expected: T): void {
  for (let i = 0; i < msg.length; i++) assert.equal(decode(msg.subarray(0, i)), undefined, `prefix of ${i} bytes decoded`);
  const whole = decode(msg);
  assert.ok(whole, "the whole message did not decode");
  assert.equal(whole.size, msg.length);
  assert.deepEqual(whole.value, expected);
  const withTail = decode(bytes(msg, 0xde, 0xad));
  assert.ok(withTail, "the message with trailing bytes did not decode");
  assert.equal(withTail.size, msg.length, "trailing bytes were consumed");
}

describe("SOCKS5 codec", () => {
  test("greeting: whole, every prefix, round trip", () => {
    const msg = encodeGreeting([0, 2]);
    assert.deepEqual(msg, bytes(5, 2, 0, 2));
    checkIncremental(decodeGreeting, msg, { methods: [0, 2] });
    checkIncremental(decodeGreeting, bytes(5, 255, new Uint8Array(255).fill(7)), { methods: new Array(255).fill(7) });
  });

  test("greeting: wrong version and zero methods are protocol errors", () => {
    assert.throws(() => decodeGreeting(bytes(4, 1, 0)), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
    assert.throws(() => decodeGreeting(bytes(5, 0)), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
  });

  test("method selection and user/pass sub-negotiation", () => {
    assert.deepEqual(encodeMethodSelection(0xff), bytes(5, 0xff));
    checkIncremental(decodeMethodSelection, encodeMethodSelection(2), 2);
    const up = encodeUserPass(bytes("alice"), bytes("s3cret"));
    assert.deepEqual(up, bytes(1, 5, "alice", 6, "s3cret"));
    checkIncremental(decodeUserPass, up, { user: bytes("alice"), pass: bytes("s3cret") });
    checkIncremental(decodeUserPass, bytes(1, 0, 0), { user: bytes(), pass: bytes() });
    assert.throws(() => decodeUserPass(bytes(5, 1, "a", 1, "b")), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
    assert.throws(() => encodeUserPass(new Uint8Array(256), bytes("x")), (e: unknown) => isSvpError(e));
    checkIncremental(decodeUserPassReply, encodeUserPassReply(true), true);
    checkIncremental(decodeUserPassReply, encodeUserPassReply(false), false);
  });

  test("request with IPv4, IPv6 and domain addresses", () => {
    checkIncremental(decodeRequest, bytes(5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90), { command: 1, atyp: 1, host: "127.0.0.1", port: 8080 });
    checkIncremental(decodeRequest, bytes(5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80), { command: 1, atyp: 4, host: "::1", port: 80 });
    checkIncremental(decodeRequest, bytes(5, 1, 0, 3, 11, "example.org", 1, 187), { command: 1, atyp: 3, host: "example.org", port: 443 });
    checkIncremental(decodeRequest, bytes(5, 2, 0, 3, 0, 0, 80), { command: 2, atyp: 3, host: "", port: 80 });
    const long = "a".repeat(255);
    checkIncremental(decodeRequest, bytes(5, 1, 0, 3, 255, long, 0, 1), { command: 1, atyp: 3, host: long, port: 1 });
  });

  test("request: unknown address type fails as soon as it is seen; wrong version fails", () => {
    assert.equal(decodeRequest(bytes(5, 1, 0)), undefined);
    assert.throws(() => decodeRequest(bytes(5, 1, 0, 9)), (e: unknown) => isSvpError(e, "ERR_ADDRESS_TYPE"));
    assert.throws(() => decodeRequest(bytes(4, 1, 0, 1, 1, 2, 3, 4, 0, 80)), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
  });

  test("encodeRequest/decodeReply round trips for each address form", () => {
    for (const [host, atyp] of [["10.1.2.3", 1], ["2001:db8::1", 4], ["node.example", 3]] as const) {
      const msg = encodeRequest(SOCKS5.CMD_CONNECT, host, 4242);
      checkIncremental(decodeRequest, msg, { command: 1, atyp, host, port: 4242 });
    }
    checkIncremental(decodeReply, encodeReply(5), { command: 5, atyp: 1, host: "0.0.0.0", port: 0 });
    checkIncremental(decodeReply, encodeReply(0, { host: "::1", port: 9 }), { command: 0, atyp: 4, host: "::1", port: 9 });
  });

  test("garbage never crashes a decoder (only SvpErrors or need-more)", () => {
    let x = 12345;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let n = 0; n < 2000; n++) {
      const len = rnd() % 40;
      const b = new Uint8Array(len);
      for (let i = 0; i < len; i++) b[i] = rnd();
      if (n % 2 === 0 && len > 0) b[0] = 5;
      for (const d of [decodeGreeting, decodeUserPass, decodeRequest, decodeReply, decodeSocks4Request] as ((b: Uint8Array) => unknown)[]) {
        try {
          d(b);
        } catch (e) {
          assert.ok(isSvpError(e), `non-SvpError thrown: ${String(e)}`);
        }
      }
    }
  });
});

describe("SOCKS4/4a codec", () => {
  test("SOCKS4 request: whole and every prefix", () => {
    checkIncremental(decodeSocks4Request, bytes(4, 1, 0, 80, 127, 0, 0, 1, "bob", 0), { command: 1, port: 80, host: "127.0.0.1", is4a: false, user: bytes("bob") });
  });

  test("SOCKS4a request carries the host name", () => {
    checkIncremental(decodeSocks4Request, bytes(4, 1, 1, 187, 0, 0, 0, 9, 0, "host.example", 0), { command: 1, port: 443, host: "host.example", is4a: true, user: bytes() });
    checkIncremental(decodeSocks4Request, bytes(4, 1, 0, 80, 0, 0, 0, 1, "u", 0, 0), { command: 1, port: 80, host: "", is4a: true, user: bytes("u") });
  });

  test("oversize user id or host name is refused, not buffered forever", () => {
    assert.throws(() => decodeSocks4Request(bytes(4, 1, 0, 80, 1, 2, 3, 4, "x".repeat(300))), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
    assert.equal(decodeSocks4Request(bytes(4, 1, 0, 80, 1, 2, 3, 4, "x".repeat(255))), undefined);
    assert.throws(() => decodeSocks4Request(bytes(4, 1, 0, 80, 0, 0, 0, 1, 0, "h".repeat(256))), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
    assert.throws(() => decodeSocks4Request(bytes(5, 1)), (e: unknown) => isSvpError(e, "ERR_PROTOCOL"));
  });

  test("reply", () => {
    assert.deepEqual(encodeSocks4Reply(SOCKS4.GRANTED), bytes(0, 0x5a, 0, 0, 0, 0, 0, 0));
  });
});

describe("IP literals and destinations", () => {
  test("IPv4/IPv6 parse and canonical format", () => {
    assert.deepEqual(parseIpv4("192.168.0.1"), bytes(192, 168, 0, 1));
    for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "1.2.3.4.5", "a.b.c.d", ""]) assert.equal(parseIpv4(bad), undefined, bad);
    const cases: [string, string][] = [
      ["::1", "::1"],
      ["::", "::"],
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["::ffff:127.0.0.1", "::ffff:7f00:1"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"],
    ];
    for (const [text, canon] of cases) {
      const b = parseIpv6(text);
      assert.ok(b, text);
      assert.equal(formatIpv6(b), canon, text);
    }
    for (const bad of ["1:2:3:4:5:6:7", "1::2::3", "12345::", "g::1", "1:2:3:4:5:6:7:8:9", "localhost"]) assert.equal(parseIpv6(bad), undefined, bad);
  });

  test("destinations that would reach this host by accident are refused", () => {
    for (const [host, port] of [["", 80], ["0.0.0.0", 80], ["::", 80], ["[::]", 80], ["::ffff:0.0.0.0", 80], ["[::FFFF:0:0]", 80], ["0", 80], ["127.1", 80], ["0x7f.0.0.1", 80], ["example.org", 0], ["bad host", 80], ["a\x00b", 80], ["[example.org]", 80], ["..", 80], ["x".repeat(256), 80]] as const) {
      assert.throws(() => makeDestination(host, port), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"), JSON.stringify(host));
    }
    // The message goes into log lines: a client's control bytes come out escaped.
    assert.throws(() => makeDestination("\x1b[31mx", 0), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS") && !/[\x00-\x1f]/.test(e.message));
  });

  test("ordinary and mesh destinations", () => {
    assert.deepEqual(makeDestination("Example.ORG", 80), { host: "example.org", port: 80 });
    assert.deepEqual(makeDestination("[::1]", 22), { host: "::1", port: 22 });
    assert.deepEqual(makeDestination("127.0.0.1", 1), { host: "127.0.0.1", port: 1 });
    const sid = "ab".repeat(32);
    assert.equal(makeDestination(sid, 80).mesh?.kind, "node");
    assert.equal(makeDestination(`chat.svc.serval`, 80).mesh?.kind, "service");
    assert.throws(() => makeDestination("nope.serval", 80), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS"));
  });
});
