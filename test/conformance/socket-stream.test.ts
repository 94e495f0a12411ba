import { connectTcp, connectUnix, listen } from "../../src/platform/net.ts";
import type { ByteStream } from "../../src/stream/byte-stream.ts";
import { byteStreamConformance } from "./byte-stream-suite.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// Kernel socket buffers on loopback can hold a few MiB before write() reports backpressure.
const KERNEL_BUFFERS = 64 * 1024 * 1024;

byteStreamConformance("TCP socket (loopback)", {
  maxBufferedBytes: KERNEL_BUFFERS,
  async make() {
    let accepted!: (s: ByteStream) => void;
    const server = new Promise<ByteStream>((r) => (accepted = r));
    const listener = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => accepted(s));
    const a = await connectTcp("127.0.0.1", listener.port);
    const b = await server;
    return { a, b, cleanup: () => listener.close() };
  },
});

byteStreamConformance("unix stream socket", {
  maxBufferedBytes: KERNEL_BUFFERS,
  resetVisible: false,
  async make() {
    const dir = mkdtempSync(join(tmpdir(), "svp-conf-"));
    const path = join(dir, "s.sock");
    let accepted!: (s: ByteStream) => void;
    const server = new Promise<ByteStream>((r) => (accepted = r));
    const listener = await listen({ kind: "unix", path }, (s) => accepted(s));
    const a = await connectUnix(path);
    const b = await server;
    return {
      a,
      b,
      cleanup: async () => {
        await listener.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
