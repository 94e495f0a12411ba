import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CookieJar, MAX_COOKIES } from "../../src/node/cookie-jar.ts";
import { COOKIE_USE_MS } from "../../src/node/flood-guard.ts";
import { decodeCookieEcho, encodeProbe } from "../../src/node/overlay-packet.ts";
import { RESYNC_MIN_INTERVAL_MS } from "../../src/node/peer-session.ts";

const a = { host: "10.0.0.1", port: 4110 };
const b = { host: "10.0.0.2", port: 4110 };
const probe = encodeProbe(new Uint8Array(32).fill(3), new Uint8Array(8).fill(4));

describe("CookieJar", () => {
  test("a stored cookie wraps handshakes to that address only, until COOKIE_USE_MS", () => {
    const jar = new CookieJar();
    assert.equal(jar.wrap(probe, a, 0), probe, "nothing held: as is");
    const cookie = new Uint8Array(16).fill(9);
    assert.equal(jar.store(a, cookie, 1000), true);
    cookie.fill(0); // the jar keeps its own copy
    const w = decodeCookieEcho(jar.wrap(probe, a, 2000));
    assert.ok(w.ok);
    assert.deepEqual([...w.cookie], new Array(16).fill(9));
    assert.deepEqual(w.inner, probe);
    assert.equal(jar.wrap(probe, b, 2000), probe, "another address: as is");
    assert.equal(jar.wrap(probe, a, 1000 + COOKIE_USE_MS), probe, "expired");
    assert.equal(jar.size, 0, "and dropped");
  });

  test("re-probe at most once per resync interval per address; bounded", () => {
    const jar = new CookieJar();
    const c = new Uint8Array(16);
    assert.equal(jar.store(a, c, 0), true);
    assert.equal(jar.store(a, c, RESYNC_MIN_INTERVAL_MS - 1), false);
    assert.equal(jar.store(b, c, 1), true, "other addresses are independent");
    assert.equal(jar.store(a, c, RESYNC_MIN_INTERVAL_MS), true);
    for (let i = 0; i < MAX_COOKIES + 10; i++) jar.store({ host: "10.1.0.1", port: i + 1 }, c, 0);
    assert.equal(jar.size, MAX_COOKIES);
  });
});
