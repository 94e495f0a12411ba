/**
 * Daemon control with fake process operations and a manual clock: start (already running,
 * ready after polling, early exit with the log's reason, timeout and kill), stop (by request,
 * by SIGTERM, SIGKILL after the deadline, nothing running), state and ensure. No processes,
 * no real waits; the instance directory is a real temporary one (pid file, stale files).
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate } from "node:timers";
import { ManualClock } from "../../src/clock.ts";
import { isSvpError } from "../../src/errors.ts";
import { sidToHex } from "../../src/mesh/sid.ts";
import { daemonControl, type DaemonChild, type DaemonInfo } from "../../src/platform/daemon-control.ts";
import type { SvpCommand } from "../../src/platform/svp-self-command.ts";

let root: string;
let n = 0;
before(() => (root = mkdtempSync(join(tmpdir(), "svp-daemon-control-"))));
after(() => rmSync(root, { recursive: true, force: true }));

const SID = new Uint8Array(32).fill(0x5a);
const CMD: SvpCommand = { command: "/opt/svp", args: ["--flag"] };

/** A pretend machine: one daemon that may answer, processes that may be alive, and a log of every operation. */
function world() {
  const clock = new ManualClock(1000);
  const home = join(root, `home-${n++}`);
  mkdirSync(home, { mode: 0o700 });
  const w = {
    clock,
    home,
    /** The daemon that answers on the API socket, if any. */
    answering: undefined as DaemonInfo | undefined,
    /** Answers only probes with this timeout (2000: not the start-up polls), when set. */
    answeringLater: undefined as DaemonInfo | undefined,
    alive: new Set<number>(),
    /** Pids that hold the instance lock. */
    lockHolders: new Set<number>(),
    probes: [] as { at: number; timeoutMs: number }[],
    spawned: [] as { command: SvpCommand; args: string[]; home: string }[],
    kills: [] as { pid: number; signal: string; at: number }[],
    notes: [] as string[],
    /** What `spawn` does with its child (set per test). */
    onSpawn: (_child: FakeChild) => {},
    /** What a stop request does (set per test); default: nobody answers. */
    onStopRequest: undefined as (() => number) | undefined,
    /** What a signal does to a pid (default: SIGKILL kills, SIGTERM too). */
    onKill: (pid: number, _signal: string) => void w.alive.delete(pid),
  };
  const control = daemonControl({
    clock,
    async probe(h, timeoutMs) {
      assert.equal(h, home);
      w.probes.push({ at: clock.now(), timeoutMs });
      return w.answering ?? (timeoutMs === 2000 ? w.answeringLater : undefined);
    },
    spawn(command, args, h) {
      w.spawned.push({ command, args, home: h });
      const child = new FakeChild(4000 + w.spawned.length);
      w.onSpawn(child);
      return child;
    },
    async requestStop() {
      if (!w.onStopRequest) throw new Error("ECONNREFUSED");
      return w.onStopRequest();
    },
    kill(pid, signal) {
      w.kills.push({ pid, signal, at: clock.now() });
      if (!w.alive.has(pid)) throw Object.assign(new Error("kill ESRCH"), { code: "ESRCH" });
      w.onKill(pid, signal);
    },
    isAlive: (pid) => w.alive.has(pid),
    isDaemon: (_h, pid) => w.lockHolders.has(pid) && w.alive.has(pid),
    selfCommand: () => ({ command: "/self/svp", args: [] }),
    note: (m) => void w.notes.push(`stderr: ${m}`),
  });
  return { w, control, clock, home };
}

class FakeChild implements DaemonChild {
  #exit: ((code: number | null, signal: string | null) => void) | undefined;
  #error: ((err: Error) => void) | undefined;
  log = "";
  constructor(readonly pid: number | undefined) {}
  onExit(fn: (code: number | null, signal: string | null) => void): void {
    this.#exit = fn;
  }
  onError(fn: (err: Error) => void): void {
    this.#error = fn;
  }
  logTail(maxBytes: number): string {
    return this.log.slice(-maxBytes).trim();
  }
  exit(code: number | null, signal: string | null = null): void {
    this.#exit?.(code, signal);
  }
  fail(err: Error): void {
    this.#error?.(err);
  }
}

/**
 * Settle `p`, firing the manual clock's timers one at a time whenever nothing else can run
 * (a macrotask turn lets every pending promise continuation run first).
 */
async function drive<T>(clock: ManualClock, p: Promise<T>): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 10_000; i++) {
    await new Promise((r) => setImmediate(r));
    if (done) return p;
    const next = clock.nextAt();
    if (next === undefined) throw new Error("stuck: not settled and no timer pending");
    clock.advanceTo(next);
  }
  throw new Error("did not settle");
}

const info = (pid: number): DaemonInfo => ({ pid, sid: SID, notes: [] });

