/**
 * Which mesh backend a command runs on (`--mesh auto|servald|embedded`, env SVP_MESH), and
 * the open connection to it that connect, listen, discover and socks share.
 *
 * - servald: svp is a client of a running servald (its MDP socket). Unavailable → ERR_MESH_DOWN.
 * - embedded: svp's own node (`svp daemon`), started in the background when none runs
 *   (saying so on stderr) unless auto-start is off.
 * - auto (default): servald when its socket answers, else the embedded node. An explicit
 *   servald instance (`--servald-instance`) means servald: no silent fallback then.
 *
 * The backends themselves are injected (src/platform/open-session.ts wires the platform's), so the choice
 * is tested without either.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError, UsageError, isSvpError } from "../errors.ts";
import type { MdpTransport } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { StreamRegistry } from "./stream-registry.ts";
import { DEFAULTS } from "../defaults.ts";

export const MESH_MODES = ["auto", "servald", "embedded"] as const;
export type MeshMode = (typeof MESH_MODES)[number];

/** Parse `--mesh` / SVP_MESH. */
export function parseMeshMode(text: string, what = "--mesh"): MeshMode {
  const t = text.trim().toLowerCase();
  if ((MESH_MODES as readonly string[]).includes(t)) return t as MeshMode;
  throw new UsageError(`invalid ${what} "${text}": expected auto, servald or embedded`);
}

/** An open mesh backend. */
export interface MeshSession {
  readonly transport: MdpTransport;
  readonly backend: MdpTransport["kind"];
  /** The identity to use (`--sid`); undefined = the node's primary identity. */
  readonly sid: Sid | undefined;
  /**
   * `clock.now()` until which a peer that is not reachable yet is waited for instead of
   * failing at once: the node was just started and is still finding its peers.
   */
  readonly discoveringUntil: number;
  /** Live MSP streams of this process (reported to `svp status` where the backend shows them). */
  readonly streams: StreamRegistry;
  /** For log lines: "servald (instance /var/run/serval)", "embedded node (pid 123, /home/u/.local/state/svp)". */
  readonly description: string;
  /** True when the backend went away (daemon stopped). */
  readonly down: boolean;
  /** Release every port and disconnect. Idempotent. */
  close(): void;
}

/** What a backend opener returns. */
export interface OpenedBackend {
  transport: MdpTransport;
  description: string;
  /** True when this call started the backend (the embedded daemon was auto-started). */
  started: boolean;
}

export interface MeshBackends {
  /** Connect to servald; rejects ERR_MESH_DOWN when none answers. */
  servald(options: { instance?: string | undefined; sid?: Sid | undefined }): Promise<OpenedBackend>;
  /** Connect to the embedded daemon (starting it when allowed); validates `sid` against its identities. */
  embedded(options: { home?: string | undefined; autostart: boolean; sid?: Sid | undefined; name: string; onNote?: ((message: string) => void) | undefined }): Promise<OpenedBackend>;
}

export interface OpenMeshOptions {
  /** Default "auto". */
  mesh?: MeshMode | undefined;
  /** Start the embedded daemon when none runs. Default true. */
  autostart?: boolean | undefined;
  /** Embedded node instance directory (`--home`). */
  home?: string | undefined;
  /** servald instance directory (`--servald-instance`). */
  servaldInstance?: string | undefined;
  /** Use this identity (`--sid`). */
  sid?: Sid | undefined;
  /** Client name shown by `svp status`, e.g. "svp listen". */
  name?: string | undefined;
  /** Told about an auto-start (default: the embedded backend's own stderr line). */
  onNote?: ((message: string) => void) | undefined;
  clock?: Clock | undefined;
  /** How long a freshly started node gets to find its peers, ms. Default 3000. */
  discoveryGraceMs?: number | undefined;
}

/** Open the mesh backend `options.mesh` selects. */
export async function openMeshSession(backends: MeshBackends, options: OpenMeshOptions = {}): Promise<MeshSession> {
  const mode = options.mesh ?? DEFAULTS.meshMode;
  const clock = options.clock ?? systemClock;
  const name = options.name ?? "svp";
  const embedded = () =>
    backends.embedded({ home: options.home, autostart: options.autostart ?? true, sid: options.sid, name, onNote: options.onNote });
  let opened: OpenedBackend;
  if (mode === "servald") opened = await backends.servald({ instance: options.servaldInstance, sid: options.sid });
  else if (mode === "embedded") opened = await embedded();
  else if (options.servaldInstance !== undefined) opened = await backends.servald({ instance: options.servaldInstance, sid: options.sid });
  else {
    try {
      opened = await backends.servald({ sid: options.sid });
    } catch (err) {
      if (!isSvpError(err, "ERR_MESH_DOWN")) throw err;
      opened = await embedded();
    }
  }
  return makeSession(opened, options.sid, clock, opened.started ? clock.now() + (options.discoveryGraceMs ?? DEFAULTS.discoveryGraceMs) : 0);
}

