/**
 * The routes to one destination, one per neighbour: a small array rather than a Map (a
 * destination has a handful of them, and a Map costs ~190 bytes even with one entry; the
 * router holds one such list per destination of the mesh). Keyed by the neighbour's key.
 * Deleting moves the last entry into the gap, so the order of `values()` is not insertion
 * order after a delete.
 */
export class EntryList<E extends { neighbour: { key: string } }> {
  #a: E[] = [];

  get size(): number {
    return this.#a.length;
  }

  get(key: string): E | undefined {
    for (const e of this.#a) if (e.neighbour.key === key) return e;
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  set(key: string, e: E): void {
    const i = this.#a.findIndex((x) => x.neighbour.key === key);
    if (i >= 0) this.#a[i] = e;
    else this.#a.push(e);
  }

  delete(key: string): boolean {
    const i = this.#a.findIndex((x) => x.neighbour.key === key);
    if (i < 0) return false;
    this.#a[i] = this.#a[this.#a.length - 1]!;
    this.#a.pop();
    return true;
  }

  /** The live array (not a copy): copy it before deleting while iterating. */
  values(): E[] {
    return this.#a;
  }
}
