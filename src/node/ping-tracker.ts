/**
 * Outstanding hello pings, node-wide: each HELLO REQUEST carries a ping id, the HELLO REPLY
 * echoes it, and the time between is the link's RTT. Node-wide (not per session) so that
 * pings sent from throwaway probe-reply sessions are answered too; the id names the peer it
 * was sent to, so a reply from another peer measures nothing.
 */

/** Pings remembered at most; the oldest goes first. */
export const MAX_PINGS = 1024;

export class PingTracker {
  #seq = 0;
  #pings = new Map<number, { at: number; remoteHex: string }>();

  /** A new ping id (1 to 2^32 - 1, wrapping) sent to `remoteHex` at `now`. */
  next(remoteHex: string, now: number): number {
    this.#seq = (this.#seq % 0xffff_ffff) + 1;
    this.#pings.set(this.#seq, { at: now, remoteHex });
    if (this.#pings.size > MAX_PINGS) this.#pings.delete(this.#pings.keys().next().value!);
    return this.#seq;
  }

  /** The RTT in ms if `echo` is an outstanding ping sent to `remoteHex` (it is then done); else undefined. */
  answer(echo: number, remoteHex: string, now: number): number | undefined {
    const ping = echo !== 0 ? this.#pings.get(echo) : undefined;
    if (!ping || ping.remoteHex !== remoteHex) return undefined;
    this.#pings.delete(echo);
    return now - ping.at;
  }

  get size(): number {
    return this.#pings.size;
  }
}
