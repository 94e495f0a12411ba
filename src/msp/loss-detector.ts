/**
 * Loss detection of an extended MSP sender, as RFC 9002 section 6.1 (packet and time
 * thresholds) with a reordering tolerance that adapts: a packet still unacknowledged when
 * `packetThreshold` later ones were acknowledged, or `timeThreshold` RTTs after it was sent
 * while a later one was, is lost. Mesh paths reorder (several links, Wi-Fi retries), so each
 * loss that turns out spurious makes the detector more patient (RFC 8985's spirit), up to a
 * bound.
 */

import { pnDiff } from "./packet-number-log.ts";
import type { RttEstimator } from "./rtt-estimator.ts";
import type { TxPacket } from "./send-queue.ts";

/** Packet reordering threshold to start with (RFC 9002 kPacketThreshold); it grows when the path reorders more. */
export const EXT_PACKET_THRESHOLD = 3;
/** Upper bounds of the adaptive reordering tolerance: packets, and RTTs of waiting. */
export const EXT_MAX_PACKET_THRESHOLD = 64;
export const EXT_MAX_TIME_THRESHOLD = 2;

export class LossDetector {
  /** Reordering tolerance: a packet overtaken by this many is lost (grows on spurious losses). */
  packetThreshold = EXT_PACKET_THRESHOLD;
  /** … or one left waiting this many RTTs after a later one arrived. */
  timeThreshold = 9 / 8;
  /** When the earliest packet not yet lost by the time threshold will be (ms; Infinity: none waiting). */
  lossTime = Infinity;

  /**
   * The packet numbered `pn` (0: sent classic), declared lost, arrived after all while
   * `largestAcked` was the largest packet number acknowledged: tolerate that much reordering.
   */
  onSpuriousLoss(largestAcked: number, pn: number): void {
    this.packetThreshold = Math.min(EXT_MAX_PACKET_THRESHOLD, Math.max(this.packetThreshold, pn === 0 ? 0 : pnDiff(largestAcked, pn) + 1));
    this.timeThreshold = Math.min(EXT_MAX_TIME_THRESHOLD, this.timeThreshold + 1 / 8);
  }

  /**
   * Find the lost packets among `list[from…]` (unacknowledged, in sequence order) now that
   * `largestAcked` (0: none yet) is the largest packet number acknowledged; `markLost` is
   * called for each. Sets `lossTime` for the ones that are not lost yet.
   */
  detect(list: readonly TxPacket[], from: number, largestAcked: number, now: number, rtt: RttEstimator, markLost: (p: TxPacket) => void): void {
    this.lossTime = Infinity;
    if (largestAcked === 0) return;
    const delay = rtt.lossDelay(this.timeThreshold);
    for (let i = from; i < list.length; i++) {
      const p = list[i]!;
      // Packets sent classic (pn 0) went before every numbered one.
      const age = p.pn === 0 ? Infinity : pnDiff(largestAcked, p.pn);
      if (p.sacked || p.lost || age <= 0) continue;
      if (age >= this.packetThreshold || now >= p.sentAt + delay) markLost(p);
      else this.lossTime = Math.min(this.lossTime, p.sentAt + delay);
    }
  }
}