describe("daemonControl.start", () => {
  test("a daemon already answers: ERR_BUSY, nothing spawned", async () => {
    const { w, control, clock, home } = world();
    w.answering = info(77);
    await assert.rejects(drive(clock, control.start(home)), (e: unknown) => isSvpError(e, "ERR_BUSY") && /already running .*\(pid 77\)/.test(e.message));
    assert.equal(w.spawned.length, 0);
  });

  test("spawns `daemon run --home` and polls with backoff until the daemon answers", async () => {
    const { w, control, clock, home } = world();
    const start = clock.now();
    w.onSpawn = (child) => {
      w.alive.add(child.pid!);
      clock.setTimeout(() => (w.answering = { pid: child.pid!, sid: SID, notes: ["same-host discovery is off"] }), 300);
    };
    const result = await drive(clock, control.start(home, { command: CMD, args: ["--port", "4111"] }));
    assert.equal(result.pid, 4001);
    assert.equal(sidToHex(result.sid), sidToHex(SID));
    assert.deepEqual(result.notes, ["same-host discovery is off"]);
    assert.deepEqual(w.spawned, [{ command: CMD, args: ["daemon", "run", "--home", home, "--port", "4111"], home }]);
    // First the state probe, then polls at 0, 20, 60, 140, 300 ms after spawning (delays 20, 40, 80, 160).
    assert.deepEqual(
      w.probes.map((p) => [p.at - start, p.timeoutMs]),
      [[0, 2000], [0, 1000], [20, 1000], [60, 1000], [140, 1000], [300, 1000]],
    );
    assert.equal(w.kills.length, 0);
    assert.ok(existsSync(home), "the instance directory is created");
  });

  test("without a command it runs svp itself", async () => {
    const { w, control, clock, home } = world();
    w.onSpawn = (child) => void (w.answering = info(child.pid!));
    await drive(clock, control.start(home));
    assert.equal(w.spawned[0]!.command.command, "/self/svp");
  });

  test("the child exits during start-up: its reason from the log (progress lines and prefix left out) and its exit code's error", async () => {
    const { w, control, clock, home } = world();
    w.onSpawn = (child) => {
      clock.setTimeout(() => {
        child.log = [
          "svp daemon: 2026-01-02T03:04:05.678Z created a new identity abcd in /x",
          '{"time":"2026-01-02T03:04:05.678Z","msg":"node up"}',
          "svp daemon: cannot run daemon: UDP port 4111 is in use",
        ].join("\n");
        child.exit(2);
      }, 50);
    };
    await assert.rejects(
      drive(clock, control.start(home, { command: CMD })),
      (e: unknown) => isSvpError(e, "ERR_USAGE") && e.message === "the daemon exited during start-up (exit code 2): UDP port 4111 is in use",
    );
    assert.equal(w.kills.length, 0, "nothing to kill");
  });

  test("killed by a signal, or not startable at all: ERR_MESH_DOWN with what happened", async () => {
    {
      const { w, control, clock, home } = world();
      w.onSpawn = (child) => void clock.setTimeout(() => child.exit(null, "SIGSEGV"), 10);
      await assert.rejects(drive(clock, control.start(home, { command: CMD })), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && e.message === "the daemon exited during start-up (signal SIGSEGV)");
    }
    {
      const { w, control, clock, home } = world();
      w.onSpawn = (child) => void clock.setTimeout(() => child.fail(new Error("spawn /opt/svp ENOENT")), 0);
      await assert.rejects(drive(clock, control.start(home, { command: CMD })), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && /\(spawn \/opt\/svp ENOENT\)$/.test(e.message));
    }
  });

  test("not ready before the timeout: the child is killed, ERR_TIMEOUT names the log", async () => {
    const { w, control, clock, home } = world();
    const start = clock.now();
    w.onSpawn = (child) => void w.alive.add(child.pid!);
    await assert.rejects(
      drive(clock, control.start(home, { command: CMD, timeoutMs: 2000 })),
      (e: unknown) => isSvpError(e, "ERR_TIMEOUT") && e.message === `the daemon did not become ready within 2 s (see ${home}/daemon.log)`,
    );
    assert.deepEqual(w.kills.map((k) => [k.pid, k.signal]), [[4001, "SIGKILL"]]);
    const waited = w.kills[0]!.at - start;
    assert.ok(waited > 2000 && waited <= 2250, `gave up within one poll after the deadline (${waited} ms)`);
    assert.ok(!w.alive.has(4001));
  });
});

