/**
 * SIGINT/SIGTERM/SIGHUP for the long-running commands (socks, listen, connect --forward):
 * stop accepting, let live streams finish for up to `DRAIN_MS`, exit 0; a second signal
 * cuts them at once. SIGHUP (a closed terminal or ssh session) counts too: dying of it
 * would leave every mesh peer waiting 10 s for streams nobody will finish. (Node resets
 * signal dispositions at start-up, so `nohup` never protected svp from SIGHUP anyway.)
 *
 * The handlers go in when `StopSignals` is made, at the start of a command, before it
 * prints "listening on …": a script that signals as soon as it reads that line (or while
 * the mesh is still being opened) gets the graceful stop, not the default death.
 */

import type { Logger } from "./render.ts";
import { DEFAULTS } from "../src/index.ts";

/** How long live streams may continue after the first signal. */
export const DRAIN_MS = DEFAULTS.drainMs;

/** Something that serves connections until closed: a proxy, a listen service, a forward server. */
export interface Drainable {
  /** Live connections now. */
  readonly connections: number;
  /** Settles when the service has ended by itself (`--once`, backend lost); absent if it never does. */
  readonly done?: Promise<unknown>;
  /** Stop accepting; abort what is still live after `drainMs`. */
  close(drainMs: number): Promise<unknown>;
}

export class StopSignals {
  /** The first signal's name, or "" when `finish()` came first. */
  readonly stopped: Promise<string>;
  #resolve!: (sig: string) => void;
  #signalled = false;
  #hungUp = false;
  #again: (() => void) | undefined;
  readonly #onInt = () => this.#on("SIGINT");
  readonly #onTerm = () => this.#on("SIGTERM");
  readonly #onHup = () => {
    // The terminal may be gone: a failed log line must not end the drain.
    if (!this.#hungUp) process.stderr.on("error", () => {});
    this.#hungUp = true;
    this.#on("SIGHUP");
  };

  constructor() {
    this.stopped = new Promise((r) => (this.#resolve = r));
    process.on("SIGINT", this.#onInt);
    process.on("SIGTERM", this.#onTerm);
    process.on("SIGHUP", this.#onHup);
  }

  #on(sig: string): void {
    if (!this.#signalled) {
      this.#signalled = true;
      this.#resolve(sig);
    } else {
      this.#again?.();
    }
  }

  /** What a second signal does. */
  onAgain(fn: () => void): void {
    this.#again = fn;
  }

  /** The command ended by itself: `stopped` resolves with "" (unless a signal came first). */
  finish(): void {
    this.#resolve("");
  }

  dispose(): void {
    process.off("SIGINT", this.#onInt);
    process.off("SIGTERM", this.#onTerm);
    process.off("SIGHUP", this.#onHup);
  }

  /**
   * Wait until `service` ends by itself or a signal arrives; on a signal, run `stopAccepting`,
   * log, and drain. Returns the signal name ("" when the service ended by itself).
   */
  async serve(service: Drainable, log: Logger, stopAccepting?: () => Promise<unknown>): Promise<string> {
    void service.done?.then(() => this.finish(), () => this.finish());
    const sig = await this.stopped;
    await stopAccepting?.();
    if (sig) {
      const live = service.connections;
      // Stop accepting first, then say so: whoever reads the line may rely on it.
      const closing = service.close(DRAIN_MS);
      log.info(`${sig}: stopping${live > 0 ? `, letting ${live} live connection${live === 1 ? "" : "s"} finish (up to ${DRAIN_MS / 1000} s; signal again to stop now)` : ""}`);
      this.onAgain(() => void service.close(0));
      await closing;
    }
    return sig;
  }
}
