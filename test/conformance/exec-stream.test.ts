/**
 * ExecStream (and the PipeStream under it, which also carries stdin/stdout) against the
 * ByteStream conformance suite. Two programs are wired into a pair through two FIFOs:
 * what `a` writes goes into its program's stdin, through FIFO f1, out of `b`'s program's
 * stdout, and the other way round through f2.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnExec } from "../../src/platform/exec-stream.ts";
import { byteStreamConformance } from "./byte-stream-suite.ts";

byteStreamConformance("exec stream (two cat programs joined by FIFOs)", {
  maxBufferedBytes: 4 * 1024 * 1024,
  // Killing a program is seen by the other side as EOF: pipes have no reset.
  resetVisible: false,
  async make() {
    const dir = mkdtempSync(join(tmpdir(), "svp-exec-"));
    const f1 = join(dir, "f1");
    const f2 = join(dir, "f2");
    execFileSync("mkfifo", [f1, f2]);
    // The reader runs in the background with an explicit stdin (a background job's own
    // stdin would be /dev/null); `exec` leaves only the cats holding the stdout pipe.
    const [a, b] = await Promise.all([spawnExec(`cat < '${f2}' & exec cat > '${f1}'`), spawnExec(`cat < '${f1}' & exec cat > '${f2}'`)]);
    return {
      a,
      b,
      cleanup: async () => {
        for (const s of [a, b]) if (!s.closed) s.abort();
        await Promise.all([a, b].map((s) => (s.closed ? undefined : new Promise((r) => s.once("close", r)))));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
