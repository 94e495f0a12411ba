/**
 * `svp connect [options] <SID|name> [mdp-port|service]`: netcat to a mesh service.
 * Without --forward: stdin/stdout is the stream (EOF on stdin sends SHUTDOWN; the remote's
 * answer keeps printing until it finishes). With --forward: a local listener whose every
 * connection gets its own MSP stream.
 */

import type { CAC } from "cac";
import { defaultLoopCount, DEFAULTS, durationFlagText, ERROR_TABLE, EXIT, formatListenAddress, isLoopbackAddress, meshNetcat, MSP_DEFAULTS, parseDuration, parseListenAddress, parseMeshTarget, parsePositiveInt, sidToHex, startMeshForward, SvpError, toSvpError, upperSidLabels, UsageError } from "../src/index.ts";
import type { ForwardRecord, ListenAddress, MeshTarget, OpenMeshOptions } from "../src/index.ts";
import type { CommandLine } from "./command-line.ts";
import { addMeshOptions, meshOptions } from "./mesh-flags.ts";
import type { LogFormat, Logger } from "./render.ts";
import { connectionEvent, createLogger, parseLogFormat, formatBytes, formatDuration, formatMspTelemetry, reportError } from "./render.ts";
import { StopSignals } from "./stop-signals.ts";

/** Signals that stop a stdio connection: the remote is sent STOP, svp exits 1. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export interface ConnectConfig {
  target: MeshTarget;
  /** As typed, for messages. */
  dest: string;
  forward: ListenAddress | undefined;
  once: boolean;
  noShutdown: boolean;
  waitMs: number | undefined;
  idleMs: number;
  waitRouteMs: number;
  verbose: boolean;
  /** --forward: event loops accepting local connections (1 with --once). */
  workers: number;
  log: LogFormat;
  quiet: boolean;
  mesh: OpenMeshOptions;
}

export function register(cli: CAC): void {
  const cmd = cli
    .command("connect <dest> [port]", "Netcat to a mesh service: stdin/stdout, or --forward a local port (dest: SID or mesh name; port: MDP port or service)")
    .usage("connect [options] <SID|name> <mdp-port|service>")
    .option("--forward <[addr:]port|unix:/path>", "Listen on loopback (or addr), or on an owner-only unix socket, and carry each accepted connection over its own MSP stream (loopback TCP is open to every local user: see README, Security)")
    .option("--auth <user:pass>", "Not available: a raw TCP forward has no place for credentials (use --forward unix:/path, or svp socks --auth)")
    .option("--once", "With --forward: serve one connection, then exit with its outcome")
    .option("-N, --no-shutdown", "Keep the write side open after EOF on stdin until the remote has finished")
    .option("-w, --wait <duration>", `Give up connecting after this long (default: ${durationFlagText(MSP_DEFAULTS.timeoutMs)}, MSP's own limit)`)
    .option("-i, --idle <duration>", `Close the connection after this long without traffic (default: ${durationFlagText(DEFAULTS.idleTimeoutMs, "never")})`)
    .option("--wait-route <duration>", `Wait up to this long for the node to become reachable instead of failing at once (default: ${durationFlagText(DEFAULTS.waitRouteMs)})`)
    .option("--verbose", "Stdio mode: say on stderr when connected and when done")
    .option("--workers <n>", "--forward: event loops (threads) accepting local connections (default: the number of CPUs; 1 with --once)");
  addMeshOptions(cmd)
    .option("--log <text|json>", `--forward: per-connection log lines on stderr as text or NDJSON (default: ${DEFAULTS.logFormat})`)
    .option("--quiet", "--forward: no per-connection log lines")
    .example("  $ svp connect <SID> 80                    # netcat to MDP port 80 of <SID>")
    .example("  $ printf 'GET / HTTP/1.0\\r\\n\\r\\n' | svp connect <SID>.serval http")
    .example("  $ svp connect --forward 8080 <SID> 80     # http://127.0.0.1:8080/ reaches <SID>:80")
    .example("  $ svp connect --forward unix:$XDG_RUNTIME_DIR/web.sock <SID> 80   # only this user: curl --unix-socket …")
    .example("  $ ssh -o ProxyCommand='svp connect %h 22' user@<SID>.serval")
    .action((line: CommandLine) => runConnect(line));
}

