import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createIdentity } from "../../src/node/keyring.ts";
import { MAX_MDP_MTU, OVERLAY_MDP_MTU } from "../../src/node/overlay-packet.ts";
import { MAX_RETIRED_BOOTS, newPeerSession, ownLinkMtu, retirePeerBoot, sessionLinkMtu, sessionOwnMtu, sessionRecvKey } from "../../src/node/peer-session.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

const a = createIdentity(nodeCrypto);
const b = createIdentity(nodeCrypto);
const bootA = new Uint8Array(8).fill(1);
const bootB = new Uint8Array(8).fill(2);

function pair() {
  const sa = newPeerSession(nodeCrypto, bootA, a, b.sid, nodeCrypto.x25519(a.secret, b.sid)!, "static");
  const sb = newPeerSession(nodeCrypto, bootB, b, a.sid, nodeCrypto.x25519(b.secret, a.sid)!, "incoming");
  return { sa, sb };
}

describe("peer session", () => {
  test("a new session is not live; its send key is the key the peer receives with for our boot, and only for it", () => {
    const { sa, sb } = pair();
    assert.equal(sa.live, false);
    assert.equal(sa.source, "static");
    assert.deepEqual(sessionRecvKey(sb, nodeCrypto, bootA), sa.sendKey);
    assert.deepEqual(sessionRecvKey(sa, nodeCrypto, bootB), sb.sendKey);
    assert.notDeepEqual(sessionRecvKey(sb, nodeCrypto, new Uint8Array(8).fill(9)), sa.sendKey, "another boot, another key");
    assert.equal(sessionRecvKey(sb, nodeCrypto, bootA), sessionRecvKey(sb, nodeCrypto, bootA), "derived once");
    for (let i = 0; i < 10; i++) sessionRecvKey(sb, nodeCrypto, new Uint8Array(8).fill(20 + i));
    assert.ok(sb.recvKeys.size <= 4, "a few receive keys are kept");
  });

  test("retired boots: the current one moves there, at most MAX_RETIRED_BOOTS kept", () => {
    const { sa } = pair();
    retirePeerBoot(sa);
    assert.equal(sa.retiredBoots.length, 0, "no boot yet, nothing to retire");
    for (let i = 0; i < MAX_RETIRED_BOOTS + 3; i++) {
      sa.peerBoot = new Uint8Array(8).fill(i);
      retirePeerBoot(sa);
    }
    assert.equal(sa.retiredBoots.length, MAX_RETIRED_BOOTS);
  });

  test("link MTU: loopback carries the largest, others the configured figure; the peer's own figure caps it", () => {
    assert.equal(ownLinkMtu("127.0.0.1", undefined), MAX_MDP_MTU);
    assert.equal(ownLinkMtu("10.0.0.1", undefined), OVERLAY_MDP_MTU);
    assert.equal(ownLinkMtu("10.0.0.1", 1400), Math.min(1400, MAX_MDP_MTU));
    assert.equal(ownLinkMtu(undefined, 999_999), MAX_MDP_MTU, "configured figures are capped");
    const { sa } = pair();
    sa.address = { host: "127.0.0.1", port: 1 };
    assert.equal(sessionLinkMtu(sa, undefined), MAX_MDP_MTU);
    sa.peerMtu = 2000;
    assert.equal(sessionLinkMtu(sa, undefined), 2000);
    assert.equal(sessionOwnMtu(sa, undefined), MAX_MDP_MTU, "our own figure is not capped by the peer's");
    sa.address = { host: "10.0.0.1", port: 1 };
    assert.equal(sessionLinkMtu(sa, undefined), Math.min(OVERLAY_MDP_MTU, 2000), "recomputed when the address moves");
  });
});
