/**
 * `svp connect`'s destination and port arguments: a bad one is a usage error like any bad
 * flag value (one line naming it, exit 2), worded as the README's exit-code table shows.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSvp } from "./entry.ts";
import { connectConfig } from "../../cli/connect.ts";
import { UsageError } from "../../src/errors.ts";

const SID = "AB".repeat(32);

describe("svp connect: bad destination or port", () => {
  for (const [dest, port, message] of [
    ["example.com", "80", '"example.com" is not a mesh name: '],
    [SID, "0", 'invalid MDP port "0": '],
    [SID, "4294967296", 'invalid MDP port "4294967296": '],
    [SID, "a b", 'invalid port or service "a b": '],
    [SID, undefined, `no port for ${SID}: `],
  ] as const) {
    test(`connectConfig: ${dest.slice(0, 12)} ${port}`, () => {
      assert.throws(
        () => connectConfig([dest, ...(port === undefined ? [] : [port])], dest, port),
        (err: unknown) => err instanceof UsageError && err.code === "ERR_USAGE" && err.message.startsWith(message),
      );
    });
  }

  test("the program: one line, the message itself, exit 2 (no 'cannot run connect')", async () => {
    const root = mkdtempSync(join(tmpdir(), "svp-connect-args-"));
    try {
      const env = { SVP_DISCOVERY_DIR: join(root, "discovery"), SVP_MESH: "embedded", SVP_HOME: join(root, "home") };
      const [bad, zero] = await Promise.all([
        runSvp(["connect", "--no-autostart", "example.com", "80"], { env, timeoutMs: 20_000 }),
        runSvp(["connect", "--no-autostart", SID, "0"], { env, timeoutMs: 20_000 }),
      ]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /^svp connect: "example\.com" is not a mesh name: [^\n]* \(see svp connect --help\)\n$/);
      assert.equal(zero.code, 2, zero.stderr);
      assert.match(zero.stderr, /^svp connect: invalid MDP port "0": [^\n]*\n$/);
      assert.equal(bad.stdout + zero.stdout, "");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
