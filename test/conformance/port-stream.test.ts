import { PortStream } from "../../src/stream/port-stream.ts";
import type { PortLike } from "../../src/stream/port-stream.ts";
import { byteStreamConformance } from "./byte-stream-suite.ts";

// The two ends of a MessageChannel in one thread behave as across threads (messages are
// cloned and delivered as tasks); svp's event loops use them between threads.
byteStreamConformance("port stream (MessageChannel)", {
  maxBufferedBytes: 64 * 1024 + 8192,
  async make() {
    const { port1, port2 } = new MessageChannel();
    const a = new PortStream(port1 as unknown as PortLike, { highWaterMark: 64 * 1024, label: "port a" });
    const b = new PortStream(port2 as unknown as PortLike, { highWaterMark: 64 * 1024, label: "port b" });
    return { a, b };
  },
});
