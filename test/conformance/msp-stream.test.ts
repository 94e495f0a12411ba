import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { MSP_DEFAULTS } from "../../src/msp/params.ts";
import { byteStreamConformance } from "./byte-stream-suite.ts";

// MSP over the in-memory MDP network, system clock, no loss, zero delay.
byteStreamConformance("MSP stream (in-memory MDP)", {
  // One window in flight, the local high-water mark, and the suite's 8 KiB write that crosses it.
  maxBufferedBytes: MSP_DEFAULTS.window * MSP_DEFAULTS.messageSize + MSP_DEFAULTS.highWaterMark + 8192,
  async make() {
    const net = new MemoryMdpNetwork();
    const client = net.addNode();
    const server = net.addNode();
    const listener = await listenMsp(server, 80);
    const accepted = new Promise<MspStream>((resolve) =>
      listener.on("accept", (s) => {
        s.accept();
        resolve(s);
      }),
    );
    const a = await connectMsp(client, { sid: server.localSid, port: 80 });
    const b = await accepted;
    return { a, b, cleanup: () => net.close() };
  },
});
