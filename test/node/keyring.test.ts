import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addIdentity, createIdentity, decodeKeyring, encodeKeyring, loadOrCreateKeyring, primaryIdentity } from "../../src/node/keyring.ts";
import { nodeCrypto } from "../../src/platform/node-crypto.ts";
import { ensureHome, keyringStore, KEYRING_FILE } from "../../src/platform/instance-files.ts";
import { isSvpError } from "../../src/errors.ts";

function tempHome(): string {
  return mkdtempSync(join(tmpdir(), "svp-keyring-"));
}

describe("keyring model", () => {
  test("encode/decode round trip with several identities and a chosen primary", () => {
    const a = createIdentity(nodeCrypto);
    const b = createIdentity(nodeCrypto);
    const k = addIdentity(addIdentity(undefined, a), b, true);
    const back = decodeKeyring(encodeKeyring(k), "test", nodeCrypto);
    assert.equal(back.identities.length, 2);
    assert.deepEqual(primaryIdentity(back).sid, b.sid);
    assert.deepEqual(back.identities[0]!.secret, a.secret);
  });

  test("the SID is the X25519 public key of the secret", () => {
    const id = createIdentity(nodeCrypto);
    assert.equal(id.sid.length, 32);
    assert.deepEqual(nodeCrypto.publicFromSecret(id.secret), id.sid);
  });

  test("damaged keyrings are reported clearly", () => {
    const id = createIdentity(nodeCrypto);
    const good = JSON.parse(new TextDecoder().decode(encodeKeyring(addIdentity(undefined, id))));
    const cases: [unknown, RegExp][] = [
      ["not json", /not a JSON/],
      [{ ...good, version: 2 }, /version/],
      [{ ...good, identities: [] }, /no identities/],
      [{ ...good, primary: "00".repeat(32) }, /primary/],
      [{ ...good, identities: [{ sid: good.identities[0].sid, secret: "11".repeat(32) }] }, /does not match/],
      [{ ...good, identities: [{ sid: "xyz", secret: "11" }] }, /bad sid/],
    ];
    for (const [doc, re] of cases) {
      const bytes = new TextEncoder().encode(typeof doc === "string" ? doc : JSON.stringify(doc));
      assert.throws(() => decodeKeyring(bytes, "/k", nodeCrypto), (e: unknown) => isSvpError(e) && re.test(e.message) && /damaged/.test(e.message));
    }
  });
});

describe("keyring file", () => {
  test("created on first use, 0600 in a 0700 directory, same identity next time", () => {
    const home = join(tempHome(), "inst");
    try {
      ensureHome(home);
      assert.equal(statSync(home).mode & 0o777, 0o700);
      const first = loadOrCreateKeyring(keyringStore(home), nodeCrypto);
      assert.equal(first.created, true);
      assert.equal(statSync(join(home, KEYRING_FILE)).mode & 0o777, 0o600);
      const second = loadOrCreateKeyring(keyringStore(home), nodeCrypto);
      assert.equal(second.created, false);
      assert.deepEqual(primaryIdentity(second.keyring).sid, primaryIdentity(first.keyring).sid);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("a keyring readable by group or others is refused with a clear message, and not rewritten", () => {
    const home = tempHome();
    try {
      loadOrCreateKeyring(keyringStore(home), nodeCrypto);
      const path = join(home, KEYRING_FILE);
      const before = readFileSync(path);
      for (const mode of [0o640, 0o604, 0o660]) {
        chmodSync(path, mode);
        assert.throws(
          () => loadOrCreateKeyring(keyringStore(home), nodeCrypto),
          (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED") && e.message.includes(path) && /group or others/.test(e.message) && /chmod 600/.test(e.message),
        );
      }
      assert.deepEqual(readFileSync(path), before);
      chmodSync(path, 0o600);
      assert.equal(loadOrCreateKeyring(keyringStore(home), nodeCrypto).created, false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("a second creator loses the race and uses the first keyring", () => {
    const home = tempHome();
    try {
      const store = keyringStore(home);
      const a = addIdentity(undefined, createIdentity(nodeCrypto));
      const b = addIdentity(undefined, createIdentity(nodeCrypto));
      assert.equal(store.create(encodeKeyring(a)), true);
      assert.equal(store.create(encodeKeyring(b)), false);
      assert.deepEqual(primaryIdentity(decodeKeyring(store.read()!, "k")).sid, primaryIdentity(a).sid);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("a loose instance directory of our own is tightened to 0700", () => {
    const home = tempHome();
    try {
      chmodSync(home, 0o755);
      ensureHome(home);
      assert.equal(statSync(home).mode & 0o777, 0o700);
      writeFileSync(join(home, "x"), "");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
