/**
 * Fail fast, or wait a bounded time, for a node the backend does not know as reachable.
 *
 * The transport's `reachability()` is the backend's knowledge (the embedded node's live
 * peers, servald's route table). "unreachable" fails at once with ERR_NO_ROUTE, unless the
 * caller asked to wait (`--wait-route`) or the node was just started and is still finding
 * its peers (the session's start-up grace); then it is polled until reachable or the time
 * is up. "unknown" (a backend that cannot tell) lets the connect attempt decide.
 */

import type { Clock, Timer } from "../clock.ts";
import { SvpError } from "../errors.ts";
import type { Sid } from "../mesh/sid.ts";
import { sidToHex } from "../mesh/sid.ts";
import type { MeshSession } from "./mesh-session.ts";

/** How often reachability is checked while waiting, ms. */
export const ROUTE_POLL_MS = 50;

export interface RouteWaitOptions {
  clock: Clock;
  signal?: AbortSignal | undefined;
  /** Wait up to this long, ms (0 = only the start-up grace). */
  waitMs: number;
}

export async function waitForRoute(session: Pick<MeshSession, "transport" | "discoveringUntil">, sid: Sid, options: RouteWaitOptions): Promise<void> {
  const t = session.transport;
  if (t.reachability(sid) !== "unreachable") return;
  const { clock, signal } = options;
  const deadline = Math.max(clock.now() + options.waitMs, session.discoveringUntil);
  const noRoute = () => {
    const peers = t.peers().length;
    return new SvpError(
      "ERR_NO_ROUTE",
      `no route to ${sidToHex(sid)}: not a reachable peer of this node (${peers} reachable peer${peers === 1 ? "" : "s"})${options.waitMs > 0 ? ` after waiting ${Math.round(options.waitMs / 100) / 10} s` : ""}`,
    );
  };
  if (clock.now() >= deadline) throw noRoute();
  await new Promise<void>((resolve, reject) => {
    let timer: Timer | undefined;
    const done = (err?: SvpError) => {
      timer?.cancel();
      signal?.removeEventListener("abort", onAbort);
      t.off("down", onDown);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => {
      const r: unknown = signal?.reason;
      done(r instanceof SvpError ? r : new SvpError("ERR_ABORTED", "aborted while waiting for a route"));
    };
    const onDown = (err: SvpError) => done(err);
    const poll = () => {
      if (t.reachability(sid) !== "unreachable") return done();
      const left = deadline - clock.now();
      if (left <= 0) return done(noRoute());
      timer = clock.setTimeout(poll, Math.min(ROUTE_POLL_MS, left));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    t.on("down", onDown);
    timer = clock.setTimeout(poll, Math.min(ROUTE_POLL_MS, deadline - clock.now()));
  });
}
