/**
 * The HTTP side of the proxy port: what a request head asks for (CONNECT tunnel, forward
 * request, or a request to the proxy itself), the rewrite of forward requests to origin
 * form, the responses svp writes itself, and the filter that rewrites the target's
 * response head.
 *
 * Forward requests use one connection per request: svp sends `Connection: close` to the
 * target and to the client and then relays bytes, so request bodies of any framing pass
 * through untouched and no second request can reach the wrong host.
 */

import { ERROR_TABLE, SvpError } from "../errors.ts";
import type { Destination } from "./destination.ts";
import { makeDestination, printable } from "./destination.ts";
import type { HeaderList, HttpRequestHead } from "./http-head.ts";
import { HttpHeadReader, getHeader, headerTokens, parseResponseHead, serializeRequestHead, serializeResponseHead } from "./http-head.ts";
import { pacScript } from "./pac.ts";
import type { ReadFilter } from "../stream/stream-view.ts";

export type HttpProxyRequest =
  /** CONNECT host:port — a tunnel. */
  | { kind: "connect"; dest: Destination }
  /**
   * An absolute-URI request; `head` is the rewritten head to send to the target,
   * `bodyLength` the request body's length when the head tells it (see requestBodyLength).
   */
  | { kind: "forward"; dest: Destination; head: Uint8Array; bodyLength: number | undefined }
  /** An origin-form request addressed to svp itself (PAC file, info page). */
  | { kind: "local"; path: string };

/** Parse `host:port` or `[v6]:port`; `defaultPort` when the port is absent (undefined: required). */
export function parseAuthority(text: string, defaultPort?: number): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new SvpError("ERR_BAD_ADDRESS", `malformed authority "${printable(text)}"`);
    host = text.slice(0, close + 1);
    const after = text.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) throw new SvpError("ERR_BAD_ADDRESS", `malformed authority "${printable(text)}"`);
    portText = after === "" ? undefined : after.slice(1);
  } else {
    const colon = text.lastIndexOf(":");
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
  }
  let port: number;
  if (portText === undefined || portText === "") {
    if (defaultPort === undefined) throw new SvpError("ERR_BAD_ADDRESS", `missing port in "${printable(text)}"`);
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) throw new SvpError("ERR_BAD_ADDRESS", `invalid port in "${printable(text)}"`);
    port = Number(portText);
  }
  return { host, port };
}

const HOP_BY_HOP = new Set(["connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te", "upgrade"]);

/** Classify a parsed request head. Throws SvpError for targets svp cannot serve. */
export function classifyRequest(head: HttpRequestHead): HttpProxyRequest {
  if (head.method === "CONNECT") {
    const { host, port } = parseAuthority(head.target);
    return { kind: "connect", dest: makeDestination(host, port) };
  }
  if (head.target.startsWith("/")) return { kind: "local", path: head.target };
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(head.target);
  if (!m) throw new SvpError("ERR_PROTOCOL", `unsupported request target "${printable(head.target.slice(0, 60))}"`);
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "http") throw new SvpError("ERR_PROTOCOL", `cannot forward ${scheme}:// requests (browsers use CONNECT for https)`);
  const authority = m[2]!.slice(m[2]!.lastIndexOf("@") + 1);
  const { host, port } = parseAuthority(authority, 80);
  const dest = makeDestination(host, port);
  let path = m[3]!;
  if (path === "") path = "/";
  else if (path.startsWith("?")) path = "/" + path;
  return { kind: "forward", dest, head: rewriteForward(head, path, authority), bodyLength: requestBodyLength(head) };
}

/**
 * The length of a request's body as its head gives it (RFC 9112 6.3): 0 without
 * Content-Length and Transfer-Encoding, N for a valid Content-Length. Undefined when
 * only the bytes themselves tell where it ends (chunked or other transfer codings,
 * conflicting lengths) and for protocol upgrades, whose bytes after the head belong to
 * the new protocol. Bytes past a known end are the client's next, pipelined, request.
 */
export function requestBodyLength(head: HttpRequestHead): number | undefined {
  if (getHeader(head.headers, "transfer-encoding") !== undefined) return undefined;
  if (headerTokens(head.headers, "connection").includes("upgrade") && getHeader(head.headers, "upgrade") !== undefined) return undefined;
  let length: number | undefined;
  for (const [name, value] of head.headers) {
    if (name.toLowerCase() !== "content-length") continue;
    for (const part of value.split(",")) {
      const t = part.trim();
      if (!/^\d{1,15}$/.test(t)) return undefined;
      if (length !== undefined && Number(t) !== length) return undefined;
      length = Number(t);
    }
  }
  return length ?? 0;
}

