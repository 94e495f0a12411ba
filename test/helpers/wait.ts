/** Small async helpers for tests. Every wait is bounded so a broken feature fails, never hangs. */

import type { ByteStream } from "../../src/stream/byte-stream.ts";
import type { SvpError } from "../../src/errors.ts";
import { isSvpError } from "../../src/errors.ts";
import { concatBytes } from "../../src/bytes/concat.ts";
import { createConnection } from "node:net";

/** Reject if `p` has not settled within `ms` (real time). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The `SvpError` that `p` rejects with, within `ms`; fails if it resolves or rejects with something else. */
export function rejection(p: Promise<unknown>, ms: number): Promise<SvpError> {
  return within(
    p.then(
      () => {
        throw new Error("expected a rejection");
      },
      (err: unknown) => {
        if (!isSvpError(err)) throw new Error(`expected an SvpError, got ${String(err)}`);
        return err;
      },
    ),
    ms,
    "a rejection",
  );
}

/** A TCP client of `address` ("host:port"): send `text`, half-close, read the answer to its end. */
export function tcpRoundTrip(address: string, text: string): Promise<string> {
  const i = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: address.slice(0, i), port: Number(address.slice(i + 1)), allowHalfOpen: true });
    let got = "";
    s.setEncoding("utf8");
    s.on("data", (c: string) => (got += c));
    s.on("end", () => {
      s.end();
      resolve(got);
    });
    s.on("error", reject);
    s.end(text);
  });
}

/** Resolve on the next `event` of `s`. */
export function once<T extends unknown[]>(s: { once(e: string, fn: (...a: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => s.once(event, (...args: T) => resolve(args)));
}

/** Collect everything a stream delivers until `end`; resumes it. */
export function readAll(s: ByteStream): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    s.on("data", (c) => chunks.push(c.slice()));
    s.once("end", () => resolve(concat(chunks)));
    s.once("close", (err?: SvpError) => {
      if (err) reject(err);
    });
    s.resume();
  });
}

/** Resolve with the close error (or undefined) of `s`. */
export function closed(s: ByteStream): Promise<SvpError | undefined> {
  if (s.closed) return Promise.resolve(undefined);
  return new Promise((resolve) => s.once("close", (err) => resolve(err)));
}

export const concat = concatBytes;

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export function patternBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Write `data` in `chunkSize` pieces honouring backpressure, then optionally closeWrite. */
export async function writeAll(s: ByteStream, data: Uint8Array, chunkSize = 16 * 1024, end = true): Promise<void> {
  for (let o = 0; o < data.length; o += chunkSize) {
    if (!s.write(data.subarray(o, o + chunkSize))) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          s.off("close", onClose);
          resolve();
        };
        const onClose = (err?: SvpError) => {
          s.off("drain", onDrain);
          reject(err ?? new Error("closed while waiting for drain"));
        };
        s.once("drain", onDrain);
        s.once("close", onClose);
      });
    }
  }
  if (end) s.closeWrite();
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