/** Validate the flags and arguments of `svp connect`. Throws UsageError. */
export function connectConfig({ positionals: [dest = "", port], flags }: CommandLine): ConnectConfig {
  let target: MeshTarget;
  try {
    target = parseMeshTarget(dest, port);
  } catch (err) {
    // A usage error like any bad argument: the message alone, exit 2 (not "cannot run connect: …").
    throw new UsageError((err as Error).message);
  }
  const forwardText = flags.one("forward");
  let forward: ListenAddress | undefined;
  if (forwardText !== undefined) {
    try {
      forward = parseListenAddress(forwardText);
    } catch (err) {
      throw new UsageError(`invalid --forward "${forwardText}": ${(err as Error).message.replace(/^invalid [^"]*"[^"]*": /, "")}`);
    }
  }
  if (flags.all("auth").length > 0) {
    // What --auth means for svp socks (SOCKS5 user/pass, Proxy-Authorization) needs a protocol;
    // a forward carries the client's own bytes from the first one, with no room for credentials.
    throw new UsageError(
      "--auth: svp connect --forward carries raw TCP, which has no place for credentials; to keep other local users out, listen on an owner-only unix socket (--forward unix:/path, mode 0600), or use svp socks --auth user:pass (SOCKS5/HTTP proxy authentication) where a TCP port is needed",
    );
  }
  const once = flags.has("once");
  if (once && !forward) throw new UsageError("--once needs --forward (without it, svp connect carries exactly one stream anyway)");
  const noShutdown = flags.has("no-shutdown");
  if (noShutdown && forward) throw new UsageError("-N/--no-shutdown is for stdin/stdout; with --forward each client decides when it is done");
  const dur = (name: string) => {
    const t = flags.one(name);
    return t === undefined ? undefined : parseDuration(t, `--${name}`);
  };
  const waitMs = dur("wait");
  if (waitMs === 0) throw new UsageError(`invalid --wait "0": must be more than 0`);
  const idleMs = dur("idle") ?? DEFAULTS.idleTimeoutMs;
  const waitRouteMs = dur("wait-route") ?? DEFAULTS.waitRouteMs;
  const logText = parseLogFormat(flags.one("log"));
  const workersText = flags.one("workers");
  if (workersText !== undefined && !forward) throw new UsageError("--workers needs --forward (stdin/stdout is one stream)");
  const workers = once ? 1 : workersText === undefined ? defaultLoopCount() : parsePositiveInt(workersText, "--workers", 256);
  return {
    target,
    dest,
    forward,
    once,
    noShutdown,
    waitMs,
    idleMs,
    waitRouteMs,
    verbose: flags.has("verbose"),
    workers,
    log: logText,
    quiet: flags.has("quiet"),
    mesh: meshOptions(flags, "svp connect"),
  };
}

async function runConnect(line: CommandLine): Promise<number> {
  const cfg = connectConfig(line);
  return cfg.forward ? runForward(cfg, cfg.forward) : runStdio(cfg);
}

/** The destination as typed, SIDs in upper case (as everywhere in svp's output). */
function describeTarget(cfg: ConnectConfig): string {
  const dest = upperSidLabels(cfg.dest);
  return cfg.target.port !== undefined || cfg.target.service !== undefined ? `${dest} ${cfg.target.port ?? cfg.target.service}` : dest;
}

