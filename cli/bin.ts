/**
 * Entry of the bundle (dist/svp.cjs) and so of the single binary dist/svp. `svp --version`
 * answers here, before the rest of svp is loaded: it is the binary's start-up time, and
 * loading the command modules (node:net, node:stream, node:crypto…) costs more than Node's
 * own start. Everything else loads cli/main.ts and runs its main().
 *
 * It calls main() itself rather than leaving that to main.ts: main.ts runs itself only when
 * it is the entry file, so `node --import tsx cli/bin.ts id` (or `deno run -A cli/bin.ts
 * status`) used to load it, run nothing and exit 0.
 */

import { writeSync } from "node:fs";
import { VERSION_LINE } from "./version.ts";

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
  // A synchronous write: process.stdout would load the stream machinery this path avoids.
  writeSync(1, VERSION_LINE);
} else if (args[0] === "--svp-loop-worker") {
  // A worker thread of `svp socks` / `svp connect --forward` (src/platform/loops.ts LOOP_WORKER_ARG).
  void import("../src/index.ts").then((m) => m.runLoopWorker());
} else {
  // One timer turn first: Deno 2.9 never calls signal listeners (SIGTERM, SIGINT) that were
  // added by a promise job run before this bundled CommonJS entry finished loading, so
  // `svp socks` under `deno run dist/svp.cjs` would die on SIGTERM instead of stopping.
  setTimeout(() => {
    import("./main.ts")
      .then((m) => m.main(args))
      .then(
        (code) => {
          process.exitCode = code;
        },
        (err: unknown) => {
          process.stderr.write(`svp: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exitCode = 1;
        },
      );
  }, 0);
}
