/**
 * `svp socks`: the local proxy (SOCKS5, SOCKS4/4a, HTTP CONNECT and HTTP forward proxy on
 * one port). Flags are parsed and validated here; the proxy itself is `startSocksProxy`
 * from the library.
 */

import type { CAC } from "cac";
import { createMeshDialer, defaultLoopCount, DEFAULTS, durationFlagText, formatListenAddress, formatUpstream, isLoopbackAddress, MeshConnector, openSession, parseCredential, parseCredentialsFile, parseDuration, parseListenAddress, parsePositiveInt, parseUpstream, readTextFile, sidToHex, startSocksProxy, UsageError } from "../src/index.ts";
import type { Credential, ListenAddress, OpenMeshOptions, SocksLoopSettings, SocksProxy, StreamRecord } from "../src/index.ts";
import type { CommandLine } from "./command-line.ts";
import { addMeshOptions, meshOptions } from "./mesh-flags.ts";
import type { LogFormat, Logger } from "./render.ts";
import { connectionEvent, createLogger, parseLogFormat, formatBytes, formatDuration } from "./render.ts";
import { StopSignals } from "./stop-signals.ts";

/** Everything a worker loop gets (src/loops.ts), and what only the main thread needs. */
export interface SocksConfig extends Omit<SocksLoopSettings, "mesh"> {
  listen: ListenAddress[];
  /** Hold a mesh request this long while its node is not reachable yet (--wait-route). */
  waitRouteMs: number;
  /** Event loops (--workers); default: the number of CPUs. */
  workers: number;
  mesh: OpenMeshOptions;
  log: LogFormat;
  quiet: boolean;
  warnings: string[];
}

export function register(cli: CAC): void {
  const cmd = cli
    .command("socks", "Local proxy (SOCKS5, SOCKS4a, HTTP): mesh names over the mesh, other hosts direct")
    .usage("socks [options]")
    .option("--listen <addr>", `Listen on host:port, [v6]:port, :0 (prints the port) or unix:/path; repeatable (default: ${DEFAULTS.socksListen})`)
    .option("--auth <user:pass>", "Require this user name and password (SOCKS5 and HTTP Proxy-Authorization)")
    .option("--auth-file <file>", "Require one of the user:pass lines of this file")
    .option("--direct <allow|deny>", `Serve non-mesh destinations (allow) or refuse them (deny) (default: ${DEFAULTS.direct})`)
    .option("--upstream <url>", "Send non-mesh traffic through socks5://host:port or http://host:port")
    .option("--handshake-timeout <duration>", `Close clients that send no complete request in time (default: ${durationFlagText(DEFAULTS.handshakeTimeoutMs)})`)
    .option("--connect-timeout <duration>", `Give up connecting to a destination after this long (default: ${durationFlagText(DEFAULTS.connectTimeoutMs)})`)
    .option("--wait-route <duration>", `Hold a mesh request up to this long while its node is not reachable yet (default: ${durationFlagText(DEFAULTS.waitRouteMs, "0, refuse at once")})`)
    .option("--idle-timeout <duration>", `Close tunnels with no traffic for this long; 0 = never (default: ${durationFlagText(DEFAULTS.idleTimeoutMs)})`)
    .option("--max-conns <n>", `Refuse new requests while this many connections are open, over all event loops (default: ${DEFAULTS.maxConns === 0 ? "no limit" : DEFAULTS.maxConns})`)
    .option("--workers <n>", "Event loops (threads) accepting on the listening addresses (default: the number of CPUs)")
    .option("--log <text|json>", `Per-stream log lines on stderr as text or NDJSON (default: ${DEFAULTS.logFormat})`)
    .option("--quiet", "No per-stream log lines (warnings and the listening line still print)");
  addMeshOptions(cmd)
    .example("  $ svp socks                                   # 127.0.0.1:1080")
    .example("  $ svp socks --listen :0 --listen unix:/tmp/svp.sock")
    .example("  $ curl --socks5-hostname 127.0.0.1:1080 http://<SID>.serval/")
    .action((line: CommandLine) => runSocks(line));
}

/** Validate the flags of `svp socks`. Throws UsageError. */
export function socksConfig({ flags }: CommandLine): SocksConfig {
  const warnings: string[] = [];
  const listenTexts = flags.all("listen");
  const listen = (listenTexts.length > 0 ? listenTexts : [DEFAULTS.socksListen]).map((t) => {
    try {
      return parseListenAddress(t);
    } catch (err) {
      throw new UsageError(`invalid --listen "${t}": ${(err as Error).message.replace(/^invalid [^"]*"[^"]*": /, "")}`);
    }
  });
  const credentials: Credential[] = flags.all("auth").map((t) => parseCredential(t, "--auth"));
  const authFile = flags.one("auth-file");
  if (authFile !== undefined) {
    const file = readTextFile(authFile, "--auth-file");
    if (file.exposed) warnings.push(`--auth-file ${authFile} is readable by other users; chmod 600 it`);
    credentials.push(...parseCredentialsFile(file.text, authFile));
  }
  const duration = (name: string, def: number) => {
    const t = flags.one(name);
    return t === undefined ? def : parseDuration(t, `--${name}`);
  };
  const handshakeTimeoutMs = duration("handshake-timeout", DEFAULTS.handshakeTimeoutMs);
  const connectTimeoutMs = duration("connect-timeout", DEFAULTS.connectTimeoutMs);
  if (handshakeTimeoutMs === 0) throw new UsageError(`invalid --handshake-timeout "0": must be more than 0`);
  if (connectTimeoutMs === 0) throw new UsageError(`invalid --connect-timeout "0": must be more than 0`);
  const idleTimeoutMs = duration("idle-timeout", DEFAULTS.idleTimeoutMs);
  const waitRouteMs = duration("wait-route", DEFAULTS.waitRouteMs);
  const maxText = flags.one("max-conns");
  const maxConns = maxText === undefined ? DEFAULTS.maxConns : parsePositiveInt(maxText, "--max-conns", 1_000_000);
  const workersText = flags.one("workers");
  const workers = workersText === undefined ? defaultLoopCount() : parsePositiveInt(workersText, "--workers", 256);
  const directText = flags.one("direct") ?? DEFAULTS.direct;
  if (directText !== "allow" && directText !== "deny") throw new UsageError(`invalid --direct "${directText}": expected allow or deny`);
  const upText = flags.one("upstream");
  const upstream = upText === undefined ? undefined : parseUpstream(upText);
  if (upstream && directText === "deny") throw new UsageError("--upstream has no effect with --direct deny (only mesh destinations are served)");
  const logText = parseLogFormat(flags.one("log"));
  return {
    listen,
    credentials,
    handshakeTimeoutMs,
    connectTimeoutMs,
    idleTimeoutMs,
    maxConns,
    direct: directText,
    upstream,
    waitRouteMs,
    workers,
    mesh: meshOptions(flags, "svp socks"),
    log: logText,
    quiet: flags.has("quiet"),
    warnings,
  };
}

