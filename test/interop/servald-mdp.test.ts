/**
 * The servald MDP transport against real daemons (SVP_SERVALD): two linked instances A and
 * B. Binding, the ERROR answer, release, datagrams between svp clients on different
 * instances, servald's echo service, identities and routes, and the daemon going away.
 */

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { openUnixDatagram } from "../../src/platform/unix-dgram.ts";
import { connectServald, probeServald } from "../../src/servald/connect-servald.ts";
import { servaldPayloadLimit } from "../../src/servald/servald-payload-limit.ts";
import type { ServaldTransport } from "../../src/servald/servald-transport.ts";
import { parseSid, sidToHex } from "../../src/mesh/sid.ts";
import type { Sid } from "../../src/mesh/sid.ts";
import type { MdpAddress, MdpSocket } from "../../src/mdp/transport.ts";
import { SvpError } from "../../src/errors.ts";
import { ServaldMesh, SKIP_REASON } from "./servald-harness.ts";
import type { ServaldNode } from "./servald-harness.ts";
import { within } from "../helpers/wait.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function nextMessage(s: MdpSocket, what: string, ms = 5000): Promise<{ payload: Uint8Array; from: MdpAddress; to: MdpAddress }> {
  return within(new Promise((resolve) => s.once("message", (payload, from, to) => resolve({ payload: payload.slice(), from, to }))), ms, what);
}

describe("servald MDP interop", { skip: SKIP_REASON }, () => {
  let mesh: ServaldMesh;
  let A: ServaldNode;
  let B: ServaldNode;
  let sidA: Sid;
  let sidB: Sid;
  const transports: ServaldTransport[] = [];
  const connect = async (node: ServaldNode) => {
    const t = await connectServald({ openSocket: openUnixDatagram, instance: node.instance });
    transports.push(t);
    return t;
  };

  before(async () => {
    mesh = await ServaldMesh.start(2);
    [A, B] = mesh.nodes as [ServaldNode, ServaldNode];
    sidA = parseSid(A.sid)!;
    sidB = parseSid(B.sid)!;
  });
  after(async () => {
    for (const t of transports) t.close();
    await mesh?.stop();
  });

  test("identity and routes as servald sees them", async () => {
    const a = await connect(A);
    assert.equal(sidToHex(a.localSid), A.sid);
    assert.equal(sidToHex(a.primarySid), A.sid);
    const keyring = (await mesh.servald(A, ["keyring", "list"])).stdout;
    for (const id of a.identities) assert.ok(keyring.includes(sidToHex(id)), `${sidToHex(id)} in keyring list`);
    assert.deepEqual(a.peers().map(sidToHex), [B.sid]);
    assert.equal(a.reachability(sidB), "reachable");
    assert.equal(a.reachability(parseSid("AB".repeat(32))!), "unreachable");
    const probe = await probeServald({ openSocket: openUnixDatagram, instance: B.instance });
    assert.ok(probe.running);
    assert.equal(sidToHex(probe.primarySid), B.sid);
  });

  test("bind, the ERROR answer for a port another client holds, release, rebind", async () => {
    const b1 = await connect(B);
    const b2 = await connect(B);
    const s = await b1.bind(4100);
    assert.equal(sidToHex(s.local.sid), B.sid);
    assert.equal(s.local.port, 4100);
    await assert.rejects(b2.bind(4100), (e: SvpError) => e.code === "ERR_NOT_ALLOWED" && /already bound by another servald client/.test(e.message));
    await assert.rejects(b1.bind(4101, { sid: parseSid("CD".repeat(32))! }), (e: SvpError) => e.code === "ERR_BAD_ADDRESS" && /not unlocked/.test(e.message));
    const allocated = await b1.bind(0);
    assert.ok(allocated.local.port >= 256, `allocated ${allocated.local.port}`);
    s.close();
    // servald processes requests in order: the CLOSE is done before b2's BIND.
    const again = await b2.bind(4100);
    assert.equal(again.local.port, 4100);
    again.close();
    allocated.close();
  });

  test("a datagram to a port bound by another svp client on the other instance, and back", async () => {
    const a = await connect(A);
    const b = await connect(B);
    const server = await b.bind(4200);
    const client = await a.bind(0);
    const got = nextMessage(server, "the ping at B");
    client.send({ sid: sidB, port: 4200 }, enc.encode("ping over the mesh"));
    const m = await got;
    assert.equal(dec.decode(m.payload), "ping over the mesh");
    assert.equal(sidToHex(m.from.sid), A.sid);
    assert.equal(m.from.port, client.local.port);
    assert.equal(sidToHex(m.to.sid), B.sid);
    assert.equal(m.to.port, 4200);
    const back = nextMessage(client, "the MTU-size answer at A");
    // The largest payload svp sends between these ports arrives intact; one more byte is
    // refused before it reaches servald (which would stall or abort on such frames).
    const limit = servaldPayloadLimit(m.from.port, 4200);
    assert.ok(limit >= b.mtu);
    const big = new Uint8Array(limit).map((_, i) => i & 0xff);
    server.send(m.from, big);
    assert.deepEqual((await back).payload, big, "a limit-size datagram arrives intact");
    assert.throws(() => server.send(m.from, new Uint8Array(limit + 1)), (e: SvpError) => e.code === "ERR_LIMIT");
    const after = nextMessage(client, "a datagram after the limit-size one");
    server.send(m.from, enc.encode("still alive"));
    assert.equal(dec.decode((await after).payload), "still alive");
    server.close();
    client.close();
  });

  test("servald's own echo service (port 7) answers svp", async () => {
    const a = await connect(A);
    const s = await a.bind(0);
    const got = nextMessage(s, "the echo");
    s.send({ sid: sidB, port: 7 }, enc.encode("echo me"), { qos: 1 });
    const m = await got;
    assert.equal(dec.decode(m.payload), "echo me");
    assert.equal(sidToHex(m.from.sid), B.sid);
    assert.equal(m.from.port, 7);
    s.close();
  });

  test("stopping the daemon closes every socket with ERR_MESH_DOWN", async () => {
    // A third instance of its own, so the other tests keep theirs.
    const c = await connectServald({ openSocket: openUnixDatagram, instance: B.instance, probeIntervalMs: 200, deadAfterMs: 3000 });
    transports.push(c);
    const sockets = [await c.bind(4300), await c.bind(0)];
    const closed = sockets.map((s) => new Promise<SvpError | undefined>((r) => s.once("close", r)));
    const down = new Promise<SvpError>((r) => c.on("down", r));
    await mesh.stopNode(B);
    const err = await within(down, 5000, "transport down");
    assert.equal(err.code, "ERR_MESH_DOWN");
    assert.match(err.message, new RegExp(`servald at ${B.instance} went away`));
    for (const p of closed) assert.equal((await within(p, 1000, "socket closed"))?.code, "ERR_MESH_DOWN");
    await assert.rejects(c.bind(1), (e: SvpError) => e.code === "ERR_MESH_DOWN");
    await assert.rejects(connectServald({ openSocket: openUnixDatagram, instance: B.instance }), (e: SvpError) => e.code === "ERR_MESH_DOWN" && /no servald answers/.test(e.message));
  });
});
