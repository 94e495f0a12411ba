import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isLoopbackAddress, parseListenAddress } from "../src/options.ts";

describe("isLoopbackAddress", () => {
  const loopback = (text: string) => isLoopbackAddress(parseListenAddress(text));

  test("loopback in every spelling", () => {
    for (const a of ["127.0.0.1:1080", "127.3.2.1:0", "localhost:80", "[::1]:0", "[0:0:0:0:0:0:0:1]:0", "[0000::0001]:0", "[::ffff:127.0.0.1]:0", "[::FFFF:127.9.8.7]:0", "unix:/tmp/x.sock"]) {
      assert.equal(loopback(a), true, a);
    }
  });

  test("anything else is not", () => {
    for (const a of ["0.0.0.0:1080", "[::]:0", "192.0.2.1:80", "[2001:db8::1]:0", "[::ffff:192.0.2.1]:0", "[::2]:0", "128.0.0.1:1"]) {
      assert.equal(loopback(a), false, a);
    }
  });
});
