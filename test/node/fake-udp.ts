/**
 * An in-process UDP network for overlay tests and simulations (no real sockets): nodes
 * have addresses, links between addresses can be up or down (a datagram crosses only an up
 * link), delivery is in order from a queue that `flush()` drains (bounded), and every
 * datagram sent is logged for attacks and byte counts.
 */

import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { addIdentity, createIdentity, type Keyring } from "../../src/node/keyring.ts";
import type { UdpEndpoint, UdpSocket } from "../../src/node/node-io.ts";
import type { SocketFilterSpec } from "../../src/node/socket-filter.ts";
import { endpointKey } from "../../src/node/endpoint-key.ts";
import { Overlay, type OverlayOptions } from "../../src/node/overlay.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

export interface Datagram {
  data: Uint8Array;
  from: UdpEndpoint;
  to: UdpEndpoint;
}

export class FakeUdpNet {
  queue: Datagram[] = [];
  handlers = new Map<string, (d: Uint8Array, from: UdpEndpoint) => void>();
  /** Links by "hostA|hostB" (sorted); undefined = every pair may talk. */
  links: Set<string> | undefined;
  /** Every datagram sent (when `keepLog`), for replay attacks and inspection. */
  log: Datagram[] = [];
  keepLog = true;
  /** Bytes sent per source host. */
  bytesFrom = new Map<string, number>();
  /** Called for every datagram before delivery; return false to drop it. */
  filter: ((d: Datagram) => boolean) | undefined;
  /** Kernel filters the sockets asked for (setFilter), by local address; sampling is deterministic (every n-th). */
  socketFilters = new Map<string, { spec: SocketFilterSpec; seen: number }>();
  /** Datagrams the socket filters dropped. */
  filtered = 0;

  constructor(withLinks = true) {
    this.links = withLinks ? new Set() : undefined;
  }

  static key(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  link(a: string, b: string): void {
    this.links?.add(FakeUdpNet.key(a, b));
  }

  unlink(a: string, b: string): void {
    this.links?.delete(FakeUdpNet.key(a, b));
  }

  socket(local: UdpEndpoint, onMessage: (d: Uint8Array, from: UdpEndpoint) => void): UdpSocket {
    this.handlers.set(endpointKey(local), onMessage);
    return {
      local,
      family: local.host.includes(":") ? "IPv6" : "IPv4",
      send: (data, to) => {
        const d = { data: data.slice(), from: local, to };
        this.queue.push(d);
        if (this.keepLog) this.log.push(d);
        this.bytesFrom.set(local.host, (this.bytesFrom.get(local.host) ?? 0) + data.length);
      },
      close: () => this.handlers.delete(endpointKey(local)),
      setFilter: (spec) => {
        if (spec) this.socketFilters.set(endpointKey(local), { spec, seen: 0 });
        else this.socketFilters.delete(endpointKey(local));
        return true;
      },
    };
  }

  /** What the socket filter of `to` does with a datagram from `from` (as compileSocketFilter's program would). */
  #passes(from: UdpEndpoint, to: UdpEndpoint): boolean {
    const f = this.socketFilters.get(endpointKey(to));
    if (!f) return true;
    const is = (e: UdpEndpoint) => e.host === from.host && e.port === from.port;
    const pass = f.spec.deny.some(is) ? false : f.spec.allow.some(is) ? true : f.seen++ % f.spec.sampleOneIn === 0;
    if (!pass) this.filtered++;
    return pass;
  }

  /** Deliver one datagram now as if it came from `from`. */
  inject(data: Uint8Array, from: UdpEndpoint, to: UdpEndpoint): void {
    if (this.#passes(from, to)) this.handlers.get(endpointKey(to))?.(data, from);
  }

  flush(max = 200_000): number {
    let n = 0;
    while (this.queue.length && n < max) {
      const d = this.queue.shift()!;
      n++;
      if (this.links && d.from.host !== d.to.host && !this.links.has(FakeUdpNet.key(d.from.host, d.to.host))) continue;
      if (this.filter && !this.filter(d)) continue;
      if (!this.#passes(d.from, d.to)) continue;
      this.handlers.get(endpointKey(d.to))?.(d.data, d.from);
    }
    assert.ok(n < max, "network did not settle");
    return n;
  }
}

export interface TestNode {
  name: string;
  o: Overlay;
  local: UdpEndpoint;
  keyring: Keyring;
  sid: Uint8Array;
  got: { port: number; from: Uint8Array; srcPort: number; payload: Uint8Array; broadcast: boolean; localSid: Uint8Array }[];
}

export const newKeyring = (): Keyring => addIdentity(undefined, createIdentity(nodeCrypto));

/** An overlay on `host` (port 4111) of the fake network. */
export function overlayNode(net: FakeUdpNet, clock: ManualClock, name: string, host: string, extra: Partial<OverlayOptions> = {}, keyring = newKeyring()): TestNode {
  const o = new Overlay({ keyring, crypto: nodeCrypto, clock, helloIntervalMs: 1000, random: () => 0.5, ...extra });
  const local = { host, port: 4111 };
  o.attachSocket(net.socket(local, (d, from) => o.receive(d, from)));
  const got: TestNode["got"] = [];
  o.on("data", (localSid, dstPort, from, srcPort, payload, broadcast) => got.push({ port: dstPort, from: from.slice(), srcPort, payload: payload.slice(), broadcast, localSid }));
  return { name, o, local, keyring, sid: keyring.identities[0]!.sid, got };
}

/** Advance the clock in steps, draining the network after each. */
export function runFor(net: FakeUdpNet, clock: ManualClock, ms: number, stepMs = 100): void {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(stepMs);
    net.flush();
  }
}
