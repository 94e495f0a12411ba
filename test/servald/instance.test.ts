/** Instance discovery, socket names and route records: pure functions, no addon needed. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CLIENT_SOCKET_SLOTS,
  SERVALD_DEFAULT_RUN_PATHS,
  clientSocketName,
  localSocketAddress,
  mdpSocketAddress,
  resolveInstances,
} from "../../src/servald/instance.ts";
import { REACHABLE, decodeRouteRecord } from "../../src/servald/route-record.ts";
import { SvpError } from "../../src/errors.ts";
import { routeRecord, sidOf } from "./fake-servald.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("servald instance discovery", () => {
  test("option, then SERVALINSTANCE_PATH, then servald's default run directories", () => {
    assert.deepEqual(resolveInstances({ instance: "/srv/a", env: { SERVALINSTANCE_PATH: "/srv/b" } }), [{ path: "/srv/a", source: "option" }]);
    assert.deepEqual(resolveInstances({ env: { SERVALINSTANCE_PATH: "/srv/b" } }), [{ path: "/srv/b", source: "env" }]);
    const defaults = resolveInstances({ env: { SERVALINSTANCE_PATH: "" } });
    assert.deepEqual(defaults.map((i) => i.path), [...SERVALD_DEFAULT_RUN_PATHS]);
    assert.equal(defaults[0]!.path, "/usr/local/var/run/serval", "LOCALSTATEDIR/run/serval of a default ./configure");
    assert.ok(defaults.every((i) => i.source === "default"));
  });

  test("paths must be absolute, NUL-free and fit a unix socket name", () => {
    const usage = (f: () => unknown, re: RegExp) =>
      assert.throws(f, (e: unknown) => e instanceof SvpError && e.code === "ERR_USAGE" && re.test(e.message));
    usage(() => resolveInstances({ instance: "var/serval" }), /--servald-instance must be an absolute path/);
    usage(() => resolveInstances({ env: { SERVALINSTANCE_PATH: "./x" } }), /SERVALINSTANCE_PATH must be an absolute path/);
    usage(() => resolveInstances({ instance: "/a\0b" }), /NUL/);
    // 107 bytes for the longest name svp binds there: "/svp.63.socket" is 14 bytes.
    const longest = "/" + "d".repeat(107 - 14 - 1);
    assert.equal(resolveInstances({ instance: longest })[0]!.path, longest);
    usage(() => resolveInstances({ instance: longest + "d" }), /too long for a unix socket name/);
    assert.equal(clientSocketName(CLIENT_SOCKET_SLOTS - 1), "svp.63.socket");
  });

  test("abstract names: leading NUL instead of '/', no trailing NUL, servald's path join", () => {
    const a = mdpSocketAddress("/tmp/sd/A/servald");
    assert.equal(a[0], 0);
    assert.equal(text(a.subarray(1)), "tmp/sd/A/servald/mdp.2.socket");
    assert.equal(a.length, "/tmp/sd/A/servald/mdp.2.socket".length);
    assert.deepEqual(mdpSocketAddress("/tmp/sd/A/servald/"), a, "a trailing slash is not doubled");
    assert.equal(text(mdpSocketAddress("/tmp//x")), "\0tmp//x/mdp.2.socket", "no other normalisation: servald uses the string as given");
    assert.equal(text(localSocketAddress("/run/serval", "svp.0.socket", false)), "/run/serval/svp.0.socket");
  });
});

describe("servald route records", () => {
  test("direct, indirect, unreachable and signing-key records", () => {
    const direct = decodeRouteRecord(routeRecord(sidOf(1), REACHABLE.BROADCAST | REACHABLE.UNICAST))!;
    assert.deepEqual(direct.sid, sidOf(1));
    assert.equal(direct.reachable, 6);
    assert.equal(direct.hopCount, 1);
    assert.equal(direct.interfaceName, "dummy1");
    const indirect = decodeRouteRecord(routeRecord(sidOf(2), REACHABLE.INDIRECT, sidOf(1)))!;
    assert.equal(indirect.hopCount, 2);
    assert.deepEqual(indirect.nextHop, sidOf(1));
    const three = Uint8Array.from([...sidOf(3), 0, REACHABLE.INDIRECT, 3, ...sidOf(4), ...sidOf(5)]);
    assert.deepEqual(decodeRouteRecord(three)!.priorHop, sidOf(5));
    assert.deepEqual(decodeRouteRecord(routeRecord(sidOf(6), REACHABLE.NONE)), { sid: sidOf(6), reachable: 0 });
    const withKey = Uint8Array.from([...sidOf(7), 1, ...new Uint8Array(32).fill(9), REACHABLE.SELF]);
    assert.deepEqual(decodeRouteRecord(withKey), { sid: sidOf(7), reachable: 1 });
  });

  test("every truncation of a record is rejected, never thrown", () => {
    for (const full of [routeRecord(sidOf(1), REACHABLE.UNICAST), routeRecord(sidOf(2), REACHABLE.INDIRECT, sidOf(1))]) {
      for (let n = 0; n < full.length; n++) {
        const r = decodeRouteRecord(full.subarray(0, n));
        // Cutting right after the reachable byte leaves a valid short record; anything else is malformed.
        if (n === 34) assert.equal(r?.reachable, full[33]);
        else assert.equal(r, undefined, `length ${n}`);
      }
    }
  });
});
