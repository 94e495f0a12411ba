/**
 * svp's few coded errors and the one table that translates them at the edges:
 * SOCKS5 reply, SOCKS4 reply, HTTP status, process exit code and a short reason.
 *
 * Everything inside svp throws or emits `SvpError`; only the edges (socks server,
 * HTTP proxy, CLI) look the code up here, so a failure reads the same everywhere:
 * "cannot <action>: <reason>".
 */

export const ERROR_TABLE = {
  /** Bad CLI flag or value. */
  ERR_USAGE: { socks5: 0x01, socks4: 0x5b, http: 400, exit: 2, reason: "usage error" },
  /** An address, name, port or SID that does not parse. */
  ERR_BAD_ADDRESS: { socks5: 0x04, socks4: 0x5b, http: 400, exit: 2, reason: "bad address" },
  /** The destination host or mesh node is not reachable (no route, unknown peer). */
  ERR_NO_ROUTE: { socks5: 0x04, socks4: 0x5b, http: 502, exit: 3, reason: "no route to host" },
  /** A DNS name did not resolve. */
  ERR_NAME_NOT_FOUND: { socks5: 0x04, socks4: 0x5b, http: 502, exit: 3, reason: "name not found" },
  /** The network itself is unreachable (ENETUNREACH). */
  ERR_NET_UNREACHABLE: { socks5: 0x03, socks4: 0x5b, http: 502, exit: 3, reason: "network unreachable" },
  /** The destination actively refused (TCP RST on connect, MSP STOP before any data). */
  ERR_REFUSED: { socks5: 0x05, socks4: 0x5b, http: 502, exit: 4, reason: "connection refused" },
  /** A wait ran out: connect, handshake, idle, MSP's 10 s silence. */
  ERR_TIMEOUT: { socks5: 0x06, socks4: 0x5b, http: 504, exit: 5, reason: "timed out" },
  /** No mesh backend is available (no daemon, servald socket gone). */
  ERR_MESH_DOWN: { socks5: 0x01, socks4: 0x5b, http: 503, exit: 6, reason: "mesh backend not available" },
  /** Refused by svp's own rules (--direct deny, --allow, --max-conns). */
  ERR_NOT_ALLOWED: { socks5: 0x02, socks4: 0x5b, http: 403, exit: 7, reason: "not allowed by rule" },
  /** Client failed proxy authentication. */
  ERR_AUTH: { socks5: 0x02, socks4: 0x5d, http: 407, exit: 7, reason: "authentication failed" },
  /** SOCKS command other than CONNECT. */
  ERR_COMMAND_UNSUPPORTED: { socks5: 0x07, socks4: 0x5b, http: 501, exit: 1, reason: "command not supported" },
  /** SOCKS5 address type other than IPv4, IPv6 or domain name. */
  ERR_ADDRESS_TYPE: { socks5: 0x08, socks4: 0x5b, http: 400, exit: 1, reason: "address type not supported" },
  /** The peer broke the protocol (malformed bytes). */
  ERR_PROTOCOL: { socks5: 0x01, socks4: 0x5b, http: 400, exit: 1, reason: "protocol error" },
  /** The connection was reset or stopped after it was established. */
  ERR_RESET: { socks5: 0x01, socks4: 0x5b, http: 502, exit: 1, reason: "connection reset" },
  /** Aborted locally (shutdown, relay teardown). */
  ERR_ABORTED: { socks5: 0x01, socks4: 0x5b, http: 502, exit: 1, reason: "aborted" },
  /** A message exceeded its size cap (HTTP request head, SOCKS field). */
  ERR_TOO_LARGE: { socks5: 0x01, socks4: 0x5b, http: 431, exit: 1, reason: "request too large" },
  /** Something is already taken: a daemon already runs for the instance, a UDP port is in use. */
  ERR_BUSY: { socks5: 0x01, socks4: 0x5b, http: 503, exit: 1, reason: "already in use" },
  /** A configured limit was reached (max connections, buffer, file descriptors). */
  ERR_LIMIT: { socks5: 0x01, socks4: 0x5b, http: 503, exit: 1, reason: "limit reached" },
  /** Anything else: a bug or an unexpected system error. */
  ERR_INTERNAL: { socks5: 0x01, socks4: 0x5b, http: 500, exit: 1, reason: "internal error" },
} as const;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** Exit codes documented in the README; 0 ok, 1 runtime failure, 2 usage. */
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, NO_ROUTE: 3, REFUSED: 4, TIMEOUT: 5, MESH_DOWN: 6, NOT_ALLOWED: 7 } as const;

