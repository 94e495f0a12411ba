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
import { commandArgs, rawPositionals } from "../../cli/flags.ts";
import { connectConfig } from "../../cli/connect.ts";
import { listenConfig } from "../../cli/listen.ts";

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

describe("positional arguments as typed", () => {
  const DIGITS = "0".repeat(63) + "1";
  test("rawPositionals skips flag values and keeps all-digit arguments as strings", () => {
    assert.deepEqual(rawPositionals(["--sid", SID, SID, "7000"], ["sid"]), [SID, "7000"]);
    assert.deepEqual(rawPositionals(["--once", DIGITS, "080", "-w", "5s"], ["w"]), [DIGITS, "080"]);
    assert.deepEqual(rawPositionals(["--forward=8080", "x", "--", "-y"], ["forward"]), ["x", "-y"]);
  });

  test("svp connect --sid X X PORT: the destination is not confused with the --sid value", async () => {
    const h = join(root, "h-sid");
    const r = await runSvp(["connect", "--home", h, "--no-autostart", "--sid", SID, SID, "7000"], { env, timeoutMs: 20_000 });
    assert.equal(r.code, 6, `gets as far as opening the mesh (exit 6, no daemon), got ${r.code}: ${r.stderr}`);
  });

  test("a negative value is that flag's bad value, not an unknown option", async () => {
    const [socks, wait] = await Promise.all([
      runSvp(["socks", "--max-conns", "-1"], { env, timeoutMs: 20_000 }),
      runSvp(["connect", "-w", "-5", SID, "80"], { env, timeoutMs: 20_000 }),
    ]);
    assert.equal(socks.code, 2, socks.stderr);
    assert.match(socks.stderr, /^svp socks: invalid --max-conns "-1": /);
    assert.equal(wait.code, 2, wait.stderr);
    assert.match(wait.stderr, /^svp connect: invalid --wait "-5": /);
  });

  test("an all-digit SID stays 64 digits, and a port like 080 is read as typed", () => {
    const cfg = connectConfig(["--forward", "0", "--once", DIGITS, "80"], DIGITS, "80");
    assert.equal(cfg.target.port, 80);
    assert.equal(listenConfig(["--forward", "8000", "080"], "080").port, 80);
  });
});
