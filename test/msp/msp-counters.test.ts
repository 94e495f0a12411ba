/** MSP counters (src/msp/msp-counters.ts): a fresh set is zero, drops count by reason. */

import { test } from "node:test";
import assert from "node:assert/strict";
import { countDrop, newMspCounters } from "../../src/msp/msp-counters.ts";

test("MSP counters start at zero and count drops per reason", () => {
  const a = newMspCounters();
  const b = newMspCounters();
  assert.equal(a.rttMs, null);
  assert.equal(a.bytesIn + a.bytesOut + a.packetsIn + a.packetsOut + a.retransmissions + a.losses + a.spuriousLosses + a.probes, 0);
  countDrop(a, "duplicate");
  countDrop(a, "duplicate");
  countDrop(a, "bad-ack");
  assert.deepEqual(a.drops, { duplicate: 2, "bad-ack": 1 });
  assert.deepEqual(b.drops, {}, "each set is its own");
});
