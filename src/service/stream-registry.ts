/**
 * The live MSP streams of this process (connect, listen, socks), for `svp status`: the
 * embedded node shows what each client reports (src/node/embedded-transport.ts
 * `setStreamStatsProvider`). Streams leave the registry when they close.
 */

import type { Clock } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { sidToHex } from "../mesh/sid.ts";
import type { MspStream, MspStreamStats } from "../msp/msp-stream.ts";
import type { MspTelemetry, StreamStat } from "../status/status-report.ts";

export class StreamRegistry {
  readonly #streams = new Set<MspStream>();
  readonly #clock: Clock;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  /** Track `stream` until it closes. */
  add(stream: MspStream): void {
    if (stream.closed) return;
    this.#streams.add(stream);
    stream.once("close", () => this.#streams.delete(stream));
  }

  get size(): number {
    return this.#streams.size;
  }

  /** One entry per live stream, in the status document's format. */
  stats(): StreamStat[] {
    const now = this.#clock.now();
    const out: StreamStat[] = [];
    for (const s of this.#streams) {
      const st = s.stats;
      out.push({
        localSid: sidToHex(st.local.sid),
        localPort: st.local.port,
        remoteSid: sidToHex(st.remote.sid),
        remotePort: st.remote.port,
        state: st.state,
        bytesIn: st.bytesIn,
        bytesOut: st.bytesOut,
        ageMs: Math.max(0, Math.round(now - st.startedAt)),
        msp: mspTelemetry(st),
      });
    }
    return out;
  }
}

/** The status document's telemetry for one stream (RTTs rounded to 0.1 ms). */
export function mspTelemetry(st: MspStreamStats): MspTelemetry {
  const t = st.transport;
  const r = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
  return {
    extension: st.extension,
    messageSize: t.messageSize,
    packetsInFlight: t.packetsInFlight,
    bytesInFlight: t.bytesInFlight,
    cwnd: t.cwnd,
    srttMs: r(t.srttMs),
    rttvarMs: r(t.rttvarMs),
    retransmissions: st.retransmissions,
    losses: st.losses,
    probes: st.probes,
  };
}
