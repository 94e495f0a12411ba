/**
 * For young-generation.test.ts, in a process of its own (V8's flags are process-wide):
 * optionally pin the young generation as the CLI does, start a SOCKS proxy with two event
 * loops (one worker thread), then allocate objects that survive scavenges, which makes V8
 * grow an unpinned young generation to its maximum. Prints {"loops", "beforeMiB", "newSpaceMiB"}:
 * the young generation's size once the proxy runs, and after the load.
 */
import { getHeapSpaceStatistics } from "node:v8";
import { startSocksProxy } from "../../src/platform/socks-proxy.ts";
import { pinYoungGeneration } from "../../src/platform/young-generation.ts";

async function main(): Promise<void> {
  if (process.argv[2] === "pin") pinYoungGeneration();
  const p = await startSocksProxy({ listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }], workers: 2 });
  const before = newSpaceMiB();
  const keep: unknown[] = [];
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 20_000; i++) keep.push({ a: i, b: [i] });
    if (keep.length > 100_000) keep.splice(0, 50_000);
    await new Promise((resolve) => setImmediate(resolve));
  }
  process.stdout.write(JSON.stringify({ loops: p.loops.count, beforeMiB: before, newSpaceMiB: newSpaceMiB() }) + "\n");
  await p.close(1000);
  process.exit(0);
}

function newSpaceMiB(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
  return (space?.space_size ?? NaN) / 1048576;
}

void main();
