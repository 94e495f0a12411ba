/**
 * Control of the background `svp daemon` of an instance directory: whether it runs
 * (`daemonState`), starting it detached and waiting until its local API answers
 * (`startDaemonBackground`), stopping it (`stopDaemon`), and the auto-start the other commands
 * use (`ensureDaemon`).
 *
 * Every process operation — spawning, probing the local API socket, the stop request,
 * signals, liveness, time — goes through `DaemonOps`, so the logic is tested with fakes and a
 * manual clock (test/platform/daemon-control.test.ts); `daemonControl()` without arguments and
 * the module's functions use the real ones. Files in the instance directory (pid file, stale
 * socket) are handled directly.
 */

import { spawn } from "node:child_process";
import { closeSync, fstatSync } from "node:fs";
import { type Clock, systemClock } from "../clock.ts";
import { SvpError, errorCodeForExit, isSvpError } from "../errors.ts";
import { type Sid, sidToHex } from "../mesh/sid.ts";
import { openEmbeddedTransport } from "../node/embedded-transport.ts";
import { checkHomeAccess, daemonLogTail, ensureHome, isLockHolder, isProcessAlive, openDaemonLog, readPid, removeStaleFiles, resolveHome, socketPath } from "./instance-files.ts";
import { connectUnix } from "./net.ts";
import { type SvpCommand, svpSelfCommand } from "./svp-self-command.ts";

export interface DaemonInfo {
  pid: number;
  sid: Sid;
  /** The daemon's start-up warnings (e.g. why same-host discovery is off). */
  notes: string[];
}

export type DaemonState =
  | { running: true; pid: number; sid: Sid; notes: string[] }
  | { running: false; stalePid?: number; cleaned: string[] };

/** A spawned `svp daemon run`. */
export interface DaemonChild {
  readonly pid: number | undefined;
  /** Once, when it exits: the exit code, or the signal that ended it. */
  onExit(fn: (code: number | null, signal: string | null) => void): void;
  /** When it could not be started at all (no such executable, …). */
  onError(fn: (err: Error) => void): void;
  /** The last `maxBytes` of what it wrote to the instance's daemon.log since it was spawned. */
  logTail(maxBytes: number): string;
}

/** The process operations daemon control uses; the defaults are the real ones. */
export interface DaemonOps {
  /** Start `command args…` detached, stderr to the instance's daemon.log, with the daemon's environment. */
  spawn(command: SvpCommand, args: string[], home: string): DaemonChild;
  /** Who answers on the instance's local API socket; undefined when none does (see `probeDaemon`). */
  probe(home: string, timeoutMs: number): Promise<DaemonInfo | undefined>;
  /** Ask the daemon over its local API to stop; resolves with its pid, rejects when it does not answer. */
  requestStop(home: string): Promise<number>;
  /** Send a signal; throws when the process is gone. */
  kill(pid: number, signal: "SIGTERM" | "SIGKILL"): void;
  /** Whether the process runs (a zombie does not). */
  isAlive(pid: number): boolean;
  /** Whether `pid` is the daemon holding the instance's lock (the pid file may be stale). */
  isDaemon(home: string, pid: number): boolean;
  /** Deadlines and the waits between polls. */
  clock: Clock;
  /** How to run svp when no command is given. */
  selfCommand(): SvpCommand;
  /** Where `ensureDaemon` says it started a daemon when the caller gives no `onNote` (default: stderr). */
  note(message: string): void;
}

export interface StartDaemonOptions {
  /** Extra `svp daemon run` flags (e.g. --port, --peer). */
  args?: string[];
  command?: SvpCommand;
  /** How long to wait until the daemon answers. Default 15 s. */
  timeoutMs?: number;
}

export interface StopDaemonResult {
  /** False when no daemon was running. */
  wasRunning: boolean;
  pid?: number;
  /** True when it had to be killed with SIGKILL. */
  forced?: boolean;
  /** Stale files removed. */
  cleaned: string[];
}

export interface EnsureDaemonOptions {
  /** Start the daemon when none runs (default true). */
  autostart?: boolean;
  /** Told about an auto-start (default: a line on stderr). */
  onNote?: (message: string) => void;
  /**
   * How to run svp for the auto-start (default: this process's own command). A function is
   * called only when a daemon has to be started (it may throw: no svp to run).
   */
  command?: SvpCommand | (() => SvpCommand);
}

/**
 * Ask the instance's daemon who it is; undefined when none answers. A daemon that answers
 * but refuses this client (too many clients) is an error saying so, not "none".
 */
