/**
 * The server side of a proxy handshake, sans I/O: feed it the client's bytes, it says what
 * to send back and when the request is known. One port serves every protocol; the first
 * byte tells them apart: 0x05 SOCKS5, 0x04 SOCKS4/4a, anything else HTTP.
 *
 * It handles any split of the input (one byte at a time or everything in one segment:
 * greeting, auth, request and early data) and caps what it buffers. Timers are the
 * caller's business (src/socks/server.ts).
 */

import { ERROR_TABLE, SvpError, toSvpError } from "../errors.ts";
import type { Credentials } from "./auth.ts";
import type { Destination } from "./destination.ts";
import { displayDestination, makeDestination, printable } from "./destination.ts";
import { HttpHeadReader, MAX_HEAD_BYTES, parseRequestHead } from "./http-head.ts";
import { CONNECT_ESTABLISHED, basicCredentials, classifyRequest, errorResponse, localResponse, proxyAddressFor } from "./http-proxy.ts";
import { SOCKS4, decodeSocks4Request, encodeSocks4Reply } from "./socks4-codec.ts";
import { SOCKS5, decodeGreeting, decodeRequest, decodeUserPass, encodeMethodSelection, encodeReply, encodeUserPassReply } from "./socks5-codec.ts";
import { concatBytes } from "../bytes/concat.ts";

export type ProxyProtocol = "socks5" | "socks4" | "socks4a" | "http-connect" | "http";

/** A complete, validated request: where to connect and how to answer. */
export interface ProxyRequest {
  protocol: ProxyProtocol;
  dest: Destination;
  /** The user the client authenticated as, when authentication is on. */
  user?: string;
  /** HTTP forward requests: the rewritten head, to send to the target before `early`. */
  head?: Uint8Array;
  /**
   * HTTP forward requests: the body's length when the head gives it; the client's bytes
   * after it (pipelined requests) are not forwarded (http-proxy.ts RequestBodyLimit).
   */
  bodyLength?: number;
}

export type HandshakeStep =
  /** Wait for more input; write `send` to the client first when present. */
  | { kind: "more"; send?: Uint8Array }
  /** Connect to `request.dest`; `early` is client data that arrived after the request. */
  | { kind: "connect"; send?: Uint8Array; request: ProxyRequest; early: Uint8Array }
  /**
   * Write `send` (when present) and close. `error` says why, absent when svp served the
   * request itself (`served`: PAC file, info page).
   */
  | { kind: "close"; send?: Uint8Array; error?: SvpError; served?: string; protocol?: ProxyProtocol; dest?: Destination };

export interface HandshakeOptions {
  /** Required credentials; undefined = no authentication. */
  credentials?: Credentials | undefined;
  /** This proxy's address as "host:port", for the PAC file and info page. */
  proxyAddress: string;
  /** Cap on an HTTP request head. Default 32 KiB. */
  maxHeadBytes?: number;
}

type State = "first" | "s5-greeting" | "s5-auth" | "s5-request" | "s4" | "http" | "done";

const EMPTY = new Uint8Array(0);
/** The server's method selections, encoded once (never modified by the writes). */
const METHOD_SELECTION: Record<number, Uint8Array> = {
  [SOCKS5.METHOD_NO_AUTH]: encodeMethodSelection(SOCKS5.METHOD_NO_AUTH),
  [SOCKS5.METHOD_USER_PASS]: encodeMethodSelection(SOCKS5.METHOD_USER_PASS),
  [SOCKS5.METHOD_NONE_ACCEPTABLE]: encodeMethodSelection(SOCKS5.METHOD_NONE_ACCEPTABLE),
};
const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

export class Handshake {
  protocol: ProxyProtocol | undefined;
  #state: State = "first";
  readonly #opts: HandshakeOptions;
  #pending: Uint8Array = EMPTY;
  #http: HttpHeadReader | undefined;
  #user: string | undefined;

  constructor(options: HandshakeOptions) {
    this.#opts = options;
  }

  /** Bytes held while waiting for the rest of a message. */
  get buffered(): number {
    return this.#pending.length + (this.#http?.buffered ?? 0);
  }

