/**
 * Routing: which way a destination goes (mesh, direct TCP, upstream proxy, or refused)
 * and opening the stream. The proxy server only sees the `Dialer` interface; the
 * composition root (src/index.ts) builds one from the platform's TCP connect, the
 * `--direct`/`--upstream` flags and, once a mesh backend exists, a `MeshDialer`.
 */

import { SvpError, toSvpError } from "../errors.ts";
import type { MeshName } from "../mesh/names.ts";
import type { ByteStream } from "../stream/byte-stream.ts";
import type { Destination } from "./destination.ts";
import type { UpstreamProxy } from "./upstream.ts";
import { formatUpstream, upstreamConnect } from "./upstream.ts";

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
  dial(dest: Destination, signal: AbortSignal): Promise<ByteStream>;
}

/** Opens streams to mesh destinations; provided by a mesh backend. */
export interface MeshDialer {
  /** Connect to `port` of the node or service `name`; same contract as `Dialer.dial`. */
  dial(name: MeshName, port: number, signal: AbortSignal): Promise<ByteStream>;
}

/** Open a TCP connection (the platform's connect, wired in by src/index.ts). */
export type TcpConnect = (host: string, port: number, signal: AbortSignal) => Promise<ByteStream>;

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
        return mesh.dial(dest.mesh, dest.port, signal);
      }
      if (direct === "deny") return Promise.reject(new SvpError("ERR_NOT_ALLOWED", "direct connections are disabled (--direct deny); only mesh destinations are served"));
      if (!upstream) return tcp(dest.host, dest.port, signal);
      return viaUpstream(upstream, dest, signal);
    },
  };

  async function viaUpstream(upstream: UpstreamProxy, dest: Destination, signal: AbortSignal): Promise<ByteStream> {
      let stream: ByteStream;
      try {
        stream = await tcp(upstream.host, upstream.port, signal);
      } catch (err) {
        const e = toSvpError(err);
        throw new SvpError(e.code, `upstream proxy ${formatUpstream(upstream)}: ${e.message}`, { cause: e });
      }
      return upstreamConnect(upstream, stream, dest, signal);
  }
}
