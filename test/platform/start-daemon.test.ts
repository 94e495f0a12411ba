/**
 * `startDaemon` (src/platform/embedded-node.ts), `svp daemon start` as one call: its settings
 * reach the background `svp daemon run` as flags, and bad settings fail before anything is
 * started. (Starting for real is covered by test/cli/daemon*.test.ts.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isSvpError } from "../../src/errors.ts";
import { daemonRunArgs, startDaemon } from "../../src/platform/embedded-node.ts";

test("daemonRunArgs: every setting a command line can carry, in run's own flags", () => {
  assert.deepEqual(daemonRunArgs({}), []);
  assert.deepEqual(
    daemonRunArgs(
      { port: 4200, peers: ["127.0.0.1:4111", "[::1]:4112"], bind: ["127.0.0.1"], lan: true, discovery: false, helloIntervalMs: 1500, peerTimeoutMs: 6000, linkMtu: 1200 },
      { logFormat: "json", verbose: true },
    ),
    ["--port", "4200", "--peer", "127.0.0.1:4111", "--peer", "[::1]:4112", "--bind", "127.0.0.1", "--lan", "--no-discovery", "--hello-interval", "1500ms", "--peer-timeout", "6000ms", "--link-mtu", "1200", "--verbose", "--log", "json"],
  );
  // Defaults are not spelled out: the background process reads svp.conf and its own defaults.
  assert.deepEqual(daemonRunArgs({ discovery: true, lan: false }), []);
});

test("startDaemon: a bad setting fails with a usage error before any process starts", async () => {
  const home = mkdtempSync(join(tmpdir(), "svp-start-daemon-"));
  try {
    for (const options of [{ peers: ["not an address"] }, { helloIntervalMs: 0 }, { linkMtu: 10 }]) {
      await assert.rejects(
        startDaemon({ ...options, home }),
        (err: unknown) => isSvpError(err, "ERR_USAGE"),
        `rejected: ${JSON.stringify(options)}`,
      );
    }
    assert.equal(existsSync(join(home, "daemon.pid")), false, "no daemon was started");
    assert.ok(!readdirSync(home).includes("daemon.log"), "no background log was opened");
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
