/**
 * Opening a session on the embedded node probes its daemon once: a real in-process node
 * (loopback only, discovery off) behind a counting relay on its local API socket.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, createServer, type Server } from "node:net";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedNode, queryStatus, type EmbeddedNode } from "../../src/platform/embedded-node.ts";
import { SOCKET_FILE } from "../../src/platform/instance-files.ts";
import { openSession } from "../../src/platform/open-session.ts";
import { sidEquals } from "../../src/mesh/sid.ts";

let root: string;
let node: EmbeddedNode;
let relay: Server;
let connections = 0;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "svp-os-"));
  const home = join(root, "home");
  node = await startEmbeddedNode({ home, port: 0, discovery: false, bind: ["127.0.0.1"] });
  // The node's own socket moves aside; a relay in its place counts the clients that connect.
  const real = join(home, "real.sock");
  renameSync(join(home, SOCKET_FILE), real);
  relay = createServer({ allowHalfOpen: true }, (client) => {
    connections++;
    const upstream = createConnection({ path: real, allowHalfOpen: true });
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve, reject) => relay.once("error", reject).listen(join(home, SOCKET_FILE), () => resolve()));
});

after(async () => {
  await new Promise<void>((resolve) => relay.close(() => resolve()));
  await node.stop();
  rmSync(root, { recursive: true, force: true });
});

test("openSession on a running embedded node: one probe and the session's own connection, no second probe", async () => {
  connections = 0;
  const session = await openSession({ mesh: "embedded", home: node.home, autostart: false, name: "probe count" });
  try {
    assert.equal(session.backend, "embedded");
    assert.ok(sidEquals(session.transport.localSid, node.sid), "the session is on this node");
    assert.match(session.description, /^embedded node \(pid \d+, .*home\)$/);
    assert.equal(connections, 2, "one probe (ensureDaemon) + the session's connection");
  } finally {
    session.close();
  }
});

test("queryStatus: one probe and the status connection", async () => {
  connections = 0;
  const report = await queryStatus(node.home);
  assert.ok(report, "a status report");
  assert.equal(connections, 2, "one probe (daemonState) + the status connection");
});
