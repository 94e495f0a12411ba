import { memoryPair } from "../../src/stream/memory-pair.ts";
import { byteStreamConformance } from "./byte-stream-suite.ts";

byteStreamConformance("memory pair", {
  maxBufferedBytes: 64 * 1024 + 8192,
  async make() {
    const [a, b] = memoryPair();
    return { a, b };
  },
});