/** Wrap an already open transport (tests, in-process nodes) as a session. */
export function makeSession(opened: OpenedBackend, sid: Sid | undefined, clock: Clock = systemClock, discoveringUntil = 0): MeshSession {
  const t = opened.transport;
  const streams = new StreamRegistry(clock);
  let down = false;
  let closed = false;
  t.on("down", () => (down = true));
  return {
    transport: t,
    backend: t.kind,
    sid,
    discoveringUntil,
    streams,
    description: opened.description,
    get down() {
      return down || closed;
    },
    close() {
      if (closed) return;
      closed = true;
      t.close();
    },
  };
}

export interface MeshConnectorOptions {
  clock?: Clock;
  /** After a failed open, fail fast with the same error for this long, ms. Default 2000. */
  retryAfterMs?: number;
  /** A session was opened (log it). */
  onOpen?: (session: MeshSession) => void;
  /** The open session's backend went away. */
  onLost?: (session: MeshSession) => void;
}

/**
 * A mesh session opened on demand and reopened after the backend went away, for the
 * long-running proxy: `svp socks` keeps serving direct routes without a mesh, and mesh
 * routes work again once a backend is there.
 */
export class MeshConnector {
  readonly #open: () => Promise<MeshSession>;
  readonly #o: Required<Omit<MeshConnectorOptions, "onOpen" | "onLost">> & MeshConnectorOptions;
  #current: MeshSession | undefined;
  #pending: Promise<MeshSession> | undefined;
  #failure: { err: SvpError; at: number } | undefined;
  #closed = false;

  constructor(open: () => Promise<MeshSession>, options: MeshConnectorOptions = {}) {
    this.#open = open;
    this.#o = { clock: options.clock ?? systemClock, retryAfterMs: options.retryAfterMs ?? 2000, ...options };
  }

  /** The open session, if any. */
  get current(): MeshSession | undefined {
    return this.#current && !this.#current.down ? this.#current : undefined;
  }

  /** Adopt a session opened elsewhere (e.g. at start-up). */
  adopt(session: MeshSession): void {
    if (this.#closed) {
      session.close();
      return;
    }
    this.#watch(session);
  }

  /** The session, opening one when there is none; rejects (ERR_MESH_DOWN…) when that fails. */
  get(): Promise<MeshSession> {
    if (this.#closed) return Promise.reject(new SvpError("ERR_ABORTED", "shutting down"));
    const cur = this.current;
    if (cur) return Promise.resolve(cur);
    // Wait for an attempt under way; when it fails, decide again (its failure may be cached).
    if (this.#pending) return this.#pending.then((s) => s, () => this.get());
    const f = this.#failure;
    if (f && this.#o.clock.now() - f.at < this.#o.retryAfterMs) return Promise.reject(f.err);
    return this.#attempt(this.#open, true);
  }

  /**
   * Try `open` once now (e.g. a start-up check that does not auto-start anything): its
   * session is adopted; a failure is not remembered, so the next `get()` opens normally.
   */
  probe(open: () => Promise<MeshSession>): Promise<MeshSession | undefined> {
    if (this.#closed || this.current || this.#pending) return Promise.resolve(this.current);
    return this.#attempt(open, false).catch(() => undefined);
  }

  /** One `open` under way as `#pending`; its session is watched, its failure kept for `retryAfterMs` when `remember`. */
  #attempt(open: () => Promise<MeshSession>, remember: boolean): Promise<MeshSession> {
    const p = open().then(
      (s) => {
        this.#pending = undefined;
        this.#failure = undefined;
        if (this.#closed) {
          s.close();
          throw new SvpError("ERR_ABORTED", "shutting down");
        }
        this.#watch(s);
        return s;
      },
      (err: unknown) => {
        this.#pending = undefined;
        if (!remember) throw err;
        const e = err instanceof SvpError ? err : new SvpError("ERR_MESH_DOWN", err instanceof Error ? err.message : String(err));
        this.#failure = { err: e, at: this.#o.clock.now() };
        throw e;
      },
    );
    this.#pending = p;
    return p;
  }

  #watch(s: MeshSession): void {
    this.#current = s;
    this.#o.onOpen?.(s);
    s.transport.on("down", () => {
      if (this.#current === s) this.#current = undefined;
      if (!this.#closed) this.#o.onLost?.(s);
    });
  }

  close(): void {
    this.#closed = true;
    this.#current?.close();
    this.#current = undefined;
  }
}
