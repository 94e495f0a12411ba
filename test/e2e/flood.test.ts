/**
 * A forged-packet flood against a real daemon (embedded nodes as `svp daemon`s on
 * loopback; the flood from test/helpers/udp-flooder.ts in its own process, at a rate this
 * test sets): a stream from A to B keeps moving and arrives intact, and B's drop counters
 * (with the kernel's drops on B's socket) account for every forged datagram sent.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MeshLab, type Node } from "./harness.ts";

const FLOOD_RATE = 20_000;
const linux = process.platform === "linux";

let lab: MeshLab;
let a: Node;
let b: Node;

before(async () => {
  if (!linux) return;
  lab = new MeshLab();
  [a, b] = await Promise.all([lab.startNode("a"), lab.startNode("b")]);
  await lab.waitPeer(a, b.sid);
});
after(() => lab?.close());

interface Status {
  drops: Record<string, number>;
  floodGuard?: { underLoad: boolean; kernelFilter: boolean; refused: number; admitted: number };
}

async function status(n: Node): Promise<Status> {
  const r = await lab.run(["status", "--home", n.home, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(new TextDecoder().decode(r.stdout)) as Status;
}

/** What B counted for forged datagrams: refused before crypto, or failed it. */
const counted = (s: Status) => (s.drops.overload ?? 0) + (s.drops.forged ?? 0) + (s.drops.replay ?? 0) + (s.drops["bad-sid"] ?? 0);

/** Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:`port` (receive buffer full). */
function kernelDrops(port: number): number {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const line = readFileSync("/proc/net/udp", "utf8").split("\n").find((l) => l.trim().split(/\s+/)[1] === hex);
  return line ? Number(line.trim().split(/\s+/).at(-1)) : 0;
}

describe("forged-packet flood, real processes", { skip: !linux && "reads /proc/net/udp (Linux)" }, () => {
  test(`at ${FLOOD_RATE} forged datagrams/s: a 4 MiB stream keeps moving and arrives intact; every forgery is counted`, async () => {
    const port = await lab.overlayPort(b);
    const before = await status(b);
    const kernelBefore = kernelDrops(port);
    const flooder = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("../helpers/udp-flooder.ts", import.meta.url)), "--port", String(port), "--victim", b.sid, "--peer", a.sid, "--rate", String(FLOOD_RATE), "--seconds", "60"], { stdio: ["ignore", "pipe", "inherit"] });
    let flooderOut = "";
    flooder.stdout!.on("data", (d: Uint8Array) => (flooderOut += new TextDecoder().decode(d)));
    const flooderExit = new Promise<void>((r) => flooder.on("close", () => r()));
    try {
      // The flood is on when B is refusing it (in the node, or with a kernel filter).
      const end = Date.now() + 20_000;
      const refusing = (g: Status["floodGuard"]) => g?.underLoad === true || g?.kernelFilter === true;
      while (!refusing((await status(b)).floodGuard)) {
        assert.ok(Date.now() < end, "B never came under load");
        await new Promise((r) => setTimeout(r, 100));
      }
      const listen = lab.spawn(["listen", "--home", b.home, "9000"]);
      await listen.waitFor(/listening on/);
      const lines: string[] = [];
      for (let i = 0; lines.length * 32 < 4 * 1024 * 1024; i++) lines.push(`line ${String(i).padStart(25, "0")}\n`);
      const input = lines.join("");
      const sent = await lab.run(["connect", "--home", a.home, b.sid, "9000"], { input, timeoutMs: 120_000 });
      assert.equal(sent.code, 0, sent.stderr);
      const got = await listen.stopped(20_000);
      assert.equal(got.code, 0, listen.stderr);
      const sha = (s: string) => createHash("sha256").update(s).digest("hex");
      assert.equal(listen.stdout.length, input.length, "every byte arrived");
      assert.equal(sha(listen.stdout), sha(input), "intact");
      // The flood went on for the whole transfer.
      assert.equal(flooder.exitCode, null, "the flooder was still running");
      assert.ok(refusing((await status(b)).floodGuard), "B was still refusing the flood at the end");
    } finally {
      flooder.kill("SIGTERM");
      await flooderExit;
    }
    const { sent } = JSON.parse(flooderOut) as { sent: number };
    assert.ok(sent > FLOOD_RATE, `the flood sent ${sent} datagrams`);
    // Every forged datagram is accounted for once B has read what was queued.
    let after = await status(b);
    const end = Date.now() + 10_000;
    while (counted(after) - counted(before) + kernelDrops(port) - kernelBefore < sent && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      after = await status(b);
    }
    // (The kernel's count may include a few of A's datagrams too; MSP resent those.)
    const why = `sent ${sent}, B counted ${counted(after) - counted(before)}, the kernel dropped ${kernelDrops(port) - kernelBefore}`;
    assert.ok(counted(after) - counted(before) + kernelDrops(port) - kernelBefore >= sent, why);
    assert.ok(counted(after) - counted(before) <= sent, why);
    assert.ok(counted(after) - counted(before) < sent / 2 || (after.drops.overload ?? 0) - (before.drops.overload ?? 0) > sent / 2, "most dropped by the kernel filter, or refused before any crypto");
    assert.deepEqual(await lab.livePeers(a), [b.sid], "A and B are still peers");
  });
});
