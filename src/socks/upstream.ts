/**
 * `--upstream socks5://host:port` / `http://host:port`: non-mesh traffic goes through
 * another proxy. This is the client side of those two handshakes over a ByteStream the
 * caller opened to the upstream proxy.
 */

import { ERROR_TABLE, SvpError, UsageError, toSvpError, abortError } from "../errors.ts";
import type { ErrorCode } from "../errors.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import type { Destination } from "./destination.ts";
import { formatDestination, printable } from "./destination.ts";
import { HttpHeadReader, parseResponseHead } from "./http-head.ts";
import { formatHostPort } from "./ip.ts";
import type { Decoded } from "./socks5-codec.ts";
import { SOCKS5, decodeMethodSelection, decodeReply, decodeUserPassReply, encodeGreeting, encodeRequest, encodeUserPass } from "./socks5-codec.ts";
import { StreamView } from "../stream/stream-view.ts";

export interface UpstreamProxy {
  protocol: "socks5" | "http";
  host: string;
  port: number;
  user?: string;
  pass?: string;
}

/** Parse `socks5://[user:pass@]host:port` or `http://[user:pass@]host:port`. */
export function parseUpstream(text: string): UpstreamProxy {
  const bad = (why: string) => new UsageError(`invalid --upstream "${text}": ${why}`);
  const m = /^([a-z0-9]+):\/\/(?:([^@/]*)@)?([^/@]+?)\/?$/i.exec(text);
  if (!m) throw bad("expected socks5://host:port or http://host:port");
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "socks5" && scheme !== "socks5h" && scheme !== "http") throw bad(`unsupported scheme ${scheme}:// (use socks5:// or http://)`);
  const hostPort = m[3]!;
  let host: string;
  let portText: string;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(hostPort);
  if (v6) {
    host = v6[1]!;
    portText = v6[2]!;
  } else {
    const colon = hostPort.lastIndexOf(":");
    if (colon < 0) throw bad("missing port");
    host = hostPort.slice(0, colon);
    portText = hostPort.slice(colon + 1);
    if (!/^[A-Za-z0-9.-]+$/.test(host)) throw bad("bad host");
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) throw bad("port must be 1-65535");
  const up: UpstreamProxy = { protocol: scheme === "http" ? "http" : "socks5", host, port: Number(portText) };
  if (m[2] !== undefined) {
    const cred = decodeURIComponent(m[2]);
    const colon = cred.indexOf(":");
    if (colon <= 0) throw bad("credentials must be user:pass");
    up.user = cred.slice(0, colon);
    up.pass = cred.slice(colon + 1);
  }
  return up;
}

export function formatUpstream(up: UpstreamProxy): string {
  return `${up.protocol}://${formatHostPort(up.host, up.port)}`;
}

/**
 * Ask the upstream proxy on `stream` for a tunnel to `dest`. Resolves with a stream that
 * reads from the target (any bytes that came with the proxy's reply first); rejects with
 * the SvpError matching the proxy's answer, aborting `stream`.
 */
export async function upstreamConnect(up: UpstreamProxy, stream: ByteStream, dest: Destination, signal: AbortSignal): Promise<ByteStream> {
  const reader = new StreamReader(stream, signal);
  try {
    let rest: Uint8Array;
    if (up.protocol === "socks5") rest = await socks5Connect(up, stream, reader, dest);
    else rest = await httpConnect(up, stream, reader, dest);
    reader.release();
    return rest.length > 0 ? new StreamView(stream, { prefix: rest }) : stream;
  } catch (err) {
    reader.release();
    const e = toSvpError(err);
    if (!stream.closed) stream.abort(e);
    throw e;
  }
}

const utf8 = new TextEncoder();

async function socks5Connect(up: UpstreamProxy, stream: ByteStream, reader: StreamReader, dest: Destination): Promise<Uint8Array> {
  const withAuth = up.user !== undefined;
  stream.write(encodeGreeting(withAuth ? [SOCKS5.METHOD_NO_AUTH, SOCKS5.METHOD_USER_PASS] : [SOCKS5.METHOD_NO_AUTH]));
  const method = await reader.read(decodeMethodSelection);
  if (method === SOCKS5.METHOD_USER_PASS && withAuth) {
    stream.write(encodeUserPass(utf8.encode(up.user!), utf8.encode(up.pass ?? "")));
    if (!(await reader.read(decodeUserPassReply))) throw new SvpError("ERR_NOT_ALLOWED", "upstream proxy rejected the user name or password");
  } else if (method !== SOCKS5.METHOD_NO_AUTH) {
    throw new SvpError("ERR_NOT_ALLOWED", method === SOCKS5.METHOD_NONE_ACCEPTABLE ? "upstream proxy requires authentication" : `upstream proxy chose unknown method ${method}`);
  }
  stream.write(encodeRequest(SOCKS5.CMD_CONNECT, dest.host, dest.port));
  const reply = await reader.read(decodeReply);
  if (reply.command !== SOCKS5.REP_SUCCEEDED) {
    throw new SvpError(codeFor("socks5", reply.command), `upstream proxy: ${SOCKS5_REPLY_TEXT[reply.command] ?? `reply code ${reply.command}`}`);
  }
  return reader.rest();
}

