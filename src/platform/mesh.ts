/**
 * The library façade: `openMesh()` and the `Mesh` it returns (dial, listen, socks, status,
 * close). Everything here is composition of the pieces the CLI runs on: the backend choice
 * and auto-start of `openSession` (src/platform/open-session.ts), `dialMesh`
 * (src/service/mesh-dialer.ts, the same errors as `svp connect`), the listen port and allow
 * check of `svp listen` (src/service/listen-service.ts) and `startSocksProxy`
 * (src/platform/socks-proxy.ts, as `svp socks`). Streams are node:stream Duplexes
 * (src/platform/mesh-stream.ts). docs/library.md shows it in use.
 */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { SvpError, UsageError, toSvpError, abortError } from "../errors.ts";
import { parseSid, sidToHex } from "../mesh/sid.ts";
import type { Sid } from "../mesh/sid.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import type { MspStream } from "../msp/msp-stream.ts";
import { EmbeddedTransport } from "../node/embedded-transport.ts";
import { parseListenAddress } from "../options.ts";
import type { ServaldTransport } from "../servald/servald-transport.ts";
import { bindListenPort, callerRefusal } from "../service/listen-service.ts";
import { dialMesh, createMeshDialer } from "../service/mesh-dialer.ts";
import { MESH_MODES } from "../service/mesh-session.ts";
import type { MeshMode, MeshSession } from "../service/mesh-session.ts";
import { MDP_PORT_MAX, parseMeshTarget } from "../service/mesh-target.ts";
import type { StatusReport } from "../status/status-report.ts";
import { MeshStream } from "./mesh-stream.ts";
import type { MeshPeer } from "./mesh-stream.ts";
import type { SvpCommand } from "./svp-self-command.ts";
import { openSession } from "./open-session.ts";
import { queryServaldStatus } from "./servald-cli.ts";
import { startSocksProxy } from "./socks-proxy.ts";
import type { SocksProxy } from "./socks-proxy.ts";
import { DEFAULTS } from "../defaults.ts";

export interface MeshOptions {
  /**
   * Which backend: "servald" (a running Serval daemon, through its MDP socket), "embedded"
   * (svp's own node, `svp daemon`), or "auto" (servald when its socket answers, else the
   * embedded node). Default "auto", as the CLI (which also reads SVP_MESH; the library does not).
   */
  mesh?: MeshMode;
  /** The embedded node's instance directory. Default: $SVP_HOME, else $XDG_STATE_HOME/svp or ~/.local/state/svp. */
  home?: string;
  /** servald's instance directory; implies the servald backend. Default: $SERVALINSTANCE_PATH, else servald's run directories. */
  servaldInstance?: string;
  /** Start the embedded node's daemon in the background when none runs, as the CLI does. Default true. */
  autostart?: boolean;
  /** Use this identity of the node (64 hex digits or the 52-character base32 form). Default: the node's primary identity. */
  sid?: string;
  /** How this client names itself in `svp status`. Default "svp library". */
  name?: string;
  /** Told when the daemon was auto-started (one line). Default: nothing is said. */
  onNote?: (message: string) => void;
  /** After an auto-start, how long a dial waits for the node to find a peer that is not reachable yet, ms. Default 3000. */
  discoveryGraceMs?: number;
}

export interface DialOptions {
  /** Abandon the dial (rejects ERR_ABORTED, or ERR_TIMEOUT for `AbortSignal.timeout()`), and later reset the stream. */
  signal?: AbortSignal;
  /** Wait up to this long (ms) for the node to become reachable instead of failing ERR_NO_ROUTE at once. Default 0. */
  waitRouteMs?: number;
}

export interface ListenOptions {
  /** Only callers with these SIDs (hex or base32); the others are refused (their dial fails ERR_REFUSED). Default: anyone. */
  allow?: readonly string[];
  /** Also answer service discovery for this name, so `dial(node, name)` and `<name>.svc.serval` find this port. */
  service?: string;
  /**
   * Connections at most, open or waiting to be taken; more are refused. Default 1024.
   * Connections are answered on arrival (the caller's dial resolves) and wait, with their
   * bytes held back by MSP's window, until `for await` takes them.
   */
  maxConnections?: number;
}

