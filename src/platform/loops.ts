/**
 * Several event loops in one process: worker threads that accept on the same listening
 * address as the main thread (src/loops.ts composes them for `svp socks` and
 * `svp connect --forward`). This file holds what depends on the runtime:
 *
 * - how many loops a machine warrants (`defaultLoopCount`);
 * - how the loops share a listening socket (`listenSharing`): `reusePort` where the runtime
 *   has it (Node >= 22.12, Deno on Linux: every loop binds its own socket to the same
 *   address and the kernel spreads connections over them), else one socket accepted on by
 *   every loop through its own duplicate descriptor (`dup` from the native addon; Node 20),
 *   else the main loop alone;
 * - starting a worker on svp's own code (`startLoopWorker`), from the TypeScript sources,
 *   the bundle or the single binary, and recognising that code runs as one (`loopWorkerData`).
 *
 * Why threads and not processes: the loops then share one mesh session, one SharedArrayBuffer
 * for the global connection limit (exact, without a round trip) and one process for
 * `svp status`, CPU and memory accounting; Node 20 cannot hand a socket to another thread,
 * hence the duplicate descriptor.
 */

import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { ListenAddress } from "../options.ts";
import { SvpError } from "../errors.ts";
import { canDuplicateDescriptors, dupDescriptor } from "./unix-dgram.ts";

/** The argument that marks a worker started by `startLoopWorker` (cli/bin.ts dispatches on it). */
export const LOOP_WORKER_ARG = "--svp-loop-worker";

/** The number of CPUs this process may use (1 on one CPU). */
export function defaultLoopCount(): number {
  try {
    return Math.max(1, typeof availableParallelism === "function" ? availableParallelism() : cpus().length);
  } catch {
    return 1;
  }
}

const isDeno = "Deno" in globalThis;

