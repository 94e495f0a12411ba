/**
 * AF_UNIX datagram sockets through the native addon (native/unix_dgram.c), implementing the
 * servald backend's `DatagramSocket`. Works under Node, Deno (`--allow-ffi`) and inside the
 * single binary, where the addon is a SEA asset written to a content-hashed, owner-only file.
 *
 * Where the addon is missing or cannot load, `openUnixDatagram` throws ERR_MESH_DOWN with
 * "servald backend unavailable: native addon …" and nothing else in svp is affected.
 */

import { createHash } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Emitter } from "../emitter.ts";
import { SvpError, toSvpError } from "../errors.ts";
import type { PeerCredentials } from "../node/node-io.ts";
import type {
  DatagramSendResult,
  DatagramSocket,
  DatagramSocketEvents,
  OpenDatagramOptions,
  UnixAddress,
} from "../servald/datagram-socket.ts";

/** The addon's exports (see the comment at the top of native/unix_dgram.c). */
interface Addon {
  /** mode 1: watch the socket on the JS thread's libuv loop (falls back to a reader thread). */
  open(cb: (kind: number, data?: Uint8Array | string, addr?: Uint8Array) => void, mode?: number): object;
  bind(h: object, addr: Uint8Array): void;
  connect(h: object, addr: Uint8Array): void;
  send(h: object, data: Uint8Array, addr: Uint8Array | null): 0 | string;
  address(h: object): Uint8Array;
  wantWritable(h: object): void;
  ref(h: object, on: boolean): void;
  close(h: object): void;
  /** 0: reader thread, 1: the event loop (older builds of the addon lack it). */
  mode?(h: object): number;
  /** getsockopt(SO_PEERCRED) of a connected unix stream socket; null without SO_PEERCRED (older builds lack it). */
  peerCred?(fd: number): { pid: number; uid: number; gid: number } | null;
  /** A second close-on-exec descriptor for the same open file (older builds lack it). */
  dup?(fd: number): number;
  /** Attach a classic BPF program to socket `fd`, or detach it (null); older builds lack it. */
  socketFilter?(fd: number, program: Uint8Array | null): void;
}

/**
 * Receive on Node's own event loop (one wake-up per batch of datagrams) where the host is
 * Node; Deno and Bun get the reader thread, whose thread-safe function they support fully.
 */
const EVENT_LOOP_MODE = "Deno" in globalThis || "Bun" in globalThis ? 0 : 1;

export const ADDON_FILE = "svp_unix_dgram.node";
/** Name of the addon asset in the single binary (scripts/sea.mjs). */
export const ADDON_ASSET = "svp_unix_dgram.node";

let loaded: { addon: Addon; path: string } | SvpError | undefined;

/** Where the addon was loaded from, or why it could not be: for `svp status` and errors. */
export function unixDatagramSupport(): { available: true; path: string } | { available: false; reason: string } {
  const r = loadAddon();
  return r instanceof SvpError ? { available: false, reason: r.message } : { available: true, path: r.path };
}

/**
 * A second descriptor for the socket behind `fd` (dup), through the addon; undefined when the
 * addon is missing or too old. Used to let several event loops accept on one listening
 * socket where the runtime has no reusePort (src/platform/loops.ts).
 */
export function dupDescriptor(fd: number): number | undefined {
  const r = loadAddon();
  if (r instanceof SvpError || typeof r.addon.dup !== "function") return undefined;
  return r.addon.dup(fd);
}

/** Whether `dupDescriptor` works here (the addon loads and has dup). */
export function canDuplicateDescriptors(): boolean {
  const r = loadAddon();
  return !(r instanceof SvpError) && typeof r.addon.dup === "function";
}

/**
 * Attach `program` (classic BPF, see src/node/socket-filter.ts) to socket `fd`, or detach the
 * filter (null). False when it cannot be done here (no addon or an older build, another
 * platform, or the kernel refused).
 */
export function setSocketFilter(fd: number, program: Uint8Array | null): boolean {
  const r = loadAddon();
  if (r instanceof SvpError || typeof r.addon.socketFilter !== "function") return false;
  try {
    r.addon.socketFilter(fd, program);
    return true;
  } catch {
    return false;
  }
}

