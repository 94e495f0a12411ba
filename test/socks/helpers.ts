/** Real-socket helpers for the proxy's end-to-end tests. Loopback only; every wait bounded. */

import * as net from "node:net";
import { startSocksProxy } from "../../src/platform/socks-proxy.ts";
import type { SocksProxy, SocksProxyOptions } from "../../src/platform/socks-proxy.ts";
import type { StreamRecord } from "../../src/socks/server.ts";

export const enc = (s: string) => new TextEncoder().encode(s);
export const dec = (b: Uint8Array) => new TextDecoder().decode(b);
export const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

/** A TCP client socket with buffered, bounded reads. */
export class RawClient {
  readonly socket: net.Socket;
  #buf = new Uint8Array(0);
  ended = false;
  closed = false;
  error: Error | undefined;
  #waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (c: Uint8Array) => {
      const b = new Uint8Array(this.#buf.length + c.length);
      b.set(this.#buf);
      b.set(c, this.#buf.length);
      this.#buf = b;
      this.#wake();
    });
    socket.on("end", () => {
      this.ended = true;
      this.#wake();
    });
    socket.on("error", (e) => (this.error = e));
    socket.on("close", () => {
      this.closed = true;
      this.#wake();
    });
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, allowHalfOpen: true }, () => resolve(new RawClient(s)));
      s.once("error", reject);
    });
  }

  static connectPath(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path, allowHalfOpen: true }, () => resolve(new RawClient(s)));
      s.once("error", reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #wait(cond: () => boolean, what: string, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!cond()) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what} (have ${this.#buf.length} bytes, ended=${this.ended})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  write(b: Uint8Array | string): void {
    this.socket.write(typeof b === "string" ? enc(b) : b);
  }

  /** Exactly `n` bytes (waits for them). */
  async read(n: number, ms = 5000): Promise<Uint8Array> {
    await this.#wait(() => this.#buf.length >= n, `${n} bytes`, ms);
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Everything until the peer's end of stream. */
  async readToEnd(ms = 5000): Promise<Uint8Array> {
    await this.#wait(() => this.ended || this.closed, "end of stream", ms);
    const out = this.#buf;
    this.#buf = new Uint8Array(0);
    return out;
  }

  async waitClosed(ms = 5000): Promise<void> {
    await this.#wait(() => this.closed, "close", ms);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A target server on 127.0.0.1:0; `onConn` scripts each connection. */
export async function targetServer(onConn: (s: net.Socket) => void, host = "127.0.0.1"): Promise<{ port: number; close: () => Promise<void>; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    onConn(s);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An echo server that reads to the end, then writes everything back and closes. */
export function echoAfterEnd(s: net.Socket): void {
  const chunks: Uint8Array[] = [];
  s.on("data", (c: Uint8Array) => chunks.push(c));
  s.on("end", () => {
    for (const c of chunks) s.write(c);
    s.end();
  });
}

/** A port nobody listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Start a proxy on 127.0.0.1:0 collecting its stream records. */
export async function proxy(options: Partial<SocksProxyOptions> = {}): Promise<SocksProxy & { port: number; records: StreamRecord[] }> {
  const p = await startSocksProxy({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], ...options });
  const records: StreamRecord[] = [];
  p.server.on("stream", (r) => records.push(r));
  const port = Number(/:(\d+)$/.exec(p.addresses[0]!)?.[1] ?? 0);
  return Object.assign(p, { port, records });
}

export function socks5Connect(host: string, port: number): Uint8Array {
  const h = enc(host);
  return Uint8Array.of(5, 1, 0, 5, 1, 0, 3, h.length, ...h, port >> 8, port & 0xff);
}

export const SOCKS5_OK = "05 00 05 00 00 01 00 00 00 00 00 00";

export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
