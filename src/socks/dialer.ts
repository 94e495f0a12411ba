/**
 * Routing: which way a destination goes (mesh, direct TCP, upstream proxy, or refused)
 * and opening the stream. The proxy server only sees the `Dialer` interface; the
 * composition (src/platform/socks-proxy.ts) builds one from the platform's TCP connect, the
 * `--direct`/`--upstream` flags and, once a mesh backend exists, a `MeshDialer`.
 */

import { SvpError, toSvpError } from "../errors.ts";
import type { MeshName } from "../mesh/names.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import type { Destination } from "./destination.ts";
import type { UpstreamProxy } from "./upstream.ts";
import { formatUpstream, upstreamConnect } from "./upstream.ts";

/**
 * What a dial is cancelled through: the part of `AbortSignal` svp's dials use. An
 * `AbortSignal` is one; so is `DialCancel`, which the proxy makes per dial instead of an
 * AbortController (an EventTarget, its signal and listener bookkeeping cost every connection
 * more than the direct TCP dial needs). Paths that need a real AbortSignal get one linked to
 * it (`abortSignalOf`), only when they are taken.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", fn: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", fn: () => void): void;
}

/** A cancellable dial: `abort(reason)` runs the listeners once. */
export class DialCancel implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  #fns: (() => void)[] | undefined;

  addEventListener(_type: "abort", fn: () => void): void {
    (this.#fns ??= []).push(fn);
  }

  removeEventListener(_type: "abort", fn: () => void): void {
    const fns = this.#fns;
    const i = fns ? fns.indexOf(fn) : -1;
    if (i >= 0) fns!.splice(i, 1);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const fns = this.#fns;
    this.#fns = undefined;
    if (fns) for (const fn of fns) fn();
  }
}

/** A real AbortSignal that follows `signal` (itself when it is one). */
export function abortSignalOf(signal: CancelSignal): AbortSignal {
  if (signal instanceof AbortSignal) return signal;
  const ac = new AbortController();
  if (signal.aborted) ac.abort(signal.reason);
  else signal.addEventListener("abort", () => ac.abort(signal.reason), { once: true });
  return ac.signal;
}

/** How a destination is reached; "denied" when a rule refuses it. */
export type RouteName = "mesh" | "direct" | "upstream" | "denied";

export interface Dialer {
  /** The route `dest` will take, decided without I/O (for logs). */
  route(dest: Destination): RouteName;
  /**
   * Open a stream to `dest`. Resolves only once the connection is established; rejects
   * with an SvpError (refused, no route, timeout, not allowed…). When `signal` aborts,
   * rejects promptly with its reason (an SvpError) and leaves nothing open.
   */
  dial(dest: Destination, signal: CancelSignal): Promise<ByteStream>;
}

/** Opens streams to mesh destinations; provided by a mesh backend. */
export interface MeshDialer {
  /** Connect to `port` of the node or service `name`; same contract as `Dialer.dial`. */
  dial(name: MeshName, port: number, signal: AbortSignal): Promise<ByteStream>;
}

/** Open a TCP connection (the platform's connect, wired in by src/platform/socks-proxy.ts). */
export type TcpConnect = (host: string, port: number, signal: CancelSignal) => Promise<ByteStream>;

export interface RouterOptions {
  /** Open a TCP connection. */
  tcp: TcpConnect;
  /** "deny": only mesh destinations are served, others get ERR_NOT_ALLOWED. Default "allow". */
  direct?: "allow" | "deny";
  /** Send non-mesh traffic through this proxy instead of connecting directly. */
  upstream?: UpstreamProxy | undefined;
  /** The mesh backend; without one, mesh destinations get ERR_NO_ROUTE. */
  mesh?: MeshDialer | undefined;
}

export const MESH_UNAVAILABLE = "mesh destinations are not available yet (no mesh backend in this build)";

export function createRouter(options: RouterOptions): Dialer {
  const direct = options.direct ?? "allow";
  const { tcp, upstream, mesh } = options;
  return {
    route(dest) {
      if (dest.mesh) return "mesh";
      if (direct === "deny") return "denied";
      return upstream ? "upstream" : "direct";
    },
    // Not async: the direct and mesh paths hand back their own promise (no extra hop per connection).
    dial(dest, signal) {
      if (dest.mesh) {
        if (!mesh) return Promise.reject(new SvpError("ERR_NO_ROUTE", MESH_UNAVAILABLE));
        return mesh.dial(dest.mesh, dest.port, abortSignalOf(signal));
      }
      if (direct === "deny") return Promise.reject(new SvpError("ERR_NOT_ALLOWED", "direct connections are disabled (--direct deny); only mesh destinations are served"));
      if (!upstream) return tcp(dest.host, dest.port, signal);
      return viaUpstream(upstream, dest, signal);
    },
  };

  async function viaUpstream(upstream: UpstreamProxy, dest: Destination, signal: CancelSignal): Promise<ByteStream> {
      let stream: ByteStream;
      try {
        stream = await tcp(upstream.host, upstream.port, signal);
      } catch (err) {
        const e = toSvpError(err);
        throw new SvpError(e.code, `upstream proxy ${formatUpstream(upstream)}: ${e.message}`, { cause: e });
      }
      return upstreamConnect(upstream, stream, dest, abortSignalOf(signal));
  }
}
