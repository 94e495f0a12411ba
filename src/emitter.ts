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
    }) as E[K] & { listener?: E[K] };
    // So that off(event, fn) finds it, as with node:events.
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  /** Remove `fn` (added with on or once); the most recently added copy first, as node:events does. */
  off<K extends keyof E>(event: K, fn: E[K]): this {
    const list = this.#listeners[event];
    if (list) {
      for (let i = list.length - 1; i >= 0; i--) {
        const l = list[i] as E[K] & { listener?: E[K] };
        if (l === fn || l.listener === fn) {
          list.splice(i, 1);
          break;
        }
      }
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