export interface SocksOptions {
  /** Where the SOCKS5/SOCKS4a/HTTP proxy listens: "host:port", ":port", "unix:/path". Default "127.0.0.1:0" (a free port). */
  listen?: string;
  /** Destinations that are not mesh names: "allow" (connect directly, the CLI's default) or "deny". Default "allow". */
  direct?: "allow" | "deny";
  /** Required user/password pairs (SOCKS5 auth, Proxy-Authorization). Default: none required. */
  credentials?: readonly { user: string; pass: string }[];
  /** Hold a mesh request up to this long (ms) while the node is not reachable yet. Default 0. */
  waitRouteMs?: number;
}

/** A running proxy started by `Mesh.socks()`. */
export interface MeshProxy {
  /** The bound address, e.g. "127.0.0.1:40321" (the real port when 0 was asked for). */
  readonly address: string;
  /** Stop accepting, let live connections finish for up to `drainMs` (default 10 000), then reset the rest. */
  close(drainMs?: number): Promise<void>;
}

/** Incoming connections on one MDP port, in arrival order; `for await` takes them. */
export interface MeshListener extends AsyncIterable<MeshStream> {
  /** This node's SID and the bound MDP port. */
  readonly local: MeshPeer;
  /**
   * Stop accepting and release the port once the connections already taken have finished
   * (they are not cut); connections not taken yet are reset. Ends every `for await`.
   */
  close(): Promise<void>;
}

/** An open mesh. Every method rejects with `SvpError`; see docs/library.md for the codes. */
export interface Mesh {
  /** "embedded" or "servald". */
  readonly backend: "embedded" | "servald";
  /** This end's SID (64 upper-case hex digits). */
  readonly sid: string;
  /** For logs: "embedded node (pid 123, /home/u/.local/state/svp)", "servald (instance /var/run/serval)". */
  readonly description: string;
  /**
   * Open a stream to `port` on `node` (a SID, `<SID>.serval`, `<base32>.serval`, or
   * `<service>.svc.serval`, `<service>.<SID>.serval`); `port` is an MDP port
   * (1–4294967295) or a service name resolved by discovery, and may be left out (undefined)
   * when `node` names the service. Resolves once the peer has answered.
   */
  dial(node: string, port?: number | string, options?: DialOptions): Promise<MeshStream>;
  /** Accept MSP connections on `port` (1–4294967295). */
  listen(port: number, options?: ListenOptions): Promise<MeshListener>;
  /** A SOCKS5/SOCKS4a/HTTP proxy into the mesh on this session (what `svp socks` runs). */
  socks(options?: SocksOptions): Promise<MeshProxy>;
  /** The node's status document (what `svp status --json` prints). */
  status(): Promise<StatusReport>;
  /**
   * Close proxies and listeners, reset the streams still open (they emit `close`, no
   * `error`; their peers see ERR_RESET), disconnect. Idempotent.
   */
  close(): Promise<void>;
}

const MESH_OPTION_KEYS = ["mesh", "home", "servaldInstance", "autostart", "sid", "name", "onNote", "discoveryGraceMs"] as const;

/**
 * Open the mesh: connect to servald or to the embedded node's daemon (starting it when
 * none runs, unless `autostart` is false). Rejects ERR_MESH_DOWN when no backend can be
 * reached, ERR_USAGE for bad options, ERR_BAD_ADDRESS for an identity the node lacks.
 */
export async function openMesh(options: MeshOptions = {}): Promise<Mesh> {
  checkKeys(options, MESH_OPTION_KEYS, "openMesh");
  if (options.mesh !== undefined && !(MESH_MODES as readonly string[]).includes(options.mesh)) {
    throw new UsageError(`openMesh: invalid mesh "${String(options.mesh)}": expected auto, servald or embedded`);
  }
  const sid = options.sid === undefined ? undefined : sidOption(options.sid, "openMesh: sid");
  const session = await openSession({
    mesh: options.mesh,
    home: options.home,
    servaldInstance: options.servaldInstance,
    autostart: options.autostart,
    sid,
    name: options.name ?? DEFAULTS.libraryClientName,
    onNote: options.onNote ?? (() => {}),
    discoveryGraceMs: options.discoveryGraceMs,
  }, { daemonCommand: packageSvpCommand });
  return new OpenMesh(session);
}

/**
 * The `svp` that auto-starts the daemon for a library user: the package's own CLI bundle
 * (dist/svp.cjs beside the library bundle dist/index.js, or the source tree's build), run
 * by this runtime. Not this process's script, which is the user's program.
 */