  /** Feed client bytes. After a "connect" or "close" step, do not call again. */
  push(chunk: Uint8Array): HandshakeStep {
    if (this.#state === "done") throw new SvpError("ERR_INTERNAL", "handshake already finished");
    if (this.#state === "first") {
      if (chunk.length === 0) return { kind: "more" };
      const v = chunk[0];
      if (v === SOCKS5.VERSION) {
        this.protocol = "socks5";
        this.#state = "s5-greeting";
      } else if (v === SOCKS4.VERSION) {
        this.protocol = "socks4";
        this.#state = "s4";
      } else if (!isTokenByte(v!)) {
        // No HTTP request line starts here (a TLS ClientHello, binary noise): close at
        // once instead of waiting for a line end until the handshake timeout.
        this.#state = "done";
        return { kind: "close", error: new SvpError("ERR_PROTOCOL", `not SOCKS or HTTP (first byte 0x${v!.toString(16).padStart(2, "0")})`) };
      } else {
        this.protocol = "http";
        this.#state = "http";
        this.#http = new HttpHeadReader(this.#opts.maxHeadBytes ?? MAX_HEAD_BYTES);
      }
    }
    if (this.#state === "http") return this.#pushHttp(chunk);
    let data: Uint8Array;
    if (this.#pending.length === 0) data = chunk;
    else {
      data = new Uint8Array(this.#pending.length + chunk.length);
      data.set(this.#pending);
      data.set(chunk, this.#pending.length);
    }
    const step = this.#state === "s4" ? this.#socks4(data) : this.#socks5(data);
    if (step.kind !== "more") this.#finish();
    return step;
  }

  /** SOCKS4/4a: one request, one reply. */
  #socks4(data: Uint8Array): HandshakeStep {
    let decoded;
    try {
      decoded = decodeSocks4Request(data);
    } catch (err) {
      return { kind: "close", error: toSvpError(err), protocol: "socks4" };
    }
    if (!decoded) return this.#wait(data);
    const req = decoded.value;
    const protocol: ProxyProtocol = req.is4a ? "socks4a" : "socks4";
    this.protocol = protocol;
    const fail = (error: SvpError, dest?: Destination): HandshakeStep => ({ kind: "close", send: encodeSocks4Reply(ERROR_TABLE[error.code].socks4), error, protocol, ...(dest ? { dest } : {}) });
    if (req.command !== SOCKS4.CMD_CONNECT) return fail(new SvpError("ERR_COMMAND_UNSUPPORTED", req.command === SOCKS4.CMD_BIND ? "SOCKS4 BIND is not supported" : `SOCKS4 command ${req.command} is not supported`));
    if (this.#opts.credentials) return fail(new SvpError("ERR_AUTH", "SOCKS4 has no passwords and this proxy requires authentication; use SOCKS5 or HTTP"));
    let dest: Destination;
    try {
      dest = makeDestination(req.host, req.port);
    } catch (err) {
      return fail(toSvpError(err));
    }
    return { kind: "connect", request: { protocol, dest }, early: data.subarray(decoded.size) };
  }

  /** SOCKS5: greeting → (user/pass) → request, possibly all in one segment. */
  #socks5(input: Uint8Array): HandshakeStep {
    let data = input;
    const sends: Uint8Array[] = [];
    const out = (step: HandshakeStep): HandshakeStep => {
      if (sends.length === 0) return step;
      if (step.send) sends.push(step.send);
      // One reply (the usual greeting → method selection): sent as is, no copy.
      step.send = sends.length === 1 ? sends[0]! : concatBytes(sends);
      return step;
    };
    try {
      if (this.#state === "s5-greeting") {
        const g = decodeGreeting(data);
        if (!g) return out(this.#wait(data));
        data = data.subarray(g.size);
        const creds = this.#opts.credentials;
        const methods = g.value.methods;
        let method: number;
        if (creds) method = methods.includes(SOCKS5.METHOD_USER_PASS) ? SOCKS5.METHOD_USER_PASS : SOCKS5.METHOD_NONE_ACCEPTABLE;
        // No credentials configured: no-auth, even if user/pass is offered too; a client that
        // offers only user/pass gets it and any credentials pass.
        else if (methods.includes(SOCKS5.METHOD_NO_AUTH)) method = SOCKS5.METHOD_NO_AUTH;
        else if (methods.includes(SOCKS5.METHOD_USER_PASS)) method = SOCKS5.METHOD_USER_PASS;
        else method = SOCKS5.METHOD_NONE_ACCEPTABLE;
        sends.push(METHOD_SELECTION[method] ?? encodeMethodSelection(method));
        if (method === SOCKS5.METHOD_NONE_ACCEPTABLE) {
          const why = creds ? "client offers no user/password authentication and this proxy requires it" : "client offers neither no-auth nor user/password";
          return out({ kind: "close", error: new SvpError("ERR_AUTH", why), protocol: "socks5" });
        }
        this.#state = method === SOCKS5.METHOD_USER_PASS ? "s5-auth" : "s5-request";
      }
      if (this.#state === "s5-auth") {
        const a = decodeUserPass(data);
        if (!a) return out(this.#wait(data));
        data = data.subarray(a.size);
        const creds = this.#opts.credentials;
        const user = creds ? creds.check(a.value.user, a.value.pass) : undefined;
        const ok = !creds || user !== undefined;
        sends.push(encodeUserPassReply(ok));
        if (!ok) return out({ kind: "close", error: new SvpError("ERR_AUTH", `wrong user name or password (user "${printable(latin1(a.value.user))}")`), protocol: "socks5" });
        this.#user = user;
        this.#state = "s5-request";
      }
    } catch (err) {
      return out({ kind: "close", error: toSvpError(err), protocol: "socks5" });
    }
    // Request phase: every failure is answered with a reply code before closing.
    const fail = (error: SvpError, dest?: Destination): HandshakeStep =>
      out({ kind: "close", send: encodeReply(ERROR_TABLE[error.code].socks5), error, protocol: "socks5", ...(dest ? { dest } : {}) });
    let r;
    try {
      r = decodeRequest(data);
    } catch (err) {
      return fail(toSvpError(err));
    }
    if (!r) return out(this.#wait(data));
    const req = r.value;
    if (req.command !== SOCKS5.CMD_CONNECT) {
      const name = req.command === SOCKS5.CMD_BIND ? "BIND" : req.command === SOCKS5.CMD_UDP_ASSOCIATE ? "UDP ASSOCIATE" : `command ${req.command}`;
      return fail(new SvpError("ERR_COMMAND_UNSUPPORTED", `SOCKS5 ${name} is not supported`));
    }
    let dest: Destination;
    try {
      dest = makeDestination(req.host, req.port);
    } catch (err) {
      return fail(toSvpError(err));
    }
    const request: ProxyRequest = { protocol: "socks5", dest };
    if (this.#user !== undefined) request.user = this.#user;
    return out({ kind: "connect", request, early: data.subarray(r.size) });
  }

  #pushHttp(chunk: Uint8Array): HandshakeStep {
    const fail = (error: SvpError, action: string, dest?: Destination): HandshakeStep => {
      this.#finish();
      return { kind: "close", send: errorResponse(error, action), error, protocol: this.protocol ?? "http", ...(dest ? { dest } : {}) };
    };
    let got;
    try {
      got = this.#http!.push(chunk);
    } catch (err) {
      return fail(toSvpError(err), "read request");
    }
    if (!got) return { kind: "more" };
    this.#finish();
    let head;
    let req;
    try {
      head = parseRequestHead(got.head);
      req = classifyRequest(head);
    } catch (err) {
      return fail(toSvpError(err), "serve request");
    }
    if (req.kind === "local") {
      const { response, served } = localResponse(head, req.path, proxyAddressFor(head, this.#opts.proxyAddress));
      return { kind: "close", send: response, served, protocol: "http" };
    }
    this.protocol = req.kind === "connect" ? "http-connect" : "http";
    const creds = this.#opts.credentials;
    let user: string | undefined;
    if (creds) {
      const given = basicCredentials(head.headers);
      user = given ? creds.check(given.user, given.pass) : undefined;
      if (user === undefined) {
        return fail(new SvpError("ERR_AUTH", given ? "wrong user name or password" : "proxy authentication required"), `connect to ${displayDestination(req.dest)}`, req.dest);
      }
    }
    const request: ProxyRequest = { protocol: this.protocol, dest: req.dest };
    if (user !== undefined) request.user = user;
    if (req.kind === "forward") {
      request.head = req.head;
      if (req.bodyLength !== undefined) request.bodyLength = req.bodyLength;
    }
    return { kind: "connect", request, early: got.rest };
  }

  #wait(data: Uint8Array): HandshakeStep {
    // Keep a copy: `data` may be a view of the caller's chunk.
    this.#pending = data.length === 0 ? EMPTY : data.slice();
    return { kind: "more" };
  }

  #finish(): void {
    this.#state = "done";
    this.#pending = EMPTY;
    this.#http = undefined;
  }
}

// Encoded once: every tunnel's success reply is the same bytes (writes never modify them).
const SOCKS5_SUCCESS = encodeReply(SOCKS5.REP_SUCCEEDED);
const SOCKS4_SUCCESS = encodeSocks4Reply(SOCKS4.GRANTED);

/** What to tell the client once the connection to the target is up (nothing for HTTP forward requests). */
export function successReply(protocol: ProxyProtocol): Uint8Array | undefined {
  switch (protocol) {
    case "socks5":
      return SOCKS5_SUCCESS;
    case "socks4":
    case "socks4a":
      return SOCKS4_SUCCESS;
    case "http-connect":
      return CONNECT_ESTABLISHED;
    case "http":
      return undefined;
  }
}

/** The reply for a failed connect, from the one table in errors.ts. */
export function failureReply(protocol: ProxyProtocol, err: SvpError, dest: Destination): Uint8Array {
  switch (protocol) {
    case "socks5":
      return encodeReply(ERROR_TABLE[err.code].socks5);
    case "socks4":
    case "socks4a":
      return encodeSocks4Reply(ERROR_TABLE[err.code].socks4);
    case "http-connect":
    case "http":
      return errorResponse(err, `connect to ${displayDestination(dest)}`);
  }
}

/** An RFC 9110 token character: what an HTTP method (the first byte of a request) is made of. */
function isTokenByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(b));
}