async function runSocks(line: CommandLine): Promise<number> {
  const cfg = socksConfig(line);
  const log = createLogger("socks", cfg.log, cfg.quiet);
  for (const w of cfg.warnings) log.warn(w);

  // Signal handlers go in before anything is printed (see stop-signals.ts).
  const signals = new StopSignals();
  let proxy: SocksProxy | undefined;
  // Mesh routes: the backend the flags select, opened when first needed (so the proxy runs,
  // and direct routes work, without one) and reopened after it went away.
  const connector = new MeshConnector(() => openSession(cfg.mesh), {
    onOpen: (s) => log.info(`mesh: ${s.description}, SID ${sidToHex(s.sid ?? s.transport.localSid)}`),
    onLost: (s) => log.warn(`mesh: lost ${s.description}; mesh requests fail until it is back (the next one reconnects)`),
  });
  const mesh = createMeshDialer({ session: () => connector.get(), waitRouteMs: cfg.waitRouteMs });
  try {
    let acceptWarnedAt = -Infinity;
    proxy = await startSocksProxy({
      listen: cfg.listen,
      credentials: cfg.credentials,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs,
      connectTimeoutMs: cfg.connectTimeoutMs,
      idleTimeoutMs: cfg.idleTimeoutMs,
      maxConns: cfg.maxConns,
      direct: cfg.direct,
      upstream: cfg.upstream,
      mesh,
      workers: cfg.workers,
      records: !cfg.quiet,
      onAcceptError(err) {
        // EMFILE and friends: the listener backs off by itself; say so at most every 10 s.
        const now = Date.now();
        if (now - acceptWarnedAt < 10_000) return;
        acceptWarnedAt = now;
        log.warn(`cannot accept connections: ${err.message} (out of file descriptors? see ulimit -n)`);
      },
    });
    if (!cfg.quiet) proxy.server.on("stream", (r) => logStream(log, r));
    for (const address of proxy.addresses) log.always(`listening on ${address}`);
    log.info(proxy.loops.note);
    if (cfg.credentials.length === 0) {
      const addresses = proxy.addresses;
      cfg.listen.forEach((addr, i) => {
        if (!isLoopbackAddress(addr)) log.warn(`listening on ${addresses[i] ?? formatListenAddress(addr)} without --auth: this is an open proxy, anyone who can reach it can use it`);
      });
    }
    if (cfg.upstream) log.info(`non-mesh traffic goes through ${formatUpstream(cfg.upstream)}`);
    if (cfg.direct === "deny") log.info("--direct deny: only mesh destinations are served");
    // Use a backend that already runs; start none until a mesh destination is asked for.
    void connector.probe(() => openSession({ ...cfg.mesh, autostart: false })).then((s) => {
      if (s || proxy === undefined) return;
      if (cfg.mesh.autostart !== false && cfg.mesh.mesh !== "servald") log.info("mesh: no mesh backend running yet; the embedded node starts with the first mesh request");
      else log.warn(`mesh: no ${cfg.mesh.mesh === "servald" ? "servald answers" : "svp daemon is running"}; mesh destinations are refused (mesh backend not available) until one runs`);
    });
    const p = proxy;
    await signals.serve({ get connections() { return p.server.connections; }, close: (ms) => p.close(ms) }, log, () => p.stopAccepting());
  } finally {
    signals.dispose();
    connector.close();
  }
  log.info("stopped");
  return 0;
}

function logStream(log: Logger, r: StreamRecord): void {
  const client = r.client.replace(/^tcp /, "");
  const who = [client, r.protocol ?? "", r.dest ?? "", r.route ? `via ${r.route}` : "", r.user !== undefined ? `user ${r.user}` : ""].filter(Boolean).join(" ");
  const ids = { client, protocol: r.protocol ?? null, dest: r.dest ?? null, route: r.route ?? null };
  const { fields, text } = connectionEvent({ event: "stream", ids, who, extra: { user: r.user } }, r);
  // svp answered the request itself (PAC file, info page): nothing went up or down a tunnel.
  if (r.outcome === "served") log.event(fields, `${who}: served ${r.message ?? "a local page"} (${formatBytes(r.down)}), ${formatDuration(r.durationMs)}`);
  else log.event(fields, text);
}
