/**
 * `svp daemon start|stop|run|status`, `svp id` and `svp status` as real child processes:
 * golden output shapes, exit codes, a second daemon refused, stale files of a SIGKILLed
 * daemon cleaned up, restart keeps the SID, two daemons find each other.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { daemonSandbox, runSvp, svpCommand } from "./entry.ts";
import { sidFromHex, sidToBase32 } from "../../src/mesh/sid.ts";

const { env, home } = daemonSandbox("svp-cli-daemon-");

const svp = (args: string[]) => runSvp(args, { env, timeoutMs: 30_000 });

describe("svp id", () => {
  test("prints the primary SID, one line and nothing else on stdout; stable; --base32", async () => {
    const h = home();
    const first = await svp(["id", "--home", h]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^[0-9A-F]{64}\n$/);
    assert.match(first.stderr, /created a new identity/);
    const again = await svp(["id", "--home", h]);
    assert.equal(again.stdout, first.stdout);
    assert.equal(again.stderr, "");
    const b32 = await svp(["id", "--home", h, "--base32"]);
    assert.match(b32.stdout, /^[a-z2-7]{52}\n$/);
    assert.equal(b32.stdout.trim(), sidToBase32(sidFromHex(first.stdout.trim())!));
  });

  test("a keyring readable by others is refused with a clear message", async () => {
    const h = home();
    assert.equal((await svp(["id", "--home", h])).code, 0);
    chmodSync(join(h, "keyring.json"), 0o644);
    const r = await svp(["id", "--home", h]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /keyring .*keyring\.json is accessible by group or others \(mode 0644\); refusing to use it/);
    assert.match(r.stderr, /chmod 600/);
  });
});

describe("svp daemon", () => {
  test("status/stop without a daemon; start prints the SID; second start refused; status --json; stop", async () => {
    const h = home();
    const none = await svp(["daemon", "status", "--home", h]);
    assert.equal(none.code, 1);
    assert.equal(none.stdout, `not running (home ${h})\n`);
    const st0 = await svp(["status", "--home", h]);
    assert.equal(st0.code, 1);
    assert.equal(st0.stdout, "");
    assert.match(st0.stderr, /no svp daemon is running/);
    const stop0 = await svp(["daemon", "stop", "--home", h]);
    assert.equal(stop0.code, 0);
    assert.match(stop0.stderr, /not running/);

    const start = await svp(["daemon", "start", "--home", h, "--port", "0"]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /^[0-9A-F]{64}\n$/);
    assert.match(start.stderr, /started \(pid \d+\)/);
    const id = await svp(["id", "--home", h]);
    assert.equal(id.stdout, start.stdout, "the daemon runs the instance's identity");

    const running = await svp(["daemon", "status", "--home", h]);
    assert.equal(running.code, 0);
    assert.match(running.stdout, new RegExp(`^running \\(pid \\d+, SID ${start.stdout.trim()}, home .*\\)\\n$`));

    const second = await svp(["daemon", "start", "--home", h, "--port", "0"]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /already running .*\(pid \d+\)/);

    const json = await svp(["status", "--home", h, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.deepEqual(Object.keys(doc), ["schema", "backend", "identity", "daemon", "peers", "ports", "streams", "drops", "routes", "routing", "floodGuard"]);
    assert.equal(doc.schema, 1);
    assert.equal(doc.backend, "embedded");
    assert.deepEqual(Object.keys(doc.identity), ["sid", "base32", "sids"]);
    assert.equal(doc.identity.sid, start.stdout.trim());
    assert.deepEqual(Object.keys(doc.daemon), ["pid", "version", "home", "startedAt", "uptimeMs", "udp", "discovery", "notes", "api"]);
    assert.deepEqual(doc.daemon.notes, []);
    assert.deepEqual(Object.keys(doc.daemon.api), ["clients", "maxClients", "queuedBytes", "partialBytes", "ports", "mspRemotes", "disconnected"]);
    assert.equal(doc.daemon.api.clients, 1, "svp status itself");
    assert.equal(doc.daemon.api.maxClients, 128);
    assert.equal(doc.daemon.home, h);
    assert.ok(doc.daemon.udp.includes(`127.0.0.1:${doc.daemon.udp[0].split(":")[1]}`));
    assert.deepEqual(doc.daemon.discovery, ["local"]);
    assert.deepEqual([doc.peers, doc.ports, doc.streams, doc.routes], [[], [], [], []]);
    assert.deepEqual(Object.keys(doc.routing), ["seqno", "updateIntervalMs", "packetsOut", "bytesOut", "packetsIn", "bytesIn", "seqnoRequestsOut", "forwardedPackets", "forwardedBytes"]);
    assert.equal(doc.drops.forged, 0);
    assert.deepEqual(doc.floodGuard, { underLoad: false, kernelFilter: false, admitted: doc.floodGuard.admitted, refused: 0, cookieAdmitted: 0, cookiesSent: 0, badCookies: 0 });

    const human = await svp(["status", "--home", h]);
    assert.equal(human.code, 0);
    const lines = human.stdout.split("\n");
    assert.match(lines[0]!, /^identity {3}[0-9A-F]{64}$/);
    assert.equal(lines[1], "backend    embedded");
    assert.match(lines[2]!, /^daemon {5}pid \d+, up .+, version .+$/);
    assert.equal(lines[3], `home       ${h}`);
    assert.match(lines[4]!, /^udp {8}127\.0\.0\.1:\d+/);
    assert.ok(human.stdout.includes("\nroutes (0 reachable nodes, 0 frames forwarded for others)\n"), human.stdout);
    assert.ok(human.stdout.includes("\npeers (0 live)\n") && human.stdout.includes("\nports (0)\n") && human.stdout.includes("\nstreams (0)\n"));
    assert.ok(!human.stdout.includes("\x1b["), "no colour when not a TTY");
    assert.match(human.stdout, /^local api  1 client \(limit 128\), 0 B unread by them, 0 B of unfinished frames$/m);

    const stop = await svp(["daemon", "stop", "--home", h]);
    assert.equal(stop.code, 0);
    assert.match(stop.stderr, /stopped \(pid \d+\)/);
    assert.equal((await svp(["daemon", "status", "--home", h])).code, 1);
    assert.ok(!existsSync(join(h, "daemon.pid")) && !existsSync(join(h, "api.sock")), "pid file and socket removed");
  });

  test("a SIGKILLed daemon leaves stale files that daemon status detects and removes", async () => {
    const h = home();
    const { pid } = await startThenKill(h);
    assert.ok(existsSync(join(h, "daemon.pid")) && existsSync(join(h, "api.sock")), "stale files left behind");
    const st = await svp(["daemon", "status", "--home", h]);
    assert.equal(st.code, 1);
    assert.match(st.stderr, new RegExp(`removed stale files .*pid ${pid}`));
    assert.ok(!existsSync(join(h, "daemon.pid")) && !existsSync(join(h, "api.sock")));
  });

  test("after SIGKILL, start again directly (stale pid and socket in place) works and keeps the SID", async () => {
    const h = home();
    const { start } = await startThenKill(h);
    const again = await svp(["daemon", "start", "--home", h, "--port", "0"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, start.stdout);
    assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
  });

  test("run: foreground, logs on stderr, a second daemon on the instance fails clearly, SIGTERM exits 0", async () => {
    const h = home();
    // Through a shell that reports svp's exit status, signalling svp itself (its pid from the
    // pid file): Deno's child_process reports the signal it sent instead of the exit code.
    const quoted = [...svpCommand(), "daemon", "run", "--home", h, "--port", "0"].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    const child = spawn("/bin/sh", ["-c", `${quoted}; echo "svp-exit=$?" >&2`], { env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    child.stdout.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    const waitFor = async (re: RegExp) => {
      const end = Date.now() + 20_000;
      while (!re.test(stderr)) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; stderr:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return re.exec(stderr)!;
    };
    try {
      await waitFor(/node [0-9A-F]{64} up; UDP 127\.0\.0\.1:\d+/);
      const second = await svp(["daemon", "run", "--home", h, "--port", "0"]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /an svp daemon is already running for .* \(pid \d+\)/);
      const pid = Number(readFileSync(join(h, "daemon.pid"), "utf8"));
      process.kill(pid, "SIGTERM");
      const m = await waitFor(/svp-exit=(\d+)/);
      assert.equal(m[1], "0", stderr);
      assert.match(stderr, /received SIGTERM, stopping/);
      assert.equal(stdout, "");
      assert.ok(!existsSync(join(h, "daemon.pid")));
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("two daemons with no flags find each other; each one's status lists the other", async () => {
    const a = home();
    const b = home();
    const sa = (await svp(["daemon", "start", "--home", a, "--port", "0", "--hello-interval", "300ms"])).stdout.trim();
    const sb = (await svp(["daemon", "start", "--home", b, "--port", "0", "--hello-interval", "300ms"])).stdout.trim();
    assert.match(sa, /^[0-9A-F]{64}$/);
    assert.match(sb, /^[0-9A-F]{64}$/);
    const peersOf = async (h: string) => JSON.parse((await svp(["status", "--home", h, "--json"])).stdout).peers as { sid: string; live: boolean; source: string }[];
    const deadline = Date.now() + 15_000;
    let pa = await peersOf(a);
    let pb = await peersOf(b);
    while (!(pa.some((p) => p.sid === sb && p.live) && pb.some((p) => p.sid === sa && p.live)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      pa = await peersOf(a);
      pb = await peersOf(b);
    }
    assert.ok(pa.some((p) => p.sid === sb && p.live && p.source === "local"), JSON.stringify(pa));
    assert.ok(pb.some((p) => p.sid === sa && p.live), JSON.stringify(pb));
    const human = await svp(["status", "--home", a]);
    assert.match(human.stdout, new RegExp(`\\n  ${sb}  127\\.0\\.0\\.1:\\d+ +local +live `));
    await Promise.all([svp(["daemon", "stop", "--home", a]), svp(["daemon", "stop", "--home", b])]);
  });
});

/** Start a daemon on `h`, then SIGKILL it (as a crash would): its start result and pid. */
async function startThenKill(h: string) {
  const start = await svp(["daemon", "start", "--home", h, "--port", "0"]);
  assert.equal(start.code, 0, start.stderr);
  const pid = Number(/pid (\d+)/.exec(start.stderr)![1]);
  process.kill(pid, "SIGKILL");
  await waitGone(pid);
  return { start, pid };
}

async function waitGone(pid: number): Promise<void> {
  const end = Date.now() + 5000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > end) throw new Error(`pid ${pid} still alive`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
