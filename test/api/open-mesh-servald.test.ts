/**
 * `openMesh()` on the servald backend against the fake daemon (test/servald/fake-servald.ts):
 * what `status()` says about the instance. The real daemon: test/interop/open-mesh.test.ts.
 * Skipped where the native addon is not built.
 */

import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { openMesh } from "../../src/index.ts";
import type { Mesh } from "../../src/index.ts";
import { unixDatagramSupport } from "../../src/platform/unix-dgram.ts";
import { sidToHex } from "../../src/mesh/sid.ts";
import { FakeServald } from "../servald/fake-servald.ts";
import { within } from "../helpers/wait.ts";

const support = unixDatagramSupport();
const skip = support.available ? false : `native addon unavailable: ${support.reason}`;
/** Abstract socket names only: nothing is created on disk. */
const instancePath = (tag: string) => `/svp-api-${process.pid}-${Date.now().toString(36)}-${tag}/servald`;

describe("openMesh() on a (fake) servald", { skip }, () => {
  const cleanup: (() => unknown)[] = [];
  const savedInstance = process.env.SERVALINSTANCE_PATH;
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
    if (savedInstance === undefined) delete process.env.SERVALINSTANCE_PATH;
    else process.env.SERVALINSTANCE_PATH = savedInstance;
  });
  const daemon = (tag: string) => {
    const d = new FakeServald(instancePath(tag));
    cleanup.push(() => d.close());
    return d;
  };
  const open = async (options: Parameters<typeof openMesh>[0]) => {
    const m: Mesh = await within(openMesh(options), 5000, "openMesh");
    cleanup.push(() => m.close());
    return m;
  };

  test("status() reports the session's instance and where it came from (option, or SERVALINSTANCE_PATH)", async () => {
    const byOption = daemon("option");
    const m1 = await open({ mesh: "servald", servaldInstance: byOption.instance });
    assert.equal(m1.backend, "servald");
    assert.equal(m1.sid, sidToHex(byOption.primary));
    const r1 = await within(m1.status(), 5000, "status()");
    assert.equal(r1.servald?.instance, byOption.instance);
    assert.equal(r1.servald?.instanceSource, "option");

    const byEnv = daemon("env");
    process.env.SERVALINSTANCE_PATH = byEnv.instance;
    const m2 = await open({ mesh: "servald" });
    assert.equal(m2.sid, sidToHex(byEnv.primary));
    const r2 = await within(m2.status(), 5000, "status()");
    assert.equal(r2.servald?.instance, byEnv.instance);
    assert.equal(r2.servald?.instanceSource, "env", "the session found servald through SERVALINSTANCE_PATH");
  });
});
