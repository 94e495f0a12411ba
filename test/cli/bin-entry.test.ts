/**
 * cli/bin.ts, the entry of the bundle and the binary, run from source: it runs the command
 * (it used to load cli/main.ts, run nothing and exit 0, because main.ts only runs itself
 * when it is the entry file), under Node through tsx and under Deno.
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const NODE = /(^|[\\/])node(\.exe)?$/.test(process.execPath) ? process.execPath : "node";
const home = mkdtempSync(join(tmpdir(), "svp-bin-entry-"));
after(() => rmSync(home, { recursive: true, force: true }));

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", SVP_MESH: "embedded" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test("node --import tsx cli/bin.ts id prints the SID (upper case) and exits 0", async () => {
  const r = await run(NODE, ["--import", "tsx", "cli/bin.ts", "id", "--home", home]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[0-9A-F]{64}\n$/);
  const again = await run(NODE, ["--import", "tsx", "cli/bin.ts", "id", "--base32", "--home", home]);
  assert.match(again.stdout, /^[a-z2-7]{52}\n$/);
});

test("deno run -A cli/bin.ts status says no daemon runs and exits 1", async () => {
  const r = await run(join(ROOT, "node_modules", ".bin", "deno"), ["run", "-A", "cli/bin.ts", "status", "--home", home]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /^svp status: no svp daemon is running for /m);
  assert.equal(r.stdout, "");
});
