/**
 * Every default a user of svp can see or change, in one table. The library's options
 * (`?? DEFAULTS…`), the CLI's flags (what a flag means when it is absent) and the CLI's
 * help text ("(default: …)") all read it; the README and docs/library.md say the same
 * values, and test/cli's help goldens fail when the help text drifts from them.
 *
 * Durations are ms, sizes bytes; 0 means "never" / "no limit" where a comment says so.
 * Protocol facts that are not a user's choice stay with their protocol (MSP's 10 s silence
 * limit is `MSP_DEFAULTS.timeoutMs` in src/msp/params.ts; `svp connect -w` defaults to it).
 */
export const DEFAULTS = {
  /** Per-connection log lines of socks, connect --forward, listen and the daemon. */
  logFormat: "text",
  /** After SIGINT/SIGTERM (or `close()` without a drain time): how long live streams may finish. */
  drainMs: 10_000,

  /** The mesh backend (`--mesh`, `openMesh({ mesh })`); the CLI also reads SVP_MESH. */
  meshMode: "auto",
  /** After auto-starting the embedded node: how long dials wait for it to find its peers. */
  discoveryGraceMs: 3000,
  /** How a library user's session names itself in `svp status`. */
  libraryClientName: "svp library",
  /** Hold a mesh request while its node is not reachable yet (`--wait-route`); 0 = refuse at once. */
  waitRouteMs: 0,
  /** How long resolving `<service>.svc.serval` (or a service port) by discovery may take. */
  serviceLookupMs: 2000,

  /** `svp socks --listen` when none is given. */
  socksListen: "127.0.0.1:1080",
  /** `mesh.socks({ listen })` when none is given: a free loopback port. */
  librarySocksListen: "127.0.0.1:0",
  /** Close proxy clients that send no complete request in time. */
  handshakeTimeoutMs: 10_000,
  /** Give up opening a destination (socks, connect --forward) after this long. */
  connectTimeoutMs: 30_000,
  /** Close tunnels and connections with no traffic for this long; 0 = never. */
  idleTimeoutMs: 0,
  /** Refuse new proxy requests while this many are open; 0 = no limit. */
  maxConns: 0,
  /** Non-mesh destinations of the proxy: "allow" (direct) or "deny". */
  direct: "allow",

  /** `svp listen --forward PORT`: the host when only a port is given. */
  listenForwardHost: "127.0.0.1",
  /** `svp listen`: give up opening the target (TCP port, program) for a caller after this long. */
  listenOpenTimeoutMs: 10_000,
  /** `svp listen` / `mesh.listen()`: connections at most; more are refused. */
  listenMaxConnections: 1024,

  /** `svp discover --timeout`: collect answers for this long. */
  discoverTimeoutMs: 2000,

  /** The embedded node's overlay UDP port (any free port when it is taken and none was asked for). */
  overlayPort: 4111,
  /** The embedded node's keep-alive period. */
  helloIntervalMs: 5000,
  /** A peer expires after this many silent hello intervals. */
  peerTimeoutHellos: 3.5,
} as const;

/** A default duration as a flag takes it and `--help` shows it: "10s", "250ms"; 0 as `zero` ("0", "never"). */
export function durationFlagText(ms: number, zero = "0"): string {
  if (ms === 0) return zero;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