function packageSvpCommand(): SvpCommand {
  const here = (import.meta as { url?: string }).url;
  const candidates = here ? [new URL("./svp.cjs", here), new URL("../../dist/svp.cjs", here)].map((u) => fileURLToPath(u)) : [];
  const cli = candidates.find((p) => existsSync(p));
  if (!cli) {
    throw new SvpError("ERR_MESH_DOWN", `cannot auto-start the svp daemon: svp's CLI bundle is not there (looked for ${candidates.join(", ") || "it beside this module"}; run "npm run build", or start one with "svp daemon start")`);
  }
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  return deno ? { command: deno.execPath(), args: ["run", "-A", cli] } : { command: process.execPath, args: [cli] };
}

class OpenMesh implements Mesh {
  readonly #session: MeshSession;
  readonly #streams = new Set<MeshStream>();
  readonly #listeners = new Set<MeshListener>();
  readonly #proxies = new Set<SocksProxy>();
  #closing: Promise<void> | undefined;

  constructor(session: MeshSession) {
    this.#session = session;
  }

  get backend(): "embedded" | "servald" {
    return this.#session.backend === "servald" ? "servald" : "embedded";
  }

  get sid(): string {
    return sidToHex(this.#localSid());
  }

  get description(): string {
    return this.#session.description;
  }

  #localSid(): Sid {
    return this.#session.sid ?? this.#session.transport.localSid;
  }

  #check(what: string): void {
    if (this.#closing) throw new SvpError("ERR_ABORTED", `${what}: the mesh is closed`);
  }