export async function probeDaemon(home: string, timeoutMs = 2000): Promise<DaemonInfo | undefined> {
  let path: string;
  try {
    path = socketPath(home);
  } catch {
    return undefined;
  }
  let stream;
  try {
    stream = await connectUnix(path, { timeoutMs });
  } catch {
    return undefined;
  }
  try {
    const t = await openEmbeddedTransport(stream, { name: "svp probe", pid: process.pid, requestTimeoutMs: timeoutMs });
    const info = { pid: t.daemonPid, sid: t.localSid, notes: t.daemonNotes };
    t.close();
    return info;
  } catch (err) {
    if (isSvpError(err, "ERR_LIMIT")) throw err;
    return undefined;
  }
}

/** The stop request over the local API (the daemon's pid, then SHUTDOWN). */
async function requestStop(home: string): Promise<number> {
  const stream = await connectUnix(socketPath(home), { timeoutMs: 2000 });
  const t = await openEmbeddedTransport(stream, { name: "svp daemon stop", pid: process.pid, requestTimeoutMs: 3000 });
  const pid = t.daemonPid;
  await t.shutdownDaemon();
  t.close();
  return pid;
}

function spawnDaemon(cmd: SvpCommand, args: string[], home: string): DaemonChild {
  const logFd = openDaemonLog(home);
  const logStart = fstatSync(logFd).size;
  const child = spawn(cmd.command, [...cmd.args, ...args], {
    detached: true,
    stdio: ["ignore", "ignore", logFd],
    // Two malloc arenas (unless the user chose): the daemon's datagram buffers are freed on
    // whichever thread's arena, and with one arena per thread glibc's fragmentation showed
    // as slow RSS growth in long soaks (bench/RESULTS.md, "Soak").
    env: { MALLOC_ARENA_MAX: "2", ...process.env, SVP_HOME: home, NO_COLOR: "1" },
  });
  closeSync(logFd);
  child.unref();
  return {
    pid: child.pid,
    onExit: (fn) => void child.on("exit", (code, signal) => fn(code, signal)),
    onError: (fn) => void child.on("error", fn),
    logTail: (maxBytes) => daemonLogTail(home, maxBytes, logStart),
  };
}

/** The real process operations. */
export const realDaemonOps: DaemonOps = {
  spawn: spawnDaemon,
  probe: probeDaemon,
  requestStop,
  kill: (pid, signal) => void process.kill(pid, signal),
  isAlive: isProcessAlive,
  isDaemon: isLockHolder,
  clock: systemClock,
  selfCommand: svpSelfCommand,
  note: (m) => void process.stderr.write(m + "\n"),
};

