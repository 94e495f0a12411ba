/**
 * A minimal typed event emitter (no `node:events`, so every layer stays runtime-neutral).
 * Listeners run synchronously in registration order; a listener that throws does not stop
 * the others, and the error is re-thrown asynchronously so it is never swallowed.
 */

// deno-lint-ignore no-explicit-any
export type EventMap = Record<string, (...args: any[]) => void>;

export class Emitter<E extends EventMap> {
  #listeners: { [K in keyof E]?: E[K][] } = {};

  on<K extends keyof E>(event: K, fn: E[K]): this {
    const list = this.#listeners[event];
    // `[fn]` is allocated at its exact size; `[].push()` would reserve 17 slots, and there
    // are several emitters per proxied connection.
    if (list) list.push(fn);
    else this.#listeners[event] = [fn];
    return this;
  }

  once<K extends keyof E>(event: K, fn: E[K]): this {
    const wrapper = ((...args: Parameters<E[K]>) => {
      this.off(event, wrapper);
      fn(...args);
    }) as E[K];
    return this.on(event, wrapper);
  }

  off<K extends keyof E>(event: K, fn: E[K]): this {
    const list = this.#listeners[event];
    if (list) {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  listenerCount(event: keyof E): number {
    return this.#listeners[event]?.length ?? 0;
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const list = this.#listeners[event];
    if (!list || list.length === 0) return;
    for (const fn of list.length === 1 ? list : list.slice()) {
      try {
        fn(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
