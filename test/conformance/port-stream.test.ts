import { PortStream } from "../../src/stream/port-stream.ts";
import type { PortLike } from "../../src/stream/port-stream.ts";
import { PortMux, isMuxMessage } from "../../src/stream/port-mux.ts";
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

// The same over one shared channel, as svp's workers use it: each stream a `PortMux` port.
byteStreamConformance("port stream (PortMux over one MessageChannel)", {
  maxBufferedBytes: 64 * 1024 + 8192,
  async make() {
    const { port1, port2 } = new MessageChannel();
    const left = new PortMux((m) => port1.postMessage(m));
    const right = new PortMux((m) => port2.postMessage(m));
    (port1 as unknown as PortLike).onmessage = (ev) => void (isMuxMessage(ev.data) && left.deliver(ev.data));
    (port2 as unknown as PortLike).onmessage = (ev) => void (isMuxMessage(ev.data) && right.deliver(ev.data));
    const a = new PortStream(left.open(7), { highWaterMark: 64 * 1024, label: "port a" });
    const b = new PortStream(right.open(7), { highWaterMark: 64 * 1024, label: "port b" });
    // The channel itself outlives the streams: close it once both have closed.
    let open = 2;
    const done = () => {
      if (--open === 0) {
        port1.close();
        port2.close();
      }
    };
    a.once("close", done);
    b.once("close", done);
    return { a, b };
  },
});
