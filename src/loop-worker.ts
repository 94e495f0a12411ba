/**
 * Entry of a worker thread started by src/loops.ts when svp runs from its TypeScript
 * sources (tsx, Deno). The bundle and the single binary start their own entry instead
 * (cli/bin.ts, on LOOP_WORKER_ARG).
 */
import { runLoopWorker } from "./loops.ts";

runLoopWorker();
