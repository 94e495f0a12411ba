/**
 * HTTP/1.x message heads: an incremental, size-capped reader that finds the end of the
 * head, and parsers/serializers for request and response heads. Bodies are never parsed:
 * the proxy relays them as bytes.
 */

import { SvpError } from "../errors.ts";
import { printable } from "./destination.ts";

/** Default cap on a request head (request line and headers), bytes. */
export const MAX_HEAD_BYTES = 32 * 1024;

export type HeaderList = [name: string, value: string][];

export interface HttpRequestHead {
  method: string;
  /** As sent: origin form ("/x"), absolute form ("http://h/x"), authority ("h:443") or "*". */
  target: string;
  /** "HTTP/1.0" or "HTTP/1.1". */
  version: string;
  headers: HeaderList;
}

export interface HttpResponseHead {
  version: string;
  status: number;
  reason: string;
  headers: HeaderList;
}

/**
 * Collects bytes until the blank line that ends a head (CRLF CRLF, or bare LF LF), at
 * most `maxBytes` of head. Scanning resumes where it stopped, so a head delivered one
 * byte at a time costs linear time.
 */
export class HttpHeadReader {
  readonly #max: number;
  #buf: Uint8Array | undefined;
  #len = 0;
  #scanned = 0;

  constructor(maxBytes = MAX_HEAD_BYTES) {
    this.#max = maxBytes;
  }

  /** Bytes held while waiting for the rest of the head. */
  get buffered(): number {
    return this.#len;
  }

  /**
   * Add `chunk`. Returns the head (including its blank line) and any bytes after it once
   * complete; undefined while incomplete. Throws ERR_TOO_LARGE past the cap.
   */
  push(chunk: Uint8Array): { head: Uint8Array; rest: Uint8Array } | undefined {
    let data: Uint8Array;
    if (this.#len === 0) {
      data = chunk;
    } else {
      if (!this.#buf || this.#buf.length < this.#len + chunk.length) {
        const grown = new Uint8Array(Math.max(this.#len + chunk.length, Math.min(this.#max + 4, (this.#buf?.length ?? 0) * 2)));
        if (this.#buf) grown.set(this.#buf.subarray(0, this.#len));
        this.#buf = grown;
      }
      this.#buf.set(chunk, this.#len);
      data = this.#buf.subarray(0, this.#len + chunk.length);
    }
    const end = findHeadEnd(data, this.#scanned);
    if (end >= 0) {
      if (end > this.#max) throw tooLarge(this.#max);
      const head = data.slice(0, end);
      const rest = data === chunk ? chunk.subarray(end) : data.slice(end);
      this.#buf = undefined;
      this.#len = 0;
      this.#scanned = 0;
      return { head, rest };
    }
    if (data.length > this.#max) throw tooLarge(this.#max);
    if (data === chunk) {
      this.#buf = new Uint8Array(Math.max(256, chunk.length * 2));
      this.#buf.set(chunk);
    }
    this.#len = data.length;
    this.#scanned = Math.max(0, data.length - 3);
    return undefined;
  }
}

function tooLarge(max: number): SvpError {
  return new SvpError("ERR_TOO_LARGE", `HTTP head larger than ${max} bytes`);
}

/** Offset just past the blank line ending the head, or -1. */
function findHeadEnd(b: Uint8Array, from: number): number {
  for (let i = from; i < b.length; i++) {
    if (b[i] !== 0x0a) continue;
    if (b[i + 1] === 0x0a) return i + 2;
    if (b[i + 1] === 0x0d && b[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

function splitHead(bytes: Uint8Array): { start: string; headers: HeaderList } {
  const text = latin1(bytes);
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  while (lines.length > 0 && lines[0] === "") lines.shift(); // RFC 9112 2.2: ignore leading blank lines
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const start = lines.shift();
  if (start === undefined) throw new SvpError("ERR_PROTOCOL", "empty HTTP head");
  const headers: HeaderList = [];
  for (const line of lines) {
    if (line[0] === " " || line[0] === "\t") throw new SvpError("ERR_PROTOCOL", "obsolete header line folding is not accepted");
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new SvpError("ERR_PROTOCOL", `malformed header line "${printable(line.slice(0, 40))}"`);
    const value = line.slice(colon + 1).trim();
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) throw new SvpError("ERR_PROTOCOL", `control character in header ${name}`);
    headers.push([name, value]);
  }
  return { start, headers };
}

export function parseRequestHead(bytes: Uint8Array): HttpRequestHead {
  const { start, headers } = splitHead(bytes);
  const m = /^(\S+) (\S+) (HTTP\/\d\.\d)$/.exec(start);
  if (!m || !TOKEN.test(m[1]!)) throw new SvpError("ERR_PROTOCOL", `malformed HTTP request line "${printable(start.slice(0, 60))}"`);
  const version = m[3]!;
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") throw new SvpError("ERR_PROTOCOL", `unsupported HTTP version ${version}`);
  if (/[\x00-\x20\x7f]/.test(m[2]!)) throw new SvpError("ERR_PROTOCOL", "malformed request target");
  return { method: m[1]!, target: m[2]!, version, headers };
}

export function parseResponseHead(bytes: Uint8Array): HttpResponseHead {
  const { start, headers } = splitHead(bytes);
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(start);
  if (!m) throw new SvpError("ERR_PROTOCOL", `malformed HTTP status line "${printable(start.slice(0, 60))}"`);
  return { version: m[1]!, status: Number(m[2]), reason: m[3] ?? "", headers };
}

export function getHeader(headers: HeaderList, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v;
  return undefined;
}

/** Comma-separated tokens of a header across all its lines, lower-cased (e.g. Connection). */
export function headerTokens(headers: HeaderList, name: string): string[] {
  const lower = name.toLowerCase();
  const out: string[] = [];
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== lower) continue;
    for (const t of v.split(",")) {
      const token = t.trim().toLowerCase();
      if (token) out.push(token);
    }
  }
  return out;
}

function encodeLatin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

function serialize(start: string, headers: HeaderList): Uint8Array {
  let text = start + "\r\n";
  for (const [n, v] of headers) text += `${n}: ${v}\r\n`;
  return encodeLatin1(text + "\r\n");
}

export function serializeRequestHead(h: HttpRequestHead): Uint8Array {
  return serialize(`${h.method} ${h.target} ${h.version}`, h.headers);
}

export function serializeResponseHead(h: HttpResponseHead): Uint8Array {
  return serialize(`${h.version} ${h.status} ${h.reason}`, h.headers);
}
