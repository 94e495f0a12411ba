/**
 * The receive side of an MSP connection: a ring of packets indexed by their offset from
 * the next sequence number the application will consume (`next`). Packets arriving out of
 * order wait in their slot; `take()` hands them over in order. The ring's size is the
 * receive window: nothing further ahead is accepted.
 *
 * With the extension the buffer also keeps what selective acks need (`tracking`): how many
 * packets are in order from the read position (`contig`) and the highest occupied offset
 * (`maxOff`), from which `ackRanges()` describes the holes to the sender.
 */

export class ReceiveBuffer {
  /** The sequence number `take()` returns next (16 bits, wrapping). */
  #next = 0;
  #head = 0;
  #data: (Uint8Array | undefined)[];
  #shut: Uint8Array;
  #tracking = false;
  /** Tracking: packets in order from the read position and not yet consumed. */
  contig = 0;
  /** Tracking: highest ring offset holding a packet (−1: none). */
  maxOff = -1;

  constructor(slots: number) {
    this.#data = new Array<Uint8Array | undefined>(slots).fill(undefined);
    this.#shut = new Uint8Array(slots);
  }

  /** Sequence number of the next packet to consume. */
  get next(): number {
    return this.#next;
  }

  /** Ring size: packets accepted ahead of `next`, counting it. */
  get size(): number {
    return this.#data.length;
  }

  /** Packets held (in order or not). */
  get count(): number {
    let n = 0;
    for (const d of this.#data) if (d) n++;
    return n;
  }

  /** Whether the packet at `next` is here. */
  get hasNext(): boolean {
    return this.#data[this.#head] !== undefined;
  }

  /** Whether the packet at `next` carries SHUTDOWN (meaningful while `hasNext`). */
  get nextIsShutdown(): boolean {
    return this.#shut[this.#head] === 1;
  }

  /** The highest sequence number the sender may send now (flow control: the end of the ring). */
  get limit(): number {
    return (this.#next - 1 + this.#data.length) & 0xffff;
  }

  /** Tracking: every sequence number up to this one has arrived (16 bits). */
  get cumulativeAck(): number {
    return (this.#next - 1 + this.contig) & 0xffff;
  }

  /** Whether the packet at offset `off` (0 ≤ off < size) from `next` is here. */
  has(off: number): boolean {
    return this.#data[this.#slot(off)] !== undefined;
  }

  /** Store the packet at offset `off` (0 ≤ off < size, not `has(off)`); `shutdown`: it carries SHUTDOWN. */
  put(off: number, data: Uint8Array, shutdown: boolean): void {
    const i = this.#slot(off);
    this.#data[i] = data;
    if (shutdown) this.#shut[i] = 1;
    if (!this.#tracking) return;
    if (off > this.maxOff) this.maxOff = off;
    if (off === this.contig) {
      const ring = this.#data;
      const size = ring.length;
      let c = this.contig + 1;
      while (c < size && ring[(this.#head + c) % size] !== undefined) c++;
      this.contig = c;
    }
  }

  /** Consume the packet at `next` and advance; undefined when it has not arrived. */
  take(): Uint8Array | undefined {
    const i = this.#head;
    const data = this.#data[i];
    if (data === undefined) return undefined;
    this.#data[i] = undefined;
    this.#shut[i] = 0;
    this.#head = i + 1 === this.#data.length ? 0 : i + 1;
    this.#next = (this.#next + 1) & 0xffff;
    if (this.#tracking) {
      this.contig--;
      this.maxOff--;
    }
    return data;
  }

  /** Drop every packet held (the peer's SHUTDOWN was consumed, or the connection finished). */
  clear(): void {
    this.#data.fill(undefined);
  }

  /** Enlarge the ring to `slots` (never shrinks), keeping what it holds. */
  grow(slots: number): void {
    const old = this.#data;
    if (slots <= old.length) return;
    const data = new Array<Uint8Array | undefined>(slots).fill(undefined);
    const shut = new Uint8Array(slots);
    for (let off = 0; off < old.length; off++) {
      const i = (this.#head + off) % old.length;
      data[off] = old[i];
      shut[off] = this.#shut[i]!;
    }
    this.#data = data;
    this.#shut = shut;
    this.#head = 0;
  }

  /** Start keeping `contig` and `maxOff` (the extension is on), counted from what is held now. */
  startTracking(): void {
    this.#tracking = true;
    const ring = this.#data;
    let contig = 0;
    while (contig < ring.length && ring[(this.#head + contig) % ring.length] !== undefined) contig++;
    this.contig = contig;
    this.maxOff = -1;
    for (let off = 0; off < ring.length; off++) if (ring[(this.#head + off) % ring.length] !== undefined) this.maxOff = off;
  }

  /**
   * Tracking: the runs of packets held above the in-order ones, as inclusive sequence
   * number pairs (first, last, first, last, …) in ascending order, at most `maxRanges` runs.
   */
  ackRanges(maxRanges: number): number[] {
    const ranges: number[] = [];
    if (this.maxOff > this.contig) {
      const ring = this.#data;
      const size = ring.length;
      let runStart = -1;
      for (let off = this.contig + 1; off <= this.maxOff + 1; off++) {
        const have = off <= this.maxOff && ring[(this.#head + off) % size] !== undefined;
        if (have && runStart < 0) runStart = off;
        else if (!have && runStart >= 0) {
          ranges.push((this.#next + runStart) & 0xffff, (this.#next + off - 1) & 0xffff);
          runStart = -1;
          if (ranges.length >= 2 * maxRanges) break;
        }
      }
    }
    return ranges;
  }

  #slot(off: number): number {
    const i = this.#head + off;
    return i >= this.#data.length ? i - this.#data.length : i;
  }
}
