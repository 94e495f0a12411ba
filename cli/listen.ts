/**
 * `svp listen [options] <mdp-port>`: put a local service on the mesh. Each incoming MSP
 * connection is forwarded to a TCP port (--forward), handed to a program (--exec), or, with
 * neither, the one connection is carried on stdin/stdout.
 */

import type { CAC } from "cac";
import { DEFAULTS, ERROR_TABLE, isValidServiceName, parseHostPort, parseMdpPort, readTextFile, sidToHex, startMeshListen, SvpError, UsageError } from "../src/index.ts";
import type { ListenRecord, ListenTargetSpec, OpenMeshOptions, Sid } from "../src/index.ts";
import type { CommandLine } from "./command-line.ts";
import { addMeshOptions, meshOptions, parseSidArg } from "./mesh-flags.ts";
import type { LogFormat, Logger } from "./render.ts";
import { connectionEvent, createLogger, parseLogFormat, reportError } from "./render.ts";
import { StopSignals } from "./stop-signals.ts";

export interface ListenConfig {
  port: number;
  target: ListenTargetSpec;
  service: string | undefined;
  allow: Sid[] | undefined;
  proxyProtocol: boolean;
  once: boolean;
  log: LogFormat;
  quiet: boolean;
  mesh: OpenMeshOptions;
  warnings: string[];
}

export function register(cli: CAC): void {
  const cmd = cli
    .command("listen <mdp-port>", "Offer a local service on the mesh: --forward a TCP port, --exec a program, or stdin/stdout for one connection")
    .usage("listen [options] <mdp-port>")
    .option("--forward <[host:]port>", `Connect each caller to this TCP port (host default ${DEFAULTS.listenForwardHost}), before answering it`)
    .option("--exec <cmd>", "Run cmd (through /bin/sh) for each caller, the stream as its stdin/stdout; env SVP_PEER_SID, SVP_PEER_PORT")
    .option("--service <name>", "Also answer service discovery (MDP port 11) for this name")
    .option("--allow <SID>", "Only this caller (repeatable); others are refused and logged")
    .option("--allow-file <file>", "Only the callers listed in this file (one SID per line, # comments)")
    .option("--proxy-protocol", "Start each forwarded TCP connection with a PROXY v2 header naming the caller (TLV 0xE0: SID, 0xE1: port)")
    .option("--once", "Serve one connection, then exit with its outcome");
  addMeshOptions(cmd)
    .option("--log <text|json>", `Per-connection log lines on stderr as text or NDJSON (default: ${DEFAULTS.logFormat})`)
    .option("--quiet", "No per-connection log lines")
    .example("  $ svp listen --forward 8000 80 --service http     # web server on 127.0.0.1:8000 as <SID>:80")
    .example("  $ svp listen --exec 'sort' 7000")
    .example("  $ svp listen 9000 > received.bin                  # one connection on stdout")
    .action((line: CommandLine) => runListen(line));
}

