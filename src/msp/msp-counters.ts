/**
 * The per-connection counters of MSP (status, `--verbose`, tests): what went in and out,
 * what was resent, lost or dropped and why.
 */

import type { MspDropReason } from "./packet.ts";

export interface MspCounters {
  /** Application bytes delivered to the application (consumed). */
  bytesIn: number;
  /** Application bytes sent (first transmissions only). */
  bytesOut: number;
  /** MSP packets received (valid ones, any form). */
  packetsIn: number;
  /** MSP packets sent, including acks, keep-alives and retransmissions. */
  packetsOut: number;
  /** Packets sent again (timer, detected loss or probe). */
  retransmissions: number;
  /** Smoothed round-trip time, ms; null before any sample. */
  rttMs: number | null;
  /** Extended mode: packets declared lost (by packet number or time, or after probe timeouts). */
  losses: number;
  /** Extended mode: packets declared lost that turned out to have arrived. */
  spuriousLosses: number;
  /** Extended mode: probe timeouts that fired. */
  probes: number;
  /** Datagrams dropped, by reason. */
  drops: Partial<Record<MspDropReason, number>>;
}

/** All counters at zero (no RTT yet). */
export function newMspCounters(): MspCounters {
  return {
    bytesIn: 0,
    bytesOut: 0,
    packetsIn: 0,
    packetsOut: 0,
    retransmissions: 0,
    rttMs: null,
    losses: 0,
    spuriousLosses: 0,
    probes: 0,
    drops: {},
  };
}

/** Count one dropped datagram under `reason`. */
export function countDrop(c: MspCounters, reason: MspDropReason): void {
  const d = c.drops;
  d[reason] = (d[reason] ?? 0) + 1;
}
