/**
 * Everything the CLI prints goes through here: colour (kleur, only on a TTY and without
 * NO_COLOR), the one-line error format, and per-stream log lines (text or NDJSON).
 * stdout is for data only; all of this goes to stderr unless a function says otherwise.
 */

import kleur from "kleur";
import { DEFAULTS, ERROR_TABLE, formatDuration, SvpError, toSvpError, UsageError } from "../src/index.ts";
import type { MspTelemetry } from "../src/index.ts";

const stderrIsTTY = Boolean(process.stderr.isTTY);
const stdoutIsTTY = Boolean(process.stdout.isTTY);
const noColor = "NO_COLOR" in process.env && process.env.NO_COLOR !== "";

/** kleur instance for stderr (coloured only on a TTY without NO_COLOR). */
export const errColor = new Proxy(kleur, {}) as typeof kleur;
errColor.enabled = stderrIsTTY && !noColor;

/** Whether stdout output (status tables) may be coloured. */
export const stdoutColor = stdoutIsTTY && !noColor;

export type LogFormat = "text" | "json";

/** The value of `--log` (absent: text). Throws a UsageError naming the flag otherwise. */
export function parseLogFormat(text: string | undefined): LogFormat {
  if (text === undefined || text === "text" || text === "json") return text ?? DEFAULTS.logFormat;
  throw new UsageError(`invalid --log "${text}": expected text or json`);
}

export interface Logger {
  /** A progress or state line ("svp socks: listening on …"). */
  info(message: string): void;
  /** A line that prints even with --quiet ("listening on …": scripts need it). */
  always(message: string): void;
  /** A warning (open proxy, fallback); printed even with --quiet. */
  warn(message: string): void;
  /** One structured event per stream or connection. `msg` is the text form. */
  event(fields: Record<string, unknown>, msg: string): void;
}

export function createLogger(command: string, format: LogFormat = "text", quiet = false): Logger {
  const write = (line: string) => process.stderr.write(line + "\n");
  const json = (level: string, fields: Record<string, unknown>) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, cmd: command, ...fields }));
  return {
    info(message) {
      if (quiet) return;
      if (format === "json") json("info", { msg: message });
      else write(`svp ${command}: ${message}`);
    },
    always(message) {
      if (format === "json") json("info", { msg: message });
      else write(`svp ${command}: ${message}`);
    },
    warn(message) {
      if (format === "json") json("warn", { msg: message });
      else write(`${errColor.yellow("warning")}: svp ${command}: ${message}`);
    },
    event(fields, msg) {
      if (quiet) return;
      if (format === "json") json("info", fields);
      else write(`svp ${command}: ${msg}`);
    },
  };
}

/** Print "svp <cmd>: cannot <action>: <reason>" and return the exit code for it. */
export function reportError(command: string, action: string, err: unknown): number {
  const e = toSvpError(err);
  const prefix = command ? `svp ${command}` : "svp";
  if (e.code === "ERR_USAGE") {
    // Usage errors name the flag themselves; point at the help instead of "cannot …".
    const hint = e.message.startsWith("cannot ") || e.message.includes("--help") ? "" : ` (see svp ${command ? command + " " : ""}--help)`;
    process.stderr.write(`${prefix}: ${errColor.red(e.message)}${hint}\n`);
  } else {
    process.stderr.write(`${prefix}: ${errColor.red("cannot " + action)}: ${e.message}\n`);
  }
  return ERROR_TABLE[e.code].exit;
}

/** cac help sections, tidied: "svp <version>: <tagline>" as the title, no trailing blanks. */
export function tidyHelp(version: string, tagline: string) {
  return (sections: { title?: string; body: string }[]) =>
    sections.map((s, i) => ({
      ...(s.title !== undefined ? { title: s.title } : {}),
      // cac shows "(default: true)" on every --no-X flag, which reads as "on by default".
      body: (i === 0 && s.title === undefined ? `svp ${version}: ${tagline}` : s.body).replace(/^(\s+(?:-\w, )?--no-.*?) \(default: true\)$/gm, "$1").replace(/[ \t]+$/gm, ""),
    }));
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

/** What every per-connection record carries (the bridge's and the SOCKS server's alike). */
export interface ConnectionCounts {
  /** "ok", "served" (svp answered itself) or the error code. */
  outcome: string;
  /** Error text, or what was served. */
  message?: string;
  /** Bytes each way: towards the target, back from it. */
  up: number;
  down: number;
  durationMs: number;
}

/** How one command names its connections in the log line. */
export interface ConnectionNames {
  /** The `event` field: "connection" or "stream". */
  event: string;
  /** The fields that say which connection (client, peer, dest…), logged before the outcome in this order. */
  ids: Record<string, unknown>;
  /** The same as text, before the colon: "127.0.0.1:5000 → node:80". */
  who: string;
  /** Fields after the counts, when present (user). */
  extra?: Record<string, unknown>;
  /** What the text calls the two directions. Default ["up", "down"]. */
  directions?: readonly [string, string];
  /** The word for a failure in the text. Default "failed". */
  failed?: string;
}

/**
 * The one per-connection log event of `svp socks`, `connect` and `listen`: the NDJSON
 * fields (event, ids, outcome, up_bytes, down_bytes, duration_ms, extra, message) and the
 * text line "<who>: ok; 1.0 KiB up, 20 B down, 12 ms" (or "failed (<code>): <message>; …").
 */
export function connectionEvent(names: ConnectionNames, r: ConnectionCounts): { fields: Record<string, unknown>; text: string } {
  const fields: Record<string, unknown> = {
    event: names.event,
    ...names.ids,
    outcome: r.outcome,
    up_bytes: r.up,
    down_bytes: r.down,
    duration_ms: Math.round(r.durationMs),
  };
  for (const [k, v] of Object.entries(names.extra ?? {})) if (v !== undefined) fields[k] = v;
  if (r.message !== undefined) fields.message = r.message;
  const [up, down] = names.directions ?? ["up", "down"];
  const outcome = r.outcome === "ok" ? "ok" : `${names.failed ?? "failed"} (${r.outcome}): ${r.message ?? ""}`;
  return { fields, text: `${names.who}: ${outcome}; ${formatBytes(r.up)} ${up}, ${formatBytes(r.down)} ${down}, ${formatDuration(r.durationMs)}` };
}

export { SvpError, formatDuration };

/**
 * One line of MSP telemetry: "extension on, 16 KiB messages, window 12 packets (cwnd 1.2 MiB),
 * rtt 0.4 ± 0.1 ms, 3 retransmissions, 2 losses, 0 probes" (classic: "classic MSP, …").
 */
export function formatMspTelemetry(t: MspTelemetry): string {
  const parts = [t.extension === "on" ? "extension on" : t.extension === "off" ? "classic MSP" : "extension offered"];
  parts.push(`${formatBytes(t.messageSize)} messages`);
  parts.push(`${t.packetsInFlight} in flight${t.cwnd === null ? "" : ` (cwnd ${formatBytes(t.cwnd)})`}`);
  if (t.srttMs !== null) parts.push(`rtt ${t.srttMs.toFixed(1)}${t.rttvarMs === null ? "" : ` ± ${t.rttvarMs.toFixed(1)}`} ms`);
  parts.push(`${t.retransmissions} retransmissions`);
  if (t.extension === "on") parts.push(`${t.losses} losses, ${t.probes} probes`);
  return parts.join(", ");
}
