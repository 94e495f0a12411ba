/**
 * Keep V8's young generation at its initial size (1 MiB semi-spaces) in svp's long-running
 * processes (the daemon, svp socks, svp listen, svp connect). By default V8 doubles it
 * whenever many objects survive a scavenge, up to 2 × 16 MiB (per event loop); in 30-minute
 * soaks (bench/soak.ts, bench/RESULTS.md "Soak") that was the RSS growth left after warm-up
 * (+35 MB per daemon in steps at minutes 7 and 12; +9 MB for svp socks and +13 MB for svp
 * listen until minute 10), with the JS heap's live size flat and heap snapshots unchanged:
 * no leak, but memory that kept rising long after start. svp's objects are short-lived
 * (a datagram or a chunk is handled in one turn), so a small young generation costs little:
 * frequent but cheap scavenges. Unlike --max-semi-space-size (read only at start-up), the
 * growth factor is read at each growth, so setting it at run time works however svp is
 * started (the single binary, dist/svp.cjs, systemd). The flag is process-wide (worker
 * threads too): only the CLI sets it, never the library. Best effort: a runtime without the
 * flag keeps its default.
 */

import { setFlagsFromString } from "node:v8";

let pinned = false;

export function pinYoungGeneration(): void {
  pinned = true;
  apply();
}

/**
 * Set the pin again if this process asked for it. A worker thread, while it starts, sets
 * V8's flags back to the process's start-up values (seen on Node 20 and 22): `svp socks`
 * with two event loops had 2 × 16 MiB semi-spaces in both isolates, and the RSS that
 * crept up after warm-up in the soaks was those pages becoming resident one by one. Called
 * by src/loops.ts once each worker is serving; nothing happens unless the CLI pinned.
 */
export function restoreYoungGenerationPin(): void {
  if (pinned) apply();
}

function apply(): void {
  try {
    setFlagsFromString("--semi-space-growth-factor=1");
  } catch {
    // not V8, or the flag is gone: the default sizing
  }
}
