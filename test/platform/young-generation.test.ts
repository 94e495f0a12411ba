/**
 * The CLI's young-generation pin (src/platform/young-generation.ts) survives the worker
 * threads of several event loops: starting a worker resets V8's flags, and without the pin
 * coming back both isolates grew 2 × 16 MiB semi-spaces (the soak's creeping RSS).
 * Each case runs in a child process, as V8's flags are process-wide.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const CHILD = fileURLToPath(new URL("./young-generation-child.ts", import.meta.url));
const isDeno = "Deno" in globalThis;

function run(mode: "pin" | "default"): { loops: number; beforeMiB: number; newSpaceMiB: number } {
  const cmd = isDeno ? [process.execPath, "run", "-A", CHILD, mode] : [process.execPath, "--import", "tsx", CHILD, mode];
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as { loops: number; beforeMiB: number; newSpaceMiB: number };
}

test("the pin holds in a process with two event loops; unpinned, the same load grows the young generation", { skip: isDeno ? "Deno: its V8 flags and worker start-up differ; the pin is best effort there" : false }, () => {
  const unpinned = run("default");
  assert.equal(unpinned.loops, 2, "the proxy ran a worker thread");
  assert.ok(unpinned.newSpaceMiB >= 16 && unpinned.newSpaceMiB > unpinned.beforeMiB, `the load grows an unpinned young generation (${unpinned.beforeMiB} → ${unpinned.newSpaceMiB} MiB), so the pinned case means something`);
  // (Start-up, before the pin and while the worker starts, may grow it a step or two on a
  // busy machine; what matters is that the load after that does not.)
  const pinned = run("pin");
  assert.equal(pinned.loops, 2);
  assert.ok(pinned.newSpaceMiB <= pinned.beforeMiB && pinned.newSpaceMiB < 16, `pinned, the young generation does not grow under the load once the worker runs (${pinned.beforeMiB} → ${pinned.newSpaceMiB} MiB)`);
});