/**
 * Passes the first `length` bytes of what the client sends after a forward request's
 * head (its body) and drops the rest, counting it: svp forwards one request per
 * connection (it answers with `Connection: close`), so anything after the body is a
 * pipelined request the client will send again, and it must not reach the first
 * request's host — it may be for another host and carry the proxy's credentials.
 */
export class RequestBodyLimit implements ReadFilter {
  #left: number;
  /** Bytes dropped so far. */
  dropped = 0;

  constructor(length: number) {
    this.#left = length;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (chunk.length <= this.#left) {
      this.#left -= chunk.length;
      return [chunk];
    }
    const keep = this.#left;
    this.#left = 0;
    this.dropped += chunk.length - keep;
    return keep > 0 ? [chunk.subarray(0, keep)] : [];
  }

  flush(): Uint8Array[] {
    return [];
  }
}

/** Absolute form → origin form; hop-by-hop headers out, Host from the URL, one request per connection. */
function rewriteForward(head: HttpRequestHead, path: string, authority: string): Uint8Array {
  const listed = new Set(headerTokens(head.headers, "connection"));
  const upgrade = listed.has("upgrade") && getHeader(head.headers, "upgrade") !== undefined;
  const headers: HeaderList = [["Host", authority]];
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (lower === "host") continue;
    if (lower === "upgrade" && upgrade) {
      headers.push([name, value]);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    headers.push([name, value]);
  }
  headers.push(["Connection", upgrade ? "upgrade" : "close"]);
  return serializeRequestHead({ method: head.method, target: path, version: head.version, headers });
}

