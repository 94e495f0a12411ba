/**
 * Several event loops for the commands that accept TCP connections (`svp socks`,
 * `svp connect --forward`): the main thread serves connections like a worker and also owns
 * everything there is one of (the mesh session, the log, signals, `svp status`); N − 1 worker
 * threads accept on the same listening address (src/platform/loops.ts says how) and serve
 * theirs with their own proxy server or bridge.
 *
 * What crosses between the threads:
 * - the connection counts, in a SharedArrayBuffer (`--max-conns` is one global limit, exact:
 *   a slot is taken with one atomic add, no message);
 * - one record per finished connection, in batches (only when someone logs them);
 * - mesh streams: a worker's mesh dial is done by the main thread on its one mesh session,
 *   and the worker gets the stream as a `PortStream` over the worker's own channel (a
 *   `PortMux` port; the main thread relays it to the MSP stream), so every worker's streams
 *   share one session, one daemon connection and show in `svp status` as before;
 * - stop accepting, close(drainMs), and their acknowledgements.
 *
 * Workers never print: their records, accept errors and failures go to the main thread,
 * which logs them as its own.
 */

import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import type { ErrorCode } from "./errors.ts";
import { ERROR_TABLE, SvpError, toSvpError, abortError, failureUnder } from "./errors.ts";
import type { MeshName } from "./mesh/names.ts";
import type { ListenAddress } from "./options.ts";
import { Bridge } from "./relay/bridge.ts";
import type { BridgeRecord } from "./relay/bridge.ts";
import { Relay } from "./relay/relay.ts";
import type { Credential } from "./socks/auth.ts";
import { Credentials } from "./socks/auth.ts";
import type { MeshDialer } from "./socks/dialer.ts";
import { createRouter } from "./socks/dialer.ts";
import type { StreamRecord } from "./socks/server.ts";
import { ProxyServer } from "./socks/server.ts";
import type { UpstreamProxy } from "./socks/upstream.ts";
import type { ByteStream } from "./stream/byte-stream.ts";
import { PortStream } from "./stream/port-stream.ts";
import { PortMux, isMuxMessage } from "./stream/port-mux.ts";
import type { MuxMessage } from "./stream/port-mux.ts";
import { connectTcp, listen } from "./platform/net.ts";
import type { Listener } from "./platform/net.ts";
import type { LoopWorker } from "./platform/loops.ts";
import { duplicateDescriptor, listenSharing, loopWorkerData, startLoopWorker } from "./platform/loops.ts";
import { restoreYoungGenerationPin } from "./platform/young-generation.ts";

/** How a worker binds one listener: its own SO_REUSEPORT socket, or a duplicate descriptor. */
type WorkerListen = { addr: ListenAddress; address: string; reusePort?: boolean; fd?: number };

/** The proxy settings a worker needs (all structured-cloneable). */
export interface SocksLoopSettings {
  credentials: Credential[];
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxConns: number;
  direct: "allow" | "deny";
  upstream: UpstreamProxy | undefined;
  /** Mesh destinations are dialled by the main thread (true) or refused as having no route. */
  mesh: boolean;
}

export interface ForwardLoopSettings {
  openTimeoutMs: number;
  openTimeoutMessage: string;
  idleTimeoutMs: number;
  targetLabel: string;
}

type WorkerData =
  | { kind: "socks"; loop: number; listeners: WorkerListen[]; shared: Int32Array; records: boolean; settings: SocksLoopSettings }
  | { kind: "forward"; loop: number; listeners: WorkerListen[]; shared: Int32Array; records: boolean; settings: ForwardLoopSettings };

/** Worker → main. */
type FromWorker =
  | { t: "ready" }
  | { t: "failed"; message: string }
  | { t: "records"; list: unknown[] }
  | { t: "accept-error"; code: ErrorCode; message: string }
  | { t: "dial"; id: number; name?: MeshName; port?: number }
  | { t: "dial-abort"; id: number; code: ErrorCode; message: string }
  | MuxMessage
  | { t: "stopped" }
  | { t: "closed" };

/** Main → worker. */
type ToWorker =
  | { t: "dialed"; id: number }
  | MuxMessage
  | { t: "dial-failed"; id: number; code: ErrorCode; message: string }
  | { t: "stop" }
  | { t: "close"; drainMs: number };

/** What the main thread does for its workers. */
export interface LoopHost {
  /** A record from a worker (already a plain object). */
  onRecord(record: unknown): void;
  onAcceptError?: ((err: SvpError) => void) | undefined;
  /** Open a mesh stream for a worker (socks: to `name`:`port`; forward: the one target). */
  dial(signal: AbortSignal, name?: MeshName, port?: number): Promise<ByteStream>;
  clock?: Clock | undefined;
}

