/**
 * `svp socks` as one library call: listeners on every address, one proxy server per event
 * loop behind them, wired to the platform's sockets and the relay (the composition the
 * CLI and the library façade, src/platform/mesh.ts, share).
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import type { ListenAddress } from "../options.ts";
import type { SvpError } from "../errors.ts";
import { SvpError as ServiceErrorForLoops } from "../errors.ts";
import type { Credential } from "../socks/auth.ts";
import { Credentials } from "../socks/auth.ts";
import type { MeshDialer } from "../socks/dialer.ts";
import { createRouter } from "../socks/dialer.ts";
import { ProxyServer } from "../socks/server.ts";
import { sharedCounts } from "../stream/connection-table.ts";
import type { StreamRecord } from "../socks/server.ts";
import type { UpstreamProxy } from "../socks/upstream.ts";
import { Relay } from "../relay/relay.ts";
import { connectTcp, listen } from "./net.ts";
import type { Listener } from "./net.ts";
import { LoopGroup } from "../loops.ts";
import { listenSharing } from "./loops.ts";
import { DEFAULTS } from "../defaults.ts";


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
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const wanted = Math.max(1, Math.floor(options.workers ?? 1));
  const shared = wanted > 1 ? sharedCounts() : undefined;
  const dialer = createRouter({
    tcp: (host, port, signal) => connectTcp(host, port, { signal, timeoutMs: 0, clock }),
    direct: options.direct ?? DEFAULTS.direct,
    upstream: options.upstream,
    mesh: options.mesh,
  });
  const settings = {
    credentials: options.credentials ?? [],
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
    connectTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    maxConns: options.maxConns ?? DEFAULTS.maxConns,
    direct: options.direct ?? DEFAULTS.direct,
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
    close(drainMs: number = DEFAULTS.drainMs) {
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
