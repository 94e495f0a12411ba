/**
 * ensureDaemon / connectEmbedded as other commands use them: auto-start of a real
 * background daemon (a child process) with a note, --no-autostart's ERR_MESH_DOWN, reuse
 * of a running daemon, and stopDaemon.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daemonState, ensureDaemon, stopDaemon } from "../../src/platform/daemon-control.ts";
import { connectEmbedded } from "../../src/platform/embedded-node.ts";
import { isSvpError, EXIT, ERROR_TABLE } from "../../src/errors.ts";
import { sidEquals } from "../../src/mesh/sid.ts";
import { svpCommand } from "./entry.ts";
import { spawn } from "node:child_process";
import { within } from "../helpers/wait.ts";

let root: string;
const saved = process.env.SVP_DISCOVERY_DIR;

before(() => {
  root = mkdtempSync(join(tmpdir(), "svp-autostart-"));
  process.env.SVP_DISCOVERY_DIR = join(root, "discovery");
});
after(async () => {
  await stopDaemon(join(root, "home"));
  if (saved === undefined) delete process.env.SVP_DISCOVERY_DIR;
  else process.env.SVP_DISCOVERY_DIR = saved;
  rmSync(root, { recursive: true, force: true });
});

describe("ensureDaemon / connectEmbedded", () => {
  test("no auto-start: a clear ERR_MESH_DOWN (exit 6); auto-start: a note, then the running daemon is reused", async () => {
    const home = join(root, "home");
    const [cmd, ...args] = svpCommand();
    const command = { command: cmd!, args };
    await assert.rejects(ensureDaemon(home, { autostart: false }), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && /no svp daemon is running/.test(e.message) && /--no-autostart/.test(e.message));
    assert.equal(ERROR_TABLE.ERR_MESH_DOWN.exit, EXIT.MESH_DOWN);
    const notes: string[] = [];
    const first = await ensureDaemon(home, { command, onNote: (m) => notes.push(m) });
    assert.equal(first.started, true);
    assert.equal(notes.length, 1);
    assert.match(notes[0]!, new RegExp(`started the mesh daemon \\(pid ${first.pid}, SID [0-9A-F]{64}\\)`));
    const second = await ensureDaemon(home, { command, onNote: (m) => notes.push(m) });
    assert.equal(second.started, false);
    assert.equal(second.pid, first.pid);
    assert.equal(notes.length, 1, "no note when it already runs");
    const t = await connectEmbedded({ home, name: "test client", autostart: false });
    try {
      assert.equal(t.kind, "embedded");
      assert.equal(t.mtu, 1160);
      assert.ok(sidEquals(t.localSid, first.sid));
      const s = await t.bind(42);
      const st = await t.status();
      assert.deepEqual(st.ports.map((p) => [p.port, p.client, p.pid]), [[42, "test client", process.pid]]);
      s.close();
    } finally {
      t.close();
    }
    // A client process killed with SIGKILL: its ports are released.
    const deno = (globalThis as { Deno?: unknown }).Deno !== undefined;
    const helper = join(process.cwd(), "test", "cli", "bind-client.ts"); // tests run from the repository root
    const child = spawn(process.execPath, deno ? ["run", "-A", helper, "77"] : ["--import", "tsx", helper, "77"], { env: { ...process.env, SVP_HOME: home }, stdio: ["ignore", "pipe", "inherit"] });
    try {
      await within(new Promise<void>((r) => child.stdout!.on("data", (d: Uint8Array) => new TextDecoder().decode(d).includes("bound") && r())), 20_000, "helper bound");
      const probe = await connectEmbedded({ home, autostart: false });
      try {
        assert.deepEqual((await probe.status()).ports.map((p) => [p.port, p.client]), [[77, "bind-client"]]);
        child.kill("SIGKILL");
        const end = Date.now() + 10_000;
        while ((await probe.status()).ports.length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual((await probe.status()).ports, []);
      } finally {
        probe.close();
      }
    } finally {
      child.kill("SIGKILL");
    }
    const stopped = await stopDaemon(home);
    assert.equal(stopped.wasRunning, true);
    assert.equal(stopped.pid, first.pid);
    assert.equal((await daemonState(home)).running, false);
  });
});
