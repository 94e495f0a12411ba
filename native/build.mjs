// Builds native/build/svp_unix_dgram.node (the AF_UNIX datagram addon of the servald backend)
// with the system C compiler and the Node-API headers that ship with Node. Run by `npm ci` /
// `npm install` (package.json "install") and `make native`.
//
// It never fails an install: without a compiler or headers it says why and exits 0, and svp
// then reports "servald backend unavailable: native addon not built (...)" when asked for the
// servald backend; everything else keeps working. `--strict` makes a failure exit 1.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, "unix_dgram.c");
const outDir = join(here, "build");
const output = join(outDir, "svp_unix_dgram.node");
const strict = process.argv.includes("--strict");
const force = process.argv.includes("--force");

function give_up(reason) {
  process.stderr.write(
    `svp: native addon not built (${reason}); the servald backend will be unavailable, ` +
      `the embedded mesh backend is not affected. Fix the cause and run \`make native\`.\n`,
  );
  process.exit(strict ? 1 : 0);
}

if (process.platform !== "linux") give_up(`unsupported platform ${process.platform}: servald's socket names need Linux`);

const upToDate = () =>
  existsSync(output) && statSync(output).mtimeMs >= Math.max(statSync(source).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (!force && upToDate()) process.exit(0);

// Node-API headers: the running Node's own include dir first, then common system places.
const execDir = dirname(process.execPath);
const headerDirs = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, "include", "node"),
  join(execDir, "..", "include", "node"),
  "/usr/include/node",
  "/usr/local/include/node",
  process.env.HOME && join(process.env.HOME, ".cache", "node-gyp", process.versions.node, "include", "node"),
].filter(Boolean);
const include = headerDirs.find((d) => existsSync(join(d, "node_api.h")));
if (!include) give_up(`Node-API headers (node_api.h) not found in ${headerDirs.join(", ")}`);

const candidates = [process.env.CC, "cc", "gcc", "clang"].filter(Boolean);
const compiler = candidates.find((c) => spawnSync(c, ["--version"], { stdio: "ignore" }).status === 0);
if (!compiler) give_up(`no C compiler found (tried ${candidates.join(", ")}); install one, e.g. apt-get install gcc`);

mkdirSync(outDir, { recursive: true });
const tmp = `${output}.${process.pid}.tmp`;
const args = ["-std=c11", "-O2", "-Wall", "-Wextra", "-fPIC", "-shared", "-pthread", `-I${include}`, source, "-o", tmp];
const r = spawnSync(compiler, args, { stdio: ["ignore", "inherit", "pipe"], encoding: "utf8" });
if (r.status !== 0) {
  rmSync(tmp, { force: true });
  give_up(`${compiler} failed: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-3).join(" | ")}`);
}
renameSync(tmp, output);