  async dial(node: string, port?: number | string, options: DialOptions = {}): Promise<MeshStream> {
    this.#check("dial");
    if (typeof node !== "string") throw new SvpError("ERR_BAD_ADDRESS", `dial: node must be a string, got ${typeof node}`);
    if (typeof port === "number") checkPort(port, "dial");
    else if (typeof port !== "string" && port !== undefined) throw new SvpError("ERR_BAD_ADDRESS", `dial: port must be a number or a service name, got ${typeof port}`);
    checkKeys(options, ["signal", "waitRouteMs"], "dial");
    const target = parseMeshTarget(node, port === undefined ? undefined : String(port));
    const user = options.signal;
    // The user's reason, as the SvpError every svp layer understands.
    const ac = new AbortController();
    const onAbort = () => ac.abort(abortError(user!.reason, "dial"));
    if (user?.aborted) onAbort();
    else user?.addEventListener("abort", onAbort, { once: true });
    let inner: MspStream;
    try {
      inner = await dialMesh(this.#session, target, { signal: ac.signal, waitRouteMs: options.waitRouteMs ?? DEFAULTS.waitRouteMs });
    } catch (err) {
      user?.removeEventListener("abort", onAbort);
      throw toSvpError(err);
    }
    user?.removeEventListener("abort", onAbort);
    const s = this.#wrap(inner);
    if (user) {
      // After the dial, the signal resets the stream (as net.connect's signal does a socket).
      const later = () => s.destroy(abortError(user.reason, "stream"));
      user.addEventListener("abort", later, { once: true });
      s.once("close", () => user.removeEventListener("abort", later));
    }
    if (this.#closing) s.destroy();
    return s;
  }

  async listen(port: number, options: ListenOptions = {}): Promise<MeshListener> {
    this.#check("listen");
    checkKeys(options, ["allow", "service", "maxConnections"], "listen");
    checkPort(port, "listen");
    const allow = options.allow?.map((t) => sidOption(t, "listen: allow"));
    const { listener, responder } = await bindListenPort(this.#session, {
      port,
      ...(options.service !== undefined ? { service: options.service } : {}),
      ...(options.maxConnections !== undefined ? { maxConnections: options.maxConnections } : {}),
    });
    const waiting: MspStream[] = [];
    const takers: { resolve: (r: IteratorResult<MeshStream>) => void; reject: (e: unknown) => void }[] = [];
    let ended: { error: SvpError | undefined } | undefined;
    const take = (inner: MspStream) => this.#wrap(inner);
    const finish = (error: SvpError | undefined) => {
      if (ended) return;
      ended = { error };
      responder?.close();
      for (const s of waiting.splice(0)) s.abort(new SvpError("ERR_REFUSED", "the listener was closed"));
      for (const t of takers.splice(0)) (error ? t.reject(error) : t.resolve({ done: true, value: undefined }));
    };
    listener.on("accept", (inner) => {
      const refuse = ended ? new SvpError("ERR_REFUSED", "the listener was closed") : callerRefusal(allow, inner.remote.sid);
      if (refuse) {
        inner.abort(refuse);
        return;
      }
      this.#session.streams.add(inner);
      // Answered at once, as a TCP stack accepts into its backlog: the caller's dial
      // resolves; its bytes wait in the window until this stream is taken and read.
      inner.accept();
      const t = takers.shift();
      if (t) t.resolve({ done: false, value: take(inner) });
      else {
        waiting.push(inner);
        inner.once("close", () => {
          const i = waiting.indexOf(inner);
          if (i >= 0) waiting.splice(i, 1);
        });
      }
    });
    listener.on("close", (err) => finish(err));
    const local = listener.local;
    const ml: MeshListener = {
      local: { sid: sidToHex(this.#localSid()), port: local.port },
      close: async () => {
        finish(undefined);
        listener.close();
        this.#listeners.delete(ml);
      },
      [Symbol.asyncIterator]: () => ({
        next: (): Promise<IteratorResult<MeshStream>> => {
          const inner = waiting.shift();
          if (inner) return Promise.resolve({ done: false, value: take(inner) });
          if (ended) return ended.error ? Promise.reject(ended.error) : Promise.resolve({ done: true, value: undefined });
          return new Promise((resolve, reject) => takers.push({ resolve, reject }));
        },
        // `break` out of a for-await closes the listener (connections already taken go on).
        return: async (): Promise<IteratorResult<MeshStream>> => {
          await ml.close();
          return { done: true, value: undefined };
        },
      }),
    };
    this.#listeners.add(ml);
    return ml;
  }

  async socks(options: SocksOptions = {}): Promise<MeshProxy> {
    this.#check("socks");
    checkKeys(options, ["listen", "direct", "credentials", "waitRouteMs"], "socks");
    const session = this.#session;
    const proxy = await startSocksProxy({
      listen: [parseListenAddress(options.listen ?? DEFAULTS.librarySocksListen)],
      ...(options.credentials ? { credentials: options.credentials.map((c) => ({ user: c.user, pass: c.pass })) } : {}),
      ...(options.direct ? { direct: options.direct } : {}),
      mesh: createMeshDialer({ session: () => Promise.resolve(session), waitRouteMs: options.waitRouteMs ?? DEFAULTS.waitRouteMs }),
    });
    this.#proxies.add(proxy);
    return {
      address: proxy.addresses[0]!,
      close: (drainMs?: number) => {
        this.#proxies.delete(proxy);
        return proxy.close(drainMs);
      },
    };
  }

  async status(): Promise<StatusReport> {
    this.#check("status");
    const t = this.#session.transport;
    if (t instanceof EmbeddedTransport) return t.status();
    if (t.kind === "servald") {
      // Asked by path, so the daemon this session uses answers even when the environment
      // changed since; but where that path came from is the session's (option, env, default).
      const instance = (t as ServaldTransport).instance;
      const report = await queryServaldStatus({ instance: instance.path });
      if (report.servald) report.servald.instanceSource = instance.source;
      return report;
    }
    throw new SvpError("ERR_INTERNAL", `no status for a ${t.kind} backend`);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#proxies].map((p) => p.close(0)));
      await Promise.all([...this.#listeners].map((l) => l.close()));
      // Reset quietly (close, no error event): the program asked for it.
      for (const s of this.#streams) s.destroy();
      this.#session.close();
    })();
    return this.#closing;
  }

  #wrap(inner: MspStream): MeshStream {
    const addr = (a: MdpAddress): MeshPeer => ({ sid: sidToHex(a.sid), port: a.port });
    const local = inner.local;
    const s = new MeshStream(inner, { sid: sidToHex(this.#localSid()), port: local.port }, addr(inner.remote));
    this.#streams.add(s);
    s.once("close", () => this.#streams.delete(s));
    return s;
  }
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > MDP_PORT_MAX) throw new SvpError("ERR_BAD_ADDRESS", `${what}: invalid MDP port ${String(port)}: expected an integer 1-${MDP_PORT_MAX}`);
}

function sidOption(text: string, what: string): Sid {
  const sid = typeof text === "string" ? parseSid(text) : undefined;
  if (!sid) throw new SvpError("ERR_BAD_ADDRESS", `${what}: "${String(text)}" is not a SID (64 hex digits or 52 base32 characters)`);
  return sid;
}

function checkKeys(options: object, known: readonly string[], what: string): void {
  if (typeof options !== "object" || options === null) throw new UsageError(`${what}: options must be an object`);
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new UsageError(`${what}: unknown option "${k}" (known: ${known.join(", ")})`);
  }
}