/** The worker threads of one service, as the main thread runs them. */
export class LoopGroup {
  /** Event loops serving connections, the main thread's included. */
  readonly count: number;
  /** One line for the start-up log: how many loops and how they share the port, or why one. */
  readonly note: string;
  readonly #workers: LoopWorker[];
  readonly #host: LoopHost;
  readonly #relays = new Map<LoopWorker, Set<Relay | AbortController>>();
  /** Each worker's mesh streams, over its channel (port id = the worker's dial id). */
  readonly #muxes = new Map<LoopWorker, PortMux>();
  #stopped: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  readonly #acks = new Map<LoopWorker, { stopped?: () => void; closed?: () => void }>();

  private constructor(workers: LoopWorker[], host: LoopHost, note: string) {
    this.#workers = workers;
    this.#host = host;
    this.count = workers.length + 1;
    this.note = note;
    for (const w of workers) this.#attach(w);
  }

  /**
   * Start `wanted − 1` workers beside the main thread's `listeners` (bound to `addrs`);
   * resolves once they all accept, or with fewer loops (and a note saying why) when they
   * cannot. Never rejects: the main loop alone still serves.
   */
  static async start(
    kind: "socks" | "forward",
    wanted: number,
    addrs: ListenAddress[],
    listeners: Listener[],
    shared: Int32Array,
    records: boolean,
    settings: SocksLoopSettings | ForwardLoopSettings,
    host: LoopHost,
  ): Promise<LoopGroup> {
    if (wanted <= 1) return new LoopGroup([], host, "1 event loop");
    const plan: WorkerListen[][] = [];
    const why: string[] = [];
    const hows = new Set<string>();
    for (let i = 1; i < wanted; i++) plan.push([]);
    addrs.forEach((addr, j) => {
      const sharing = listenSharing(addr);
      const l = listeners[j]!;
      if (sharing.kind === "single") return void why.push(`${l.address}: ${sharing.why}`);
      if (sharing.kind === "dup" && l.fd === undefined) return void why.push(`${l.address}: the runtime does not give its descriptor`);
      const bound: ListenAddress = addr.kind === "tcp" ? { ...addr, port: l.port } : addr;
      hows.add(sharing.kind === "reuseport" ? "reusePort" : "a shared listening socket");
      for (const p of plan) p.push(sharing.kind === "reuseport" ? { addr: bound, address: l.address, reusePort: true } : { addr: bound, address: l.address, fd: duplicateDescriptor(l.fd!) });
    });
    if (plan[0]!.length === 0) return new LoopGroup([], host, `1 event loop (${why.join("; ")})`);
    const started = await Promise.all(
      plan.map(async (p, i) => {
        try {
          return await startWorker({ kind, loop: i + 1, listeners: p, shared, records, settings } as WorkerData);
        } catch (err) {
          why.push(toSvpError(err).message);
          return undefined;
        }
      }),
    );
    const workers = started.filter((w): w is LoopWorker => w !== undefined);
    const shareNote = why.length > 0 ? `; ${why.join("; ")}` : "";
    const note = workers.length === 0 ? `1 event loop (worker threads failed: ${why.join("; ")})` : `${workers.length + 1} event loops (worker threads accepting through ${[...hows].join(" and ")})${shareNote}`;
    return new LoopGroup(workers, host, note);
  }

