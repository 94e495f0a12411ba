/**
 * TCP and unix-socket listeners and outbound TCP connections, as `SocketStream`s.
 * Errors come back as `SvpError`s (refused, timeout, no route, EMFILE → limit).
 */

import * as net from "node:net";
import { chmodSync, existsSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError, toSvpError, abortError } from "../errors.ts";
import type { ListenAddress } from "../options.ts";
import { formatListenAddress } from "../options.ts";
import { SocketStream, adaptiveReadOptions } from "./socket-stream.ts";

export interface ConnectOptions {
  /** Give up after this many ms. Default 30 s; 0 = no timer of its own (rely on `signal`). */
  timeoutMs?: number;
  clock?: Clock;
  /** Abort the attempt early (an AbortSignal, or anything with its `aborted`, `reason` and abort listeners). */
  signal?: Pick<AbortSignal, "aborted" | "reason"> & {
    addEventListener(type: "abort", fn: () => void, options?: { once?: boolean }): void;
    removeEventListener(type: "abort", fn: () => void): void;
  };
}

/** Open a TCP connection; resolves only once it is established. */
export function connectTcp(host: string, port: number, options: ConnectOptions = {}): Promise<SocketStream> {
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true, onread: adaptiveReadOptions() });
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      timer?.cancel();
      options.signal?.removeEventListener("abort", onAbort);
      socket.off("error", finish);
      socket.off("connect", onConnect);
      if (err !== undefined) {
        socket.destroy();
        const code = (err as NodeJS.ErrnoException).code;
        reject(code === "EMFILE" || code === "ENFILE" ? new SvpError("ERR_LIMIT", `out of file descriptors (${code}); raise the limit (ulimit -n)`, { cause: err }) : toSvpError(err));
      } else {
        resolve(new SocketStream(socket));
      }
    };
    const onConnect = () => finish();
    const onAbort = () => finish(abortError(options.signal?.reason, "connect"));
    const timer = timeoutMs > 0 ? clock.setTimeout(() => finish(new SvpError("ERR_TIMEOUT", `connect to ${host}:${port} timed out`)), timeoutMs) : undefined;
    socket.once("connect", onConnect);
    socket.once("error", finish);
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Open a unix stream socket connection. */
export function connectUnix(path: string, options: ConnectOptions = {}): Promise<SocketStream> {
  const clock = options.clock ?? systemClock;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path, allowHalfOpen: true });
    const timer = clock.setTimeout(() => {
      socket.destroy();
      reject(new SvpError("ERR_TIMEOUT", `connect to ${path} timed out`));
    }, options.timeoutMs ?? 30_000);
    socket.once("connect", () => {
      timer.cancel();
      socket.removeAllListeners("error");
      resolve(new SocketStream(socket, `unix ${path}`));
    });
    socket.once("error", (err) => {
      timer.cancel();
      reject(toSvpError(err));
    });
  });
}

export interface Listener {
  /** The address actually bound, e.g. "127.0.0.1:40321", "[::1]:1080", "unix:/tmp/s". */
  readonly address: string;
  /** The bound TCP port (0 for unix sockets). */
  readonly port: number;
  /** The listening socket's descriptor (to duplicate for another event loop); undefined where the runtime does not tell. */
  readonly fd: number | undefined;
  /** Stop accepting; live connections are not touched. */
  close(): Promise<void>;
}

export interface ListenOptions {
  /** Called when accept fails (EMFILE and friends); the listener keeps running. */
  onAcceptError?: (err: SvpError) => void;
  /** Pause accepting for this long after an accept error, so EMFILE does not spin. Default 100 ms. */
  acceptBackoffMs?: number;
  /**
   * TCP: bind with SO_REUSEPORT, so that other event loops of this process can bind the same
   * address (src/platform/loops.ts). A fixed port is first checked to be free (bound without
   * it): another program holding it is still "address already in use", never a silent share.
   */
  reusePort?: boolean;
  /** With `reusePort`: join a group another loop of this process has bound (no check that the port is free). */
  joinReusePort?: boolean;
  /** Accept on this already listening descriptor (a duplicate made for this loop) instead of binding `addr`. */
  fd?: number;
}