function loadAddon(): { addon: Addon; path: string } | SvpError {
  if (loaded) return loaded;
  let path: string | undefined;
  try {
    path = findAddon();
  } catch (err) {
    return (loaded = new SvpError("ERR_MESH_DOWN", `servald backend unavailable: native addon not usable (${errText(err)})`, { cause: err }));
  }
  if (!path) {
    return (loaded = new SvpError(
      "ERR_MESH_DOWN",
      `servald backend unavailable: native addon not built (native/build/${ADDON_FILE} not found; ` +
        "run `make native` with a C compiler, or set SVP_NATIVE_ADDON=/path/to/" + ADDON_FILE + ")",
    ));
  }
  try {
    const mod = { exports: {} as Addon };
    process.dlopen(mod, path);
    if (typeof mod.exports.open !== "function") throw new Error("not the svp unix datagram addon");
    return (loaded = { addon: mod.exports, path });
  } catch (err) {
    return (loaded = new SvpError("ERR_MESH_DOWN", `servald backend unavailable: native addon failed to load from ${path} (${errText(err)})`, { cause: err }));
  }
}

/**
 * The kernel's record of the process at the other end of the connected unix stream socket
 * `fd` (SO_PEERCRED: pid, uid and gid at connect time), through the addon. Undefined when
 * it cannot be known here: no addon (or an older build), a platform without SO_PEERCRED,
 * or a descriptor the call rejects. Callers then fall back to what the client says.
 */
export function peerCredentials(fd: number): PeerCredentials | undefined {
  if (!Number.isInteger(fd) || fd < 0) return undefined;
  const r = loadAddon();
  if (r instanceof SvpError || typeof r.addon.peerCred !== "function") return undefined;
  try {
    const c = r.addon.peerCred(fd);
    // A pid of 0 means the peer is in another pid namespace (or gone): nothing to show.
    return c && c.pid > 0 ? { pid: c.pid, uid: c.uid, gid: c.gid } : undefined;
  } catch {
    return undefined;
  }
}

function findAddon(): string | undefined {
  const explicit = process.env.SVP_NATIVE_ADDON;
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`SVP_NATIVE_ADDON=${explicit} does not exist`);
    return resolve(explicit);
  }
  const fromSea = extractSeaAsset();
  if (fromSea) return fromSea;
  const candidates: string[] = [];
  try {
    // Source tree (tsx, deno): src/platform/ → native/build/; the library bundle (the
    // package's dist/index.js): dist/ → native/build/. In the CommonJS bundle
    // import.meta.url is undefined and this throws; the entry-script rule below covers it.
    const here = (import.meta as { url?: string }).url;
    if (here) candidates.push(fileURLToPath(new URL(`../../native/build/${ADDON_FILE}`, here)), fileURLToPath(new URL(`../native/build/${ADDON_FILE}`, here)));
  } catch {
    // not a file: URL
  }
  const entry = process.argv[1];
  if (entry) candidates.push(join(dirname(resolve(entry)), "..", "native", "build", ADDON_FILE));
  return candidates.find((p) => existsSync(p));
}

interface SeaModule {
  isSea(): boolean;
  getRawAsset(key: string): ArrayBuffer;
}

/**
 * In the single binary: write the embedded addon to `<runtime dir>/svp-<uid>/<hash>-<name>`
 * (directory 0700, file 0500, both checked to be ours) and return its path; once written, later
 * runs reuse it after checking its hash.
 */
