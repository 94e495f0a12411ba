/**
 * Wiring of the embedded mesh node to the platform: instance directory, keyring file,
 * UDP sockets, node:crypto, same-host discovery directory, the local API Unix socket,
 * signals; and the client side of the local API (connecting, with auto-start, and status).
 * The background daemon's process lifecycle (start/stop/state/auto-start) is in daemon-control.ts.
 * The commands use it directly; the library façade (src/platform/mesh.ts) through `openSession`.
 */

import { unlinkSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { setImmediate } from "node:timers";
import { pinYoungGeneration } from "./young-generation.ts";
import { type Clock, systemClock } from "../clock.ts";
import { SvpError, UsageError } from "../errors.ts";
import { type Sid, sidToHex } from "../mesh/sid.ts";
import { memoryPair } from "../stream/memory-pair.ts";
import { openEmbeddedTransport, type EmbeddedTransport } from "../node/embedded-transport.ts";
import { loadOrCreateKeyring, primaryIdentity } from "../node/keyring.ts";
import { DEFAULT_OVERLAY_PORT, MeshNode } from "../node/mesh-node.ts";
import { checkBindAddress, checkHelloInterval, checkLinkMtu, checkTimers, checkPeerTimeout, emptyNodeConfig, mergeNodeConfig, type NodeConfig, parseNodeConfig, parsePeerAddress } from "../node/node-config.ts";
import type { NodeLog, PeerCredentials, UdpEndpoint } from "../node/node-io.ts";
import { isLoopbackHost } from "../node/endpoint-key.ts";
import type { StatusReport } from "../status/status-report.ts";
import { daemonState, ensureDaemon, type DaemonInfo, type EnsureDaemonOptions, startDaemonBackground } from "./daemon-control.ts";
import { acquirePidLock, ensureHome, keyringStore, readConfigFile, resolveHome, socketPath } from "./instance-files.ts";
import { connectUnix, listen, type Listener } from "./net.ts";
import { nodeCrypto } from "./node-crypto.ts";
import { openRendezvousDir } from "./rendezvous-dir.ts";
import { bindUdp } from "./udp.ts";
import type { SocketStream } from "./socket-stream.ts";
import { peerCredentials } from "./unix-dgram.ts";

export { resolveHome };

/**
 * Local API frames queued during one batch of I/O callbacks go out in one write, right
 * after the batch (see src/node/frame-batcher.ts).
 */
const afterIo = (fn: () => void): void => void setImmediate(fn);

/** Options of the embedded node; unset fields come from svp.conf, then defaults. */
export interface EmbeddedNodeOptions {
  /** Instance directory (default: resolveHome()). */
  home?: string;
  /** Overlay UDP port; when given, a busy port is an error (default 4111 with fallback). */
  port?: number;
  /** Static peers, "host:port" each. */
  peers?: string[];
  /** Addresses to bind the overlay on (default loopback; wildcard with --lan or remote peers). */
  bind?: string[];
  /** LAN discovery (IPv4 broadcast to the default port). Off unless asked for. */
  lan?: boolean;
  /** Same-host discovery over loopback (default on). */
  discovery?: boolean;
  helloIntervalMs?: number;
  peerTimeoutMs?: number;
  /** Where LAN probes go instead of the broadcast addresses (tests: loopback only). */
  lanTargets?: string[];
  /** Largest MDP payload on links that are not loopback (default 1160). */
  linkMtu?: number;
  log?: NodeLog;
  /** Version string reported in status. */
  version?: string;
  clock?: Clock;
}

export interface EmbeddedNode {
  readonly home: string;
  readonly sid: Sid;
  readonly socketPath: string;
  readonly node: MeshNode;
  /** Resolves once the node has stopped (by stop(), a local stop request or a signal handler). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
  /** An MdpTransport to this node within the same process (over an in-memory stream). */
  connect(name?: string): Promise<EmbeddedTransport>;
}

async function resolvePeer(text: string): Promise<UdpEndpoint[]> {
  const { host, port } = parsePeerAddress(text);
  if (isIP(host)) return [{ host, port }];
  try {
    const all = await lookup(host, { all: true });
    return all.map((a) => ({ host: a.address, port }));
  } catch (err) {
    throw new UsageError(`invalid peer "${text}": cannot resolve ${host} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/**
 * LAN probe targets: the directed broadcast address of every IPv4 interface that is up and
 * not loopback (so a node with several interfaces probes every segment it is on; the
 * limited broadcast 255.255.255.255 only leaves by one interface, and not at all without a
 * default route), on the default overlay port. 255.255.255.255 when there is none.
 * Asked again at every probe round: interfaces come and go.
 */
export function lanBroadcastTargets(): UdpEndpoint[] {
  const out = new Map<string, UdpEndpoint>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family !== "IPv4" || a.internal || !a.netmask) continue;
      const addr = ipv4ToInt(a.address);
      const mask = ipv4ToInt(a.netmask);
      if (addr === undefined || mask === undefined || mask === 0xffffffff) continue;
      const host = intToIpv4((addr | ~mask) >>> 0);
      out.set(host, { host, port: DEFAULT_OVERLAY_PORT });
    }
  }
  return out.size ? [...out.values()] : [{ host: "255.255.255.255", port: DEFAULT_OVERLAY_PORT }];
}

function ipv4ToInt(text: string): number | undefined {
  const p = text.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return undefined;
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");
}

/** Load svp.conf of `home` merged under `options`. */
export function effectiveNodeConfig(home: string, options: EmbeddedNodeOptions): NodeConfig {
  ensureHome(home);
  const file = readConfigFile(home);
  const base = file ? parseNodeConfig(file.text, file.path) : emptyNodeConfig();
  const flags: NodeConfig = {
    port: options.port,
    peers: (options.peers ?? []).map((p) => parsePeerAddress(p, "--peer")),
    bind: (options.bind ?? []).map((b) => checkBindAddress(b, "--bind")),
    lan: options.lan,
    discovery: options.discovery,
    helloIntervalMs: options.helloIntervalMs === undefined ? undefined : checkHelloInterval(options.helloIntervalMs, "--hello-interval"),
    peerTimeoutMs: options.peerTimeoutMs === undefined ? undefined : checkPeerTimeout(options.peerTimeoutMs, "--peer-timeout"),
    linkMtu: options.linkMtu === undefined ? undefined : checkLinkMtu(options.linkMtu, "--link-mtu"),
  };
  const merged = mergeNodeConfig(base, flags);
  checkTimers(merged);
  return merged;
}

/** How the background daemon logs (its `daemon.log`): the format, and debug lines too or not. */
export interface DaemonLogOptions {
  logFormat?: "text" | "json";
  verbose?: boolean;
}

/**
 * `svp daemon start` as one call: the node's settings are checked here, so a bad one fails
 * now and not in the background process's log; then `svp daemon run` starts in the
 * background with the same settings (`daemonRunArgs`), and this resolves once it answers.
 */
export async function startDaemon(options: EmbeddedNodeOptions = {}, log: DaemonLogOptions = {}): Promise<DaemonInfo & { home: string }> {
  const home = resolveHome(options.home);
  effectiveNodeConfig(home, options);
  const info = await startDaemonBackground(home, { args: daemonRunArgs(options, log) });
  return { ...info, home };
}

/** The `svp daemon run` flags that carry `options` (those a command line can say) to another process. */
export function daemonRunArgs(options: EmbeddedNodeOptions, log: DaemonLogOptions = {}): string[] {
  const out: string[] = [];
  if (options.port !== undefined) out.push("--port", String(options.port));
  for (const p of options.peers ?? []) out.push("--peer", p);
  for (const b of options.bind ?? []) out.push("--bind", b);
  if (options.lan) out.push("--lan");
  if (options.discovery === false) out.push("--no-discovery");
  if (options.helloIntervalMs !== undefined) out.push("--hello-interval", `${options.helloIntervalMs}ms`);
  if (options.peerTimeoutMs !== undefined) out.push("--peer-timeout", `${options.peerTimeoutMs}ms`);
  if (options.linkMtu !== undefined) out.push("--link-mtu", String(options.linkMtu));
  if (log.verbose) out.push("--verbose");
  if (log.logFormat !== undefined) out.push("--log", log.logFormat);
  return out;
}

/** The primary SID of the instance, creating the keyring on first use. */
export function readIdentity(home = resolveHome()): { sid: Sid; sids: Sid[]; created: boolean } {
  ensureHome(home);
  const { keyring, created } = loadOrCreateKeyring(keyringStore(home), nodeCrypto);
  return { sid: primaryIdentity(keyring).sid, sids: keyring.identities.map((i) => i.sid), created };
}

/**
 * Start the embedded node in this process: take the instance's daemon lock, bind the
 * overlay and the local API socket. `svp daemon run` is this plus signal handling.
 */
export async function startEmbeddedNode(options: EmbeddedNodeOptions = {}): Promise<EmbeddedNode> {
  const home = options.home ? resolveHome(options.home) : resolveHome();
  const log: NodeLog = options.log ?? (() => {});
  ensureHome(home);
  const sockPath = socketPath(home);
  const { keyring, created } = loadOrCreateKeyring(keyringStore(home), nodeCrypto);
  if (created) log("info", `created a new identity ${sidToHex(primaryIdentity(keyring).sid)} in ${home}`);
  const config = effectiveNodeConfig(home, options);
  const staticPeers = (await Promise.all(config.peers.map((p) => resolvePeer(p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`)))).flat();
  const lan = config.lan ?? false;
  const remotePeers = staticPeers.some((p) => !isLoopbackHost(p.host));
  const bindHosts = config.bind.length ? config.bind : lan || remotePeers ? ["0.0.0.0", "::"] : ["127.0.0.1", "::1"];
  const lanTargets: UdpEndpoint[] | (() => UdpEndpoint[]) | undefined = !lan
    ? undefined
    : options.lanTargets
      ? options.lanTargets.map((t) => parsePeerAddress(t, "LAN target"))
      : lanBroadcastTargets;
  let rendezvous;
  /** Start-up warnings: logged, and in WELCOME and status so `svp daemon start` can say them. */
  const notes: string[] = [];
  if (config.discovery ?? true) {
    try {
      rendezvous = openRendezvousDir();
    } catch (err) {
      const note = `same-host discovery is off: ${(err as Error).message}`;
      log("warn", note);
      notes.push(note);
    }
  }

  const releaseLock = acquirePidLock(home, process.pid, (stale) => log("info", `removed stale daemon files${stale ? ` of pid ${stale}` : ""} in ${home}`));
  const node = new MeshNode({
    keyring,
    crypto: nodeCrypto,
    binder: bindUdp,
    clock: options.clock ?? systemClock,
    log,
    ...(config.port !== undefined ? { port: config.port, portExplicit: true } : {}),
    bindHosts,
    staticPeers,
    ...(rendezvous ? { rendezvous } : {}),
    ...(lanTargets ? { lanTargets, lan: true } : {}),
    ...(config.helloIntervalMs !== undefined ? { helloIntervalMs: config.helloIntervalMs } : {}),
    ...(config.peerTimeoutMs !== undefined ? { peerTimeoutMs: config.peerTimeoutMs } : {}),
    ...(config.linkMtu !== undefined ? { linkMtu: config.linkMtu } : {}),
    info: { pid: process.pid, version: options.version ?? "dev", home },
    defer: afterIo,
    notes,
  });
  let listener: Listener;
  try {
    await node.start();
    listener = await listen({ kind: "unix", path: sockPath }, (stream) => node.acceptClient(stream, credentialsOf(stream)));
  } catch (err) {
    node.stop();
    releaseLock();
    throw err;
  }
  log("info", `node ${sidToHex(node.primarySid)} up; UDP ${node.udpAddresses.join(" ")}; local API ${sockPath}`);
  if (lan) log("info", `LAN discovery on: probing ${(typeof lanTargets === "function" ? lanTargets() : lanTargets!).map((t) => `${t.host}:${t.port}`).join(", ")}`);

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      node.stop();
      await listener.close();
      try {
        unlinkSync(sockPath);
      } catch {
        // removed by close
      }
      releaseLock();
      log("info", "stopped");
      resolveStopped();
    })());
  node.on("shutdown-requested", () => void stop());
  return {
    home,
    sid: node.primarySid,
    socketPath: sockPath,
    node,
    stopped,
    stop,
    async connect(name = "in-process") {
      const [a, b] = memoryPair();
      node.acceptClient(b);
      return openEmbeddedTransport(a, { name, pid: process.pid, defer: afterIo });
    },
  };
}

