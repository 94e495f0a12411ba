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
import { connectConfig, establishedFailureExit } from "../../cli/connect.ts";
import { SvpError, UsageError } from "../../src/errors.ts";
import { readCommandLine } from "../../cli/command-line.ts";
import { commandSpec } from "../../cli/command-spec.ts";
import { buildCli } from "../../cli/main.ts";

const line = (argv: string[]) => readCommandLine(commandSpec(buildCli()), argv);

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
        () => connectConfig(line(["connect", dest, ...(port === undefined ? [] : [port])])),
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

describe("svp connect --forward: who may use it", () => {
  test("--forward unix:/path is an owner-only unix socket listener (the way out of loopback TCP, which every local user can reach)", () => {
    const cfg = connectConfig(line(["connect", "--forward", "unix:/run/user/1000/web.sock", SID, "80"]));
    assert.deepEqual(cfg.forward, { kind: "unix", path: "/run/user/1000/web.sock" });
    assert.throws(() => connectConfig(line(["connect", "--forward", "unix:web.sock", SID, "80"])), (e: unknown) => e instanceof UsageError && /unix socket path must be absolute/.test(e.message));
  });

  test("--auth is refused with the reason and the ways out (a raw TCP forward has no place for credentials)", () => {
    for (const argv of [["--auth", "u:p", "--forward", "8080", SID, "80"], ["--auth=u:p", SID, "80"]]) {
      assert.throws(
        () => connectConfig(line(["connect", ...argv])),
        (e: unknown) => e instanceof UsageError && /^--auth: svp connect --forward carries raw TCP, which has no place for credentials/.test(e.message) && /--forward unix:\/path/.test(e.message) && /svp socks --auth/.test(e.message),
      );
    }
  });
});

describe("svp connect: exit code of a stream that failed after it was established", () => {
  test("1 for a peer that fell silent (it died mid-stream) or a reset; 5 only for -i's idle timeout; 6 when the backend went away", () => {
    assert.equal(establishedFailureExit(new SvpError("ERR_TIMEOUT", "no packet from the peer for 10 s"), false), 1);
    assert.equal(establishedFailureExit(new SvpError("ERR_TIMEOUT", "idle stream: no data for 2s"), true), 5);
    assert.equal(establishedFailureExit(new SvpError("ERR_RESET", "connection reset by the peer (MSP STOP)"), false), 1);
    assert.equal(establishedFailureExit(new SvpError("ERR_MESH_DOWN", "servald went away"), false), 6);
  });
});
