/**
 * The instance directory and the files in it: the keyring (owner-only, refused when
 * others can read it), the daemon's pid file (the single-daemon lock, with stale-file
 * detection), the local API socket path and the background daemon's log.
 *
 * Instance directory: `--home DIR`, else $SVP_HOME, else $XDG_STATE_HOME/svp, else
 * ~/.local/state/svp. Created with mode 0700.
 */

import { accessSync, closeSync, constants as fsConstants, existsSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync, chmodSync, fsyncSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { SvpError } from "../errors.ts";
import { KEYRING_MAX_BYTES, type KeyringStore } from "../node/keyring.ts";

export const KEYRING_FILE = "keyring.json";
export const PID_FILE = "daemon.pid";
export const SOCKET_FILE = "api.sock";
export const LOG_FILE = "daemon.log";
export const CONFIG_FILE = "svp.conf";
/** Linux's sun_path limit (bytes, including the terminating NUL). */
const UNIX_PATH_MAX = 108;

/** The instance directory from a flag, the environment, or the per-user default (absolute). */
export function resolveHome(flag?: string): string {
  const env = process.env;
  if (flag !== undefined && flag !== "") return resolve(flag);
  if (env.SVP_HOME) return resolve(env.SVP_HOME);
  if (env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith("/")) return join(env.XDG_STATE_HOME, "svp");
  return join(homedir(), ".local", "state", "svp");
}

function uid(): number | undefined {
  return typeof process.getuid === "function" ? process.getuid() : undefined;
}

/**
 * Create the instance directory (0700) or check an existing one: it must be a directory
 * (or a symlink to one) owned by this user; group/other permission bits are removed.
 */
export function ensureHome(home: string): void {
  try {
    mkdirSync(home, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new SvpError("ERR_USAGE", `instance directory ${home} is not a directory`);
    if (code === "ENOTDIR") throw new SvpError("ERR_USAGE", `cannot create instance directory ${home}: a parent of it is not a directory`);
    throw new SvpError("ERR_USAGE", `cannot create instance directory ${home}: ${(err as Error).message}`);
  }
  // A symlink to a directory is fine (e.g. to another disk): its target is what gets checked.
  const st = statSync(home, { throwIfNoEntry: false }) ?? lstatSync(home);
  if (!st.isDirectory()) throw new SvpError("ERR_USAGE", `instance directory ${home} is not a directory${st.isSymbolicLink() ? " (a dangling symlink)" : ""}`);
  const me = uid();
  if (me !== undefined && st.uid !== me) throw new SvpError("ERR_NOT_ALLOWED", `instance directory ${home} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o077) !== 0) chmodSync(home, 0o700);
}

/**
 * Fail with ERR_NOT_ALLOWED ("permission denied") when this user cannot look into `home`
 * (another user's instance, or a parent directory it may not enter): otherwise that looks
 * exactly like an instance where no daemon runs. A missing directory is fine (nothing runs there).
 */
export function checkHomeAccess(home: string): void {
  try {
    accessSync(home, fsConstants.R_OK | fsConstants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM") return;
    let st;
    try {
      st = statSync(home, { throwIfNoEntry: false });
    } catch {
      // a parent this user may not enter: no owner to name
    }
    const me = uid();
    const owner = st && me !== undefined && st.uid !== me ? ` (it belongs to uid ${st.uid}; this is uid ${me})` : "";
    throw new SvpError("ERR_NOT_ALLOWED", `instance directory ${home}: permission denied${owner}`);
  }
}

export function socketPath(home: string): string {
  const p = join(home, SOCKET_FILE);
  if (Buffer.byteLength(p) >= UNIX_PATH_MAX) throw new SvpError("ERR_USAGE", `instance directory path is too long for a unix socket (${Buffer.byteLength(p)} bytes, limit ${UNIX_PATH_MAX - 1}): ${p}`);
  return p;
}

/** The keyring file, owner-only. */
export function keyringStore(home: string): KeyringStore {
  const path = join(home, KEYRING_FILE);
  return {
    path,
    read() {
      let fd: number;
      try {
        fd = openSync(path, "r");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new SvpError("ERR_NOT_ALLOWED", `cannot read keyring ${path}: ${(err as Error).message}`);
      }
      try {
        const st = fstatSync(fd);
        if (!st.isFile()) throw new SvpError("ERR_NOT_ALLOWED", `keyring ${path} is not a regular file`);
        const me = uid();
        if (me !== undefined && st.uid !== me) throw new SvpError("ERR_NOT_ALLOWED", `keyring ${path} belongs to another user (uid ${st.uid}); refusing to use it`);
        if ((st.mode & 0o077) !== 0) {
          const mode = (st.mode & 0o777).toString(8).padStart(4, "0");
          throw new SvpError("ERR_NOT_ALLOWED", `keyring ${path} is accessible by group or others (mode ${mode}); refusing to use it. Its secret keys may be exposed: fix with "chmod 600 ${path}", or move it away to create a new identity`);
        }
        if (st.size > KEYRING_MAX_BYTES) throw new SvpError("ERR_INTERNAL", `keyring ${path} is damaged: larger than ${KEYRING_MAX_BYTES} bytes`);
        const buf = new Uint8Array(st.size);
        let off = 0;
        while (off < buf.length) {
          const n = readSync(fd, buf, off, buf.length - off, off);
          if (n === 0) break;
          off += n;
        }
        return buf.subarray(0, off);
      } finally {
        closeSync(fd);
      }
    },
    create(bytes) {
      const tmp = `${path}.${process.pid}.tmp`;
      writeKeyring(path, tmp, bytes);
      try {
        linkSync(tmp, path);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw new SvpError("ERR_INTERNAL", `cannot create keyring ${path}: ${(err as Error).message}`);
      } finally {
        try {
          unlinkSync(tmp);
        } catch {
          // already gone
        }
      }
    },
    write(bytes) {
      const tmp = `${path}.${process.pid}.tmp`;
      writeKeyring(path, tmp, bytes);
      try {
        renameSync(tmp, path);
      } catch (err) {
        throw keyringWriteError(path, err);
      }
    },
  };
}

/** A keyring write that failed (unwritable or missing directory, full disk), naming the file. */
function keyringWriteError(path: string, err: unknown): SvpError {
  return new SvpError("ERR_NOT_ALLOWED", `cannot write keyring ${path}: ${(err as Error).message}`, { cause: err });
}

function writeKeyring(path: string, tmp: string, bytes: Uint8Array): void {
  try {
    writePrivate(tmp, bytes);
  } catch (err) {
    throw keyringWriteError(path, err);
  }
}

function writePrivate(path: string, bytes: Uint8Array): void {
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
  const fd = openSync(path, "wx", 0o600);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** True if a process with this pid exists (EPERM counts as existing). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  // A zombie (exited, not yet reaped by its parent) is not running.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/**
 * Whether `pid` looks like an svp daemon: alive, and (where /proc exists) its command line
 * mentions "daemon", so a pid reused by an unrelated process after a crash is not mistaken
 * for a running daemon.
 */
export function isDaemonProcess(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  const cmdline = `/proc/${pid}/cmdline`;
  if (!existsSync("/proc/self/cmdline")) return true;
  try {
    const text = readFileSync(cmdline, "latin1");
    return text.split("\0").includes("daemon");
  } catch {
    return true;
  }
}

/** Instance directories whose daemon lock this process holds. */
const heldLocks = new Set<string>();

/**
 * Whether the pid in `home`'s pid file belongs to a running daemon. Our own pid counts only
 * when this process holds the lock: otherwise the file is from an earlier process that had
 * the same pid (a container or an embedded device restarts with the same pids every time).
 */
export function isLockHolder(home: string, pid: number): boolean {
  if (pid === process.pid) return heldLocks.has(resolve(home));
  return isDaemonProcess(pid);
}

export function readPid(home: string): number | undefined {
  try {
    const text = readFileSync(join(home, PID_FILE), "utf8").trim();
    return /^\d{1,10}$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/** Remove the pid file and socket left by a daemon that is no longer running. Returns what was removed. */
export function removeStaleFiles(home: string): string[] {
  const removed: string[] = [];
  for (const name of [PID_FILE, SOCKET_FILE]) {
    const p = join(home, name);
    try {
      unlinkSync(p);
      removed.push(p);
    } catch {
      // not there
    }
  }
  return removed;
}

/**
 * Take the single-daemon lock: create the pid file exclusively. An existing pid file of a
 * live daemon is an error; one of a dead process is stale and replaced.
 * Returns a release function (removes the pid file if it is still ours).
 */
export function acquirePidLock(home: string, pid = process.pid, onStale?: (stalePid: number | undefined) => void): () => void {
  const path = join(home, PID_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      if (pid === process.pid) heldLocks.add(resolve(home));
      return () => {
        if (pid === process.pid) heldLocks.delete(resolve(home));
        if (readPid(home) === pid) {
          try {
            unlinkSync(path);
          } catch {
            // gone
          }
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new SvpError("ERR_INTERNAL", `cannot create ${path}: ${(err as Error).message}`);
    }
    const other = readPid(home);
    if (other !== undefined && ((other === pid && pid !== process.pid) || isLockHolder(home, other))) {
      throw new SvpError("ERR_BUSY", `an svp daemon is already running for ${home} (pid ${other})`);
    }
    if (other === undefined) {
      // A pid file being written right now by a starting daemon is briefly empty: re-check once.
      const st = statSync(path, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs < 1000 && attempt === 0) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
        continue;
      }
    }
    onStale?.(other);
    removeStaleFiles(home);
  }
  throw new SvpError("ERR_INTERNAL", `cannot take the daemon lock ${path}`);
}

/** Open the background daemon's log for appending (0600), truncating it when it grew past 1 MiB. */
export function openDaemonLog(home: string): number {
  const path = join(home, LOG_FILE);
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return openSync(path, st && st.size > 1024 * 1024 ? "w" : "a", 0o600);
  } catch (err) {
    throw new SvpError("ERR_NOT_ALLOWED", `cannot open the daemon log ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The last `maxBytes` of the daemon log (for error messages when a start fails), from byte
 * `from` on (the log's size before this start: earlier runs' lines are not this failure).
 */
export function daemonLogTail(home: string, maxBytes = 2000, from = 0): string {
  try {
    const text = readFileSync(join(home, LOG_FILE)).subarray(from).toString("utf8");
    return text.slice(-maxBytes).trim();
  } catch {
    return "";
  }
}

export function readConfigFile(home: string): { path: string; text: string } | undefined {
  const path = join(home, CONFIG_FILE);
  try {
    const st = statSync(path);
    if (st.size > 256 * 1024) throw new SvpError("ERR_USAGE", `config file ${path} is too large`);
    return { path, text: readFileSync(path, "utf8") };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err instanceof SvpError ? err : new SvpError("ERR_USAGE", `cannot read config file ${path}: ${(err as Error).message}`);
  }
}

