// Build dist/svp: a Node single-executable application (SEA) made from the esbuild bundle
// dist/svp.cjs (scripts/build.mjs). Steps, as in Node's SEA documentation:
//   1. `node --experimental-sea-config` turns the bundle into a preparation blob (with V8's
//      code cache, so the binary does not compile the bundle on every start);
//   2. a copy of the node binary gets the blob injected as the NODE_SEA_BLOB note (postject),
//      which flips the SEA fuse.
// The blob must be made by the same node binary that is copied, so both steps use one binary:
// SVP_SEA_NODE=/path/to/node if set, else the node running this script.
// Works offline: postject is an npm devDependency; nothing is downloaded.
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist`;
const bundle = `${dist}/svp.cjs`;
const blob = `${dist}/svp.blob`;
const config = `${dist}/sea-config.json`;
const out = `${dist}/svp`;
const tmp = `${dist}/svp.tmp`;
const nodeBin = process.env.SVP_SEA_NODE || process.execPath;

function fail(message) {
  process.stderr.write(`sea: cannot build dist/svp: ${message}\n`);
  process.exit(1);
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8" });
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r;
}

if (!existsSync(bundle)) fail("dist/svp.cjs is missing (run `node scripts/build.mjs` first)");
if (!existsSync(nodeBin)) fail(`node binary ${nodeBin} not found`);
const [major, minor] = run(nodeBin, ["-p", "process.versions.node"], "node --version").stdout.trim().split(".").map(Number);
// SEA with useCodeCache needs Node >= 20.6 (SEA itself 18.16/20.0).
if (major < 20 || (major === 20 && minor < 6)) fail(`${nodeBin} is Node ${major}.${minor}; single executables need Node >= 20.6`);
if (!readFileSync(nodeBin).includes(FUSE)) fail(`${nodeBin} has no SEA fuse (a node built without single-executable support)`);

// The servald backend's native addon (native/build.mjs) rides along as an asset; at run time
// src/platform/unix-dgram.ts writes it to a content-hashed owner-only file and dlopens it.
// Assets need Node >= 20.12; without the addon the binary's servald backend says it is missing.
const addon = `${root}native/build/svp_unix_dgram.node`;
const assets = existsSync(addon) && (major > 20 || minor >= 12) ? { "svp_unix_dgram.node": addon } : undefined;
if (!assets) process.stderr.write("sea: native addon not embedded (not built, or Node < 20.12): the binary's servald backend will be unavailable\n");

writeFileSync(
  config,
  JSON.stringify(
    {
      main: bundle,
      output: blob,
      ...(assets ? { assets } : {}),
      disableExperimentalSEAWarning: true,
      // V8 code cache of the bundle: start-up skips compiling it. (useSnapshot would also
      // skip evaluating it, but it freezes module top-level state such as colour detection
      // from the build machine into the binary.)
      useCodeCache: true,
    },
    null,
    2,
  ) + "\n",
);
run(nodeBin, ["--experimental-sea-config", config], "node --experimental-sea-config");

rmSync(tmp, { force: true });
copyFileSync(nodeBin, tmp);
chmodSync(tmp, 0o755);
const postject = createRequire(import.meta.url).resolve("postject/dist/cli.js");
run(process.execPath, [postject, tmp, "NODE_SEA_BLOB", blob, "--sentinel-fuse", FUSE], "postject");
renameSync(tmp, out);
rmSync(blob, { force: true });

const check = run(out, ["--version"], "dist/svp --version");
process.stdout.write(`built dist/svp (${check.stdout.trim()})\n`);