  #attach(w: LoopWorker): void {
    const relays = new Set<Relay | AbortController>();
    this.#relays.set(w, relays);
    this.#acks.set(w, {});
    const mux = new PortMux((m) => {
      try {
        w.postMessage(m satisfies ToWorker);
      } catch {
        // the worker is gone
      }
    });
    this.#muxes.set(w, mux);
    w.onMessage((raw) => {
      const m = raw as FromWorker;
      switch (m.t) {
        case "s":
          if (isMuxMessage(m)) mux.deliver(m);
          return;
        case "records":
          for (const r of m.list) this.#host.onRecord(r);
          return;
        case "accept-error":
          this.#host.onAcceptError?.(new SvpError(m.code, m.message));
          return;
        case "dial":
          this.#dial(w, relays, m.id, m.name, m.port);
          return;
        case "dial-abort": {
          for (const r of relays) if (r instanceof AbortController && (r as AbortController & { id?: number }).id === m.id) r.abort(new SvpError(m.code, m.message));
          return;
        }
        case "stopped":
          this.#acks.get(w)?.stopped?.();
          return;
        case "closed":
          this.#acks.get(w)?.closed?.();
          return;
      }
    });
    w.onExit(() => {
      // Whatever it relayed through this thread ends with it; pending acknowledgements too.
      for (const r of relays) r.abort(new SvpError("ERR_ABORTED", "event loop ended"));
      relays.clear();
      mux.closeAll();
      const a = this.#acks.get(w);
      a?.stopped?.();
      a?.closed?.();
    });
  }

  #dial(w: LoopWorker, relays: Set<Relay | AbortController>, id: number, name: MeshName | undefined, port: number | undefined): void {
    const ac = Object.assign(new AbortController(), { id });
    relays.add(ac);
    const post = (m: ToWorker) => {
      try {
        w.postMessage(m);
      } catch {
        // the worker is gone
      }
    };
    let opening: Promise<ByteStream>;
    try {
      opening = this.#host.dial(ac.signal, name, port);
    } catch (err) {
      opening = Promise.reject(err);
    }
    opening.then(
      (stream) => {
        relays.delete(ac);
        if (ac.signal.aborted) {
          stream.abort(abortError(ac.signal.reason, "dial"));
          return;
        }
        // The port opens before the worker hears of it: nothing it sends is dropped.
        const near = new PortStream(this.#muxes.get(w)!.open(id), { label: stream.label });
        post({ t: "dialed", id });
        const relay = new Relay(stream, near, { clock: this.#host.clock ?? systemClock });
        relays.add(relay);
        relay.on("close", () => relays.delete(relay));
      },
      (err: unknown) => {
        relays.delete(ac);
        const e = failureUnder(ac.signal, err);
        post({ t: "dial-failed", id, code: e.code, message: e.message });
      },
    );
  }

  /** Every worker has stopped accepting (its listeners are closed). */
  stopAccepting(): Promise<void> {
    this.#stopped ??= Promise.all(
      this.#workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            this.#acks.get(w)!.stopped = resolve;
            w.postMessage({ t: "stop" } satisfies ToWorker);
          }),
      ),
    ).then(() => undefined);
    return this.#stopped;
  }

  /** Close every worker's service (drain for up to `drainMs`), then end the threads. Again: a sooner deadline. */
  close(drainMs: number): Promise<void> {
    for (const w of this.#workers) {
      try {
        w.postMessage({ t: "close", drainMs } satisfies ToWorker);
      } catch {
        // gone
      }
    }
    this.#closed ??= Promise.all(
      this.#workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            this.#acks.get(w)!.closed = resolve;
          }).then(() => w.terminate()),
      ),
    ).then(() => undefined);
    return this.#closed;
  }
}

/** Start one worker and wait for it to accept (or fail). */
function startWorker(data: WorkerData): Promise<LoopWorker> {
  const w = startLoopWorker(data);
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeoutOnce(() => {
      if (settled) return;
      settled = true;
      void w.terminate();
      reject(new SvpError("ERR_TIMEOUT", "a worker thread did not start within 10 s"));
    }, 10_000);
    w.onMessage((raw) => {
      const m = raw as FromWorker;
      if (settled || (m.t !== "ready" && m.t !== "failed")) return;
      settled = true;
      timer.cancel();
      if (m.t === "ready") {
        // Starting it (and whatever threads its module loading started) reset V8's flags to
        // the process's defaults; the CLI's young-generation pin comes back now that it runs.
        restoreYoungGenerationPin();
        resolve(w);
      }
      else {
        void w.terminate();
        reject(new SvpError("ERR_INTERNAL", `a worker thread failed: ${m.message}`));
      }
    });
    w.onExit((err) => {
      if (settled) return;
      settled = true;
      timer.cancel();
      reject(new SvpError("ERR_INTERNAL", `a worker thread exited at start${err ? `: ${err.message}` : ""}`));
    });
  });
}

function setTimeoutOnce(fn: () => void, ms: number): { cancel(): void } {
  return systemClock.setTimeout(fn, ms);
}

// ---------------------------------------------------------------------------------------
// The worker side.

