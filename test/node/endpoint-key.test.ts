import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { endpointKey, isLoopbackHost } from "../../src/node/endpoint-key.ts";

describe("endpoint keys", () => {
  test("host:port, IPv6 in brackets", () => {
    assert.equal(endpointKey({ host: "127.0.0.1", port: 4110 }), "127.0.0.1:4110");
    assert.equal(endpointKey({ host: "fe80::1", port: 9 }), "[fe80::1]:9");
  });

  test("loopback: 127/8, ::1 and IPv4-mapped 127/8 only", () => {
    for (const h of ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1", "::FFFF:127.1.1.1"]) assert.ok(isLoopbackHost(h), h);
    for (const h of ["10.0.0.1", "::2", "::ffff:10.0.0.1", "1127.0.0.1", "0.0.0.0"]) assert.ok(!isLoopbackHost(h), h);
  });
});
