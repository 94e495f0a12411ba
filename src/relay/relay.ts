/**
 * The relay: two pumps that copy bytes between two `ByteStream`s until both directions
 * have finished. It sees only the `ByteStream` contract, never TCP or MSP.
 *
 * - Backpressure: a pump pauses its source when the sink's `write()` returns false and
 *   resumes it on `drain`, so a slow reader slows the writer end to end.
 * - Half-close: "peer finished sending" on one leg becomes `closeWrite()` on the other leg;
 *   the opposite direction keeps flowing.
 * - Failure: when one leg closes abnormally, the other is aborted with the same error
 *   (a reset propagates as a reset, never as a clean end).
 * - Timers: an optional idle timeout while both directions are open, and a linger timeout
 *   once one direction has finished (no bytes in the remaining direction for that long).
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { Emitter } from "../emitter.ts";
import { durationText } from "../options.ts";
import { SvpError } from "../errors.ts";
import type { ByteStream } from "../stream/byte-stream.ts";

export interface RelayOptions {
  clock?: Clock;
  /** Abort when no byte moves in either direction for this many ms. 0 = off. Default 0. */
  idleTimeoutMs?: number;
  /**
   * After one direction has finished, abort when the other moves no byte for this many ms.
   * 0 = off. Default 120 s: long uploads after a half-close keep working while they move.
   */
  lingerMs?: number;
}

export interface RelayStats {
  /** Bytes copied from `a` to `b`. */
  aToB: number;
  /** Bytes copied from `b` to `a`. */
  bToA: number;
  /** Milliseconds from start to close. */
  durationMs: number;
  /** Why the relay ended abnormally; absent on a clean finish of both directions. */
  error?: SvpError;
  /** True when that was the relay's own idle or linger timer (not a leg's failure). */
  idleTimeout?: boolean;
}

export type RelayEvents = {
  close: (stats: RelayStats) => void;
};

export class Relay extends Emitter<RelayEvents> {
  readonly a: ByteStream;
  readonly b: ByteStream;
  aToB = 0;
  bToA = 0;
  readonly startedAt: number;
  readonly #clock: Clock;
  readonly #idleMs: number;
  readonly #lingerMs: number;
  #lastActivity: number;
  #timer: Timer | undefined;
  #timerAt = Infinity;
  #directionsDone = 0;
  #idleFired = false;
  #error: SvpError | undefined;
  #closed = false;
  #open = 2;
  #stats: RelayStats | undefined;
  #done: Promise<RelayStats> | undefined;
  #resolve: ((s: RelayStats) => void) | undefined;

  constructor(a: ByteStream, b: ByteStream, options: RelayOptions = {}) {
    super();
    this.a = a;
    this.b = b;
    this.#clock = options.clock ?? systemClock;
    this.#idleMs = options.idleTimeoutMs ?? 0;
    this.#lingerMs = options.lingerMs ?? 120_000;
    this.startedAt = this.#clock.now();
    this.#lastActivity = this.startedAt;
    this.#pump(a, b, true);
    this.#pump(b, a, false);
    // `close` fires once per stream (the ByteStream contract), so plain `on` is enough.
    if (a.closed) this.#onLegClosed(b, undefined);
    else a.on("close", (err) => this.#onLegClosed(b, err));
    if (b.closed) this.#onLegClosed(a, undefined);
    else b.on("close", (err) => this.#onLegClosed(a, err));
    this.#arm();
  }

  /** Resolves with the stats once both legs have closed (created on first use). */
  get done(): Promise<RelayStats> {
    if (!this.#done) {
      const stats = this.#stats;
      this.#done = stats ? Promise.resolve(stats) : new Promise((r) => (this.#resolve = r));
    }
    return this.#done;
  }

  /** Abort both legs (e.g. on shutdown). */
  abort(err: SvpError = new SvpError("ERR_ABORTED")): void {
    this.#error ??= err;
    this.a.abort(err);
    this.b.abort(err);
  }

  #pump(src: ByteStream, dst: ByteStream, forward: boolean): void {
    const onDrain = () => src.resume();
    let refused = false;
    const resetSrc = () => {
      if (!src.closed) src.abort(this.#error ?? new SvpError("ERR_RESET", `${dst.label} is no longer writable`));
    };
    src.on("data", (chunk) => {
      if (!dst.writable) {
        // The sink stopped taking data on its own (a program that exited without reading
        // everything, a reader that went away); nothing may be silently dropped, so the
        // source is reset — but only once the sink has finished (its own output delivered
        // through src first), as a TCP peer's RST follows the data it sent.
        if (refused) return;
        refused = true;
        src.pause();
        if (dst.closed) this.#whenFlushed(src, resetSrc);
        else dst.once("close", () => this.#whenFlushed(src, resetSrc));
        return;
      }
      if (forward) this.aToB += chunk.length;
      else this.bToA += chunk.length;
      this.#lastActivity = this.#clock.now();
      if (!dst.write(chunk)) {
        src.pause();
        dst.once("drain", onDrain);
      }
    });
    src.on("end", () => {
      if (dst.writable) dst.closeWrite();
      this.#directionsDone++;
      this.#lastActivity = this.#clock.now();
      this.#arm();
    });
    src.resume();
  }

  /**
   * Run `fn` once `s` has handed all its queued bytes to its transport (checked every
   * 10 ms: `drain` only follows a `write()` that returned false); the linger timer bounds it.
   */
  #whenFlushed(s: ByteStream, fn: () => void): void {
    if (s.closed) return;
    if (s.writableLength === 0) return fn();
    this.#clock.setTimeout(() => this.#whenFlushed(s, fn), 10);
  }

  #onLegClosed(other: ByteStream, err: SvpError | undefined): void {
    this.#open--;
    if (err) {
      this.#error ??= err;
      if (!other.closed) other.abort(err);
    }
    if (this.#open === 0) this.#finish();
  }

  /** Keep one timer at the current deadline; activity only moves `#lastActivity`. */
  #arm(): void {
    if (this.#closed) return;
    const limit = this.#currentLimit();
    if (limit === 0) {
      this.#timer?.cancel();
      this.#timer = undefined;
      this.#timerAt = Infinity;
      return;
    }
    const at = this.#lastActivity + limit;
    if (this.#timer && this.#timerAt <= at) return;
    this.#timer?.cancel();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#onTimer(), at - this.#clock.now());
  }

  #currentLimit(): number {
    if (this.#directionsDone >= 1 && this.#lingerMs > 0) {
      return this.#idleMs > 0 ? Math.min(this.#idleMs, this.#lingerMs) : this.#lingerMs;
    }
    return this.#idleMs;
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#closed) return;
    const limit = this.#currentLimit();
    if (limit > 0 && this.#clock.now() - this.#lastActivity >= limit) {
      const what = this.#directionsDone >= 1 ? "half-closed stream" : "idle stream";
      this.#idleFired = !this.#error;
      this.abort(new SvpError("ERR_TIMEOUT", `${what}: no data for ${durationText(limit)}`));
      return;
    }
    this.#arm();
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer?.cancel();
    const stats: RelayStats = { aToB: this.aToB, bToA: this.bToA, durationMs: this.#clock.now() - this.startedAt };
    if (this.#error) stats.error = this.#error;
    if (this.#idleFired) stats.idleTimeout = true;
    this.#stats = stats;
    this.emit("close", stats);
    this.#resolve?.(stats);
  }
}

/** Start relaying between `a` and `b`; both are resumed. */
export function relay(a: ByteStream, b: ByteStream, options: RelayOptions = {}): Relay {
  return new Relay(a, b, options);
}
