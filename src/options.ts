/**
 * Parsers and validators for values that come from the outside (CLI flags, config files,
 * environment). Each throws a `UsageError` naming what was wrong, so the CLI can print
 * one line and exit 2.
 */

import { UsageError } from "./errors.ts";

export type ListenAddress =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string };

/** Parse a TCP port: an integer 0–65535 (0 only when `allowZero`). */
export function parsePort(text: string, what = "port", allowZero = true): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(`invalid ${what} "${text}": expected a number 0-65535`);
  const n = Number(text);
  if (n > 65535 || (!allowZero && n === 0)) throw new UsageError(`invalid ${what} "${text}": expected a number ${allowZero ? 0 : 1}-65535`);
  return n;
}

/**
 * Parse a listen address: `host:port`, `[v6]:port`, `:port` (loopback 127.0.0.1),
 * a bare `port`, or `unix:/path`.
 */
export function parseListenAddress(text: string, defaultHost = "127.0.0.1"): ListenAddress {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (!path.startsWith("/")) throw new UsageError(`invalid listen address "${text}": unix socket path must be absolute`);
    return { kind: "unix", path };
  }
  const { host, port } = parseHostPort(text, "listen address", defaultHost);
  return { kind: "tcp", host, port };
}

/** Parse `host:port`, `[v6]:port`, `:port` or `port` (host defaults to `defaultHost`). */
export function parseHostPort(text: string, what: string, defaultHost: string): { host: string; port: number } {
  let host: string;
  let portText: string;
  if (/^\d+$/.test(text)) {
    host = defaultHost;
    portText = text;
  } else if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") throw new UsageError(`invalid ${what} "${text}": expected [ipv6]:port`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!host.includes(":")) throw new UsageError(`invalid ${what} "${text}": brackets are only for IPv6 addresses`);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new UsageError(`invalid ${what} "${text}": expected host:port`);
    host = text.slice(0, colon) || defaultHost;
    portText = text.slice(colon + 1);
    if (host.includes(":")) throw new UsageError(`invalid ${what} "${text}": write IPv6 addresses as [addr]:port`);
  }
  if (host.length > 253 || !/^[A-Za-z0-9.:%_-]+$/.test(host)) throw new UsageError(`invalid ${what} "${text}": bad host`);
  return { host, port: parsePort(portText, `port in ${what}`) };
}

export function formatListenAddress(addr: ListenAddress): string {
  if (addr.kind === "unix") return `unix:${addr.path}`;
  return addr.host.includes(":") ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/**
 * True for 127.0.0.0/8, ::1, localhost and unix sockets: addresses only this host can reach.
 * IPv6 is compared in canonical form, so `0:0:0:0:0:0:0:1` and `::ffff:127.0.0.2` count too.
 */
export function isLoopbackAddress(addr: ListenAddress): boolean {
  if (addr.kind === "unix") return true;
  const h = canonicalHost(addr.host);
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(h);
}

/** Lower case; IPv6 literals in the WHATWG URL parser's canonical form (zone ids kept as typed). */
function canonicalHost(host: string): string {
  const h = host.toLowerCase();
  if (!h.includes(":") || h.includes("%")) return h;
  try {
    return new URL(`http://[${h}]/`).hostname.slice(1, -1);
  } catch {
    return h;
  }
}

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * Parse a duration: `250ms`, `10s`, `1.5s`, `5m`, `1h`, or a bare number of seconds.
 * Returns milliseconds. `0` means "off" where the option documents it.
 */
export function parseDuration(text: string, what = "duration"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`invalid ${what} "${text}": expected a number with ms, s, m or h (e.g. 10s)`);
  const unit = (m[2] ?? "s") as keyof typeof DURATION_UNITS;
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[unit]);
  if (!Number.isFinite(ms) || ms > 2 ** 31 - 1) throw new UsageError(`invalid ${what} "${text}": too long`);
  return ms;
}

/** A duration for messages, as the user would have typed it: "250 ms", "1.5 s", "10 s". */
export function durationText(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${Math.round(ms / 100) / 10} s`;
}

/** A measured duration for humans: "12 ms", "1.5 s", "2 m 5 s", "1 h 3 m" (log lines, status, timeout messages). */
export function formatDuration(ms: number): string {
  // Round to the unit shown first, so that rounding carries (59.96 s is "1 m 0 s", not "60.0 s").
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.round(ms / 100) < 600) return `${(Math.round(ms / 100) / 10).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${s % 60} s`;
  const m = Math.round(ms / 60_000);
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

/** Parse a positive integer option (e.g. --max-conns). */
export function parsePositiveInt(text: string, what: string, max = 2 ** 31 - 1): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new UsageError(`invalid ${what} "${text}": expected a whole number 1-${max}`);
  return Number(text);
}
