import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listen } from "../../src/platform/net.ts";
import { SvpError } from "../../src/errors.ts";

describe("listen on unix sockets", () => {
  test("the socket is owner-only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "svp-net-"));
    try {
      const l = await listen({ kind: "unix", path: join(dir, "s.sock") }, (s) => s.abort());
      assert.equal(statSync(join(dir, "s.sock")).mode & 0o777, 0o600);
      await l.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a missing directory or a file in the way is a usage error that says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "svp-net-"));
    try {
      writeFileSync(join(dir, "file"), "");
      const cases = [
        [join(dir, "missing", "s.sock"), /directory .*missing does not exist/],
        [join(dir, "file", "s.sock"), /file is not a directory/],
      ] as const;
      for (const [path, message] of cases) {
        await assert.rejects(listen({ kind: "unix", path }, (s) => s.abort()), (err: unknown) => {
          assert.ok(err instanceof SvpError);
          assert.equal(err.code, "ERR_USAGE");
          assert.match(err.message, message);
          return true;
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("listen on TCP", () => {
  test("an address this machine does not have is a usage error that says so (bind only, nothing is sent)", async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to this host.
    await assert.rejects(listen({ kind: "tcp", host: "192.0.2.1", port: 0 }, (s) => s.abort()), (err: unknown) => {
      assert.ok(err instanceof SvpError);
      assert.equal(err.code, "ERR_USAGE");
      assert.match(err.message, /192\.0\.2\.1 is not an address of this machine/);
      return true;
    });
  });
});
