import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { isMeshHost, parseMeshName } from "../../src/mesh/names.ts";
import { sidFromHex, sidToBase32, sidToHex } from "../../src/mesh/sid.ts";
import { isSvpError } from "../../src/errors.ts";

const HEX = "3F2A" + "0123456789ABCDEF".repeat(3) + "001122334455";
const SID = sidFromHex(HEX)!;
const B32 = sidToBase32(SID);

function node(host: string) {
  const m = parseMeshName(host);
  assert.ok(m && m.kind === "node", `${host} should be a node name`);
  return m;
}

describe("mesh names", () => {
  test("fixtures are what they claim", () => {
    assert.equal(HEX.length, 64);
    assert.equal(B32.length, 52);
  });

  test("bare SID in either case", () => {
    assert.equal(sidToHex(node(HEX).sid), HEX);
    assert.equal(sidToHex(node(HEX.toLowerCase()).sid), HEX);
    assert.equal(node(HEX).prefix, "");
  });

  test("<SID>.serval and <base32>.serval, with trailing dot and any case", () => {
    for (const host of [`${HEX}.serval`, `${HEX.toLowerCase()}.SERVAL`, `${B32}.serval`, `${B32.toUpperCase()}.serval.`]) {
      const m = node(host);
      assert.equal(sidToHex(m.sid), HEX, host);
      assert.equal(m.prefix, "", host);
    }
  });

  test("virtual hosts and services left of the SID", () => {
    assert.equal(node(`www.${B32}.serval`).prefix, "www");
    assert.equal(node(`a.b-c.${HEX}.serval`).prefix, "a.b-c");
    assert.equal(node(`Chat.${B32}.serval`).prefix, "chat");
  });

  test("<service>.svc.serval", () => {
    assert.deepEqual(parseMeshName("chat.svc.serval"), { kind: "service", service: "chat" });
    assert.deepEqual(parseMeshName("x.chat.svc.serval."), { kind: "service", service: "x.chat" });
  });

  test("ordinary names and addresses are not mesh names", () => {
    for (const host of ["example.com", "127.0.0.1", "::1", "localhost", "serval.example.org", "servalproject.org", HEX.slice(1), HEX + "0", "g".repeat(64), `${HEX}.com`]) {
      assert.equal(parseMeshName(host), undefined, host);
      assert.equal(isMeshHost(host), false, host);
    }
  });

  test("malformed names under .serval are refused, never passed on", () => {
    for (const host of ["serval", ".serval", "foo.serval", `${HEX.slice(2)}.serval`, `${B32.slice(1)}.serval`, "svc.serval", `bad_label-.${B32}.serval`, `a..${B32}.serval`, `${B32}1.serval`]) {
      assert.throws(() => parseMeshName(host), (e: unknown) => isSvpError(e, "ERR_BAD_ADDRESS") && e.message.includes("not a mesh name"), host);
      assert.equal(isMeshHost(host), true, host);
    }
  });
});