/** Listen on a TCP or unix address; `onStream` gets each accepted connection. */
export async function listen(addr: ListenAddress, onStream: (stream: SocketStream) => void, options: ListenOptions = {}): Promise<Listener> {
  const fd = options.fd;
  if (addr.kind === "unix" && fd === undefined) await removeStaleUnixSocket(addr.path);
  if (addr.kind === "tcp" && options.reusePort && !options.joinReusePort && addr.port !== 0 && fd === undefined) await checkPortFree(addr);
  const tcp = addr.kind === "tcp";
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
      // (The peer's address is looked up only when a log line wants it: SocketStream.label.)
      onStream(new SocketStream(socket, undefined, tcp));
    });
    server.on("error", (err: NodeJS.ErrnoException) => {
      if (!listening) return reject(listenError(addr, err));
      // Accept errors (EMFILE): back off instead of spinning on a full descriptor table.
      options.onAcceptError?.(toSvpError(err));
    });
    // node:net retries accept itself on EMFILE without emitting; nothing more to do there.
    let listening = false;
    const onListening = () => {
      listening = true;
      const a = server.address();
      let address: string;
      let port = 0;
      if (typeof a === "string" || a === null) address = `unix:${addr.kind === "unix" ? addr.path : a}`;
      else {
        port = a.port;
        address = a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
      }
      if (addr.kind === "unix" && fd === undefined) chmodSync(addr.path, 0o600);
      const handleFd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
      resolve({
        address,
        port,
        fd: typeof handleFd === "number" && handleFd >= 0 ? handleFd : undefined,
        close: () => new Promise<void>((res) => server.close(() => res())),
      });
    };
    if (fd !== undefined) {
      server.listen({ fd }, onListening);
    } else if (addr.kind === "unix") {
      // Bind owner-only from the start: with a lax umask the socket would otherwise accept
      // other users' connections until the chmod in onListening (bind is synchronous here).
      const oldMask = trySetUmask(0o177);
      try {
        server.listen({ path: addr.path }, onListening);
      } finally {
        if (oldMask !== undefined) trySetUmask(oldMask);
      }
    } else {
      server.listen({ host: addr.host, port: addr.port, exclusive: true, ...(options.reusePort ? { reusePort: true } : {}) }, onListening);
    }
  });
}

/** Bind `addr` without SO_REUSEPORT and release it: throws the usual error when someone holds it. */
function checkPortFree(addr: ListenAddress & { kind: "tcp" }): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => reject(listenError(addr, err)));
    probe.listen({ host: addr.host, port: addr.port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** Why binding `addr` failed, as a usage error where the address is what is wrong. */
function listenError(addr: ListenAddress, err: NodeJS.ErrnoException): SvpError {
  const where = `cannot listen on ${formatListenAddress(addr)}`;
  if (err.code === "EADDRINUSE") return new SvpError("ERR_USAGE", `${where}: address already in use`);
  // (Deno's node:net reports an address this host lacks as EINVAL.)
  if ((err.code === "EADDRNOTAVAIL" || err.code === "EINVAL") && addr.kind === "tcp") return new SvpError("ERR_USAGE", `${where}: ${addr.host} is not an address of this machine`);
  if (err.code === "EACCES" && addr.kind === "tcp" && addr.port > 0 && addr.port < 1024) {
    return new SvpError("ERR_NOT_ALLOWED", `${where}: permission denied (ports below 1024 need privileges; pick a higher port)`);
  }
  if (addr.kind === "unix") {
    // libuv reports a missing directory as EACCES; say what is actually wrong.
    const dir = dirname(addr.path);
    if (!existsSync(dir)) return new SvpError("ERR_USAGE", `${where}: directory ${dir} does not exist`);
    if (!statSync(dir).isDirectory()) return new SvpError("ERR_USAGE", `${where}: ${dir} is not a directory`);
  }
  return new SvpError(toSvpError(err).code, `${where}: ${err.message}`);
}

/** process.umask(mask), returning the previous mask; undefined where the runtime cannot set it. */
function trySetUmask(mask: number): number | undefined {
  try {
    return process.umask(mask);
  } catch {
    return undefined;
  }
}

/** A leftover socket file from a killed process blocks bind; remove it only if nobody answers. */
async function removeStaleUnixSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new SvpError("ERR_USAGE", `cannot listen on unix:${path}: file exists and is not a socket`);
  const alive = await new Promise<boolean>((res) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      res(true);
    });
    probe.once("error", () => res(false));
  });
  if (alive) throw new SvpError("ERR_USAGE", `cannot listen on unix:${path}: another process is listening there`);
  unlinkSync(path);
}
