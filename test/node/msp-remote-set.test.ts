/**
 * MspRemoteSet: which remote ends of a binding the daemon would STOP for a dead client.
 * Classic and extended MSP packets count, other datagrams do not; a clean finish both ways
 * or a STOP removes a stream from the set; silent and excess entries are forgotten.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { encodeMspSequenced, encodeMspStop, MSP_FLAG } from "../../src/msp/packet.ts";
import { MSP_EXT, MSP_OFFER, MSP_SEQ } from "../../src/msp/ext-packet.ts";
import { looksLikeMsp, MAX_REMOTES_PER_BINDING, MSP_RECENT_MS, MspRemoteSet } from "../../src/node/msp-remote-set.ts";

const sid = (n: number) => {
  const s = new Uint8Array(32);
  s[0] = 7;
  s[30] = n >> 8;
  s[31] = n & 0xff;
  return s;
};
const first = Uint8Array.of(MSP_FLAG.FIRST | MSP_FLAG.ACK | MSP_OFFER, 0xff, 0xff);
const data = encodeMspSequenced(MSP_FLAG.ACK, 0, 1, Uint8Array.of(1, 2, 3));
const shutdown = encodeMspSequenced(MSP_FLAG.ACK | MSP_FLAG.SHUTDOWN, 0, 2);
const ext = (flags: number) => {
  const p = new Uint8Array(20);
  p[0] = flags | MSP_EXT | MSP_FLAG.ACK;
  return p;
};

describe("MspRemoteSet", () => {
  test("what looks like MSP: STOP, classic packets (with OFFER), extended packets; not text or runts", () => {
    for (const p of [encodeMspStop(), first, data, shutdown, ext(0), ext(MSP_SEQ | MSP_FLAG.SHUTDOWN)]) assert.equal(looksLikeMsp(p), true, String(p));
    for (const p of [new TextEncoder().encode("http.msp.port=80"), new TextEncoder().encode("http\0"), Uint8Array.of(2), Uint8Array.of(2, 0), Uint8Array.of(MSP_EXT, 0, 0), new Uint8Array(0)]) assert.equal(looksLikeMsp(p), false, String(p));
  });

  test("open streams are listed; a clean finish both ways (classic or extended) or a STOP either way takes one off", () => {
    const set = new MspRemoteSet();
    assert.equal(set.note(sid(1), 80, first, true, 0), 1);
    set.note(sid(1), 80, data, false, 10);
    set.note(sid(2), 80, first, true, 10);
    set.note(sid(3), 80, ext(MSP_SEQ), true, 10);
    assert.equal(set.openAt(20).length, 3);
    set.note(sid(1), 80, shutdown, true, 30);
    assert.equal(set.openAt(40).length, 3, "one way only: still open");
    set.note(sid(1), 80, shutdown, false, 40);
    set.note(sid(3), 80, ext(MSP_SEQ | MSP_FLAG.SHUTDOWN), true, 40);
    set.note(sid(3), 80, ext(MSP_SEQ | MSP_FLAG.SHUTDOWN), false, 40);
    assert.deepEqual(set.openAt(50).map((r) => r.sid[31]), [2], "both finished cleanly: no STOP for them");
    set.note(sid(1), 80, first, true, 60); // the same address pair starts a new connection
    assert.deepEqual(set.openAt(60).map((r) => r.sid[31]).sort(), [1, 2]);
    assert.equal(set.note(sid(2), 80, encodeMspStop(), false, 70), -1, "stopped by the remote");
    assert.deepEqual(set.openAt(70).map((r) => r.sid[31]), [1]);
    assert.equal(set.note(sid(9), 80, new TextEncoder().encode("http.msp.port=80"), true, 70), 0, "not MSP: not noted");
  });

  test("silent remotes are forgotten after MSP_RECENT_MS; at most MAX_REMOTES_PER_BINDING are kept, the least recently used go first", () => {
    const set = new MspRemoteSet();
    for (let i = 0; i < MAX_REMOTES_PER_BINDING + 10; i++) set.note(sid(i), 80, first, true, i);
    assert.equal(set.size, MAX_REMOTES_PER_BINDING);
    set.note(sid(20), 80, data, false, 5000); // used again: moves to the back
    set.note(sid(5000), 80, first, true, 5001);
    assert.ok(set.openAt(5001).some((r) => r.sid[31] === 20), "a recently used one is kept");
    assert.ok(!set.openAt(5001).some((r) => r.sid[30] === 0 && r.sid[31] === 10), "the oldest unused one went");
    assert.equal(set.openAt(5000 + MSP_RECENT_MS + 2).length, 0, "nothing counts as open after 30 s of silence");
    assert.equal(set.note(sid(6000), 80, first, true, 5000 + MSP_RECENT_MS + 2), 1 - MAX_REMOTES_PER_BINDING, "the silent ones are dropped on the next insertion");
    assert.equal(set.size, 1);
  });
});
