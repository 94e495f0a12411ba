/**
 * Options given before the command name (`svp --home DIR listen 80`): cac matches the
 * command either way, so the command's own flag reading must see them too, never take
 * a flag's value for a positional argument or fall back to the default instance.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSvp } from "./entry.ts";
import { commandArgs } from "../../cli/flags.ts";

const SID = "AB" + "0".repeat(61) + "1";
let root: string;
let env: Record<string, string>;

before(() => {
  root = mkdtempSync(join(tmpdir(), "svp-cli-flags-"));
  env = { SVP_DISCOVERY_DIR: join(root, "discovery"), SVP_MESH: "embedded", SVP_HOME: join(root, "default-home") };
});

after(() => rmSync(root, { recursive: true, force: true }));

describe("commandArgs", () => {
  test("drops the command name wherever it stands, and only it", () => {
    assert.deepEqual(commandArgs(["listen", "--once", "80"], "listen"), ["--once", "80"]);
    assert.deepEqual(commandArgs(["--home", "/h", "listen", "80"], "listen"), ["--home", "/h", "80"]);
    assert.deepEqual(commandArgs(["--quiet", "socks", "--listen", ":0"], "socks"), ["--quiet", "--listen", ":0"]);
  });
});

describe("options before the command name", () => {
  for (const args of [
    (h: string) => ["--home", h, "listen", "--no-autostart", "80"],
    (h: string) => ["--home", h, "connect", "--no-autostart", SID, "80"],
    (h: string) => ["--home", h, "discover", "--no-autostart"],
  ]) {
    const shown = args("DIR").join(" ");
    test(`svp ${shown} uses DIR`, async () => {
      const h = join(root, "h-" + shown.split(" ")[2]);
      const r = await runSvp(args(h), { env, timeoutMs: 20_000 });
      assert.equal(r.code, 6, `exit 6 (no daemon for --home), got ${r.code}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`no svp daemon is running for ${h}`), `the error names the --home directory: ${r.stderr}`);
    });
  }
});