/** Daemon control over the given operations (the rest real). */
export function daemonControl(overrides: Partial<DaemonOps> = {}) {
  const ops: DaemonOps = { ...realDaemonOps, ...overrides };
  const sleep = (ms: number) => new Promise<void>((r) => ops.clock.setTimeout(r, ms));

  /** Whether a daemon runs for `home`; stale pid/socket files of a dead daemon are removed. */
  async function state(home: string): Promise<DaemonState> {
    // Another user's instance is not "no daemon": say what is wrong.
    checkHomeAccess(home);
    const info = await ops.probe(home, 2000);
    if (info) return { running: true, ...info };
    const pid = readPid(home);
    if (pid !== undefined && ops.isDaemon(home, pid)) {
      // Alive but not answering: starting up or hung. One more, longer try.
      const again = await ops.probe(home, 5000);
      if (again) return { running: true, ...again };
      throw new SvpError("ERR_MESH_DOWN", `the svp daemon for ${home} (pid ${pid}) does not answer on its local API socket`);
    }
    const cleaned = removeStaleFiles(home);
    return { running: false, ...(pid !== undefined ? { stalePid: pid } : {}), cleaned };
  }

  /** Spawn `svp daemon run` detached and wait until its local API answers. */
  async function start(home: string, options: StartDaemonOptions = {}): Promise<DaemonInfo> {
    ensureHome(home);
    socketPath(home);
    const current = await state(home);
    if (current.running) throw new SvpError("ERR_BUSY", `an svp daemon is already running for ${home} (pid ${current.pid})`);
    const cmd = options.command ?? ops.selfCommand();
    const child = ops.spawn(cmd, ["daemon", "run", "--home", home, ...(options.args ?? [])], home);
    let exited: string | undefined;
    let exitCode: number | null = null;
    child.onExit((code, signal) => {
      exitCode = code;
      exited = signal ? `signal ${signal}` : `exit code ${code}`;
    });
    child.onError((err) => (exited = err.message));
    const timeoutMs = options.timeoutMs ?? 15_000;
    const deadline = ops.clock.now() + timeoutMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
      const info = await ops.probe(home, 1000);
      // (A wrapper may have forked, so the answering pid need not be child.pid.)
      if (info) return info;
      if (exited !== undefined) {
        // The daemon said why on its stderr (the log): pass its reason and exit code on,
        // without its own "cannot run daemon" prefix.
        // Its timestamped progress lines ("created a new identity", "node … up"; text or JSON) are not the reason.
        const log = child.logTail(2000);
        const reason = log.split("\n").filter((l) => !/^svp daemon: \d{4}-\d\d-\d\dT[\d:.]+Z |^\{"time":/.test(l)).join("\n");
        const tail = (reason.trim() ? reason : log).replace(/^svp daemon: cannot [a-z ]+: /gm, "").trim();
        const code = (exitCode !== null ? errorCodeForExit(exitCode) : undefined) ?? "ERR_MESH_DOWN";
        throw new SvpError(code, `the daemon exited during start-up (${exited})${tail ? `: ${tail}` : ""}`);
      }
      if (ops.clock.now() > deadline) {
        if (child.pid) {
          try {
            ops.kill(child.pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        throw new SvpError("ERR_TIMEOUT", `the daemon did not become ready within ${Math.round(timeoutMs / 1000)} s (see ${home}/daemon.log)`);
      }
      await sleep(delay);
    }
  }

  /** Stop the instance's daemon: a stop request over the API (SIGTERM if it does not answer), SIGKILL after `timeoutMs`. */
  async function stop(home: string, timeoutMs = 10_000): Promise<StopDaemonResult> {
    let pid: number | undefined;
    let asked = false;
    try {
      pid = await ops.requestStop(home);
      asked = true;
    } catch {
      // not answering: fall back to the pid file
    }
    if (!asked) {
      const p = readPid(home);
      if (p === undefined || !ops.isDaemon(home, p)) return { wasRunning: false, cleaned: removeStaleFiles(home) };
      pid = p;
      try {
        ops.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    const deadline = ops.clock.now() + timeoutMs;
    while (pid !== undefined && ops.isAlive(pid) && ops.clock.now() < deadline) await sleep(25);
    let forced = false;
    if (pid !== undefined && ops.isAlive(pid)) {
      forced = true;
      try {
        ops.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      const killDeadline = ops.clock.now() + 2000;
      while (ops.isAlive(pid) && ops.clock.now() < killDeadline) await sleep(25);
    }
    const cleaned = forced ? removeStaleFiles(home) : [];
    return { wasRunning: true, ...(pid !== undefined ? { pid } : {}), forced, cleaned };
  }

  /**
   * Make sure the instance's daemon runs: use it if it answers; otherwise start it (saying
   * so through `onNote`), or with `autostart: false` fail with ERR_MESH_DOWN.
   */
  async function ensure(home: string | undefined, options: EnsureDaemonOptions = {}): Promise<DaemonInfo & { started: boolean }> {
    const h = home ? resolveHome(home) : resolveHome();
    const current = await state(h);
    if (current.running) return { pid: current.pid, sid: current.sid, notes: current.notes, started: false };
    if (options.autostart === false) {
      throw new SvpError("ERR_MESH_DOWN", `no svp daemon is running for ${h} (start one with "svp daemon start", or leave out --no-autostart)`);
    }
    try {
      const command = typeof options.command === "function" ? options.command() : options.command;
      const info = await start(h, command ? { command } : {});
      const note = options.onNote ?? ops.note;
      note(`svp: started the mesh daemon (pid ${info.pid}, SID ${sidToHex(info.sid)}) for ${h}`);
      for (const n of info.notes) note(`svp: the mesh daemon warns: ${n}`);
      return { ...info, started: true };
    } catch (err) {
      // Lost a race with another command starting it: use that one.
      const again = await ops.probe(h, 2000);
      if (again) return { ...again, started: false };
      throw err;
    }
  }

  return { state, start, stop, ensure };
}

/** Daemon control as the process does it. */
export type DaemonControl = ReturnType<typeof daemonControl>;

const real = daemonControl();

/** Whether a daemon runs for `home`; stale pid/socket files of a dead daemon are removed. */
export const daemonState = (home: string): Promise<DaemonState> => real.state(home);
/** Spawn `svp daemon run` detached and wait until its local API answers (ERR_BUSY when one runs). */
export const startDaemonBackground = (home: string, options?: StartDaemonOptions): Promise<DaemonInfo> => real.start(home, options);
/** Stop the instance's daemon: a stop request over the API (SIGTERM if it does not answer), SIGKILL after `timeoutMs`. */
export const stopDaemon = (home: string, timeoutMs?: number): Promise<StopDaemonResult> => real.stop(home, timeoutMs);
/** Make sure the instance's daemon runs (see `DaemonControl.ensure`). */
export const ensureDaemon = (home: string | undefined, options?: EnsureDaemonOptions): Promise<DaemonInfo & { started: boolean }> => real.ensure(home, options);
