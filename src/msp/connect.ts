/**
 * `connectMsp()`: open an MSP stream to (SID, port), like `servald msp connect`: bind a
 * fresh local port, send FIRST (with 0-RTT data if given), and resolve once the peer
 * answers. The outcomes a caller must tell apart:
 *
 * | outcome | result |
 * |---|---|
 * | the peer answered with any packet | resolves with the stream |
 * | STOP before any other packet (no listener service, refused forward) | rejects ERR_REFUSED |
 * | silence for `timeoutMs` (10 s; servald's unbound ports never answer) | rejects ERR_TIMEOUT |
 * | the transport knows the SID is unreachable | rejects ERR_NO_ROUTE at once |
 * | bad SID or port | rejects ERR_BAD_ADDRESS |
 * | `signal` aborted | rejects ERR_ABORTED (STOP sent) |
 * | the transport went away | rejects ERR_MESH_DOWN |
 *
 * With `early`, it resolves as soon as the connection request is on its way, as servald's
 * `msp connect --forward` does: what the caller writes goes out at once (0-RTT) instead of
 * a round trip later, and the outcomes after the bind (refused, timeout, transport gone)
 * arrive as the stream's close error instead.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError } from "../errors.ts";
import type { MdpAddress, MdpTransport } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_BYTES, isSidAny, isSidBroadcast, sidShort } from "../mesh/sid.ts";
import { MspEndpoint } from "./endpoint.ts";
import type { MspStream } from "./msp-stream.ts";
import type { MspOptions } from "./params.ts";
import { pathMtuLookup, resolveTransportParams } from "./params.ts";

export interface MspConnectOptions extends MspOptions {
  clock?: Clock;
  /** Connect from this identity instead of the primary one. */
  sid?: Sid;
  /** 0-RTT data: sent with the connection request (split into messages as needed). */
  data?: Uint8Array;
  /** Half-close right after `data` (SHUTDOWN rides on its last packet), like a piped `msp connect`. */
  shutdown?: boolean;
  /** Abandon the attempt (STOP is sent) and reject with ERR_ABORTED. */
  signal?: AbortSignal;
  /** Resolve without waiting for the peer's answer (see above). */
  early?: boolean;
}

export async function connectMsp(transport: MdpTransport, to: MdpAddress, options: MspConnectOptions = {}): Promise<MspStream> {
  if (!(to.sid instanceof Uint8Array) || to.sid.length !== SID_BYTES || isSidAny(to.sid) || isSidBroadcast(to.sid)) {
    throw new SvpError("ERR_BAD_ADDRESS", "MSP destination must be a node's SID (not any/broadcast)");
  }
  if (!Number.isInteger(to.port) || to.port < 1 || to.port > 0xffffffff) {
    throw new SvpError("ERR_BAD_ADDRESS", `invalid MDP port ${to.port}: expected 1-4294967295`);
  }
  const params = resolveTransportParams(transport, options);
  const clock = options.clock ?? systemClock;
  const where = `${sidShort(to.sid)}:${to.port}`;
  if (transport.reachability(to.sid) === "unreachable") throw new SvpError("ERR_NO_ROUTE", `no route to ${where}`);
  const signal = options.signal;
  if (signal?.aborted) throw new SvpError("ERR_ABORTED", `connect to ${where} aborted`);
  const socket = await transport.bind(0, options.sid ? { sid: options.sid } : {});
  if (signal?.aborted) {
    socket.close();
    throw new SvpError("ERR_ABORTED", `connect to ${where} aborted`);
  }
  const pathMtu = pathMtuLookup(transport, options);
  const endpoint = new MspEndpoint(socket, clock, params, pathMtu ? { pathMtu } : {});
  const remote: MdpAddress = { sid: to.sid.slice(), port: to.port };
  return new Promise<MspStream>((resolve, reject) => {
    let settled = false;
    const onAbort = () => stream.abort(new SvpError("ERR_ABORTED", `connect to ${where} aborted`));
    const settle = (err?: SvpError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      stream.off("close", onClose);
      if (err) reject(err);
      else resolve(stream);
    };
    const onClose = (err?: SvpError) => settle(err ?? new SvpError("ERR_ABORTED", `connect to ${where} aborted`));
    const stream = endpoint.open(remote, "connector", () => settle());
    endpoint.closeWhenEmpty();
    stream.on("close", onClose);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (options.data && options.data.length > 0) stream.write(options.data);
      if (options.shutdown) stream.closeWrite();
      stream.connection.start();
      if (options.early && !stream.closed) settle();
    } catch (err) {
      stream.abort(err instanceof SvpError ? err : new SvpError("ERR_INTERNAL", String(err)));
    }
  });
}
