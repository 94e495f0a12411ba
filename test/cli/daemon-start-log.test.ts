/**
 * A daemon that fails during `svp daemon start` (or auto-start): the error shows what this
 * start wrote to daemon.log, not the log of every earlier run of the instance.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSvp } from "./entry.ts";

let root: string;
let env: Record<string, string>;

before(() => {
  root = mkdtempSync(join(tmpdir(), "svp-cli-startlog-"));
  env = { SVP_DISCOVERY_DIR: join(root, "discovery"), SVP_MESH: "embedded" };
});

after(() => rmSync(root, { recursive: true, force: true }));

describe("svp daemon start that fails", () => {
  test("reports this start's log lines only", async () => {
    const h = join(root, "h");
    const made = await runSvp(["id", "--home", h], { env });
    assert.equal(made.code, 0, made.stderr);
    writeFileSync(join(h, "daemon.log"), "svp daemon: OLD LINE from an earlier run\n".repeat(3), { mode: 0o600 });
    chmodSync(join(h, "keyring.json"), 0o644);
    const r = await runSvp(["daemon", "start", "--home", h], { env, timeoutMs: 20_000 });
    // The daemon's own exit code and reason come through: 7 (not allowed), as `svp daemon run` and `svp id` say.
    assert.equal(r.code, 7, `the start fails with the daemon's exit code: ${r.stderr}`);
    assert.match(r.stderr, /mode 0644/, `the reason is shown: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
    assert.match(r.stderr, /^svp daemon: cannot start the daemon: the daemon exited during start-up \(exit code 7\): keyring /, r.stderr);
    assert.ok(!r.stderr.includes("OLD LINE"), `earlier runs' log lines are not shown: ${r.stderr}`);
  });
});