describe("daemonControl.stop", () => {
  test("graceful: the stop request is answered and the process exits", async () => {
    const { w, control, clock, home } = world();
    w.alive.add(500);
    w.onStopRequest = () => {
      clock.setTimeout(() => w.alive.delete(500), 120);
      return 500;
    };
    const start = clock.now();
    const r = await drive(clock, control.stop(home));
    assert.deepEqual(r, { wasRunning: true, pid: 500, forced: false, cleaned: [] });
    assert.equal(w.kills.length, 0);
    assert.ok(clock.now() - start >= 120 && clock.now() - start < 150, "returned as soon as it was gone");
  });

  test("asked, but still alive at the deadline: SIGKILL, stale files removed", async () => {
    const { w, control, clock, home } = world();
    writeFileSync(join(home, "daemon.pid"), "500\n");
    w.alive.add(500);
    w.onStopRequest = () => 500;
    const start = clock.now();
    const r = await drive(clock, control.stop(home, 3000));
    assert.deepEqual(w.kills.map((k) => [k.pid, k.signal]), [[500, "SIGKILL"]]);
    assert.ok(w.kills[0]!.at - start >= 3000 && w.kills[0]!.at - start < 3030);
    assert.equal(r.forced, true);
    assert.equal(r.pid, 500);
    assert.deepEqual(r.cleaned, [join(home, "daemon.pid")]);
    assert.ok(!existsSync(join(home, "daemon.pid")));
  });

  test("not answering: SIGTERM to the lock holder from the pid file", async () => {
    const { w, control, clock, home } = world();
    writeFileSync(join(home, "daemon.pid"), "600\n");
    w.alive.add(600);
    w.lockHolders.add(600);
    w.onKill = (pid, signal) => void (signal === "SIGTERM" && clock.setTimeout(() => w.alive.delete(pid), 40));
    const r = await drive(clock, control.stop(home));
    assert.deepEqual(w.kills.map((k) => [k.pid, k.signal]), [[600, "SIGTERM"]]);
    assert.deepEqual(r, { wasRunning: true, pid: 600, forced: false, cleaned: [] });
  });

  test("nothing running: a stale pid file of another process is removed, nothing is signalled", async () => {
    const { w, control, clock, home } = world();
    writeFileSync(join(home, "daemon.pid"), "700\n");
    w.alive.add(700); // alive, but not the daemon (pid reused)
    const r = await drive(clock, control.stop(home));
    assert.deepEqual(r, { wasRunning: false, cleaned: [join(home, "daemon.pid")] });
    assert.equal(w.kills.length, 0);
  });
});

describe("daemonControl.state", () => {
  test("running: who answers", async () => {
    const { w, control, clock, home } = world();
    w.answering = { pid: 42, sid: SID, notes: ["n"] };
    assert.deepEqual(await drive(clock, control.state(home)), { running: true, pid: 42, sid: SID, notes: ["n"] });
  });

  test("not running: stale files of a dead daemon are cleaned and reported", async () => {
    const { control, clock, home } = world();
    writeFileSync(join(home, "daemon.pid"), "800\n");
    writeFileSync(join(home, "api.sock"), "");
    assert.deepEqual(await drive(clock, control.state(home)), { running: false, stalePid: 800, cleaned: [join(home, "daemon.pid"), join(home, "api.sock")] });
    assert.deepEqual(await drive(clock, control.state(home)), { running: false, cleaned: [] });
  });

  test("the lock holder lives but does not answer: one longer probe, then ERR_MESH_DOWN", async () => {
    const { w, control, clock, home } = world();
    writeFileSync(join(home, "daemon.pid"), "900\n");
    w.alive.add(900);
    w.lockHolders.add(900);
    await assert.rejects(drive(clock, control.state(home)), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && /\(pid 900\) does not answer/.test(e.message));
    assert.deepEqual(w.probes.map((p) => p.timeoutMs), [2000, 5000]);
    assert.ok(existsSync(join(home, "daemon.pid")), "a live daemon's files are left alone");
  });
});

describe("daemonControl.ensure", () => {
  test("running: used as is; --no-autostart: ERR_MESH_DOWN; else started with a note", async () => {
    {
      const { w, control, clock, home } = world();
      w.answering = info(11);
      assert.deepEqual(await drive(clock, control.ensure(home)), { ...info(11), started: false });
    }
    {
      const { w, control, clock, home } = world();
      await assert.rejects(drive(clock, control.ensure(home, { autostart: false })), (e: unknown) => isSvpError(e, "ERR_MESH_DOWN") && /--no-autostart/.test(e.message));
      assert.equal(w.spawned.length, 0);
    }
    {
      const { w, control, clock, home } = world();
      w.onSpawn = (child) => void (w.answering = { pid: child.pid!, sid: SID, notes: ["discovery off"] });
      const r = await drive(clock, control.ensure(home, { command: () => CMD }));
      assert.equal(r.started, true);
      assert.equal(w.spawned[0]!.command, CMD);
      assert.deepEqual(w.notes, [`stderr: svp: started the mesh daemon (pid 4001, SID ${sidToHex(SID)}) for ${home}`, "stderr: svp: the mesh daemon warns: discovery off"]);
    }
  });

  test("lost a start race: the other command's daemon is used", async () => {
    const { w, control, clock, home } = world();
    w.onSpawn = (child) => {
      clock.setTimeout(() => {
        child.log = "svp daemon: cannot run daemon: the instance is locked";
        child.exit(7);
        w.answeringLater = info(12); // the winner, up by the time ensure looks again
      }, 5);
    };
    const notes: string[] = [];
    const r = await drive(clock, control.ensure(home, { command: CMD, onNote: (m) => notes.push(m) }));
    assert.deepEqual(r, { ...info(12), started: false });
    assert.deepEqual(notes, []);
    assert.equal(w.probes.at(-1)!.timeoutMs, 2000, "found by the probe after the failed start");
  });
});