async function runStdio(cfg: ConnectConfig): Promise<number> {
  const what = describeTarget(cfg);
  // SIGHUP too: ssh ends a ProxyCommand with it, and a closed terminal sends it; dying of
  // it would leave the remote waiting 10 s for a stream nobody will finish. Once connected,
  // a signal resets the stream (the remote sees STOP); a hangup is how ssh ends every
  // ProxyCommand, so it is no failure worth a line on the terminal.
  const ac = new AbortController();
  let connected = false;
  let hungUp = false;
  const onStop = {
    SIGINT: () => ac.abort(new SvpError("ERR_ABORTED", "interrupted")),
    SIGTERM: () => ac.abort(new SvpError("ERR_ABORTED", "interrupted")),
    SIGHUP: () => {
      hungUp = connected;
      ac.abort(new SvpError("ERR_ABORTED", connected ? "hung up" : "interrupted"));
    },
  };
  for (const sig of STOP_SIGNALS) process.once(sig, onStop[sig]);
  const r = await meshNetcat({
    mesh: cfg.mesh,
    target: cfg.target,
    ...(cfg.waitMs !== undefined ? { waitMs: cfg.waitMs } : {}),
    waitRouteMs: cfg.waitRouteMs,
    idleTimeoutMs: cfg.idleMs,
    noShutdown: cfg.noShutdown,
    signal: ac.signal,
    onConnected: ({ remote, description }) => {
      connected = true;
      if (cfg.verbose) process.stderr.write(`svp connect: connected to ${sidToHex(remote.sid)}:${remote.port} via ${description}\n`);
    },
  });
  for (const sig of STOP_SIGNALS) process.off(sig, onStop[sig]);
  if (r.stage === "open") return reportError("connect", "open the mesh", r.error);
  if (r.stage === "connect") return reportError("connect", `connect to ${what}`, r.error);
  if (cfg.verbose) process.stderr.write(`svp connect: done; ${formatBytes(r.stats.aToB)} sent, ${formatBytes(r.stats.bToA)} received, ${formatDuration(r.stats.durationMs)}; ${formatMspTelemetry(r.telemetry)}\n`);
  if (r.error) {
    if (!hungUp) process.stderr.write(`svp connect: connection to ${what} failed: ${r.error.message}\n`);
    return establishedFailureExit(r.error, r.idleTimeout);
  }
  return 0;
}

/**
 * Exit code of a stream that failed after it was established (README, svp connect's
 * table): 1, "the stream failed", also when the peer fell silent for MSP's 10 s (it died
 * or vanished mid-stream); 5 only for `-i`'s own idle timeout; a mesh backend that went
 * away keeps its 6, a reset or interruption is 1 anyway.
 */
export function establishedFailureExit(e: SvpError, idleTimeout: boolean): number {
  if (e.code === "ERR_TIMEOUT") return idleTimeout ? ERROR_TABLE.ERR_TIMEOUT.exit : EXIT.FAILURE;
  return ERROR_TABLE[e.code].exit;
}

async function runForward(cfg: ConnectConfig, addr: ListenAddress): Promise<number> {
  const log = createLogger("connect", cfg.log, cfg.quiet);
  const signals = new StopSignals();
  try {
    return await serveForward(cfg, addr, log, signals);
  } finally {
    signals.dispose();
  }
}

async function serveForward(cfg: ConnectConfig, addr: ListenAddress, log: Logger, signals: StopSignals): Promise<number> {
  const started = await startMeshForward({
    mesh: cfg.mesh,
    target: cfg.target,
    listen: addr,
    ...(cfg.waitMs !== undefined ? { waitMs: cfg.waitMs } : {}),
    waitRouteMs: cfg.waitRouteMs,
    idleTimeoutMs: cfg.idleMs,
    once: cfg.once,
    workers: cfg.workers,
    records: !cfg.quiet,
    onConnection: (r) => logConnection(log, r),
    onMeshLost: (description) => log.warn(`lost the mesh backend (${description}); the next connection reconnects`),
  });
  if (started.stage === "open") return reportError("connect", "open the mesh", started.error);
  if (started.stage === "listen") return reportError("connect", `listen on ${formatListenAddress(addr)}`, started.error);
  const fwd = started.forward;
  log.always(`listening on ${fwd.address}, forwarding to ${fwd.targetLabel} via ${fwd.description}`);
  log.info(fwd.loopNote);
  if (!isLoopbackAddress(addr)) log.warn(`listening on ${fwd.address}: anyone who can reach it can use this mesh connection`);
  await signals.serve(fwd, log, () => fwd.stopAccepting());
  await fwd.close(0);
  const result = await fwd.done;
  if (result.reason === "once" && result.error) return ERROR_TABLE[toSvpError(result.error).code].exit;
  return 0;
}

function logConnection(log: Logger, r: ForwardRecord): void {
  const client = r.client.replace(/^tcp /, "");
  const { fields, text } = connectionEvent({ event: "connection", ids: { client, target: r.target }, who: `${client} → ${r.target}` }, r);
  log.event(fields, text);
}
