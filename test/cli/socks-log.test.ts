/**
 * `svp socks` log lines a new user reads first: the PAC file and the info page, which svp
 * serves itself, say what was served and its size (not "0 B up, 0 B down"); a mesh name
 * typed in lower case is logged with its SID in upper case, as svp prints SIDs everywhere.
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SvpProcess } from "./entry.ts";

const dir = mkdtempSync(join(tmpdir(), "svp-socks-log-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const SID = "4de3e89c159083acc67d88859c474d184aba9ca7e98cfd41a1f1cacad278d92b";

function curl(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["--silent", "--noproxy", "", "--max-time", "10", ...args], { timeout: 15_000 }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout });
    });
  });
}

for (const log of ["text", "json"] as const) {
  test(`--log ${log}: served pages log their size; mesh names their SID in upper case`, async () => {
    // No mesh backend (none may start): mesh requests fail at once, with a log line.
    const env = { SVP_DISCOVERY_DIR: join(dir, "discovery") };
    const svp = new SvpProcess(["socks", "--listen", "127.0.0.1:0", "--log", log, "--mesh", "embedded", "--no-autostart", "--home", join(dir, `home-${log}`)], { env });
    try {
      const port = Number((await svp.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
      const pac = await curl([`http://127.0.0.1:${port}/proxy.pac`]);
      assert.equal(pac.code, 0);
      assert.equal((await curl([`http://127.0.0.1:${port}/`])).code, 0);
      const mesh = await curl(["-o", "/dev/null", "-w", "%{http_code}", "-x", `http://127.0.0.1:${port}`, `http://www.${SID}.serval/`]);
      assert.equal(mesh.stdout, "503");
      if (log === "text") {
        const served = (await svp.waitFor(/^svp socks: 127\.0\.0\.1:\d+ http: served proxy\.pac \((\d+) B\), \d+ ms$/m))[1];
        // The response: its head, then the PAC file curl received.
        assert.ok(Number(served) > new TextEncoder().encode(pac.stdout).length, `served ${served} B`);
        await svp.waitFor(/^svp socks: 127\.0\.0\.1:\d+ http: served info page \(\d+(\.\d)? (B|KiB)\), \d+ ms$/m);
        await svp.waitFor(new RegExp(`http www\\.${SID.toUpperCase()}\\.serval:80 via mesh: failed \\(ERR_MESH_DOWN\\)`));
        assert.doesNotMatch(svp.stderr, /served [^\n]*0 B up, 0 B down/);
      } else {
        await svp.waitFor(/"dest":"www\.[0-9A-F]{64}\.serval:80"/);
        const records = svp.stderr.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.event === "stream");
        const pacRecord = records.find((r) => r.message === "proxy.pac")!;
        assert.equal(pacRecord.outcome, "served");
        assert.ok((pacRecord.down_bytes as number) > pac.stdout.length, `down_bytes ${String(pacRecord.down_bytes)}: the response with its head`);
        const meshRecord = records.find((r) => r.route === "mesh")!;
        assert.equal(meshRecord.dest, `www.${SID.toUpperCase()}.serval:80`);
      }
      assert.ok(!svp.stderr.includes(SID), "a SID in lower case in the log");
    } finally {
      svp.kill("SIGKILL");
      await svp.stopped();
    }
  });
}
