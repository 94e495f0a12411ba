/**
 * UDP endpoint helpers shared by the overlay and the platform side of the embedded node:
 * one string key per address (for maps and kernel-filter comparisons) and the loopback test
 * that decides, for instance, a link's MTU.
 */

import type { UdpEndpoint } from "./node-io.ts";

/** "host:port", IPv6 hosts in brackets: a Map key and the form logs print. */
export function endpointKey(e: UdpEndpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x (numeric hosts only). */
export function isLoopbackHost(host: string): boolean {
  return host === "::1" || /^127\./.test(host) || /^::ffff:127\./i.test(host);
}
