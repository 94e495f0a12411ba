/**
 * The remote ends one MDP port binding exchanged MSP packets with recently: what the
 * daemon needs to stop a client's streams on its behalf when the client dies (its local
 * API connection drops: `kill -9`, a crash). The daemon never parses MSP beyond the flags
 * byte; it only notes who was talked to, whether both sides have finished (SHUTDOWN each
 * way: a clean end, nothing to stop) or one side stopped the stream (STOP).
 *
 * Bounded: at most MAX_REMOTES_PER_BINDING entries, kept in last-use order (to within a
 * second, so that not every packet moves its entry); entries silent for MSP_RECENT_MS are
 * forgotten. Pure, clock values passed in.
 */

import type { Sid } from "../mesh/sid.ts";
import { EXT_FIXED_BYTES, MSP_EXT, MSP_OFFER, MSP_SEQ } from "../msp/ext-packet.ts";
import { MSP_FLAG } from "../msp/packet.ts";
import { bytesKey } from "./bytes-key.ts";

/**
 * How long after its last packet a remote still counts as a live stream. Live MSP streams
 * send a packet at least every 1.5 s (keep-alives) and give up after 10 s of silence, so
 * 30 s covers every live one with a wide margin.
 */
export const MSP_RECENT_MS = 30_000;
/** Remotes remembered per binding at most (a listener's callers; the oldest are forgotten). */
export const MAX_REMOTES_PER_BINDING = 1024;

interface Entry {
  sid: Sid;
  port: number;
  /** Clock time of the last MSP packet either way. */
  at: number;
  /** 1: the local side sent SHUTDOWN, 2: the remote did; 3 = both: finishing cleanly. */
  shut: number;
}

/**
 * Whether a datagram looks like MSP: a 1-byte STOP; a classic packet (3+ bytes, flags
 * within MSP's four and the extension's OFFER); an extended one (EXT set, at least its
 * fixed header). Text (e.g. service discovery's `NAME.msp.port=PORT`) is none of these.
 */
export function looksLikeMsp(payload: Uint8Array): boolean {
  if (payload.length === 0) return false;
  const flags = payload[0]!;
  if (flags & MSP_EXT) return payload.length >= EXT_FIXED_BYTES;
  if (flags & ~(0x0f | MSP_OFFER)) return false;
  return payload.length === 1 ? flags === MSP_FLAG.STOP : payload.length >= 3;
}

export class MspRemoteSet {
  readonly #entries = new Map<string, Entry>();

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Note one datagram between this binding and (`sid`, `port`); `out`: sent by the local
   * client. Non-MSP payloads are ignored. Returns the change in size (for a daemon-wide count).
   */
  note(sid: Sid, port: number, payload: Uint8Array, out: boolean, now: number): number {
    if (!looksLikeMsp(payload)) return 0;
    const flags = payload[0]!;
    const key = bytesKey(sid) + port;
    const entries = this.#entries;
    if (flags & MSP_FLAG.STOP) return entries.delete(key) ? -1 : 0; // stopped by one side already
    let delta = 0;
    let e = entries.get(key);
    if (e) {
      if (now - e.at > 1000) {
        entries.delete(key);
        entries.set(key, e);
      }
    } else {
      for (const [k, old] of entries) {
        if (now - old.at <= MSP_RECENT_MS && entries.size < MAX_REMOTES_PER_BINDING) break;
        entries.delete(k);
        delta--;
      }
      e = { sid, port, at: now, shut: 0 };
      entries.set(key, e);
      delta++;
    }
    e.at = now;
    const ext = (flags & MSP_EXT) !== 0;
    if (!ext && flags & MSP_FLAG.FIRST) e.shut = 0; // a new connection on this address pair
    // SHUTDOWN counts on a sequenced packet: classic, 5+ bytes; extended, with SEQ.
    if (flags & MSP_FLAG.SHUTDOWN && (ext ? flags & MSP_SEQ : payload.length >= 5)) e.shut |= out ? 1 : 2;
    return delta;
  }

  /** The remotes whose streams may still be open at `now`: heard from recently, not finished both ways. */
  openAt(now: number): { sid: Sid; port: number }[] {
    const out: { sid: Sid; port: number }[] = [];
    for (const e of this.#entries.values()) if (e.shut !== 3 && now - e.at <= MSP_RECENT_MS) out.push({ sid: e.sid, port: e.port });
    return out;
  }
}
