/**
 * `svp completion bash|zsh|fish` for real: bash's completion function driven through
 * COMP_LINE/COMP_POINT (as bash sets them on TAB), zsh through zpty with compadd recorded,
 * fish through `complete -C`. Static parts (subcommands, flags, fixed values) and the
 * running node's part: two embedded nodes on loopback, B offering a service, and A's SIDs,
 * B's SID, B's address and B's service offered when completing against A. Also: the scripts
 * name every command and flag `--help` shows, and `svp __complete` gives up quietly in time
 * and never starts a daemon. zsh and fish tests skip (saying so) where the shell is missing;
 * `make test-deps` installs both from Debian when it can.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SvpProcess, runSvp, svpCommand } from "./entry.ts";
import { unixDatagramSupport } from "../../src/platform/unix-dgram.ts";
import { REACHABLE } from "../../src/servald/route-record.ts";
import { sidToHex } from "../../src/mesh/sid.ts";
import { FakeServald, routeRecord, sidOf } from "../servald/fake-servald.ts";

const work = mkdtempSync(join(tmpdir(), "svp-completion-"));
const binDir = join(work, "bin");
mkdirSync(binDir);
// The scripts run `svp __complete …` with the command as typed: put an `svp` on PATH.
const wrapper = join(binDir, "svp");
writeFileSync(wrapper, `#!/bin/sh\nexec ${svpCommand().map((a) => `'${a}'`).join(" ")} "$@"\n`);
chmodSync(wrapper, 0o755);
const ENV: Record<string, string> = {
  PATH: `${binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
  SVP_DISCOVERY_DIR: join(work, "discovery"),
  SVP_MESH: "embedded",
  // Generous for a loaded machine; the default (280 ms from start) is tested below.
  SVP_COMPLETE_TIMEOUT_MS: "6000",
  HOME: work,
  NO_COLOR: "1",
};
const fullEnv = () => ({ ...process.env, ...ENV });

const scripts: Record<string, string> = {};
const has = (shell: string) => spawnSync("sh", ["-c", `command -v ${shell}`]).status === 0;

function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: fullEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What bash offers on TAB after `line`: COMP_* as bash sets them, then the script's function. */
async function bash(line: string): Promise<string[]> {
  const driver = `source "$1"; COMP_LINE=$2; COMP_POINT=\${#2}; read -ra COMP_WORDS <<<"$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _svp; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await run("bash", ["--norc", "--noprofile", "-c", driver, "bash", join(work, "svp.bash"), line]);
  assert.equal(r.stderr, "", `bash completion of "${line}" wrote to stderr`);
  return r.stdout.split("\n").filter(Boolean);
}

/**
 * zsh: an interactive zsh in a pty, compadd recording what it is given, TAB after `line`.
 * compinit scans only the script's directory and zsh's Completion/Base (scanning all of
 * zsh's completion functions takes seconds on a busy machine); _files & co. autoload later.
 */
const ZCAP = `zmodload zsh/zpty
base=\${fpath[(r)*/Completion/Base]}
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=($1 \${base:h} $base); autoload -Uz compinit; compinit -u -D; fpath+=(\${base:h}/Unix \${base:h}/Zsh); bindkey '^I' complete-word"
zpty -w z 'compadd() { if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then builtin compadd "$@"; return $?; fi; local -a h; builtin compadd -A h "$@"; print -rl -- "CA""ND:"\${^h}; builtin compadd "$@"; }'
zpty -w z 'comppostfuncs=( _zcap_end ); _zcap_end() { print -r -- "ZCAP""-END"; exit }'
zpty -w z "$2"$'\\t'
out=
while (( SECONDS < 20 )); do zpty -r -t z line 2>/dev/null && out+=$line || sleep 0.05; [[ $out == *ZCAP-END* ]] && break; done
print -r -- "$out" | tr -d '\\r' | grep -a -o 'CAND:[^[:space:]]*' | cut -c6-
`;
async function zsh(line: string): Promise<string[]> {
  const r = await run("zsh", ["-f", join(work, "zcap.zsh"), join(work, "zfunc"), line], 30_000);
  return r.stdout.split("\n").filter(Boolean);
}

async function fish(line: string): Promise<string[]> {
  const r = await run("fish", ["--no-config", "-c", `source ${join(work, "svp.fish")}; complete -C '${line}'`]);
  assert.equal(r.stderr, "", `fish completion of "${line}" wrote to stderr`);
  return r.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]!);
}

/** Two embedded nodes: A, and B offering "http" on MDP port 80. */
const nodes = { a: join(work, "a"), b: join(work, "b"), sidA: "", sidB: "", addressB: "" };
let listener: SvpProcess | undefined;
let target: Server | undefined;

before(async () => {
  for (const shell of ["bash", "zsh", "fish"] as const) {
    const r = await runSvp(["completion", shell]);
    assert.equal(r.code, 0, r.stderr);
    scripts[shell] = r.stdout;
  }
  writeFileSync(join(work, "svp.bash"), scripts.bash!);
  writeFileSync(join(work, "svp.fish"), scripts.fish!);
  mkdirSync(join(work, "zfunc"));
  writeFileSync(join(work, "zfunc", "_svp"), scripts.zsh!);
  writeFileSync(join(work, "zcap.zsh"), ZCAP);
});

after(async () => {
  listener?.kill("SIGKILL");
  target?.close();
  for (const home of [nodes.a, nodes.b]) if (existsSync(join(home, "daemon.pid"))) await runSvp(["daemon", "stop", "--home", home], { env: ENV });
  rmSync(work, { recursive: true, force: true });
});

describe("completion scripts: the same definitions as --help", () => {
  test("every command and every flag of every command's --help is in each script", async () => {
    const top = await runSvp(["--help"]);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]!);
    assert.ok(commands.includes("connect") && commands.includes("completion"), top.stdout);
    const helps = await Promise.all(commands.map((c) => runSvp([c, "--help"])));
    for (const [i, c] of commands.entries()) {
      const help = helps[i]!;
      const flags = [...help.stdout.matchAll(/^ {2}(?:-\w, )?--([\w-]+)/gm)].map((m) => m[1]!);
      assert.ok(flags.length > 0, `${c} --help lists no flags`);
      for (const [shell, text] of Object.entries(scripts)) {
        assert.ok(text.includes(c), `${shell} script lacks command ${c}`);
        for (const f of flags) {
          const named = shell === "fish" ? text.includes(`__svp_using ${c}'`) && new RegExp(`__svp_using ${c}'.*-l ${f}\\b`).test(text) : text.includes(`--${f}`);
          assert.ok(named, `${shell} script lacks ${c} --${f}`);
        }
      }
    }
  });

  test("svp completion with an unknown shell is a usage error", async () => {
    const r = await runSvp(["completion", "tcsh"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown shell "tcsh": expected bash, zsh, fish/);
  });
});

describe("bash", () => {
  test("subcommands, flags and fixed values", async () => {
    assert.deepEqual(await bash("svp con"), ["connect"]);
    assert.deepEqual(await bash("svp co"), ["connect", "completion"]);
    assert.deepEqual(await bash("svp connect --me"), ["--mesh"]);
    assert.deepEqual(await bash("svp connect --mesh "), ["auto", "servald", "embedded"]);
    assert.deepEqual(await bash("svp connect --mesh=se"), ["servald"]);
    assert.deepEqual(await bash("svp daemon st"), ["start", "stop", "status"]);
    assert.deepEqual(await bash("svp --home /x socks --log j"), ["json"]);
    assert.deepEqual(await bash("svp completion "), ["bash", "zsh", "fish"]);
    // A value with nothing to offer (a duration) offers nothing, not file names.
    assert.deepEqual(await bash("svp connect -w "), []);
    assert.deepEqual(await bash(`svp status --home ${work}/zf`), [`${work}/zfunc`]);
  });
});

describe("completion from the running node", () => {
  before(async () => {
    for (const [key, home] of [["sidA", nodes.a], ["sidB", nodes.b]] as const) {
      const r = await runSvp(["daemon", "start", "--home", home, "--port", "0", "--hello-interval", "200ms"], { env: ENV, timeoutMs: 20_000 });
      assert.equal(r.code, 0, r.stderr);
      nodes[key] = r.stdout.trim();
    }
    target = createServer((s) => s.end("hello\n"));
    await new Promise<void>((r) => target!.listen(0, "127.0.0.1", r));
    const port = (target.address() as { port: number }).port;
    listener = new SvpProcess(["listen", "--home", nodes.b, "--forward", String(port), "80", "--service", "http"], { env: ENV });
    await listener.waitFor(/listening on/, 20_000);
    // Until A knows B as a live peer (bounded).
    const end = Date.now() + 15_000;
    for (;;) {
      const r = await runSvp(["__complete", "peer", "", "svp", "daemon", "--home", nodes.a], { env: ENV });
      const line = r.stdout.split("\n").find((l) => l.includes(nodes.sidB.slice(0, 8)));
      if (line) {
        nodes.addressB = line.split("\t")[0]!;
        break;
      }
      assert.ok(Date.now() < end, `node A never saw node B: ${r.stdout}${r.stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  test("bash: svp connect <TAB> offers both nodes' SIDs, their base32 names and the service; a SID prefix in lower case completes", async () => {
    const all = await bash(`svp connect --home ${nodes.a} `);
    assert.ok(all.includes(nodes.sidA), `own SID missing: ${all.join(" ")}`);
    assert.ok(all.includes(nodes.sidB), `peer SID missing: ${all.join(" ")}`);
    assert.ok(all.some((c) => /^[a-z2-7]{52}$/.test(c)), "no base32 names");
    assert.ok(all.includes("http.svc.serval"), `service missing: ${all.join(" ")}`);
    assert.deepEqual(await bash(`svp connect --home ${nodes.a} ${nodes.sidB.slice(0, 6).toLowerCase()}`), [nodes.sidB]);
    assert.deepEqual(await bash(`svp connect --home ${nodes.a} ${nodes.sidB} `), ["http"]);
  });

  test("bash: --allow offers the peer's SID, --peer its address (host:port, colon and all)", async () => {
    const allow = await bash(`svp listen --home ${nodes.a} --allow `);
    assert.ok(allow.includes(nodes.sidB) && !allow.includes(nodes.sidA), allow.join(" "));
    const peer = await bash(`svp daemon run --home ${nodes.a} --peer `);
    assert.deepEqual(peer, [nodes.addressB]);
    assert.match(nodes.addressB, /^127\.0\.0\.1:\d+$/);
    // bash replaces only the part after the last ":" of the word.
    const tail = await bash(`svp daemon run --home ${nodes.a} --peer 127.0.0.1:`);
    assert.deepEqual(tail, [nodes.addressB.split(":")[1]]);
    assert.deepEqual(await bash(`svp discover --home ${nodes.a} h`), ["http"]);
  });

  test("zsh: loads, completes subcommands, flags, fixed values and the nodes' SIDs", { skip: has("zsh") ? false : "zsh is not installed (make test-deps installs it from Debian)" }, async () => {
    // Found in $fpath by compinit (as make install sets it up), and sourced after compinit.
    const zfunc = join(work, "zfunc");
    const load = await run("zsh", ["-f", "-c", `base=\${fpath[(r)*/Completion/Base]}; fpath=(${zfunc} \${base:h} $base); autoload -Uz compinit && compinit -u -D && print -r -- $_comps[svp] && unset '_comps[svp]' && source ${zfunc}/_svp && print -r -- $_comps[svp]`]);
    assert.equal(load.stderr, "");
    assert.equal(load.stdout, "_svp\n_svp\n");
    assert.deepEqual(await zsh("svp con"), ["connect"]);
    assert.ok((await zsh("svp connect --me")).includes("--mesh"));
    assert.deepEqual(await zsh("svp connect --mesh "), ["auto", "servald", "embedded"]);
    const sids = await zsh(`svp connect --home ${nodes.a} `);
    assert.ok(sids.includes(nodes.sidA) && sids.includes(nodes.sidB), sids.join(" "));
  });

  test("fish: loads, completes subcommands, flags, fixed values and the nodes' SIDs", { skip: has("fish") ? false : "fish is not installed (make test-deps installs it from Debian)" }, async () => {
    const syntax = await run("fish", ["--no-execute", join(work, "svp.fish")]);
    assert.equal(syntax.code, 0, syntax.stderr);
    assert.deepEqual(await fish("svp con"), ["connect"]);
    assert.deepEqual(await fish("svp connect --me"), ["--mesh"]);
    assert.deepEqual((await fish("svp connect --mesh ")).sort(), ["auto", "embedded", "servald"]);
    const sids = await fish(`svp connect --home ${nodes.a} `);
    assert.ok(sids.includes(nodes.sidA) && sids.includes(nodes.sidB), sids.join(" "));
  });
});

