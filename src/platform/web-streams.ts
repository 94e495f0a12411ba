/**
 * A node:stream Duplex (a `MeshStream`, or any other) as a WHATWG pair
 * `{ readable: ReadableStream<Uint8Array>, writable: WritableStream<Uint8Array> }`, for
 * fetch-style code and Deno users. Written here rather than with `Duplex.toWeb` (still
 * experimental in Node 20) so that the half-close and error mapping are svp's:
 *
 * - `readable` pulls: bytes are read from the Duplex only as the consumer asks for them,
 *   so backpressure reaches the mesh peer. It closes at the peer's end-of-stream and errors
 *   with the stream's `SvpError`. Cancelling it destroys the Duplex (a reset).
 * - `writable`: each write waits while the Duplex is full (its `drain`). Closing the
 *   writer half-closes (`end()`: the peer sees end-of-stream, reading goes on); aborting
 *   it resets the stream (`destroy`, ERR_ABORTED).
 */

import type { Duplex } from "node:stream";
import { SvpError, abortError, toSvpError } from "../errors.ts";

export interface WebStreamPair {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}

/** Web Streams over `duplex`; from now on use only the pair (it owns the Duplex). */
export function toWebStreams(duplex: Duplex): WebStreamPair {
  let failure: SvpError | undefined;
  const failed = () => failure ?? new SvpError("ERR_ABORTED", "the stream was closed");
  duplex.on("error", (err) => (failure ??= toSvpError(err)));

  const readable = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        duplex.pause();
        duplex.on("data", (chunk: Uint8Array) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) duplex.pause();
        });
        duplex.once("end", () => controller.close());
        duplex.once("close", () => {
          if (!duplex.readableEnded) {
            try {
              controller.error(failed());
            } catch {
              // already closed or errored
            }
          }
        });
      },
      pull() {
        duplex.resume();
      },
      cancel(reason) {
        duplex.destroy(reason instanceof SvpError ? reason : undefined);
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (duplex.destroyed) return Promise.reject(failed());
      return new Promise<void>((resolve, reject) => {
        const ok = duplex.write(chunk, (err) => (err ? reject(toSvpError(err)) : undefined));
        if (ok) resolve();
        else {
          const done = () => {
            duplex.off("drain", done);
            duplex.off("close", done);
            if (duplex.destroyed && !duplex.writableFinished) reject(failed());
            else resolve();
          };
          duplex.on("drain", done);
          duplex.on("close", done);
        }
      });
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        if (duplex.destroyed) return reject(failed());
        duplex.end(() => resolve());
        duplex.once("error", (err) => reject(toSvpError(err)));
      });
    },
    abort(reason) {
      duplex.destroy(abortError(reason, "the writer"));
    },
  });
  return { readable, writable };
}
