/**
 * A fake servald for the transport's unit tests: a real AF_UNIX datagram socket (the native
 * addon) bound to `<instance>/mdp.2.socket` in the abstract namespace, answering the MDP v2
 * requests the way overlay_mdp.c does (bindings per client address, port allocation from 257,
 * ERROR answers, SEARCH_IDS, the route table on port 5 with SID_INTERNAL:5 held by one client,
 * CLOSE on port 0 dropping all of a client's bindings) and delivering data between its clients.
 * It records every request so tests can check the exact headers svp sends.
 */

import { openUnixDatagram } from "../../src/platform/unix-dgram.ts";
import type { UnixDatagramSocket } from "../../src/platform/unix-dgram.ts";
import { MDP_FLAG, decodeMdpDatagram, encodeMdpDatagram } from "../../src/mdp/header.ts";
import type { MdpHeader } from "../../src/mdp/header.ts";
import { mdpSocketAddress } from "../../src/servald/instance.ts";
import { SID_INTERNAL } from "../../src/servald/mdp-command.ts";
import { isSidAny, sidEquals } from "../../src/mesh/sid.ts";
import type { Sid } from "../../src/mesh/sid.ts";
import { toHex } from "../../src/bytes/hex.ts";

export interface Received {
  header: MdpHeader;
  payload: Uint8Array;
  client: string;
}

interface FakeBinding {
  sid: Sid;
  port: number;
  client: Uint8Array;
}

export function sidOf(n: number): Sid {
  return new Uint8Array(32).fill(n);
}

/** A route record as servald's send_route writes it (no signing key; hop count 1 or 2). */
export function routeRecord(sid: Sid, reachable: number, nextHop?: Sid): Uint8Array {
  const parts: number[] = [...sid, 0, reachable];
  if (reachable !== 0) {
    if (nextHop) parts.push(2, ...nextHop);
    else parts.push(1, 0, 1, ...new TextEncoder().encode("dummy1"), 0);
  }
  return Uint8Array.from(parts);
}

export class FakeServald {
  readonly socket: UnixDatagramSocket;
  readonly received: Received[] = [];
  /** Unlocked identities; the first is the primary. */
  identities: Sid[] = [sidOf(0xa1), sidOf(0xa2)];
  /** Route records (payloads) sent for a route-table request. */
  routes: Uint8Array[] = [];
  /** When true, requests are recorded but never answered. */
  silent = false;
  bindings: FakeBinding[] = [];
  #nextPort = 256;
  #subscriber: string | undefined;

  constructor(readonly instance: string) {
    this.socket = openUnixDatagram({ bind: mdpSocketAddress(instance) });
    this.socket.on("message", (data, from) => this.#onRequest(data, from));
  }

  get primary(): Sid {
    return this.identities[0]!;
  }

  /** Requests whose header matches `pred`. */
  requests(pred: (r: Received) => boolean = () => true): Received[] {
    return this.received.filter(pred);
  }

  /** Push a route change to the subscribed client (as send_route_changed does). */
  pushRoute(record: Uint8Array): void {
    const sub = this.bindings.find((b) => sidEquals(b.sid, SID_INTERNAL) && b.port === 5);
    if (sub) this.#reply(sub.client, { local: { sid: SID_INTERNAL, port: 5 }, remote: { sid: new Uint8Array(32), port: 5 }, flags: 0, qos: 0, ttl: 0 }, record);
  }

  /** Send a datagram to whoever bound (sid, port), as if it came from the network. */
  deliver(to: { sid: Sid; port: number }, from: { sid: Sid; port: number }, payload: Uint8Array, flags = 0): boolean {
    const broadcast = (sid: Sid) => sid.every((v) => v === 0xff);
    const b = this.bindings.find((x) => x.port === to.port && (sidEquals(x.sid, to.sid) || broadcast(x.sid) || broadcast(to.sid)));
    if (!b) return false;
    this.#reply(b.client, { local: to, remote: from, flags, qos: 0, ttl: 31 }, payload);
    return true;
  }

  close(): void {
    this.socket.close();
  }

  #reply(client: Uint8Array, h: MdpHeader, payload?: Uint8Array): void {
    this.socket.send(encodeMdpDatagram(h, payload), client);
  }

  #onRequest(data: Uint8Array, from: Uint8Array): void {
    const d = decodeMdpDatagram(data, 1400); // servald reads up to 1400 payload bytes (mdp_poll2)
    if (!d.ok) throw new Error(`fake servald got a bad datagram: ${d.error}`);
    const h = d.header;
    const client = toHex(from);
    this.received.push({ header: h, payload: d.payload.slice(), client });
    if (this.silent) return;
    if (h.flags & MDP_FLAG.CLOSE && h.local.port === 0) {
      this.bindings = this.bindings.filter((b) => toHex(b.client) !== client);
      if (this.#subscriber === client) this.#subscriber = undefined;
      return;
    }
    const anyLocal = isSidAny(h.local.sid);
    const local = { sid: anyLocal ? this.primary : h.local.sid, port: h.local.port };
    const answer = { ...h, local };
    const internal = sidEquals(h.local.sid, SID_INTERNAL);
    if (!anyLocal && !internal && !this.identities.some((s) => sidEquals(s, h.local.sid)) && !h.local.sid.every((v) => v === 0xff)) {
      return this.#reply(from, { ...answer, flags: MDP_FLAG.ERROR });
    }
    let mine = this.bindings.find((b) => b.port === local.port && sidEquals(b.sid, local.sid) && toHex(b.client) === client);
    if (h.flags & MDP_FLAG.BIND) {
      if (local.port === 0) local.port = ++this.#nextPort;
      const other = this.bindings.find((b) => b.port === local.port && sidEquals(b.sid, local.sid) && toHex(b.client) !== client);
      if (other) return this.#reply(from, { ...answer, flags: MDP_FLAG.ERROR });
      if (!mine) {
        mine = { sid: local.sid, port: local.port, client: from };
        this.bindings.push(mine);
        if (internal) this.#subscriber = client;
      }
      this.#reply(from, { ...answer, flags: MDP_FLAG.BIND });
    }
    if (isSidAny(h.remote.sid)) {
      switch (h.remote.port) {
        case 0:
          if (!mine) this.#reply(from, { ...answer, flags: MDP_FLAG.ERROR });
          break;
        case 2:
          for (const sid of this.identities) this.#reply(from, { ...answer, flags: 0 }, sid);
          this.#reply(from, { ...answer, flags: MDP_FLAG.CLOSE });
          break;
        case 5:
          for (const r of this.routes) this.#reply(from, { ...answer, flags: 0 }, r);
          this.#reply(from, { ...answer, flags: MDP_FLAG.CLOSE });
          break;
        default:
          this.#reply(from, { ...answer, flags: MDP_FLAG.ERROR });
      }
    } else if (!mine) {
      this.#reply(from, { ...answer, flags: MDP_FLAG.ERROR });
    } else {
      // Local delivery between clients of this daemon (servald does the same for its own SIDs).
      this.deliver(h.remote, local, d.payload.slice(), h.flags & (MDP_FLAG.NO_CRYPT | MDP_FLAG.NO_SIGN));
    }
    if (mine && h.flags & MDP_FLAG.CLOSE) this.bindings = this.bindings.filter((b) => b !== mine);
  }
}
