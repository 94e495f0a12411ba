import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createIdentity } from "../../src/node/keyring.ts";
import { decodeData, PACKET_TYPE, parseDatagram } from "../../src/node/overlay-packet.ts";
import { FrameSealer } from "../../src/node/frame-sealer.ts";
import { newPeerSession, sessionRecvKey } from "../../src/node/peer-session.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import { E2eKeys, e2eKey } from "../../src/node/e2e-keys.ts";
import { SharedKeyCache } from "../../src/node/shared-key-cache.ts";

const a = createIdentity(nodeCrypto);
const b = createIdentity(nodeCrypto);
const c = createIdentity(nodeCrypto);
const bootA = new Uint8Array(8).fill(1);
const bootB = new Uint8Array(8).fill(2);
const bootC = new Uint8Array(8).fill(3);
const session = (local: typeof a, remote: typeof a, boot: Uint8Array) => newPeerSession(nodeCrypto, boot, local, remote.sid, nodeCrypto.x25519(local.secret, remote.sid)!, "static");

describe("FrameSealer", () => {
  test("a sealed packet opens with the peer's receive key, a wrong counter fails", () => {
    const sealer = new FrameSealer(nodeCrypto, bootA);
    const ab = session(a, b, bootA);
    ab.peerBoot = bootB;
    const ba = session(b, a, bootB);
    const d1 = sealer.sealed(ab, PACKET_TYPE.DATA, sealer.data({ broadcast: false, srcPort: 7, dstPort: 80, payload: Uint8Array.of(1, 2, 3) }));
    const d2 = sealer.sealed(ab, PACKET_TYPE.DATA, sealer.data({ broadcast: false, srcPort: 7, dstPort: 80, payload: Uint8Array.of(4) }));
    const p1 = parseDatagram(d1);
    const p2 = parseDatagram(d2);
    assert.ok(p1.ok && "aad" in p1 && p2.ok && "aad" in p2);
    assert.deepEqual(p1.packet.receiverBoot, bootB);
    assert.deepEqual(p1.packet.senderBoot, bootA);
    assert.equal(p2.packet.counter, p1.packet.counter + 1);
    const opener = new FrameSealer(nodeCrypto, bootB);
    const plain = opener.open(sessionRecvKey(ba, nodeCrypto, bootA), p1.packet.counter, p1.aad, p1.sealed);
    assert.deepEqual(decodeData(plain!)?.payload, Uint8Array.of(1, 2, 3));
    assert.equal(opener.open(sessionRecvKey(ba, nodeCrypto, bootA), p2.packet.counter, p1.aad, p1.sealed), undefined, "wrong counter");
    const reboot = Uint8Array.of(...bootB.map((x) => x + 1));
    const d3 = sealer.sealed(ab, PACKET_TYPE.DATA, sealer.data({ broadcast: false, srcPort: 7, dstPort: 80, payload: Uint8Array.of(5) }), reboot);
    const p3 = parseDatagram(d3);
    assert.ok(p3.ok && "aad" in p3);
    assert.deepEqual(p3.packet.receiverBoot, reboot, "an explicit receiver boot wins");
  });

  test("an end-to-end frame in a FORWARD: the hop tag opens for the neighbour, the inner frame only for the destination", () => {
    const sealer = new FrameSealer(nodeCrypto, bootA);
    const e2eA = new E2eKeys(nodeCrypto, bootA, new SharedKeyCache(nodeCrypto));
    const ab = session(a, b, bootA);
    ab.peerBoot = bootB;
    const key = e2eA.sendKey(a, c.sid)!;
    const d = sealer.e2eForward(a, c.sid, bootC, key, { broadcast: false, srcPort: 1, dstPort: 2, payload: Uint8Array.of(9, 9) });
    sealer.hop(ab, 5, d);
    const outer = parseDatagram(d);
    assert.ok(outer.ok && "aad" in outer);
    assert.equal(outer.packet.type, PACKET_TYPE.FORWARD);
    assert.equal(outer.ttl, 5);
    const ba = session(b, a, bootB);
    const hop = new FrameSealer(nodeCrypto, bootB).open(sessionRecvKey(ba, nodeCrypto, bootA), outer.packet.counter, outer.aad, outer.sealed);
    assert.deepEqual(hop, new Uint8Array(0), "the hop tag authenticates (an empty body)");
    const inner = parseDatagram(outer.inner!);
    assert.ok(inner.ok && "aad" in inner);
    assert.deepEqual(inner.packet.receiver, c.sid);
    const e2eC = new E2eKeys(nodeCrypto, bootC, new SharedKeyCache(nodeCrypto));
    const st = e2eC.create(c, a.sid, bootA, e2eKey(c.sid, a.sid, bootA))!;
    const plain = new FrameSealer(nodeCrypto, bootC).open(st.key, inner.packet.counter, inner.aad, inner.sealed);
    assert.deepEqual(decodeData(plain!)?.payload, Uint8Array.of(9, 9));
    // Relayed by b: the same inner frame, a new hop layer.
    const bc = session(b, c, bootB);
    const relayed = new FrameSealer(nodeCrypto, bootB).forwardOf(outer.inner!);
    new FrameSealer(nodeCrypto, bootB).hop(bc, 4, relayed);
    const r = parseDatagram(relayed);
    assert.ok(r.ok && "aad" in r);
    assert.equal(r.ttl, 4);
    assert.deepEqual(r.inner, outer.inner);
  });
});
