/**
 * svp's public library API and composition root: the one module `cli/` imports, and the
 * only place (besides `src/platform/` itself) that picks platform adapters.
 */

export { ERROR_TABLE, EXIT, SvpError, UsageError, describe, isSvpError, toSvpError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export { ManualClock, systemClock } from "./clock.ts";
export type { Clock, Timer } from "./clock.ts";
export { Emitter } from "./emitter.ts";
export type { ByteStream, ByteStreamEvents } from "./stream/byte-stream.ts";
export { memoryPair } from "./stream/memory-pair.ts";
export { Relay, relay } from "./relay/relay.ts";
export type { RelayOptions, RelayStats } from "./relay/relay.ts";
export {
  formatListenAddress,
  isLoopbackAddress,
  parseDuration,
  parseHostPort,
  parseListenAddress,
  parsePort,
  parsePositiveInt,
} from "./options.ts";
export type { ListenAddress } from "./options.ts";
export { SocketStream } from "./platform/socket-stream.ts";
export { connectTcp, connectUnix, listen } from "./platform/net.ts";
export type { Listener } from "./platform/net.ts";

// --- svp socks: the proxy, wired to the platform's sockets and the relay ---------------

export { parseMeshName, isMeshHost } from "./mesh/names.ts";
export type { MeshName } from "./mesh/names.ts";
export { Credentials, parseCredential, parseCredentialsFile } from "./socks/auth.ts";
export type { Credential } from "./socks/auth.ts";
export { createRouter, MESH_UNAVAILABLE } from "./socks/dialer.ts";
export type { Dialer, MeshDialer, RouteName } from "./socks/dialer.ts";
export { ProxyServer, sharedCounts } from "./socks/server.ts";
export type { StreamRecord } from "./socks/server.ts";
export { formatUpstream, parseUpstream } from "./socks/upstream.ts";
export type { UpstreamProxy } from "./socks/upstream.ts";
export { readTextFile } from "./platform/files.ts";

import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import type { ListenAddress } from "./options.ts";
import type { SvpError } from "./errors.ts";
import { SvpError as ServiceErrorForLoops } from "./errors.ts";
import type { Credential } from "./socks/auth.ts";
import { Credentials } from "./socks/auth.ts";
import type { MeshDialer } from "./socks/dialer.ts";
import { createRouter } from "./socks/dialer.ts";
import { ProxyServer, sharedCounts } from "./socks/server.ts";
import type { StreamRecord } from "./socks/server.ts";
import type { UpstreamProxy } from "./socks/upstream.ts";
import { Relay } from "./relay/relay.ts";
import { connectTcp, listen } from "./platform/net.ts";
import type { Listener } from "./platform/net.ts";
import { LoopGroup } from "./loops.ts";
import { listenSharing } from "./platform/loops.ts";

export { LoopGroup, runLoopWorker } from "./loops.ts";
export type { ForwardLoopSettings, LoopHost, SocksLoopSettings } from "./loops.ts";
export { LOOP_WORKER_ARG, defaultLoopCount, hasReusePort, listenSharing } from "./platform/loops.ts";
export type { ListenSharing } from "./platform/loops.ts";

export interface SocksProxyOptions {
  /** Addresses to listen on (at least one). */
  listen: ListenAddress[];
  /** Accepted user:pass pairs; empty or absent = no authentication. */
  credentials?: Credential[];
  handshakeTimeoutMs?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  maxConns?: number;
  direct?: "allow" | "deny";
  upstream?: UpstreamProxy | undefined;
  /** The mesh backend's dialer; without one, mesh destinations are refused (no route). */
  mesh?: MeshDialer | undefined;
  clock?: Clock;
  /** Accept failed (EMFILE…); the listener backs off and keeps running. */
  onAcceptError?: (err: SvpError) => void;
  /**
   * Event loops serving connections: the main thread plus `workers − 1` worker threads on
   * the same listening addresses (src/loops.ts). Default 1 (no threads).
   */
  workers?: number;
  /**
   * Whether the worker threads send a record of each connection (the `stream` event) to
   * the main thread. Default true; false when nobody logs them (saves a message per turn
   * and the peer-address lookup per connection).
   */
  records?: boolean;
}

export interface SocksProxy {
  /** Bound addresses, in the order given ("127.0.0.1:40321", "unix:/path"). */
  readonly addresses: string[];
  /**
   * The main thread's proxy server. Emits `stream` once per client connection, served by
   * any event loop; `connections` counts them all.
   */
  readonly server: ProxyServer;
  /** Event loops serving connections, and one line saying how (or why only one). */
  readonly loops: { count: number; note: string };
  /** Stop accepting on every event loop (resolves once none accepts any more). */
  stopAccepting(): Promise<void>;
  /** Stop accepting, let live streams drain for up to `drainMs`, then abort the rest. */
  close(drainMs?: number): Promise<void>;
}

/** Start `svp socks`: listeners on every address, one proxy server per event loop behind them. */
export async function startSocksProxy(options: SocksProxyOptions): Promise<SocksProxy> {
  const clock = options.clock ?? systemClock;
  const connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
  const wanted = Math.max(1, Math.floor(options.workers ?? 1));
  const shared = wanted > 1 ? sharedCounts() : undefined;
  const dialer = createRouter({
    tcp: (host, port, signal) => connectTcp(host, port, { signal, timeoutMs: 0, clock }),
    direct: options.direct ?? "allow",
    upstream: options.upstream,
    mesh: options.mesh,
  });
  const settings = {
    credentials: options.credentials ?? [],
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    connectTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? 0,
    maxConns: options.maxConns ?? 0,
    direct: options.direct ?? "allow",
    upstream: options.upstream,
    mesh: options.mesh !== undefined,
  };
  const server = new ProxyServer({
    dialer,
    startRelay: (a, b, o) => new Relay(a, b, o),
    clock,
    credentials: settings.credentials.length > 0 ? new Credentials(settings.credentials) : undefined,
    handshakeTimeoutMs: settings.handshakeTimeoutMs,
    connectTimeoutMs,
    idleTimeoutMs: settings.idleTimeoutMs,
    maxConns: settings.maxConns,
    shared,
    loop: wanted > 1 ? 0 : undefined,
  });
  const listeners: Listener[] = [];
  try {
    for (const addr of options.listen) {
      let address = "";
      const reusePort = wanted > 1 && listenSharing(addr).kind === "reuseport";
      const l = await listen(addr, (s) => server.handle(s, address), { ...(options.onAcceptError ? { onAcceptError: options.onAcceptError } : {}), ...(reusePort ? { reusePort } : {}) });
      address = l.address;
      listeners.push(l);
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    throw err;
  }
  const mesh = options.mesh;
  const group = await LoopGroup.start("socks", wanted, options.listen, listeners, shared ?? sharedCounts(), options.records ?? true, settings, {
    onRecord: (r) => server.report(r as StreamRecord),
    onAcceptError: options.onAcceptError,
    clock,
    dial: (signal, name, port) => {
      if (!mesh || !name || port === undefined) return Promise.reject(new ServiceErrorForLoops("ERR_NO_ROUTE", "no mesh backend"));
      return mesh.dial(name, port, signal);
    },
  });
  let stopping: Promise<void> | undefined;
  const stopAccepting = () => (stopping ??= Promise.all([...listeners.map((l) => void l.close()), group.stopAccepting()]).then(() => undefined));
  let closing: Promise<void> | undefined;
  return {
    addresses: listeners.map((l) => l.address),
    server,
    loops: { count: group.count, note: group.note },
    stopAccepting,
    close(drainMs = 10_000) {
      if (closing) {
        void server.close(drainMs); // again, e.g. a second signal: a sooner deadline
        void group.close(drainMs);
        return closing;
      }
      closing = (async () => {
        const stopped = Promise.all(listeners.map((l) => l.close()));
        void stopAccepting();
        await Promise.all([server.close(drainMs), group.close(drainMs)]);
        await stopped;
      })();
      return closing;
    },
  };
}

// --- the embedded mesh node: svp daemon, svp id, svp status, auto-start ------------------

export {
  connectEmbedded,
  daemonState,
  effectiveNodeConfig,
  ensureDaemon,
  probeDaemon,
  queryStatus,
  readIdentity,
  resolveHome,
  runDaemon,
  startDaemonBackground,
  startEmbeddedNode,
  stopDaemon,
  svpSelfCommand,
} from "./platform/embedded-node.ts";
export type { ConnectEmbeddedOptions, DaemonInfo, DaemonState, EmbeddedNode, EmbeddedNodeOptions, StartDaemonOptions, StopDaemonResult, SvpCommand } from "./platform/embedded-node.ts";
export type { EmbeddedTransport } from "./node/embedded-transport.ts";
export { DEFAULT_OVERLAY_PORT } from "./node/mesh-node.ts";
export { DROP_REASONS } from "./node/overlay-packet.ts";
export { isStatusReport, STATUS_SCHEMA } from "./status/status-report.ts";
export type { MspTelemetry, PeerStatus, PortStatus, StatusReport, StreamStat, StreamStatus } from "./status/status-report.ts";
export { parseSid, sidToBase32, sidToHex, upperSidLabels } from "./mesh/sid.ts";
export { CONFIG_FILE, KEYRING_FILE, LOG_FILE, PID_FILE, SOCKET_FILE } from "./platform/instance-files.ts";
export { peekNode } from "./platform/peek-node.ts";
export type { NodePeek, PeekNodeOptions } from "./platform/peek-node.ts";
export type { Sid } from "./mesh/sid.ts";

// --- the servald backend: svp as a client of a running Serval daemon ---------------------

export { SERVALD_DEFAULT_RUN_PATHS, resolveInstances as resolveServaldInstances } from "./servald/instance.ts";
export type { ServaldInstance } from "./servald/instance.ts";
export { ServaldTransport } from "./servald/servald-transport.ts";
export type { ServaldProbe, ServaldStats } from "./servald/servald-transport.ts";
export { unixDatagramSupport } from "./platform/unix-dgram.ts";
export { findServaldCli, queryServaldStatus } from "./platform/servald-cli.ts";
export type { ServaldStatusOptions } from "./platform/servald-cli.ts";
export type { RouteStatus, ServaldStatus } from "./status/status-report.ts";

import { connectServald as connectServaldWith, probeServald as probeServaldWith } from "./servald/servald-transport.ts";
import type { ServaldProbe, ServaldTransport, ServaldTransportOptions } from "./servald/servald-transport.ts";
import { openUnixDatagram, servaldEnvironment } from "./platform/unix-dgram.ts";

/** `--servald-instance`, `--sid` and timing; the socket and environment come from the platform. */
export type ServaldOptions = Omit<ServaldTransportOptions, "openSocket" | "env">;

/**
 * Connect to servald (`instance`, else SERVALINSTANCE_PATH, else servald's default run
 * directories). Rejects ERR_MESH_DOWN when no daemon answers or the native addon is missing.
 */
export function connectServald(options: ServaldOptions = {}): Promise<ServaldTransport> {
  return connectServaldWith({ ...options, openSocket: openUnixDatagram, env: servaldEnvironment() });
}

/** Whether a servald answers (for `--mesh auto` and `svp status`); never throws. */
export function probeServald(options: ServaldOptions = {}): Promise<ServaldProbe> {
  return probeServaldWith({ ...options, openSocket: openUnixDatagram, env: servaldEnvironment() });
}

// --- MDP and MSP: mesh datagrams and Serval's Mesh Stream Protocol -----------------------

export { MDP_FLAG, MDP_HEADER_BYTES, MDP_MTU, MDP_TTL_DEFAULT, decodeMdpDatagram, describeMdpFlags, encodeMdpDatagram } from "./mdp/header.ts";
export type { MdpDecodeResult, MdpHeader } from "./mdp/header.ts";
export type { MdpAddress, MdpBindOptions, MdpSendOptions, MdpSocket, MdpTransport, Reachability } from "./mdp/transport.ts";
export { MemoryMdpNetwork, MemoryMdpSocket, MemoryMdpTransport } from "./mdp/memory-transport.ts";
export type { LinkConditions, MemoryDatagram, MemoryMdpNetworkOptions, MemoryNetworkStats, MemoryNodeOptions } from "./mdp/memory-transport.ts";
export { connectMsp } from "./msp/connect.ts";
export type { MspConnectOptions } from "./msp/connect.ts";
export { MspListener, listenMsp } from "./msp/listener.ts";
export type { MspListenOptions, MspListenerEvents } from "./msp/listener.ts";
export { MspStream } from "./msp/msp-stream.ts";
export type { MspStreamStats } from "./msp/msp-stream.ts";
export type { MspRole, MspState } from "./msp/connection.ts";
export { MSP_DEFAULTS } from "./msp/params.ts";
export type { MspOptions, MspParams } from "./msp/params.ts";
export { MSP_DROP_REASONS, MSP_FLAG } from "./msp/packet.ts";
export type { MspDropReason } from "./msp/packet.ts";

// --- mesh services: svp connect, listen, discover and the mesh route of svp socks --------

export { MESH_MODES, MeshConnector, makeSession, openMeshSession, parseMeshMode } from "./service/mesh-session.ts";
export type { MeshBackends, MeshConnectorOptions, MeshMode, MeshSession, OpenMeshOptions, OpenedBackend } from "./service/mesh-session.ts";
export { MDP_PORT_MAX, formatMeshTarget, parseMdpPort, parseMeshTarget, resolveMeshTarget } from "./service/mesh-target.ts";
export type { MeshTarget } from "./service/mesh-target.ts";
export { createMeshDialer, dialMesh, dialVia } from "./service/mesh-dialer.ts";
export type { MeshDialOptions, MeshDialerOptions } from "./service/mesh-dialer.ts";
export { ListenService, startListenService } from "./service/listen-service.ts";
export type { ListenRecord, ListenResult, ListenServiceOptions, OpenTarget } from "./service/listen-service.ts";
export { ForwardServer, forwardTimeoutMessage } from "./service/forward-server.ts";
export type { ForwardRecord, ForwardResult, ForwardServerOptions } from "./service/forward-server.ts";
export { netcat } from "./service/netcat.ts";
export { StreamView } from "./stream/stream-view.ts";
export { SERVICE_DISCOVERY_PORT, discoverServices, isValidServiceName, parseServiceAnswer, servicePatternMatcher, startServiceResponder } from "./service/discovery.ts";
export type { DiscoverOptions, ServiceAnswer, ServiceResponder } from "./service/discovery.ts";
export { PROXY_TLV, decodeProxyV2, encodeProxyV2 } from "./service/proxy-v2.ts";
export type { ProxyV2Header, ProxyV2Info } from "./service/proxy-v2.ts";
export { mspTelemetry, StreamRegistry } from "./service/stream-registry.ts";
export { PipeStream, stdioStream } from "./platform/stdio-stream.ts";
export { ExecStream, spawnExec } from "./platform/exec-stream.ts";

import type { MeshSession, OpenMeshOptions } from "./service/mesh-session.ts";
import { openMeshSession } from "./service/mesh-session.ts";
import type { OpenTarget } from "./service/listen-service.ts";
import { EmbeddedTransport } from "./node/embedded-transport.ts";
import { connectEmbedded as connectEmbeddedNode, ensureDaemon as ensureEmbeddedDaemon, resolveHome as resolveEmbeddedHome } from "./platform/embedded-node.ts";
import { sidEquals, sidToHex as sidHex } from "./mesh/sid.ts";
import { SvpError as ServiceError, toSvpError as toServiceError } from "./errors.ts";
import { spawnExec as spawnExecStream } from "./platform/exec-stream.ts";
import { mspExtensionSetting } from "./platform/msp-env.ts";
import { stdioStream as openStdio } from "./platform/stdio-stream.ts";
import { formatHostPort } from "./socks/ip.ts";

/**
 * Open the mesh backend the options select (`--mesh auto|servald|embedded`, see
 * src/service/mesh-session.ts): servald through its MDP socket, or the embedded node's
 * daemon, auto-started unless `autostart` is false. On the embedded node the session's live
 * streams show up in `svp status`.
 */
export async function openMesh(options: OpenMeshOptions = {}): Promise<MeshSession> {
  const ext = mspExtensionSetting();
  const session = await openMeshSession(
    {
      async servald({ instance, sid }) {
        const t = await connectServald({ ...(instance !== undefined ? { instance } : {}), ...(sid ? { sid } : {}) });
        return { transport: t, description: `servald (instance ${t.instance.path})`, started: false };
      },
      async embedded({ home, autostart, sid, name, onNote }) {
        const { started } = await ensureEmbeddedDaemon(home, { autostart, ...(onNote ? { onNote } : {}) });
        const t = await connectEmbeddedNode({ ...(home !== undefined ? { home } : {}), name, autostart: false });
        if (sid && !t.sids.some((s) => sidEquals(s, sid))) {
          t.close();
          throw new ServiceError("ERR_BAD_ADDRESS", `the embedded node has no identity ${sidHex(sid)} (its identities: ${t.sids.map(sidHex).join(", ")})`);
        }
        return { transport: t, description: `embedded node (pid ${t.daemonPid}, ${home !== undefined ? resolveEmbeddedHome(home) : resolveEmbeddedHome()})`, started };
      },
    },
    options,
  );
  if (session.transport instanceof EmbeddedTransport) session.transport.setStreamStatsProvider(() => session.streams.stats());
  if (ext !== undefined && (session.transport instanceof EmbeddedTransport || session.transport.kind === "servald")) (session.transport as { mspExtension: boolean }).mspExtension = ext;
  return session;
}

/** What `svp listen` connects each caller to. */
export type ListenTargetSpec = { kind: "tcp"; host: string; port: number } | { kind: "exec"; command: string } | { kind: "stdio" };

/** The platform's opener for a listen target, and its label for log lines. */
export function listenTarget(spec: ListenTargetSpec, clock: Clock = systemClock): { open: OpenTarget; label: string } {
  if (spec.kind === "tcp") {
    const label = formatHostPort(spec.host, spec.port);
    return {
      label,
      open: async (_caller, signal) => {
        try {
          return await connectTcp(spec.host, spec.port, { signal, timeoutMs: 0, clock });
        } catch (err) {
          const e = toServiceError(err);
          if (signal.aborted && signal.reason instanceof ServiceError) throw signal.reason;
          throw new ServiceError(e.code, `forward to ${label}: ${e.message}`, { cause: e });
        }
      },
    };
  }
  if (spec.kind === "exec") {
    return {
      label: `exec: ${spec.command}`,
      open: (caller, signal) => spawnExecStream(spec.command, { signal, env: { SVP_PEER_SID: sidHex(caller.sid), SVP_PEER_PORT: String(caller.port) } }),
    };
  }
  let used = false;
  return {
    label: "stdio",
    open: () => {
      if (used) return Promise.reject(new ServiceError("ERR_NOT_ALLOWED", "stdin/stdout already carry a connection"));
      used = true;
      return Promise.resolve(openStdio());
    },
  };
}