/** Runs in a worker thread started by `LoopGroup`: serve until told to close. */
export function runLoopWorker(): void {
  const ctx = loopWorkerData();
  if (!ctx) throw new SvpError("ERR_INTERNAL", "not an svp loop worker");
  const data = ctx.data as WorkerData;
  const post = (m: FromWorker) => ctx.post(m);
  const clock = systemClock;

  // Records go to the main thread in batches, one message per turn of this loop.
  let batch: unknown[] = [];
  const record = (r: unknown) => {
    if (batch.length === 0) queueMicrotask(() => {
      const list = batch;
      batch = [];
      post({ t: "records", list });
    });
    batch.push(r);
  };

  // Mesh dials are the main thread's (one mesh session per process); their streams come
  // back as ports over this worker's channel, with the dial's id.
  const mux = new PortMux((m) => post(m));
  let nextId = 1;
  const pending = new Map<number, { resolve: (s: ByteStream) => void; reject: (e: SvpError) => void; abandoned: boolean }>();
  const remoteDial = (signal: AbortSignal, label: string, name?: MeshName, port?: number): Promise<ByteStream> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const entry = { resolve, reject, abandoned: false };
      pending.set(id, entry);
      const onAbort = () => {
        const e = abortError(signal.reason, "connect");
        entry.abandoned = true;
        post({ t: "dial-abort", id, code: e.code, message: e.message });
        reject(e);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      entry.resolve = (s) => {
        signal.removeEventListener("abort", onAbort);
        resolve(s);
      };
      entry.reject = (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      };
      void label;
      post({ t: "dial", id, ...(name ? { name } : {}), ...(port !== undefined ? { port } : {}) });
    });

  let service: { handle(s: ByteStream, address: string): void; close(drainMs: number): Promise<unknown> };
  if (data.kind === "socks") {
    const s = data.settings;
    const mesh: MeshDialer | undefined = s.mesh ? { dial: (name, port, signal) => remoteDial(signal, "mesh", name, port) } : undefined;
    const server = new ProxyServer({
      dialer: createRouter({ tcp: (host, port, signal) => connectTcp(host, port, { signal, timeoutMs: 0, clock }), direct: s.direct, upstream: s.upstream, mesh }),
      startRelay: (a, b, o) => new Relay(a, b, o),
      clock,
      credentials: s.credentials.length > 0 ? new Credentials(s.credentials) : undefined,
      handshakeTimeoutMs: s.handshakeTimeoutMs,
      connectTimeoutMs: s.connectTimeoutMs,
      idleTimeoutMs: s.idleTimeoutMs,
      maxConns: s.maxConns,
      shared: data.shared,
      loop: data.loop,
    });
    if (data.records) server.on("stream", (r: StreamRecord) => record(r));
    service = { handle: (st, address) => server.handle(st, address), close: (ms) => server.close(ms) };
  } else {
    const s = data.settings;
    const bridge = new Bridge<ForwardLoopRecord>({
      open: (_client, signal) => remoteDial(signal, "forward"),
      openTimeoutMs: s.openTimeoutMs,
      openTimeoutMessage: s.openTimeoutMessage,
      idleTimeoutMs: s.idleTimeoutMs,
      clock,
      shared: data.shared,
    });
    if (data.records) bridge.on("connection", (r) => record(r));
    service = {
      handle: (st) => bridge.handle(st, { client: st.label, target: s.targetLabel, outcome: "ok", up: 0, down: 0, durationMs: 0 }),
      close: (ms) => bridge.close(ms),
    };
  }

  const listeners: Listener[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= Promise.all(listeners.map((l) => l.close())).then(() => undefined));
  let closing: Promise<unknown> | undefined;
  ctx.onMessage((raw) => {
    const m = raw as ToWorker;
    switch (m.t) {
      case "s":
        if (isMuxMessage(m)) mux.deliver(m);
        return;
      case "dialed": {
        const p = pending.get(m.id);
        pending.delete(m.id);
        const stream = new PortStream(mux.open(m.id), { label: "mesh" });
        if (!p || p.abandoned) stream.abort(new SvpError("ERR_ABORTED", "dial abandoned"));
        else p.resolve(stream);
        return;
      }
      case "dial-failed": {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (p && !p.abandoned) p.reject(new SvpError(m.code in ERROR_TABLE ? m.code : "ERR_INTERNAL", m.message));
        return;
      }
      case "stop":
        // Listener handles close at once; their promise waits for connections, so ack now.
        void stop();
        post({ t: "stopped" });
        return;
      case "close": {
        void stop();
        const c = service.close(m.drainMs);
        if (!closing) {
          closing = c;
          void c.then(() => post({ t: "closed" }));
        }
        return;
      }
    }
  });

  void (async () => {
    try {
      for (const l of data.listeners) {
        const address = l.address;
        listeners.push(
          await listen(l.addr, (st) => service.handle(st, address), {
            ...(l.reusePort ? { reusePort: true, joinReusePort: true } : {}),
            ...(l.fd !== undefined ? { fd: l.fd } : {}),
            onAcceptError: (e) => post({ t: "accept-error", code: e.code, message: e.message }),
          }),
        );
      }
      post({ t: "ready" });
    } catch (err) {
      for (const l of listeners) void l.close();
      post({ t: "failed", message: toSvpError(err).message });
    }
  })();
}

/** The record a forwarding worker fills in (src/service/forward-server.ts `ForwardRecord`). */
interface ForwardLoopRecord extends BridgeRecord {
  client: string;
  target: string;
}