/** Validate the flags of `svp listen`. Throws UsageError. */
export function listenConfig({ positionals: [portArg = ""], flags }: CommandLine): ListenConfig {
  const warnings: string[] = [];
  let port: number;
  try {
    port = parseMdpPort(portArg, "MDP port");
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/ or a service name$/, ""));
  }
  const forwardText = flags.one("forward");
  const exec = flags.one("exec");
  if (forwardText !== undefined && exec !== undefined) throw new UsageError("--forward and --exec cannot be combined: choose where callers go");
  let target: ListenTargetSpec = { kind: "stdio" };
  if (forwardText !== undefined) {
    try {
      const { host, port: tcpPort } = parseHostPort(forwardText, "--forward", DEFAULTS.listenForwardHost);
      if (tcpPort === 0) throw new UsageError(`invalid --forward "${forwardText}": port 0`);
      target = { kind: "tcp", host, port: tcpPort };
    } catch (err) {
      throw new UsageError(`invalid --forward "${forwardText}": ${(err as Error).message.replace(/^invalid [^"]*"[^"]*": /, "")}`);
    }
  } else if (exec !== undefined) {
    if (exec.trim() === "") throw new UsageError("--exec needs a command");
    target = { kind: "exec", command: exec };
  }
  const service = flags.one("service");
  if (service !== undefined && !isValidServiceName(service)) throw new UsageError(`invalid --service "${service}": letters, digits, _ - . + only, at most 63 characters`);
  const allowTexts = flags.all("allow");
  const allowFile = flags.one("allow-file");
  let allow: Sid[] | undefined;
  if (allowTexts.length > 0 || allowFile !== undefined) {
    allow = allowTexts.map((t) => parseSidArg(t, "--allow"));
    if (allowFile !== undefined) {
      const file = readTextFile(allowFile, "--allow-file");
      file.text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.replace(/#.*/, "").trim();
        if (line === "") return;
        try {
          allow!.push(parseSidArg(line, "SID"));
        } catch (err) {
          throw new UsageError(`${allowFile}:${i + 1}: ${(err as Error).message}`);
        }
      });
      if (allow.length === 0) warnings.push(`--allow-file ${allowFile} lists no SID: every caller will be refused`);
    }
  }
  const proxyProtocol = flags.has("proxy-protocol");
  if (proxyProtocol && target.kind !== "tcp") throw new UsageError("--proxy-protocol needs --forward (it is the first bytes of each forwarded TCP connection)");
  const logText = parseLogFormat(flags.one("log"));
  return {
    port,
    target,
    service,
    allow,
    proxyProtocol,
    once: flags.has("once") || target.kind === "stdio",
    log: logText,
    quiet: flags.has("quiet"),
    mesh: meshOptions(flags, "svp listen"),
    warnings,
  };
}

async function runListen(line: CommandLine): Promise<number> {
  const cfg = listenConfig(line);
  const log = createLogger("listen", cfg.log, cfg.quiet);
  for (const w of cfg.warnings) log.warn(w);
  const signals = new StopSignals();
  try {
    return await serveListen(cfg, log, signals);
  } finally {
    signals.dispose();
  }
}

async function serveListen(cfg: ListenConfig, log: Logger, signals: StopSignals): Promise<number> {
  const started = await startMeshListen({
    mesh: cfg.mesh,
    port: cfg.port,
    target: cfg.target,
    allow: cfg.allow,
    once: cfg.once,
    proxyProtocol: cfg.proxyProtocol,
    service: cfg.service,
    onDiscoveryUnavailable: (e) => log.warn(`service discovery for "${cfg.service}" is not available: ${e.message} (servald lets one client per node answer discovery); serving without it`),
  });
  if (started.stage === "open") return reportError("listen", "open the mesh", started.error);
  if (started.stage === "listen") {
    const e = started.error;
    if (e.code === "ERR_NOT_ALLOWED") {
      const message = e.message.startsWith(`MDP port ${cfg.port} `) ? e.message : `MDP port ${cfg.port}: ${e.message}`;
      return reportError("listen", `listen on MDP port ${cfg.port}`, new SvpError("ERR_USAGE", message));
    }
    return reportError("listen", `listen on MDP port ${cfg.port}`, e);
  }
  const svc = started.service;
  svc.on("connection", (r) => logConnection(log, r));
  const where = `${sidToHex(svc.local.sid)}:${svc.local.port}`;
  log.always(`listening on ${where} via ${started.description}, ${cfg.target.kind === "stdio" ? "one connection on stdin/stdout" : `callers go to ${started.targetLabel}`}${cfg.service ? `; service "${cfg.service}"` : ""}`);
  if (cfg.allow) log.info(`only ${cfg.allow.length} allowed caller${cfg.allow.length === 1 ? "" : "s"}`);
  await signals.serve(svc, log);
  const result = await started.done;
  if (result.reason === "down") {
    process.stderr.write(`svp listen: lost the mesh backend: ${result.error?.message ?? "gone"}\n`);
    return ERROR_TABLE.ERR_MESH_DOWN.exit;
  }
  if (result.reason === "once" && result.error) return ERROR_TABLE[result.error.code].exit;
  return 0;
}

function logConnection(log: Logger, r: ListenRecord): void {
  const { fields, text } = connectionEvent({
    event: "connection",
    ids: { peer: r.peerSid, peer_port: r.peerPort, target: r.target },
    who: `${r.peerSid}:${r.peerPort} → ${r.target}`,
    directions: ["in", "out"],
    failed: r.outcome === "ERR_NOT_ALLOWED" ? "refused" : "failed",
  }, r);
  log.event(fields, text);
}
