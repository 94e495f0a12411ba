/**
 * `svp connect --forward` as one library call: a local listener whose every connection is
 * carried to one mesh destination, one forward server per event loop behind it (the
 * main thread's ForwardServer plus worker threads on the same address, src/loops.ts),
 * as `startSocksProxy` does for `svp socks`. The mesh dial stays the caller's: every
 * stream is opened by `dial`, on the main thread's one mesh session.
 */

import { LoopGroup } from "../loops.ts";
import type { ListenAddress } from "../options.ts";
import { ForwardServer, forwardTimeoutMessage } from "../service/forward-server.ts";
import type { ForwardRecord } from "../service/forward-server.ts";
import { sharedCounts } from "../stream/connection-table.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import { listenSharing } from "./loops.ts";
import { listen } from "./net.ts";
import type { Listener } from "./net.ts";
import { DEFAULTS } from "../defaults.ts";

export interface ForwardProxyOptions {
  /** Where local clients connect: "host:port" or "unix:/path". */
  listen: ListenAddress;
  /** The destination, for log lines and timeout messages ("<SID>:80", "web.svc.serval"). */
  targetLabel: string;
  /** Open the mesh stream for one client (aborted when the client goes or the wait runs out). */
  dial: (signal: AbortSignal) => Promise<ByteStream>;
  /** Give up opening the destination after this long, ms. Default 30 000. */
  connectTimeoutMs?: number;
  /** Close a connection when no byte moved either way for this long, ms; 0 = never (default). */
  idleTimeoutMs?: number;
  /** Serve one connection, then stop accepting (`server.done` says how it went). */
  once?: boolean;
  /** Event loops accepting connections (main thread + workers − 1). Default 1. */
  workers?: number;
  /** Whether worker threads report each connection (the server's `connection` event). Default true. */
  records?: boolean;
  /** Told of each finished connection (any event loop); attached before the first can arrive. */
  onConnection?: (record: ForwardRecord) => void;
}

export interface ForwardProxy {
  /** The bound address ("127.0.0.1:40321", "unix:/path"). */
  readonly address: string;
  /** The main thread's forward server: `connection` per client (any event loop), `connections`, `done`. */
  readonly server: ForwardServer;
  /** One line saying how many event loops serve (or why only one). */
  readonly loopNote: string;
  /** Stop accepting on every event loop. */
  stopAccepting(): Promise<void>;
  /** Stop accepting, let live connections finish for up to `drainMs`, then abort the rest; stops the event loops. */
  close(drainMs?: number): Promise<void>;
}

/** Start `svp connect --forward`: the listener, the forward server and the extra event loops. Rejects when the address cannot be bound. */
export async function startForwardProxy(options: ForwardProxyOptions): Promise<ForwardProxy> {
  const workers = Math.max(1, Math.floor(options.workers ?? 1));
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs;
  const what = options.targetLabel;
  const dial = options.dial;
  const shared = workers > 1 ? sharedCounts() : undefined;
  const server = new ForwardServer({
    targetLabel: what,
    connectTimeoutMs,
    idleTimeoutMs,
    once: options.once,
    shared,
    dial,
  });
  if (options.onConnection) server.on("connection", options.onConnection);
  const addr = options.listen;
  const reusePort = workers > 1 && listenSharing(addr).kind === "reuseport";
  let listener: Listener | undefined = undefined;
  listener = await listen(
    addr,
    (s) => {
      server.handle(s);
      if (!server.accepting) void listener?.close();
    },
    reusePort ? { reusePort } : {},
  );
  const l = listener;
  let group: LoopGroup;
  try {
    group = await LoopGroup.start(
      "forward",
      workers,
      [addr],
      [l],
      shared ?? sharedCounts(),
      options.records ?? true,
      { openTimeoutMs: connectTimeoutMs, openTimeoutMessage: forwardTimeoutMessage(what, connectTimeoutMs), idleTimeoutMs, targetLabel: what },
      { onRecord: (r) => server.report(r as ForwardRecord), dial: (signal) => dial(signal) },
    );
  } catch (err) {
    await l.close();
    await server.close(0);
    throw err;
  }
  const stopAccepting = () => Promise.all([l.close(), group.stopAccepting()]).then(() => undefined);
  return {
    address: l.address,
    server,
    loopNote: group.note,
    stopAccepting,
    close: async (drainMs?: number) => {
      await stopAccepting();
      await Promise.all([server.close(drainMs), group.close(drainMs ?? DEFAULTS.drainMs)]);
    },
  };
}
