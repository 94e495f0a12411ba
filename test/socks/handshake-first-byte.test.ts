/**
 * A first byte that is neither SOCKS (0x04, 0x05) nor the start of an HTTP method (a token
 * character) closes the connection at once — a TLS ClientHello or binary noise used to
 * wait for an HTTP line end until the handshake timeout (10 s).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Handshake } from "../../src/socks/handshake.ts";

const hs = () => new Handshake({ proxyAddress: "127.0.0.1:1080" });

describe("first byte", () => {
  for (const [name, bytes] of [
    ["TLS ClientHello", [0x16, 0x03, 0x01, 0x00, 0x05]],
    ["NUL", [0x00]],
    ["space", [0x20, 0x47, 0x45, 0x54]],
    ["0xff", [0xff, 0xff]],
    ["CR LF", [0x0d, 0x0a]],
  ] as const) {
    test(`${name}: closed at once with a protocol error`, () => {
      const step = hs().push(Uint8Array.from(bytes));
      assert.equal(step.kind, "close");
      assert.equal(step.kind === "close" ? step.error?.code : undefined, "ERR_PROTOCOL");
      assert.equal(step.kind === "close" ? step.send : "x", undefined, "nothing is sent to a client that speaks neither protocol");
    });
  }
  for (const method of ["GET", "CONNECT", "get", "M-SEARCH"]) {
    test(`"${method} …" is still read as HTTP`, () => {
      assert.equal(hs().push(new TextEncoder().encode(`${method} `)).kind, "more");
    });
  }
});
