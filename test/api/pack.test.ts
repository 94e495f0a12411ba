/**
 * The package as a user gets it: build into a staging directory (the repository's dist/ is
 * left alone: other tests run it), `npm pack` it, check what the tarball holds and its
 * size, `npm install --offline` it into an empty project (its install script builds the
 * native addon), type-check a TypeScript consumer against the shipped declarations
 * (skipLibCheck off, so the declarations themselves are checked), and run it: it
 * auto-starts a daemon through the installed package's CLI, serves and dials a stream,
 * reads the status. Skips, saying why, when npm cannot install offline here.
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "svp-pack-"));
const MAX_BYTES = 5 * 1024 * 1024;
let daemonHome: string | undefined;

after(() => {
  if (daemonHome && existsSync(join(work, "consumer", "node_modules", "svp", "dist", "svp.cjs"))) {
    spawnSync(process.execPath, [join(work, "consumer", "node_modules", "svp", "dist", "svp.cjs"), "daemon", "stop", "--home", daemonHome], { timeout: 20_000 });
  }
  rmSync(work, { recursive: true, force: true });
});

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}, timeout = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, NO_COLOR: "1", ...env } });
  return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

const CONSUMER = `import { openMesh, isSvpError, toWebStreams, ERROR_TABLE } from "svp";
import type { ErrorCode, Mesh, MeshOptions, MeshStream, StatusReport } from "svp";

const options: MeshOptions = { home: process.argv[2]!, mesh: "embedded", onNote: (m) => console.error(m) };
const mesh: Mesh = await openMesh(options);
try {
  const listener = await mesh.listen(7);
  const served = (async () => {
    for await (const conn of listener) {
      const c: MeshStream = conn;
      c.on("data", (chunk: Uint8Array) => c.write(chunk));
      c.on("end", () => c.end());
      return c.peer.sid;
    }
    return "";
  })();
  const { readable, writable } = toWebStreams(await mesh.dial(mesh.sid, 7, { signal: AbortSignal.timeout(5000) }));
  const w = writable.getWriter();
  await w.write(new TextEncoder().encode("ping"));
  await w.close();
  let echoed = "";
  const reader = readable.getReader();
  for (let r = await reader.read(); !r.done; r = await reader.read()) echoed += new TextDecoder().decode(r.value);
  const caller = await served;
  const status: StatusReport = await mesh.status();
  const code: ErrorCode = await mesh.dial(mesh.sid, 0).then(
    () => "ERR_INTERNAL" as const,
    (e: unknown) => (isSvpError(e) ? e.code : "ERR_INTERNAL"),
  );
  console.log(JSON.stringify({ echoed, caller: caller === mesh.sid, status: status.identity.sid === mesh.sid, badPort: code, exit: ERROR_TABLE[code].exit }));
} finally {
  await mesh.close();
}
`;

test("npm pack → install offline into an empty project → type-check and run a TypeScript consumer", { timeout: 180_000 }, (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; version: string; files: string[]; private?: boolean; exports: unknown; types: string };
  assert.equal(pkg.private, undefined, "installable: not private");

  // 1. Build and stage exactly what "files" names.
  const stage = join(work, "stage");
  const build = run(process.execPath, ["scripts/build.mjs", "--out", stage], ROOT, {}, 120_000);
  assert.equal(build.status, 0, `build: ${build.stderr}`);
  for (const f of pkg.files) {
    if (f.startsWith("dist/")) continue; // built just now
    cpSync(join(ROOT, f), join(stage, f), { recursive: true });
  }
  for (const f of ["package.json", "README.md"]) cpSync(join(ROOT, f), join(stage, f));

  // 2. Pack it: the size limit, and nothing but what a user runs.
  const out = join(work, "out");
  mkdirSync(out);
  const packed = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", out], stage);
  assert.equal(packed.status, 0, `npm pack: ${packed.stderr}`);
  const [info] = JSON.parse(packed.stdout) as { filename: string; size: number; files: { path: string }[] }[];
  assert.ok(info);
  t.diagnostic(`npm pack: ${info.filename}, ${info.size} bytes, ${info.files.length} files`);
  assert.ok(info.size <= MAX_BYTES, `tarball ${info.size} bytes > 5 MiB`);
  const paths = info.files.map((f) => f.path);
  for (const must of ["dist/index.js", "dist/svp.cjs", "dist/types/index.d.ts", "native/unix_dgram.c", "native/build.mjs", "package.json"]) assert.ok(paths.includes(must), `${must} is in the package`);
  for (const p of paths) assert.match(p, /^(dist\/(index\.js|svp\.cjs|types\/.+\.d\.ts)|native\/(unix_dgram\.c|build\.mjs)|docs\/library\.md|package\.json|README\.md)$/, `unexpected file in the package: ${p}`);

  // 3. Install it into an empty project, offline.
  const consumer = join(work, "consumer");
  mkdirSync(consumer);
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "svp-consumer", private: true, type: "module" }));
  const installed = run("npm", ["install", "--offline", "--no-audit", "--no-fund", join(out, info.filename)], consumer, {}, 120_000);
  if (installed.status !== 0) {
    t.skip(`npm cannot install the tarball offline here: ${installed.stderr.trim().split("\n").slice(0, 3).join(" | ")}`);
    return;
  }
  const addonBuilt = existsSync(join(consumer, "node_modules", "svp", "native", "build", "svp_unix_dgram.node"));
  t.diagnostic(`install script: native addon ${addonBuilt ? "built" : "not built (no compiler?): the servald backend would be unavailable"}`);

  // 4. Type-check (and compile) the consumer against the shipped declarations.
  writeFileSync(join(consumer, "consumer.ts"), CONSUMER);
  writeFileSync(
    join(consumer, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        lib: ["ES2022"],
        strict: true,
        skipLibCheck: false,
        outDir: "out",
        types: ["node"],
        typeRoots: [join(ROOT, "node_modules", "@types")],
      },
      files: ["consumer.ts"],
    }),
  );
  const tsc = run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "."], consumer, {}, 120_000);
  assert.equal(tsc.status, 0, `tsc: ${tsc.stdout}${tsc.stderr}`);

  // 5. Run it: a fresh home (overlay on a free port, a private discovery directory); the
  // daemon is auto-started through the installed package's own CLI.
  daemonHome = join(work, "home");
  mkdirSync(daemonHome, { mode: 0o700 });
  writeFileSync(join(daemonHome, "svp.conf"), "port = 0\n");
  const ran = run(process.execPath, [join(consumer, "out", "consumer.js"), daemonHome], consumer, { SVP_DISCOVERY_DIR: join(work, "discovery") }, 60_000);
  assert.equal(ran.status, 0, `consumer: ${ran.stderr}`);
  assert.match(ran.stderr, /started the mesh daemon/);
  assert.deepEqual(JSON.parse(ran.stdout.trim()), { echoed: "ping", caller: true, status: true, badPort: "ERR_BAD_ADDRESS", exit: 2 });

  // The installed `svp` command works too.
  const version = run(join(consumer, "node_modules", ".bin", "svp"), ["--version"], consumer);
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, new RegExp(`${pkg.version.replace(/\./g, "\\.")}`));
});