function extractSeaAsset(): string | undefined {
  const getBuiltin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  let sea: SeaModule | undefined;
  try {
    sea = getBuiltin?.call(process, "node:sea") as SeaModule | undefined;
  } catch {
    return undefined;
  }
  if (!sea || typeof sea.isSea !== "function" || !sea.isSea()) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(sea.getRawAsset(ADDON_ASSET));
  } catch {
    return undefined; // a binary built without the addon: fall through to the file search
  }
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  const base = process.env.XDG_RUNTIME_DIR && existsSync(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : tmpdir();
  const dir = join(base, `svp-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`${dir} must be a directory owned by uid ${uid} with mode 0700`);
  }
  const file = join(dir, `${hash}-${ADDON_FILE}`);
  if (existsSync(file)) {
    const fst = lstatSync(file);
    const same = fst.isFile() && fst.uid === uid && createHash("sha256").update(readFileSync(file)).digest("hex").slice(0, 16) === hash;
    if (same) return file;
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o600 });
  chmodSync(tmp, 0o500);
  renameSync(tmp, file);
  return file;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeAddress(a: UnixAddress): string {
  const text = new TextDecoder().decode(a[0] === 0 ? a.subarray(1) : a);
  return a.length === 0 ? "(unnamed)" : a[0] === 0 ? `@${text}` : text;
}

function socketError(op: string, addr: UnixAddress, err: unknown): SvpError {
  const code = typeof err === "object" && err !== null && "code" in err ? String((err as { code: unknown }).code) : "";
  const svpCode = code === "EADDRINUSE" ? "ERR_USAGE" : code === "ENOENT" ? "ERR_REFUSED" : toSvpError(err).code;
  return new SvpError(svpCode, `${op} ${describeAddress(addr)}: ${errText(err)}`, { cause: err });
}

/** Addon event kind for an error that stopped the reader (2 = one it survives); see read_batch. */
const FATAL_KIND = 3;

export class UnixDatagramSocket extends Emitter<DatagramSocketEvents> implements DatagramSocket {
  readonly #addon: Addon;
  readonly #handle: object;
  #closed = false;
  #address: UnixAddress = new Uint8Array(0);

  /** `receiveMode` "thread" forces the reader thread (tests of both ways; Deno and Bun always use it). */
  constructor(options: OpenDatagramOptions & { receiveMode?: "event-loop" | "thread" } = {}) {
    super();
    const r = loadAddon();
    if (r instanceof SvpError) throw r;
    this.#addon = r.addon;
    this.#handle = this.#addon.open((kind, data, addr) => this.#onEvent(kind, data, addr), options.receiveMode === "thread" ? 0 : EVENT_LOOP_MODE);
    try {
      if (options.bind) {
        try {
          this.#addon.bind(this.#handle, options.bind);
        } catch (err) {
          throw socketError("cannot bind", options.bind, err);
        }
      }
      if (options.connect) {
        try {
          this.#addon.connect(this.#handle, options.connect);
        } catch (err) {
          throw socketError("cannot connect to", options.connect, err);
        }
      }
      this.#address = this.#addon.address(this.#handle);
    } catch (err) {
      this.#closed = true;
      this.#addon.close(this.#handle);
      throw err;
    }
  }

  get address(): UnixAddress {
    return this.#address;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** How datagrams arrive: on the JS thread's event loop, or from a reader thread. */
  get receiveMode(): "event-loop" | "thread" {
    return !this.#closed && this.#addon.mode?.(this.#handle) === 1 ? "event-loop" : "thread";
  }

  send(data: Uint8Array, to?: UnixAddress): DatagramSendResult {
    if (this.#closed) return "EBADF";
    const r = this.#addon.send(this.#handle, data, to ?? null);
    return r === 0 ? "ok" : r;
  }

  wantWritable(): void {
    if (!this.#closed) this.#addon.wantWritable(this.#handle);
  }

  ref(on: boolean): void {
    if (!this.#closed) this.#addon.ref(this.#handle, on);
  }

  close(): void {
    this.#finish();
  }

  #finish(err?: SvpError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.close(this.#handle);
    this.emit("close", err);
  }

  #onEvent(kind: number, data?: Uint8Array | string, addr?: Uint8Array): void {
    if (this.#closed) return;
    if (kind === 0 && data instanceof Uint8Array && addr) this.emit("message", data, addr);
    else if (kind === 1) this.emit("writable");
    else {
      const err = socketError("receive error on", this.#address, Object.assign(new Error(String(data)), { code: String(data) }));
      if (kind === FATAL_KIND) this.#finish(err);
      else this.emit("error", err);
    }
  }
}

/** The environment the servald backend reads (SERVALINSTANCE_PATH), for src/platform/servald.ts to pass in. */
export function servaldEnvironment(): Record<string, string | undefined> {
  return { SERVALINSTANCE_PATH: process.env.SERVALINSTANCE_PATH };
}

/** The platform implementation of `OpenDatagramSocket` (src/servald/datagram-socket.ts). */
export function openUnixDatagram(options: OpenDatagramOptions & { receiveMode?: "event-loop" | "thread" }): UnixDatagramSocket {
  return new UnixDatagramSocket(options);
}
