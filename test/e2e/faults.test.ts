/**
 * Faults mid-stream with real processes (embedded nodes as `svp daemon`s on loopback):
 * - `kill -9` of an `svp connect`: its daemon sees the local API connection drop and stops
 *   the MSP stream on its behalf, so the remote `svp listen` fails with a reset at once,
 *   not after MSP's 10 s of silence;
 * - the remote node dies (`kill -9` of its daemon): `svp connect` fails after MSP's 10 s
 *   and exits 1, "the stream failed after it was established" (README), not 5.
 * Both run at the same time to keep the suite short; every wait is bounded.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { svpCommand } from "../cli/entry.ts";
import { MeshLab, type Node } from "./harness.ts";

let lab: MeshLab;
let a: Node;
let b: Node;
let c: Node;

before(async () => {
  lab = new MeshLab();
  [a, b, c] = await Promise.all([lab.startNode("a"), lab.startNode("b"), lab.startNode("c")]);
  await Promise.all([lab.waitPeer(a, b.sid), lab.waitPeer(a, c.sid)]);
});
after(() => lab.close());

/** `svp connect` on node A to `sid`:`port`, fed a line every 50 ms until it exits (bounded by its lifetime). */
function feedingConnect(sid: string, port: number): { child: ChildProcess; exit: Promise<{ code: number | null; signal: string | null; stderr: string }> } {
  const [cmd, ...pre] = svpCommand();
  const child = spawn(cmd!, [...pre, "connect", "--home", a.home, sid, String(port)], { env: { ...process.env, ...lab.env }, stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
  child.stdin!.on("error", () => {});
  let n = 0;
  const feeder = setInterval(() => child.stdin!.writable && child.stdin!.write(`line ${++n}\n`), 50);
  const killer = setTimeout(() => child.kill("SIGKILL"), 40_000);
  const exit = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    child.on("close", (code, signal) => {
      clearInterval(feeder);
      clearTimeout(killer);
      resolve({ code, signal, stderr });
    }),
  );
  return { child, exit };
}

async function waitFor(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("faults mid-stream", () => {
  test("kill -9 of svp connect: the remote listener sees STOP at once; a dead peer makes svp connect exit 1", async () => {
    // 1. B listens (one connection on stdin/stdout); A's connect is killed mid-stream.
    const listenB = lab.spawn(["listen", "--home", b.home, "9000"]);
    // 2. C listens; C's whole node dies mid-stream.
    const listenC = lab.spawn(["listen", "--home", c.home, "9001"]);
    await Promise.all([listenB.waitFor(/listening on/), listenC.waitFor(/listening on/)]);
    const toB = feedingConnect(b.sid, 9000);
    const toC = feedingConnect(c.sid, 9001);
    await waitFor(() => listenB.stdout.includes("line 3\n") && listenC.stdout.includes("line 3\n"), "data flowing on both streams");

    const killedAt = Date.now();
    // (process.kill, not child.kill: Deno's child.kill does not deliver SIGKILL as such.)
    process.kill(toB.child.pid!, "SIGKILL");
    const cPid = Number(readFileSync(join(c.home, "daemon.pid"), "utf8").trim());
    process.kill(cPid, "SIGKILL");

    const b1 = await listenB.stopped(9000);
    const resetAfter = Date.now() - killedAt;
    assert.equal(b1.code, 1, listenB.stderr);
    assert.match(listenB.stderr, /reset/i, "the stream was reset (MSP STOP), ");
    assert.doesNotMatch(listenB.stderr, /no packet from the peer|timed out/);
    assert.ok(resetAfter < 5000, `STOP came at once (${resetAfter} ms), not after MSP's 10 s`);
    assert.equal((await toB.exit).signal, "SIGKILL");

    const r = await toC.exit;
    assert.equal(r.code, 1, `a stream that failed after it was established exits 1: ${r.stderr}`);
    assert.match(r.stderr, /svp connect: connection to .* failed: no packet from the peer for 10 s/);
    lab.nodes.delete("c"); // its daemon is gone; close() need not stop it
    listenC.kill("SIGKILL");
  });
});
