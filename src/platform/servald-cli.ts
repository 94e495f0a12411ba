/**
 * servald's own command line and files, for `svp status` on the servald backend: the
 * binary (SVP_SERVALD, else `servald` on PATH), a bounded run of one of its commands
 * against an instance, and the daemon's pid file.
 */

import { execFile } from "node:child_process";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { SvpError, toSvpError } from "../errors.ts";
import { sidEquals, sidFromHex } from "../mesh/sid.ts";
import { resolveInstances } from "../servald/instance.ts";
import type { ServaldInstance } from "../servald/instance.ts";
import { connectServald } from "../servald/connect-servald.ts";
import type { ServaldTransportOptions } from "../servald/servald-transport.ts";
import { parseIdSelf, parseKeyValues, parseRoutePrint, parseServaldVersion, servaldStatusReport } from "../servald/servald-status.ts";
import type { ServaldFacts } from "../servald/servald-status.ts";
import type { StatusReport } from "../status/status-report.ts";
import { openUnixDatagram, servaldEnvironment, unixDatagramSupport } from "./unix-dgram.ts";

/** The servald binary to ask: $SVP_SERVALD when it names an executable, else `servald` on $PATH. */
export function findServaldCli(env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const executable = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  const explicit = env.SVP_SERVALD;
  if (explicit) return executable(explicit) ? explicit : undefined;
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir && executable(join(dir, "servald"))) return join(dir, "servald");
  }
  return undefined;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `bin args` with SERVALINSTANCE_PATH=`instance` (when given), killed after `timeoutMs`.
 * Never rejects: a binary that cannot start gives code null and the reason in `stderr`.
 */
export function runServaldCli(bin: string, args: string[], instance: string | undefined, timeoutMs = 5000): Promise<CliResult> {
  const env = { ...process.env };
  if (instance !== undefined) env.SERVALINSTANCE_PATH = instance;
  return new Promise((resolve) => {
    execFile(bin, args, { env, timeout: timeoutMs, maxBuffer: 4 << 20, encoding: "utf8" }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
      if (typeof e.code === "number") return resolve({ code: e.code, stdout, stderr });
      resolve({ code: null, stdout, stderr: e.killed ? `${stderr}(killed after ${timeoutMs} ms)` : `${stderr}${e.message}` });
    });
  });
}

/** servald's pid file in its run directory: the pid and when it was written (ms since the epoch). */
export function readServaldPidFile(runDir: string): { pid: number; writtenAtMs: number } | undefined {
  const path = join(runDir, "servald.pid");
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    return { pid, writtenAtMs: statSync(path).mtimeMs };
  } catch {
    return undefined;
  }
}

export interface ServaldStatusOptions {
  /** `--servald-instance`; else SERVALINSTANCE_PATH, else servald's default run directories. */
  instance?: string | undefined;
  /** The servald binary for version (and everything, when svp cannot open the socket); default `findServaldCli()`, null: none. */
  cli?: string | null | undefined;
  /** Bound for each step (socket handshake, each CLI command), ms. Default 3000. */
  timeoutMs?: number | undefined;
}

/**
 * The status of the servald that `--mesh servald` would use. Asks the daemon over svp's own
 * MDP client; where the native addon is missing, servald's CLI stands in (when there is
 * one). Rejects ERR_MESH_DOWN when no servald answers.
 */
export async function queryServaldStatus(options: ServaldStatusOptions = {}): Promise<StatusReport> {
  const cli = options.cli !== undefined ? options.cli : (findServaldCli() ?? null);
  const timeoutMs = options.timeoutMs ?? 3000;
  const addon = unixDatagramSupport();
  if (!addon.available) {
    if (!cli) throw new SvpError("ERR_MESH_DOWN", `${addon.reason}; no servald CLI to ask instead (set SVP_SERVALD or put servald on PATH)`);
    return servaldStatusReport(await factsFromCli(cli, options.instance, timeoutMs, [`${addon.reason}: the status comes from ${cli}`]), Date.now());
  }
  const o: ServaldTransportOptions = { openSocket: openUnixDatagram, env: servaldEnvironment(), connectTimeoutMs: timeoutMs, ...(options.instance !== undefined ? { instance: options.instance } : {}) };
  const t = await connectServald(o);
  const notes: string[] = [];
  let version: string | undefined;
  try {
    if (cli) {
      const v = await runServaldCli(cli, ["version"], t.instance.path, timeoutMs);
      version = parseServaldVersion(v.stdout);
      if (version === undefined) notes.push(`\`${cli} version\` printed no version (exit ${v.code}): ${firstLine(v.stderr || v.stdout)}`);
    }
  } finally {
    t.close();
  }
  const pidFile = readServaldPidFile(t.instance.path);
  const facts: ServaldFacts = {
    instance: t.instance,
    identities: t.identities,
    routes: t.routes(),
    pid: pidFile?.pid ?? null,
    startedAtMs: pidFile?.writtenAtMs ?? null,
    version,
    cli,
    via: "socket",
    notes,
  };
  return servaldStatusReport(facts, Date.now());
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0]?.slice(0, 200) ?? "";
}

/** The same facts from `servald status`, `id self`, `route print` and `version`. */
async function factsFromCli(cli: string, instanceOption: string | undefined, timeoutMs: number, notes: string[]): Promise<ServaldFacts> {
  let instances: ServaldInstance[];
  try {
    instances = resolveInstances({ instance: instanceOption, env: servaldEnvironment() });
  } catch (err) {
    throw toSvpError(err);
  }
  const tried: string[] = [];
  for (const instance of instances) {
    const st = await runServaldCli(cli, ["status"], instance.path, timeoutMs);
    const kv = parseKeyValues(st.stdout);
    if (kv.status !== "running") {
      tried.push(`${instance.path}: ${kv.status ?? firstLine(st.stderr) ?? "no answer"}`);
      continue;
    }
    const [self, routes, version] = await Promise.all([
      runServaldCli(cli, ["id", "self"], instance.path, timeoutMs),
      runServaldCli(cli, ["route", "print"], instance.path, timeoutMs),
      runServaldCli(cli, ["version"], instance.path, timeoutMs),
    ]);
    for (const [what, r] of [["id self", self], ["route print", routes]] as const) {
      if (r.code !== 0) notes.push(`\`${cli} ${what}\` failed (exit ${r.code}): ${firstLine(r.stderr)}`);
    }
    const pid = Number(kv.pid);
    const pidFile = readServaldPidFile(instance.path);
    const primary = kv.primary_sid ? sidFromHex(kv.primary_sid) : undefined;
    const ids = parseIdSelf(self.stdout);
    return {
      instance,
      identities: primary ? [primary, ...ids.filter((s) => !sidEquals(s, primary))] : ids,
      routes: parseRoutePrint(routes.stdout),
      pid: Number.isInteger(pid) && pid > 0 ? pid : (pidFile?.pid ?? null),
      startedAtMs: pidFile?.writtenAtMs ?? null,
      version: parseServaldVersion(version.stdout),
      cli,
      via: "cli",
      notes,
    };
  }
  throw new SvpError("ERR_MESH_DOWN", `no servald is running according to ${cli} status (${tried.join("; ")})`);
}
