/**
 * The send buffer of an MSP connection: data written by the application and not yet sent,
 * already cut into packets (`TxPacket`), each with header room in front so that sending
 * writes the header in place instead of copying the data again.
 *
 * Classic mode keeps the boundaries of writes as servald does (a write becomes one or more
 * messages of at most the message size); extended mode packs consecutive writes into
 * messages as large as the path carries. SHUTDOWN rides on the last queued packet, or on a
 * bare one.
 */

import { EXT_MAX_HEADER_BYTES } from "./ext-packet.ts";
import { MSP_FLAG, MSP_PREAMBLE_BYTES } from "./packet.ts";

/** One MSP data packet, from queued to acknowledged. */
export interface TxPacket {
  /** `room` bytes of header space, then the data. */
  buf: Uint8Array;
  room: number;
  len: number;
  /** Data capacity while the packet is still pending (small writes coalesce in extended mode); 0 once it may not grow. */
  cap: number;
  flags: number;
  seq: number;
  sentAt: number;
  /** Packet number of the latest transmission (extended mode); 0 = sent classic or not yet. */
  pn: number;
  retransmitted: boolean;
  /** Extended: the peer said it arrived (in a range above its cumulative ack). */
  sacked: boolean;
  /** Extended: declared lost and waiting to be sent again. */
  lost: boolean;
  /** Extended: bytes this packet counts in bytes-in-flight now (0 = not counted). */
  counted: number;
}

export function newTxPacket(buf: Uint8Array, room: number, len: number, cap: number, flags: number): TxPacket {
  return { buf, room, len, cap, flags, seq: -1, sentAt: -1, pn: 0, retransmitted: false, sacked: false, lost: false, counted: 0 };
}

export class SendQueue {
  #pending: (TxPacket | undefined)[] = [];
  #head = 0;
  #bytes = 0;

  /** Data bytes queued (the `write()` backpressure measure). */
  get bytes(): number {
    return this.#bytes;
  }

  get empty(): boolean {
    return this.#head >= this.#pending.length;
  }

  /** Queue `chunk` as classic messages of at most `size` bytes, each with room for the preamble. */
  queueClassic(chunk: Uint8Array, size: number): void {
    const n = chunk.length;
    // The one copy of the data: all packets of this write are cut from one allocation,
    // each with room for its preamble.
    const messages = Math.ceil(n / size);
    const slab = new Uint8Array(n + messages * MSP_PREAMBLE_BYTES);
    let at = 0;
    for (let o = 0; o < n; o += size) {
      const len = Math.min(size, n - o);
      const buf = messages === 1 ? slab : slab.subarray(at, at + MSP_PREAMBLE_BYTES + len);
      buf.set(len === n ? chunk : chunk.subarray(o, o + len), MSP_PREAMBLE_BYTES);
      at += MSP_PREAMBLE_BYTES + len;
      this.#pending.push(newTxPacket(buf, MSP_PREAMBLE_BYTES, len, 0, 0));
      this.#bytes += len;
    }
  }

  /** Append to the last pending packet while it has room below `size`, then start new ones (capacity grows by doubling). */
  queueExt(chunk: Uint8Array, size: number): void {
    let o = 0;
    const n = chunk.length;
    this.#bytes += n;
    const tail = this.#tail();
    if (tail && tail.len < size && !(tail.flags & MSP_FLAG.SHUTDOWN)) {
      const take = Math.min(n, size - tail.len);
      if (tail.len + take > tail.cap) {
        const cap = Math.min(size, Math.max(2 * tail.cap, tail.len + take));
        const buf = new Uint8Array(tail.room + cap);
        buf.set(tail.buf.subarray(tail.room, tail.room + tail.len), tail.room);
        tail.buf = buf;
        tail.cap = cap;
      }
      tail.buf.set(take === n ? chunk : chunk.subarray(0, take), tail.room + tail.len);
      tail.len += take;
      o = take;
    }
    while (o < n) {
      const len = Math.min(size, n - o);
      const buf = new Uint8Array(EXT_MAX_HEADER_BYTES + len);
      buf.set(o === 0 && len === n ? chunk : chunk.subarray(o, o + len), EXT_MAX_HEADER_BYTES);
      this.#pending.push(newTxPacket(buf, EXT_MAX_HEADER_BYTES, len, len, 0));
      o += len;
    }
  }

  /** SHUTDOWN on the last queued packet (which stops growing), or a bare packet with `room` bytes of header space. */
  queueShutdown(room: number): void {
    const tail = this.#tail();
    if (tail) {
      tail.flags |= MSP_FLAG.SHUTDOWN;
      tail.cap = 0;
    } else {
      this.#pending.push(newTxPacket(new Uint8Array(room), room, 0, 0, MSP_FLAG.SHUTDOWN));
    }
  }

  /** Take the first packet to send it as sequence number `seq`; it no longer grows. */
  take(seq: number): TxPacket {
    const p = this.#pending[this.#head]!;
    this.#pending[this.#head++] = undefined;
    this.#bytes -= p.len;
    p.cap = 0;
    p.seq = seq;
    return p;
  }

  /** Drop the slots of taken packets (after a burst of `take()`). */
  compact(): void {
    const pending = this.#pending;
    if (this.#head >= pending.length) {
      pending.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > pending.length) {
      this.#pending = pending.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The connection switched to the extension: cut the unsent classic messages again, packed to `size`. */
  recutExt(size: number): void {
    const old = this.#pending.slice(this.#head) as TxPacket[];
    this.#pending = [];
    this.#head = 0;
    this.#bytes = 0;
    const shutdown = old.length > 0 && (old[old.length - 1]!.flags & MSP_FLAG.SHUTDOWN) !== 0;
    for (const p of old) if (p.len > 0) this.queueExt(p.buf.subarray(p.room, p.room + p.len), size);
    if (shutdown) this.queueShutdown(EXT_MAX_HEADER_BYTES);
  }

  /** Forget everything queued (the connection finished). */
  clear(): void {
    this.#pending = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #tail(): TxPacket | undefined {
    return this.#head < this.#pending.length ? this.#pending[this.#pending.length - 1] : undefined;
  }
}
