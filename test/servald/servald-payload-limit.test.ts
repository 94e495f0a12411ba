/** servaldPayloadLimit and errnoOf: the frame budget per port pair and crypto mode; errno behind wrapped errors. */

import { test } from "node:test";
import assert from "node:assert/strict";
import { SvpError } from "../../src/errors.ts";
import { errnoOf } from "../../src/servald/errno-of.ts";
import { SERVALD_MTU, servaldPayloadLimit } from "../../src/servald/servald-payload-limit.ts";

test("payload limit: 1150-byte frame minus crypto and packed ports", () => {
  // Same port: one packed field ((port << 1) | 1); 80 << 1 fits 2 bytes.
  assert.equal(servaldPayloadLimit(80, 80), 1150 - 40 - 2);
  // Small ports, different: 1 + 1 bytes.
  assert.equal(servaldPayloadLimit(5, 6), 1150 - 40 - 2);
  assert.equal(servaldPayloadLimit(5, 6, "signed"), 1150 - 64 - 2);
  assert.equal(servaldPayloadLimit(5, 6, "plain"), 1150 - 2);
  // 7000 << 1 takes 2 bytes, 0x80000 takes 3.
  assert.equal(servaldPayloadLimit(7000, 0x80000), 1150 - 40 - 5);
  // The largest ports: 5 bytes each; the MTU is the limit for any ports.
  assert.equal(servaldPayloadLimit(0xffffffff, 0xfffffffe), SERVALD_MTU);
  assert.equal(SERVALD_MTU, 1100);
  assert.ok(servaldPayloadLimit(94, 94) >= 1029, "an MSP packet of 1024 data bytes fits");
});

test("errnoOf: finds the errno through causes, ignores ERR_ codes", () => {
  assert.equal(errnoOf(Object.assign(new Error("x"), { code: "EADDRINUSE" })), "EADDRINUSE");
  const wrapped = new SvpError("ERR_USAGE", "bind failed", { cause: Object.assign(new Error("y"), { code: "EADDRINUSE" }) });
  assert.equal(errnoOf(wrapped), "EADDRINUSE");
  assert.equal(errnoOf(new SvpError("ERR_MESH_DOWN", "no addon")), undefined);
  assert.equal(errnoOf("ECONNREFUSED"), undefined);
  assert.equal(errnoOf(undefined), undefined);
});