/** The credentials of a `Proxy-Authorization: Basic` header, as bytes; undefined if absent or malformed. */
export function basicCredentials(headers: HeaderList): { user: Uint8Array; pass: Uint8Array } | undefined {
  const value = getHeader(headers, "proxy-authorization");
  const m = value ? /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value) : null;
  if (!m) return undefined;
  let decoded: string;
  try {
    decoded = atob(m[1]!);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
  return { user: bytes(decoded.slice(0, colon)), pass: bytes(decoded.slice(colon + 1)) };
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const utf8 = new TextEncoder();

/** A complete response svp writes itself; always `Connection: close`. */
export function simpleResponse(status: number, contentType: string, body: string, extra: HeaderList = [], headOnly = false): Uint8Array {
  const bytes = utf8.encode(body);
  const head = serializeResponseHead({
    version: "HTTP/1.1",
    status,
    reason: REASONS[status] ?? "Error",
    headers: [["Content-Type", contentType], ["Content-Length", String(bytes.length)], ["Cache-Control", "no-store"], ...extra, ["Connection", "close"]],
  });
  if (headOnly) return head;
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

/** The HTTP status and plain-text body for an error (the one table in errors.ts). */
export function errorResponse(err: SvpError, action: string): Uint8Array {
  const status = ERROR_TABLE[err.code].http;
  const extra: HeaderList = status === 407 ? [["Proxy-Authenticate", 'Basic realm="svp", charset="UTF-8"']] : [];
  return simpleResponse(status, "text/plain; charset=utf-8", `cannot ${action}: ${err.message}\n`, extra);
}

export const CONNECT_ESTABLISHED: Uint8Array = utf8.encode("HTTP/1.1 200 Connection Established\r\n\r\n");

/**
 * Answer an origin-form request to the proxy itself: the PAC file at /proxy.pac, an info
 * page at /, 404 elsewhere. `proxy` is this proxy's host:port as the client reached it.
 */
export function localResponse(head: HttpRequestHead, path: string, proxy: string): { response: Uint8Array; served: string; status: number } {
  const headOnly = head.method === "HEAD";
  if (head.method !== "GET" && !headOnly) {
    return { response: simpleResponse(405, "text/plain; charset=utf-8", "svp is a proxy: send absolute-URI requests (GET http://host/…) or CONNECT host:port\n", [["Allow", "GET, HEAD"]]), served: "bad method", status: 405 };
  }
  const bare = path.replace(/[?#].*$/, "");
  if (bare === "/proxy.pac") {
    return { response: simpleResponse(200, "application/x-ns-proxy-autoconfig", pacScript(proxy), [], headOnly), served: "proxy.pac", status: 200 };
  }
  if (bare === "/") return { response: simpleResponse(200, "text/html; charset=utf-8", infoPage(proxy), [], headOnly), served: "info page", status: 200 };
  return { response: simpleResponse(404, "text/plain; charset=utf-8", `not found: svp is a proxy, see http://${proxy}/\n`, [], headOnly), served: "not found", status: 404 };
}

function infoPage(proxy: string): string {
  const esc = proxy.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>svp proxy</title></head>
<body>
<h1>This is svp, a proxy</h1>
<p>This address is a SOCKS5, SOCKS4a and HTTP proxy for the Serval mesh, not a web site.
Configure your browser or tool to use it:</p>
<ul>
<li>Automatic configuration (PAC) URL: <a href="/proxy.pac">http://${esc}/proxy.pac</a>
(sends <code>*.serval</code> names and bare SIDs through the proxy, everything else direct)</li>
<li>SOCKS v5 proxy <code>${esc}</code>, with "Proxy DNS when using SOCKS v5" turned on</li>
<li>HTTP proxy <code>${esc}</code></li>
<li>curl: <code>curl --socks5-hostname ${esc} http://&lt;SID&gt;.serval/</code></li>
</ul>
</body></html>
`;
}

/** This proxy's host:port for PAC and info page: the request's Host header when sane, else `fallback`. */
export function proxyAddressFor(head: HttpRequestHead, fallback: string): string {
  const host = getHeader(head.headers, "host");
  if (!host || !/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(host)) return fallback;
  if (/:\d+$/.test(host) && !host.endsWith("]")) return host;
  const port = /:(\d+)$/.exec(fallback)?.[1];
  return port ? `${host}:${port}` : host;
}

/**
 * Rewrites the target's response head(s) on a forward request: hop-by-hop headers out,
 * `Connection: close` in. Interim 1xx heads pass through unchanged; after a 101 (protocol
 * switch) or anything that does not parse as HTTP, bytes pass through untouched. A target
 * that ends without sending a byte gets the client a 502 (as squid does), not an empty reply.
 */
export class ResponseHeadRewriter {
  #reader: HttpHeadReader | undefined = new HttpHeadReader(64 * 1024);
  #raw: Uint8Array[] = [];
  #heard = false;
  readonly #target: string;
  /** True once the target ended without a byte and the client was sent a 502 instead. */
  emptyReply = false;

  /** `target`: how the 502's text names the target (e.g. "example.com:80"). */
  constructor(target = "the server") {
    this.#target = target;
  }

  /** True once the final head went by; from then on chunks pass through unchanged. */
  get done(): boolean {
    return this.#reader === undefined;
  }

  /** Feed target bytes; returns what to send to the client now (possibly empty). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (!this.#reader) return [chunk];
    if (chunk.length > 0) this.#heard = true;
    const out: Uint8Array[] = [];
    let input = chunk;
    this.#raw.push(chunk);
    while (this.#reader && input.length > 0) {
      let got: { head: Uint8Array; rest: Uint8Array } | undefined;
      try {
        got = this.#reader.push(input);
      } catch {
        return this.#giveUp(out);
      }
      if (!got) return out;
      let parsed;
      try {
        parsed = parseResponseHead(got.head);
      } catch {
        return this.#giveUp(out);
      }
      if (parsed.status >= 100 && parsed.status < 200 && parsed.status !== 101) {
        out.push(got.head);
        this.#reader = new HttpHeadReader(64 * 1024);
        this.#raw = got.rest.length > 0 ? [got.rest] : [];
        input = got.rest;
        continue;
      }
      this.#reader = undefined;
      this.#raw = [];
      if (parsed.status === 101) {
        out.push(got.head);
      } else {
        const listed = new Set(headerTokens(parsed.headers, "connection"));
        const headers = parsed.headers.filter(([n]) => {
          const lower = n.toLowerCase();
          return lower !== "connection" && lower !== "keep-alive" && lower !== "proxy-connection" && !listed.has(lower);
        });
        headers.push(["Connection", "close"]);
        out.push(serializeResponseHead({ ...parsed, headers }));
      }
      if (got.rest.length > 0) out.push(got.rest);
    }
    return out;
  }

  /** The target ended before a complete head: whatever it sent, unchanged (a 502 if nothing). */
  flush(): Uint8Array[] {
    if (this.#reader && !this.#heard) {
      this.#reader = undefined;
      this.emptyReply = true;
      return [errorResponse(new SvpError("ERR_RESET", "it closed the connection without sending one"), `get a response from ${this.#target}`)];
    }
    const raw = this.#raw;
    this.#raw = [];
    this.#reader = undefined;
    return raw;
  }

  #giveUp(out: Uint8Array[]): Uint8Array[] {
    out.push(...this.#raw);
    this.#raw = [];
    this.#reader = undefined;
    return out;
  }
}