async function httpConnect(up: UpstreamProxy, stream: ByteStream, reader: StreamReader, dest: Destination): Promise<Uint8Array> {
  const authority = formatDestination(dest);
  let req = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  if (up.user !== undefined) {
    const raw = String.fromCharCode(...utf8.encode(`${up.user}:${up.pass ?? ""}`));
    req += `Proxy-Authorization: Basic ${btoa(raw)}\r\n`;
  }
  stream.write(utf8.encode(req + "\r\n"));
  const bytes = await reader.read((b) => {
    const got = new HttpHeadReader(16 * 1024).push(b);
    return got ? { value: got.head, size: got.head.length } : undefined;
  });
  const res = parseResponseHead(bytes);
  if (res.status < 200 || res.status > 299) {
    throw new SvpError(codeFor("http", res.status), `upstream proxy answered ${res.status} ${printable(res.reason)}`.trim());
  }
  return reader.rest();
}

const SOCKS5_REPLY_TEXT: Record<number, string> = {
  1: "general failure",
  2: "connection not allowed by ruleset",
  3: "network unreachable",
  4: "host unreachable",
  5: "connection refused",
  6: "TTL expired",
  7: "command not supported",
  8: "address type not supported",
};

/**
 * Map an upstream's answer back to an svp code, read off the one table in errors.ts.
 * The upstream refusing svp's own credentials is a rule of that proxy (ERR_NOT_ALLOWED:
 * 0x02 / 403), not ERR_AUTH: a 407 would ask svp's client for a password it cannot give.
 * Nor is an upstream's 503 svp's mesh backend being down.
 */
function codeFor(kind: "socks5" | "http", value: number): ErrorCode {
  if (kind === "http" && value === 407) return "ERR_NOT_ALLOWED";
  const candidates: ErrorCode[] = ["ERR_REFUSED", "ERR_NO_ROUTE", "ERR_NET_UNREACHABLE", "ERR_TIMEOUT", "ERR_NOT_ALLOWED", "ERR_COMMAND_UNSUPPORTED", "ERR_ADDRESS_TYPE"];
  for (const code of candidates) if (ERROR_TABLE[code][kind] === value) return code;
  return kind === "http" && value >= 500 ? "ERR_NO_ROUTE" : "ERR_RESET";
}

/** Reads whole messages off a paused stream during a client handshake. */
class StreamReader {
  readonly #stream: ByteStream;
  readonly #signal: AbortSignal;
  #buf: Uint8Array = new Uint8Array(0);
  #wake: (() => void) | undefined;
  #failure: SvpError | undefined;
  readonly #onData = (chunk: Uint8Array) => {
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf);
    joined.set(chunk, this.#buf.length);
    this.#buf = joined;
    this.#wake?.();
  };
  readonly #onEnd = () => this.#fail(new SvpError("ERR_RESET", "upstream proxy closed the connection during its handshake"));
  readonly #onClose = (err?: SvpError) => this.#fail(err ?? new SvpError("ERR_RESET", "upstream proxy closed the connection during its handshake"));
  readonly #onAbort = () => this.#fail(abortError(this.#signal.reason, "connect"));

  constructor(stream: ByteStream, signal: AbortSignal) {
    this.#stream = stream;
    this.#signal = signal;
    stream.on("data", this.#onData);
    stream.on("end", this.#onEnd);
    stream.on("close", this.#onClose);
    if (signal.aborted) this.#onAbort();
    else signal.addEventListener("abort", this.#onAbort, { once: true });
    stream.resume();
  }

  #fail(err: SvpError): void {
    this.#failure ??= err;
    this.#wake?.();
  }

  async read<T>(decode: (b: Uint8Array) => Decoded<T>): Promise<T> {
    for (;;) {
      if (this.#failure) throw this.#failure;
      const got = decode(this.#buf);
      if (got) {
        this.#buf = this.#buf.subarray(got.size);
        return got.value;
      }
      if (this.#buf.length > 64 * 1024) throw new SvpError("ERR_PROTOCOL", "upstream proxy sent an oversize reply");
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  /** Bytes read past the last message. */
  rest(): Uint8Array {
    return this.#buf.slice();
  }

  release(): void {
    this.#stream.pause();
    this.#stream.off("data", this.#onData);
    this.#stream.off("end", this.#onEnd);
    this.#stream.off("close", this.#onClose);
    this.#signal.removeEventListener("abort", this.#onAbort);
  }
}
