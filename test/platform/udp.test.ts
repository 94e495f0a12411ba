import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { bindUdp } from "../../src/platform/udp.ts";
import { MeshNode } from "../../src/node/mesh-node.ts";
import { addIdentity, createIdentity } from "../../src/node/keyring.ts";
import type { UdpBindRequest } from "../../src/node/node-io.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";

/** Linux's cap on SO_RCVBUF for unprivileged requests; undefined elsewhere. */
function rmemMax(): number | undefined {
  try {
    return Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
  } catch {
    return undefined;
  }
}

describe("bindUdp receive buffer", () => {
  test("the requested receive buffer is granted up to the OS cap and reported", async () => {
    const want = 1024 * 1024;
    const big = await bindUdp({ family: "IPv4", host: "127.0.0.1", port: 0, receiveBufferBytes: want, onMessage: () => {}, onError: () => {} });
    const plain = await bindUdp({ family: "IPv4", host: "127.0.0.1", port: 0, onMessage: () => {}, onError: () => {} });
    try {
      assert.equal(typeof big.receiveBufferBytes, "number", "the granted size is reported");
      const cap = rmemMax();
      if (cap !== undefined) {
        assert.ok(big.receiveBufferBytes! >= Math.min(want, cap), `granted ${big.receiveBufferBytes}, asked ${want}, cap ${cap}`);
        if (cap > plain.receiveBufferBytes!) assert.ok(big.receiveBufferBytes! > plain.receiveBufferBytes!, "larger than the default when the cap allows");
      }
    } finally {
      big.close();
      plain.close();
    }
  });

  test("the mesh node asks for a receive buffer of at least 1 MiB on its overlay sockets", async () => {
    const requests: UdpBindRequest[] = [];
    const node = new MeshNode({
      keyring: addIdentity(undefined, createIdentity(nodeCrypto)),
      crypto: nodeCrypto,
      binder: (req) => (requests.push(req), bindUdp(req)),
      bindHosts: ["127.0.0.1"],
      port: 0,
      info: { pid: 1, version: "t", home: "/x" },
    });
    await node.start();
    node.stop();
    assert.equal(requests.length, 1);
    assert.ok((requests[0]!.receiveBufferBytes ?? 0) >= 1024 * 1024, `asked for ${requests[0]!.receiveBufferBytes}`);
  });
});