/**
 * The connecting process of an accepted local API connection, from the kernel
 * (SO_PEERCRED through the native addon, on the socket's descriptor). Undefined under
 * runtimes that do not expose the descriptor (Deno) or without the addon: the daemon then
 * shows the pid the client claims, marked as claimed.
 */
function credentialsOf(stream: SocketStream): PeerCredentials | undefined {
  const fd = (stream.socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === "number" ? peerCredentials(fd) : undefined;
}

/**
 * `svp daemon run`: start the node and keep it running until SIGINT/SIGTERM or a stop
 * request. Resolves with the exit code (0 on a clean stop).
 */
export async function runDaemon(options: EmbeddedNodeOptions = {}): Promise<number> {
  pinYoungGeneration();
  const n = await startEmbeddedNode(options);
  const onSignal = (sig: NodeJS.Signals) => {
    options.log?.("info", `received ${sig}, stopping`);
    void n.stop();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // The daemon never reads stdin and may outlive its terminal.
  process.on("SIGHUP", () => {});
  await n.stopped;
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  return 0;
}

/** Options of `connectEmbedded`: the auto-start ones (`EnsureDaemonOptions`) and the client's. */
export interface ConnectEmbeddedOptions extends EnsureDaemonOptions {
  home?: string;
  /** Client name shown in `svp status`, e.g. "svp socks". */
  name?: string;
  /** Handshake/request timeout (default 10 s). */
  requestTimeoutMs?: number;
}

/**
 * An `MdpTransport` (kind "embedded") connected to the instance's daemon, starting the
 * daemon first unless `autostart` is false. Close it when done: that releases its ports.
 */
export async function connectEmbedded(options: ConnectEmbeddedOptions = {}): Promise<EmbeddedTransport> {
  const home = options.home ? resolveHome(options.home) : resolveHome();
  await ensureDaemon(home, options);
  return connectDaemon(home, options);
}

/**
 * An `MdpTransport` to the daemon of `home` (a resolved instance directory) that
 * `ensureDaemon` or `daemonState` has just found running: connects without probing it
 * again (one probe per session open). ERR_MESH_DOWN when it went away meanwhile.
 */
export async function connectDaemon(home: string, options: Pick<ConnectEmbeddedOptions, "name" | "requestTimeoutMs"> = {}): Promise<EmbeddedTransport> {
  const stream = await connectUnix(socketPath(home), { timeoutMs: 5000 }).catch((err: unknown) => {
    throw new SvpError("ERR_MESH_DOWN", `cannot reach the svp daemon for ${home}: ${(err as Error).message}`);
  });
  return openEmbeddedTransport(stream, { name: options.name ?? "svp", pid: process.pid, defer: afterIo, ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}) });
}

/** The status document of the instance's daemon; ERR_MESH_DOWN when none runs (never auto-starts). */
export async function queryStatus(home?: string): Promise<StatusReport> {
  const h = home ? resolveHome(home) : resolveHome();
  // Not running, or running but not answering (hung, stopped): two different messages.
  const state = await daemonState(h);
  if (!state.running) throw new SvpError("ERR_MESH_DOWN", `no svp daemon is running for ${h} (start one with "svp daemon start")`);
  const t = await connectDaemon(h, { name: "svp status" });
  try {
    return await t.status();
  } finally {
    t.close();
  }
}