describe("svp __complete", () => {
  test("with no node running it offers nothing, exits 0 and starts no daemon", async () => {
    const home = join(work, "none");
    const r = await runSvp(["__complete", "node", "", "svp", "connect", "--home", home], { env: ENV });
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""]);
    assert.equal(existsSync(home), false, "the instance directory was created");
  });

  test("a node that does not answer: nothing, within the deadline (default 280 ms from start)", async () => {
    // A local API socket that accepts and never says a word (a hung daemon).
    const home = join(work, "hung");
    mkdirSync(home, { mode: 0o700 });
    const hung = createServer(() => {});
    await new Promise<void>((r) => hung.listen(join(home, "api.sock"), r));
    try {
      const env = { ...ENV, SVP_COMPLETE_TIMEOUT_MS: "" };
      const started = performance.now();
      const r = await runSvp(["__complete", "sid", "", "svp", "listen", "--home", home], { env });
      const ms = performance.now() - started;
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""]);
      // The API's own request timeout is 10 s: ending well before it is the deadline at work
      // (the bound is loose: process start-up on a busy machine counts too).
      assert.ok(ms < 5000, `took ${Math.round(ms)} ms`);
    } finally {
      hung.close();
    }
  });

  const addon = unixDatagramSupport();
  test("servald backend (a fake daemon): --sid offers its identities, --allow its reachable peers", { skip: addon.available ? false : `native addon unavailable: ${addon.reason}` }, async () => {
    const d = new FakeServald(`/svp-test-${process.pid}-${Date.now().toString(36)}/completion`);
    try {
      const peer = sidOf(0xb1);
      d.routes = [routeRecord(d.primary, REACHABLE.SELF), routeRecord(peer, REACHABLE.UNICAST), routeRecord(sidOf(0xb3), REACHABLE.NONE)];
      const words = ["svp", "listen", "--mesh", "servald", "--servald-instance", d.instance];
      const own = await runSvp(["__complete", "identity", "", ...words], { env: ENV });
      assert.deepEqual(own.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]), d.identities.map(sidToHex));
      const allow = await runSvp(["__complete", "sid", "B1", ...words], { env: ENV });
      assert.deepEqual(allow.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]), [sidToHex(peer)]);
    } finally {
      d.close();
    }
  });

  test("an unknown source offers nothing", async () => {
    const r = await runSvp(["__complete", "bogus", "", "svp"], { env: ENV });
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""]);
  });
});
