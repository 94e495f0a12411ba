import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bytesKey } from "../../src/node/bytes-key.ts";
import { createIdentity } from "../../src/node/keyring.ts";
import type { LinkQuality } from "../../src/node/link-quality.ts";
import { newPeerSession, type PeerSession, sessionKey } from "../../src/node/peer-session.ts";
import { bestOf, SessionTable } from "../../src/node/session-table.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

const me = createIdentity(nodeCrypto);
const me2 = createIdentity(nodeCrypto);
const boot = new Uint8Array(8).fill(1);
const shared = new Uint8Array(32).fill(5);

function session(remote: Uint8Array, opts: Partial<PeerSession> = {}, local = me): PeerSession {
  return Object.assign(newPeerSession(nodeCrypto, boot, local, remote, shared, "static"), opts);
}
const sid = (n: number) => new Uint8Array(32).fill(n);
const cost = (c: number) => ({ cost: c }) as LinkQuality;
const at = { host: "10.0.0.1", port: 1 };

describe("SessionTable", () => {
  test("admit, look up by pair and by key, forget", () => {
    const t = new SessionTable();
    const s = session(sid(1));
    assert.ok(t.admit(s));
    assert.equal(t.get(me.sid, sid(1)), s);
    assert.equal(t.getByKey(sessionKey(me.sid, sid(1))), s);
    assert.equal(t.get(me2.sid, sid(1)), undefined);
    assert.equal(t.size, 1);
    t.forget(sessionKey(me.sid, sid(1)), s);
    assert.equal(t.size, 0);
    assert.equal([...t.byRemote()].length, 0, "the remote's set goes with its last session");
  });

  test("the best live session to a remote: live, with an address, cheapest link", () => {
    const t = new SessionTable();
    const dead = session(sid(1), { live: false, address: at, quality: cost(1) });
    const noAddress = session(sid(1), { live: true, quality: cost(1) }, me2);
    assert.ok(t.admit(dead) && t.admit(noAddress));
    assert.equal(t.live(bytesKey(sid(1))), undefined);
    const third = createIdentity(nodeCrypto);
    const dear = session(sid(1), { live: true, address: at, quality: cost(900) }, third);
    const cheap = session(sid(1), { live: true, address: at, quality: cost(300) }, createIdentity(nodeCrypto));
    t.admit(dear);
    t.admit(cheap);
    assert.equal(t.live(bytesKey(sid(1))), cheap);
    assert.equal(bestOf([dear]), dear);
    assert.equal(t.live(bytesKey(sid(2))), undefined);
  });

  test("when full, the longest-silent session that is not live makes room; all live: refused", () => {
    const t = new SessionTable(3);
    const a = session(sid(1), { live: false, lastSeen: 50 });
    const b = session(sid(2), { live: false, lastSeen: 10 });
    const c = session(sid(3), { live: true, lastSeen: 0 });
    for (const s of [a, b, c]) assert.ok(t.admit(s));
    assert.ok(t.admit(session(sid(4), { live: true })));
    assert.equal(t.get(me.sid, sid(2)), undefined, "the longest silent went");
    assert.ok(t.get(me.sid, sid(1)) && t.get(me.sid, sid(3)));
    assert.ok(t.admit(session(sid(5), { live: true })));
    assert.equal(t.get(me.sid, sid(1)), undefined);
    assert.equal(t.admit(session(sid(6))), false, "every session is live");
    assert.equal(t.size, 3);
  });
});
