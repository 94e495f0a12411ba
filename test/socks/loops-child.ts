/**
 * A proxy with several event loops in a process of its own, for loops.test.ts: the test's
 * clients then compete with nothing in the proxy's threads. Arguments: workers, max-conns.
 * Prints one JSON line per event on stdout: {"address"}, each stream record (with `loop`),
 * {"stopped"} once no loop accepts after SIGTERM, {"closed"} when drained. A fake mesh
 * backend echoes (to the end, then closes) in the main thread.
 */
import { startSocksProxy } from "../../src/platform/socks-proxy.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { memoryPair } from "../../src/stream/memory-pair.ts";

function echoStream(): ByteStream {
  const [a, b] = memoryPair();
  const got: Uint8Array[] = [];
  b.on("data", (c) => got.push(c));
  b.on("end", () => {
    for (const c of got) b.write(c);
    b.closeWrite();
  });
  b.resume();
  return a;
}

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n");

async function main(): Promise<void> {
  const [workers = 2, maxConns = 0] = process.argv.slice(2).map(Number);
  const p = await startSocksProxy({
    listen: [{ kind: "tcp", host: "127.0.0.1", port: 0 }],
    workers,
    maxConns,
    mesh: { dial: () => Promise.resolve(echoStream()) },
  });
  p.server.on("stream", (r) => out(r));
  process.once("SIGTERM", () => {
    void (async () => {
      await p.stopAccepting();
      out({ stopped: true });
      await p.close(10_000);
      out({ closed: true });
      process.exit(0);
    })();
  });
  out({ address: p.addresses[0], loops: p.loops.count, note: p.loops.note });
}

void main();
