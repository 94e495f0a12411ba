import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { listen } from "../../src/platform/net.ts";
import { duplicateDescriptor, hasReusePort, listenSharing } from "../../src/platform/loops.ts";
import { canDuplicateDescriptors } from "../../src/platform/unix-dgram.ts";
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

describe("listen for several event loops", () => {
  test("reusePort: another listener on the port is still 'address already in use'; loops of one process join", async (t) => {
    if (!hasReusePort()) return t.skip("this runtime has no reusePort (Node < 22.12): loops share a duplicated descriptor instead");
    const holder = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => s.abort());
    try {
      await assert.rejects(listen({ kind: "tcp", host: "127.0.0.1", port: holder.port }, (s) => s.abort(), { reusePort: true }), (e: unknown) => e instanceof SvpError && /address already in use/.test(e.message));
    } finally {
      await holder.close();
    }
    const first = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => s.abort(), { reusePort: true });
    const second = await listen({ kind: "tcp", host: "127.0.0.1", port: first.port }, (s) => s.abort(), { reusePort: true, joinReusePort: true });
    assert.equal(second.port, first.port);
    await Promise.all([first.close(), second.close()]);
  });

  test("a duplicated descriptor accepts on the same socket; closing one leaves the other listening", async (t) => {
    const sharing = listenSharing({ kind: "tcp", host: "127.0.0.1", port: 0 });
    if (!canDuplicateDescriptors()) return t.skip(`no dup here (${sharing.kind === "single" ? sharing.why : "native addon missing"})`);
    const main = await listen({ kind: "tcp", host: "127.0.0.1", port: 0 }, (s) => s.abort());
    if (main.fd === undefined) {
      await main.close();
      return t.skip("this runtime does not give a listening socket's descriptor (Deno: its loops use reusePort)");
    }
    let accepted = 0;
    let dup: Awaited<ReturnType<typeof listen>> | undefined;
    try {
      dup = await listen(
        { kind: "tcp", host: "127.0.0.1", port: main.port },
        (s) => {
          accepted++;
          s.resume();
          s.closeWrite();
        },
        { fd: duplicateDescriptor(main.fd!) },
      );
      assert.equal(dup.port, main.port);
      await main.close();
      // The main loop's descriptor is closed; the socket still accepts through the duplicate.
      await new Promise<void>((resolve, reject) => {
        const c = connect({ host: "127.0.0.1", port: main.port }, () => (c.destroy(), resolve()));
        c.once("error", reject);
      });
      for (let i = 0; i < 200 && accepted === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(accepted, 1);
    } finally {
      await main.close();
      await dup?.close();
    }
  });
});
