/**
 * ServaldBindings: bind requests and their answers (exact port over allocation, ERROR meaning
 * "taken" or "unknown identity", timeout), REUSE, release, and which bindings a datagram is for.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError } from "../../src/errors.ts";
import { MDP_FLAG } from "../../src/mdp/header.ts";
import type { MdpHeader } from "../../src/mdp/header.ts";
import type { MdpAddress } from "../../src/mdp/transport.ts";
import { SID_ANY, SID_BROADCAST, sidToHex } from "../../src/mesh/sid.ts";
import type { Sid } from "../../src/mesh/sid.ts";
import { SID_INTERNAL } from "../../src/servald/mdp-command.ts";
import { ServaldBindings } from "../../src/servald/servald-bindings.ts";
import type { Binding, ServaldMdpSocket } from "../../src/servald/servald-mdp-socket.ts";
import { sidOf } from "./fake-servald.ts";

const me = sidOf(0xa1);
const other = sidOf(0xa2);

function setup() {
  const clock = new ManualClock();
  const requests: { sid: Sid; port: number; reuse: boolean }[] = [];
  const released: ServaldMdpSocket[] = [];
  const sent: { b: Binding; to: MdpAddress }[] = [];
  const owner = {
    sendData: (b: Binding, to: MdpAddress) => void sent.push({ b, to }),
    release: (s: ServaldMdpSocket) => {
      released.push(s);
      freed.push(bindings.release(s));
    },
  };
  const freed: boolean[] = [];
  const bindings = new ServaldBindings({
    owner,
    clock,
    requestTimeoutMs: 5000,
    instancePath: "/run/serval",
    requestBind: (sid, port, reuse) => void requests.push({ sid, port, reuse }),
    isIdentity: (sid) => sidToHex(sid) === sidToHex(me) || sidToHex(sid) === sidToHex(other),
  });
  return { clock, requests, released, freed, sent, bindings };
}

const answer = (sid: Sid, port: number, flags: number): MdpHeader => ({ local: { sid, port }, remote: { sid: SID_ANY, port: 0 }, flags, qos: 0, ttl: 0 });

const rejection = async (p: Promise<unknown>): Promise<SvpError> => {
  try {
    await p;
  } catch (err) {
    return err as SvpError;
  }
  throw new Error("expected a rejection");
};

describe("ServaldBindings", () => {
  test("a bind asks the daemon and resolves with a socket on the answered address", async () => {
    const { requests, bindings, sent } = setup();
    const p = bindings.bind(me, 80, false);
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.port, 80);
    assert.equal(requests[0]!.reuse, false);
    assert.ok(bindings.onAnswer(answer(me, 80, MDP_FLAG.BIND)));
    const s = await p;
    assert.deepEqual([sidToHex(s.local.sid), s.local.port], [sidToHex(me), 80]);
    assert.equal(bindings.size, 1);
    s.send({ sid: other, port: 9 }, Uint8Array.of(1));
    assert.equal(sent.length, 1, "sends go through the owner");
  });

  test("port 0 takes the allocated port; an exact match wins over an allocation", async () => {
    const { bindings } = setup();
    const alloc = bindings.bind(me, 0, false);
    const exact = bindings.bind(me, 300, false);
    bindings.onAnswer(answer(me, 300, MDP_FLAG.BIND));
    bindings.onAnswer(answer(me, 257, MDP_FLAG.BIND));
    assert.equal((await exact).local.port, 300);
    assert.equal((await alloc).local.port, 257);
  });

  test("ERROR: taken by another client for an unlocked identity, else the identity is unknown", async () => {
    const { bindings } = setup();
    const taken = bindings.bind(me, 80, false);
    const unknown = bindings.bind(sidOf(0xee), 80, false);
    bindings.onAnswer(answer(me, 80, MDP_FLAG.ERROR));
    bindings.onAnswer(answer(sidOf(0xee), 80, MDP_FLAG.ERROR));
    const e1 = await rejection(taken);
    assert.equal(e1.code, "ERR_NOT_ALLOWED");
    assert.match(e1.message, /already bound by another servald client/);
    const e2 = await rejection(unknown);
    assert.equal(e2.code, "ERR_BAD_ADDRESS");
    assert.match(e2.message, /is not unlocked in servald at \/run\/serval/);
    assert.equal(bindings.onAnswer(answer(me, 81, MDP_FLAG.ERROR)), false, "an ERROR nobody waits for is the owner's to count");
    assert.equal(bindings.onAnswer(answer(me, 81, MDP_FLAG.BIND)), true, "a stray BIND (probe answer) is not an error");
    assert.equal(bindings.size, 0);
  });

  test("no answer within requestTimeoutMs: ERR_MESH_DOWN, and a late answer is ignored", async () => {
    const { clock, bindings } = setup();
    const p = bindings.bind(me, 80, false);
    clock.advance(4999);
    let settled = false;
    p.catch(() => {}).finally(() => (settled = true));
    await Promise.resolve();
    assert.equal(settled, false);
    clock.advance(1);
    const e = await rejection(p);
    assert.equal(e.code, "ERR_MESH_DOWN");
    assert.match(e.message, /did not answer a bind of port 80 within 5000 ms/);
    bindings.onAnswer(answer(me, 80, MDP_FLAG.BIND));
    assert.equal(bindings.size, 0);
  });

  test("bad requests and local conflicts are refused without asking the daemon", async () => {
    const { requests, bindings } = setup();
    assert.equal((await rejection(bindings.bind(me, -1, false))).code, "ERR_BAD_ADDRESS");
    assert.equal((await rejection(bindings.bind(me, 2 ** 32, false))).code, "ERR_BAD_ADDRESS");
    assert.equal((await rejection(bindings.bind(SID_INTERNAL, 5, false))).code, "ERR_BAD_ADDRESS");
    const first = bindings.bind(me, 80, false);
    const pendingConflict = await rejection(bindings.bind(me, 80, false));
    assert.equal(pendingConflict.code, "ERR_NOT_ALLOWED", "a port with a bind on the way is taken");
    bindings.onAnswer(answer(me, 80, MDP_FLAG.BIND));
    await first;
    assert.equal((await rejection(bindings.bind(me, 80, true))).code, "ERR_NOT_ALLOWED", "REUSE needs both sides");
    assert.equal(requests.length, 1);
  });

  test("REUSE: a second socket on the same binding; the port is freed with the last socket", async () => {
    const { requests, bindings, freed } = setup();
    const p = bindings.bind(me, 80, true);
    assert.equal(requests[0]!.reuse, true);
    bindings.onAnswer(answer(me, 80, MDP_FLAG.BIND));
    const a = await p;
    const b = await bindings.bind(me, 80, true);
    assert.equal(requests.length, 1, "attached locally");
    assert.equal(a.binding, b.binding);
    a.close();
    assert.deepEqual(freed, [false]);
    b.close();
    assert.deepEqual(freed, [false, true]);
    assert.equal(bindings.size, 0);
    assert.ok(a.closed && b.closed);
  });

  test("targets: exact binding, else the port on the broadcast SID; a broadcast reaches every binding of the port", async () => {
    const { bindings } = setup();
    const bind = async (sid: Sid, port: number) => {
      const p = bindings.bind(sid, port, false);
      bindings.onAnswer(answer(sid, port, MDP_FLAG.BIND));
      return p;
    };
    const mine = await bind(me, 80);
    const theirs = await bind(other, 80);
    const any = await bind(SID_BROADCAST, 90);
    assert.deepEqual(bindings.targets({ sid: me, port: 80 }), [mine.binding]);
    assert.deepEqual(bindings.targets({ sid: me, port: 90 }), [any.binding]);
    assert.deepEqual(bindings.targets({ sid: me, port: 91 }), []);
    assert.deepEqual(bindings.targets({ sid: SID_BROADCAST, port: 80 }), [mine.binding, theirs.binding]);
  });

  test("failPending and detachAll: waiting binds fail with the reason, bindings are handed over", async () => {
    const { bindings, clock } = setup();
    const done = bindings.bind(me, 80, false);
    bindings.onAnswer(answer(me, 80, MDP_FLAG.BIND));
    const s = await done;
    const waiting = bindings.bind(me, 81, false);
    bindings.failPending(new SvpError("ERR_MESH_DOWN", "gone"));
    assert.equal((await rejection(waiting)).message, "gone");
    assert.deepEqual(bindings.detachAll(), [s.binding]);
    assert.equal(bindings.size, 0);
    clock.advance(10_000); // the cancelled timer does nothing
  });
});