/** Whether `server.listen({ reusePort })` works here: Node >= 22.12 (or 23.1), Deno on Linux. */
export function hasReusePort(): boolean {
  if (process.platform !== "linux" && !(process.platform === "freebsd" && !isDeno)) return false;
  if (isDeno) return process.platform === "linux";
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** How the loops share one listening address. */
export type ListenSharing =
  /** Each loop binds its own socket with SO_REUSEPORT. */
  | { kind: "reuseport" }
  /** Each worker accepts on its own duplicate of the main loop's listening descriptor. */
  | { kind: "dup" }
  /** Only the main loop accepts here. */
  | { kind: "single"; why: string };

/**
 * Below this many descriptors (`ulimit -n`), one loop serves: when the table fills up, each
 * loop's libuv recovers from EMFILE with a reserve descriptor of its own, and loops of one
 * process race for the one freed slot, so they keep waking up and spin instead of waiting
 * (measured: two loops at `ulimit -n 48` burn both cores). With a large table, running out
 * takes far more connections than a machine serves.
 */
export const MIN_DESCRIPTORS_FOR_LOOPS = 4096;

/** The soft limit on open descriptors (Linux /proc/self/limits); undefined where unknown or unlimited. */
export function descriptorLimit(): number | undefined {
  try {
    const m = readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+|unlimited)/m);
    return m && m[1] !== "unlimited" ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The best way for several loops to share `addr` in this runtime. */
export function listenSharing(addr: ListenAddress): ListenSharing {
  const fds = descriptorLimit();
  if (fds !== undefined && fds < MIN_DESCRIPTORS_FOR_LOOPS) return { kind: "single", why: `the descriptor limit (ulimit -n ${fds}) is below ${MIN_DESCRIPTORS_FOR_LOOPS}: loops racing for the last descriptors would spin` };
  if (addr.kind === "tcp" && hasReusePort()) return { kind: "reuseport" };
  if (isDeno) return { kind: "single", why: addr.kind === "tcp" ? "this Deno has no reusePort here" : "Deno cannot share a unix socket between threads" };
  if (canDuplicateDescriptors()) return { kind: "dup" };
  return { kind: "single", why: `Node ${process.versions.node} has no reusePort${addr.kind === "unix" ? " (nor for unix sockets)" : ""} and the native addon (dup) is not available` };
}

/** A duplicate of descriptor `fd` for a worker to listen on (see `listenSharing`). */
export function duplicateDescriptor(fd: number): number {
  const d = dupDescriptor(fd);
  if (d === undefined) throw new SvpError("ERR_INTERNAL", "cannot duplicate the listening descriptor (native addon missing)");
  return d;
}

/** The message channel of a running worker, as the main thread sees it. */
export interface LoopWorker {
  postMessage(message: unknown, transfer?: unknown[]): void;
  onMessage(fn: (message: unknown) => void): void;
  /** Runs once when the worker has exited (normally or not); `err` when it failed. */
  onExit(fn: (err?: Error) => void): void;
  terminate(): Promise<void>;
}

interface SeaModule {
  isSea(): boolean;
  getAsset(key: string, encoding: string): string;
}

/** Name of the bundle as an asset of the single binary (scripts/sea.mjs). */
export const BUNDLE_ASSET = "svp.cjs";

/**
 * What a worker runs: svp's own entry. From the TypeScript sources (tsx, Deno) that is
 * src/loop-worker.ts; from the CommonJS bundle, the bundle itself (cli/bin.ts sees
 * LOOP_WORKER_ARG); in the single binary, the bundle's source from its assets (evaluated).
 */
function workerEntry(): { file: string | URL } | { code: string } | SvpError {
  const getBuiltin = (process as unknown as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
  try {
    const sea = getBuiltin?.call(process, "node:sea") as SeaModule | undefined;
    if (sea && typeof sea.isSea === "function" && sea.isSea()) {
      try {
        // As a CommonJS module, in a function of its own: evaluated as a plain script, its
        // top-level `var`s would land on the global object (where `crypto` is read-only).
        const source = sea.getAsset(BUNDLE_ASSET, "utf8").replace(/^#!.*/, "");
        return { code: `(function (exports, module, __filename, __dirname) {${source}\n})({}, { exports: {} }, process.execPath, require("node:path").dirname(process.execPath));` };
      } catch {
        return new SvpError("ERR_INTERNAL", "this binary carries no copy of its code for worker threads (built without the svp.cjs asset)");
      }
    }
  } catch {
    // no node:sea: not a single binary
  }
  const meta = import.meta as { url?: string; resolve?: (s: string) => string };
  if (meta.url) {
    const file = new URL("../loop-worker.ts", meta.url);
    // Node 20 does not run `--import tsx` in worker threads (Node 22 does): register tsx there first.
    const [major = 0] = process.versions.node.split(".").map(Number);
    if (!isDeno && major < 22 && process.execArgv.some((a) => /\btsx\b/.test(a)) && typeof meta.resolve === "function") {
      const api = meta.resolve("tsx/esm/api");
      return { code: `import(${JSON.stringify(api)}).then((a) => { a.register(); return import(${JSON.stringify(file.href)}); });` };
    }
    return { file };
  }
  // The CommonJS bundle: import.meta.url is empty there and __filename is the bundle.
  if (typeof __filename === "string") return { file: __filename };
  return new SvpError("ERR_INTERNAL", "cannot tell which file to run in a worker thread");
}

declare const __filename: string | undefined;

/** Start a worker thread running svp's loop-worker entry; it receives `data` as `loopWorkerData()`. */
export function startLoopWorker(data: unknown, transfer: unknown[] = []): LoopWorker {
  const entry = workerEntry();
  if (entry instanceof SvpError) throw entry;
  const options = {
    workerData: { svpLoopWorker: true, data },
    transferList: transfer as never[],
    argv: [LOOP_WORKER_ARG],
    // Its own stdin is none; stdout/stderr go through the main thread (only crashes print).
    stdin: false,
  };
  const worker = "code" in entry ? new Worker(entry.code, { ...options, eval: true }) : new Worker(entry.file, options);
  let exited = false;
  const exitFns: ((err?: Error) => void)[] = [];
  let failure: Error | undefined;
  worker.on("error", (err: Error) => (failure = err));
  worker.on("exit", () => {
    exited = true;
    for (const fn of exitFns) fn(failure);
  });
  return {
    postMessage: (message, t) => worker.postMessage(message, (t ?? []) as never[]),
    onMessage: (fn) => worker.on("message", fn),
    onExit: (fn) => (exited ? fn(failure) : exitFns.push(fn)),
    terminate: async () => {
      if (!exited) await worker.terminate();
    },
  };
}

/** In a worker started by `startLoopWorker`: its data and its channel to the main thread; else undefined. */
export function loopWorkerData(): { data: unknown; post: (m: unknown) => void; onMessage: (fn: (m: unknown) => void) => void } | undefined {
  if (isMainThread || !parentPort) return undefined;
  const wd = workerData as { svpLoopWorker?: boolean; data?: unknown } | undefined;
  if (!wd?.svpLoopWorker) return undefined;
  const port = parentPort;
  return { data: wd.data, post: (m) => port.postMessage(m), onMessage: (fn) => port.on("message", fn) };
}