/**
 * The error code a child svp process most likely failed with, from its exit status (used
 * when `svp daemon start` reports why the background daemon died). Undefined for 0, 1 and
 * unknown codes, which say nothing specific.
 */
export function errorCodeForExit(exit: number): ErrorCode | undefined {
  const byExit: Partial<Record<number, ErrorCode>> = { 2: "ERR_USAGE", 3: "ERR_NO_ROUTE", 4: "ERR_REFUSED", 5: "ERR_TIMEOUT", 6: "ERR_MESH_DOWN", 7: "ERR_NOT_ALLOWED" };
  return byExit[exit];
}

export class SvpError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_TABLE[code].reason, options);
    this.name = "SvpError";
    this.code = code;
  }
}

/** Usage errors carry the offending flag in their message; they map to exit 2. */
export class UsageError extends SvpError {
  constructor(message: string) {
    super("ERR_USAGE", message);
    this.name = "UsageError";
  }
}

export function isSvpError(err: unknown, code?: ErrorCode): err is SvpError {
  return err instanceof SvpError && (code === undefined || err.code === code);
}

/** System errno names (from TCP/UDP/fs calls) mapped to svp codes. */
const ERRNO_TABLE: Record<string, ErrorCode> = {
  ECONNREFUSED: "ERR_REFUSED",
  ECONNRESET: "ERR_RESET",
  EPIPE: "ERR_RESET",
  ETIMEDOUT: "ERR_TIMEOUT",
  EHOSTUNREACH: "ERR_NO_ROUTE",
  EHOSTDOWN: "ERR_NO_ROUTE",
  ENETUNREACH: "ERR_NET_UNREACHABLE",
  ENETDOWN: "ERR_NET_UNREACHABLE",
  ENOTFOUND: "ERR_NAME_NOT_FOUND",
  EAI_AGAIN: "ERR_NAME_NOT_FOUND",
  EAI_NONAME: "ERR_NAME_NOT_FOUND",
  EADDRNOTAVAIL: "ERR_BAD_ADDRESS",
  EMFILE: "ERR_LIMIT",
  ENFILE: "ERR_LIMIT",
  ENOBUFS: "ERR_LIMIT",
  EACCES: "ERR_NOT_ALLOWED",
  EPERM: "ERR_NOT_ALLOWED",
};

/** Wrap anything thrown into an SvpError, keeping the original as `cause`. */
export function toSvpError(err: unknown): SvpError {
  if (err instanceof SvpError) return err;
  const errno = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  const code = ERRNO_TABLE[errno] ?? "ERR_INTERNAL";
  const message = err instanceof Error ? err.message : String(err);
  return new SvpError(code, code === "ERR_INTERNAL" ? message : ERROR_TABLE[code].reason, { cause: err });
}

/**
 * Why an abort happened, as an SvpError: the reason itself when it is one (svp's layers
 * abort with SvpErrors that say why: a timeout, a shutdown, a client gone), ERR_TIMEOUT
 * for a `TimeoutError` (what `AbortSignal.timeout()` aborts with), else ERR_ABORTED
 * "<what> aborted" (with the reason's message when it is an Error, kept as `cause`).
 */
export function abortError(reason: unknown, what: string): SvpError {
  if (reason instanceof SvpError) return reason;
  const timeout = reason instanceof Error && reason.name === "TimeoutError";
  const detail = reason instanceof Error ? `: ${reason.message}` : "";
  return new SvpError(timeout ? "ERR_TIMEOUT" : "ERR_ABORTED", `${what} ${timeout ? "timed out" : "aborted"}${detail}`, { cause: reason });
}

/** Throw `abortError(signal.reason, what)` when `signal` has been aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal.reason, what);
}

/**
 * The error an operation run under `signal` failed with: the signal's own SvpError reason
 * when it was aborted with one (it explains better than the operation's echo of the
 * abort), else `err` as an SvpError.
 */
export function failureUnder(signal: { readonly aborted: boolean; readonly reason?: unknown }, err: unknown): SvpError {
  return signal.aborted && signal.reason instanceof SvpError ? signal.reason : toSvpError(err);
}

/** "cannot <action>: <reason>" — the one-line message every edge prints. */
export function describe(action: string, err: unknown): string {
  const e = toSvpError(err);
  return `cannot ${action}: ${e.message}`;
}
