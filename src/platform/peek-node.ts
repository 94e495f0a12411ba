/**
 * A quick look at the mesh node that already runs, for shell completion: its identities,
 * its reachable peers, and an open transport to ask it more (service discovery).
 *
 * Unlike `openMesh` it never starts a daemon, never cleans up stale files, never creates the
 * instance directory and never waits long: every step is bounded by `timeoutMs`, and
 * anything that does not answer in time counts as "no node" (undefined), because a
 * completion must answer at once or quietly offer nothing.
 */

import { setImmediate } from "node:timers";
import { existsSync } from "node:fs";
import type { MdpTransport } from "../mdp/transport.ts";
import { sidFromHex, type Sid } from "../mesh/sid.ts";
import { openEmbeddedTransport } from "../node/embedded-transport.ts";
import { connectServald } from "../servald/connect-servald.ts";
import type { MeshMode } from "../service/mesh-session.ts";
import { resolveHome, socketPath } from "./instance-files.ts";
import { connectUnix } from "./net.ts";
import { openUnixDatagram, servaldEnvironment, unixDatagramSupport } from "./unix-dgram.ts";

export interface PeekNodeOptions {
  /** Which backend to look at, as `--mesh` (auto: servald when it answers, else the embedded node). */
  mesh?: MeshMode;
  /** Embedded node instance directory (`--home`; default `resolveHome()`). */
  home?: string | undefined;
  /** servald instance directory (`--servald-instance`; default as `connectServald`). */
  servaldInstance?: string | undefined;
  /** Give up on each backend after this long, ms. */
  timeoutMs: number;
  /** Also fetch the embedded daemon's status for peer addresses (one more request). */
  addresses?: boolean;
}

export interface NodePeek {
  backend: "embedded" | "servald";
  /** The node's identities, primary first. */
  sids: Sid[];
  /** Reachable peers; `address` is the embedded node's UDP address of the peer ("127.0.0.1:4112"), null on servald. */
  peers: { sid: Sid; address: string | null }[];
  /** Connected to the node (for discovery); the caller closes it. */
  transport: MdpTransport;
}

/** The running node as `--mesh` selects it, or undefined when none answers within `timeoutMs`. */
export async function peekNode(options: PeekNodeOptions): Promise<NodePeek | undefined> {
  const mode = options.mesh ?? "auto";
  const servald = mode === "servald" || options.servaldInstance !== undefined;
  if (servald || (mode === "auto" && unixDatagramSupport().available)) {
    const peek = await peekServald(options);
    if (peek || servald) return peek;
  }
  return peekEmbedded(options);
}

async function peekServald(options: PeekNodeOptions): Promise<NodePeek | undefined> {
  try {
    const t = await connectServald({
      openSocket: openUnixDatagram,
      env: servaldEnvironment(),
      connectTimeoutMs: options.timeoutMs,
      requestTimeoutMs: options.timeoutMs,
      ...(options.servaldInstance !== undefined ? { instance: options.servaldInstance } : {}),
    });
    return { backend: "servald", sids: t.identities, peers: t.peers().map((sid) => ({ sid, address: null })), transport: t };
  } catch {
    return undefined;
  }
}

async function peekEmbedded(options: PeekNodeOptions): Promise<NodePeek | undefined> {
  let path: string;
  try {
    path = socketPath(resolveHome(options.home));
  } catch {
    return undefined;
  }
  // No socket file: no daemon (and nothing to wait for).
  if (!existsSync(path)) return undefined;
  try {
    const stream = await connectUnix(path, { timeoutMs: options.timeoutMs });
    const t = await openEmbeddedTransport(stream, { name: "svp completion", pid: process.pid, requestTimeoutMs: options.timeoutMs, defer: (fn) => void setImmediate(fn) });
    let peers: NodePeek["peers"] = t.peers().map((sid) => ({ sid, address: null }));
    if (options.addresses) {
      try {
        const status = await t.status();
        peers = [];
        for (const p of status.peers) {
          const sid = p.live ? sidFromHex(p.sid) : undefined;
          if (sid) peers.push({ sid, address: p.address });
        }
      } catch {
        // Addresses are a nicety; the SIDs are already known.
      }
    }
    return { backend: "embedded", sids: t.sids.slice(), peers, transport: t };
  } catch {
    return undefined;
  }
}
