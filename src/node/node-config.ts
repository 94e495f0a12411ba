/**
 * The embedded node's settings: defaults, the optional config file in the instance
 * directory (`svp.conf`) and command-line flags, merged in that order (flags win; `peer`
 * and `bind` entries from both are added together).
 *
 * svp.conf, one setting per line, `#` starts a comment:
 *   port = 4111              overlay UDP port (0 = any)
 *   peer = host:port         a static peer (repeatable; [v6]:port for IPv6)
 *   bind = 127.0.0.1         an address to bind the overlay on (repeatable)
 *   lan = false              LAN discovery by broadcast/multicast (off unless asked for)
 *   discovery = true         same-host discovery over loopback
 *   hello-interval = 5s      keep-alive period
 *   peer-timeout = 20s       silence after which a peer expires
 *   link-mtu = 1160          largest MDP payload on links that are not loopback
 */

import { UsageError } from "../errors.ts";
import { parseDuration, parseHostPort, parsePort } from "../options.ts";
import { DEFAULTS } from "../defaults.ts";

export interface NodeConfig {
  port: number | undefined;
  peers: { host: string; port: number }[];
  bind: string[];
  lan: boolean | undefined;
  discovery: boolean | undefined;
  helloIntervalMs: number | undefined;
  peerTimeoutMs: number | undefined;
  linkMtu?: number | undefined;
}

export function emptyNodeConfig(): NodeConfig {
  return { port: undefined, peers: [], bind: [], lan: undefined, discovery: undefined, helloIntervalMs: undefined, peerTimeoutMs: undefined };
}

/** Lower bounds of the keep-alive settings (a smaller one floods every peer with hellos). */
export const MIN_HELLO_INTERVAL_MS = 100;
export const MIN_PEER_TIMEOUT_MS = 200;

/** Check the keep-alive settings and bind addresses; `name` names the source in messages ("--hello-interval", "file:3: hello-interval"). */
export function checkHelloInterval(ms: number, name: string): number {
  if (ms < MIN_HELLO_INTERVAL_MS) throw new UsageError(`${name} must be at least ${MIN_HELLO_INTERVAL_MS}ms`);
  return ms;
}

/** Bounds of the link MTU setting: MDP's own (servald's) MTU is the smallest; the overlay carries at most 16384. */
export const MIN_LINK_MTU = 1160;
export const MAX_LINK_MTU = 16384;

export function checkLinkMtu(n: number, name: string): number {
  if (!Number.isInteger(n) || n < MIN_LINK_MTU || n > MAX_LINK_MTU) throw new UsageError(`${name} must be a whole number of bytes from ${MIN_LINK_MTU} to ${MAX_LINK_MTU}, got ${n}`);
  return n;
}

export function checkPeerTimeout(ms: number, name: string): number {
  if (ms < MIN_PEER_TIMEOUT_MS) throw new UsageError(`${name} must be at least ${MIN_PEER_TIMEOUT_MS}ms`);
  return ms;
}

/** The overlay's default hello interval (ms); the peer timeout defaults to 3.5 of them. */
export const DEFAULT_HELLO_INTERVAL_MS = DEFAULTS.helloIntervalMs;

/**
 * The merged settings' peer timeout must be longer than their hello interval: otherwise
 * every peer expires between two hellos and comes back at the next (its streams with it).
 */
export function checkTimers(c: NodeConfig): void {
  const hello = c.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS;
  if (c.peerTimeoutMs !== undefined && c.peerTimeoutMs <= hello) {
    throw new UsageError(`peer timeout (${c.peerTimeoutMs} ms) must be longer than the hello interval (${hello} ms): peers would expire between two hellos (the default is 3.5 intervals)`);
  }
}

export function checkBindAddress(value: string, name: string): string {
  if (!/^[0-9A-Fa-f.:]+(%[\w.-]+)?$/.test(value)) throw new UsageError(`${name} expects a numeric IP address, got "${value}"`);
  return value;
}

function parseBool(v: string, what: string): boolean {
  if (/^(true|yes|on|1)$/i.test(v)) return true;
  if (/^(false|no|off|0)$/i.test(v)) return false;
  throw new UsageError(`${what}: expected true or false, got "${v}"`);
}

/** Parse a peer address: `host:port` or `[v6]:port`; the port is required and not 0. */
export function parsePeerAddress(text: string, what = "peer"): { host: string; port: number } {
  if (/^\d+$/.test(text) || text.startsWith(":")) throw new UsageError(`invalid ${what} "${text}": expected host:port`);
  const hp = parseHostPort(text, what, "");
  if (hp.port === 0) throw new UsageError(`invalid ${what} "${text}": port 0`);
  return hp;
}

/** Parse svp.conf. `where` names the file in messages. Throws UsageError naming the line. */
export function parseNodeConfig(text: string, where: string): NodeConfig {
  const c = emptyNodeConfig();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*$/, "").trim();
    if (line === "") continue;
    const at = `${where}:${i + 1}`;
    const m = /^([a-z-]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UsageError(`${at}: expected "key = value", got "${line}"`);
    const key = m[1]!;
    const value = m[2]!.trim();
    switch (key) {
      case "port":
        c.port = parsePort(value, `port at ${at}`);
        break;
      case "peer":
        c.peers.push(parsePeerAddress(value, `peer at ${at}`));
        break;
      case "bind":
        c.bind.push(checkBindAddress(value, `${at}: bind`));
        break;
      case "lan":
        c.lan = parseBool(value, at);
        break;
      case "discovery":
        c.discovery = parseBool(value, at);
        break;
      case "hello-interval":
        c.helloIntervalMs = checkHelloInterval(parseDuration(value, `hello-interval at ${at}`), `${at}: hello-interval`);
        break;
      case "peer-timeout":
        c.peerTimeoutMs = checkPeerTimeout(parseDuration(value, `peer-timeout at ${at}`), `${at}: peer-timeout`);
        break;
      case "link-mtu":
        if (!/^\d+$/.test(value)) throw new UsageError(`${at}: link-mtu expects a number of bytes, got "${value}"`);
        c.linkMtu = checkLinkMtu(Number(value), `${at}: link-mtu`);
        break;
      default:
        throw new UsageError(`${at}: unknown setting "${key}" (known: port, peer, bind, lan, discovery, hello-interval, peer-timeout, link-mtu)`);
    }
  }
  return c;
}

/** Flags over file: scalars from `over` win when set; lists are concatenated. */
export function mergeNodeConfig(base: NodeConfig, over: NodeConfig): NodeConfig {
  return {
    port: over.port ?? base.port,
    peers: [...base.peers, ...over.peers],
    bind: over.bind.length ? over.bind : base.bind,
    lan: over.lan ?? base.lan,
    discovery: over.discovery ?? base.discovery,
    helloIntervalMs: over.helloIntervalMs ?? base.helloIntervalMs,
    peerTimeoutMs: over.peerTimeoutMs ?? base.peerTimeoutMs,
    linkMtu: over.linkMtu ?? base.linkMtu,
  };
}
