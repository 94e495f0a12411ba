/** The real `svp` entry as a child process: help, version, usage errors, and `svp socks` running. */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RawClient, SOCKS5_OK, dec, echoAfterEnd, hex, socks5Connect, targetServer, until } from "../socks/helpers.ts";
import { SvpProcess, runSvp } from "./entry.ts";

const GOLDEN = new URL("./golden/", import.meta.url).pathname;
const PKG_VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** Compare with a golden file (version normalized); UPDATE_GOLDEN=1 rewrites it. */
function golden(name: string, actual: string): void {
  const normalized = actual.replace(/^svp [^:\s]+: /m, "svp <version>: ");
  const path = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === "1" || !existsSync(path)) writeFileSync(path, normalized);
  assert.equal(normalized, readFileSync(path, "utf8"), `${name} differs from the golden file (UPDATE_GOLDEN=1 to accept)`);
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["--silent", "--show-error", "--noproxy", "", "--max-time", "10", ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "svp-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("svp CLI basics", () => {
  test("--version prints just the version", async () => {
    const r = await runSvp(["--version"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`^svp ${PKG_VERSION.replace(/\./g, "\\.")}(-dev)?\\n$`));
    assert.equal(r.stderr, "");
  });

  test("--help and socks --help match the golden output", async () => {
    const top = await runSvp(["--help"]);
    assert.equal(top.code, 0);
    // Other commands land in parallel; this golden file pins the frame and the socks entry.
    const others = [...top.stdout.matchAll(/^ {2}([a-z]+)\b.*$/gm)].map((m) => m[1]!).filter((c) => c !== "socks");
    const frame = top.stdout
      .split("\n")
      .filter((line) => !others.some((c) => line.startsWith(`  ${c} `) || line === `  $ svp ${c} --help`))
      .join("\n")
      .replace(/^( {2}socks) +/m, "$1  ");
    golden("help.txt", frame);
    const socks = await runSvp(["socks", "--help"]);
    assert.equal(socks.code, 0);
    golden("socks-help.txt", socks.stdout);
    for (const flag of ["--listen", "--auth", "--auth-file", "--direct", "--upstream", "--idle-timeout", "--max-conns", "--log", "--quiet"]) {
      assert.ok(socks.stdout.includes(flag + " "), `socks --help does not mention ${flag}`);
    }
  });

  test("usage errors: exit 2 and one line naming the flag", async () => {
    const cases: [string[], RegExp][] = [
      [["socks", "--bogus"], /unknown option --bogus/],
      [["socks", "--listen"], /missing value for --listen/],
      [["socks", "--listen", "nowhere"], /invalid --listen "nowhere"/],
      [["socks", "--listen", "127.0.0.1:70000"], /invalid --listen "127\.0\.0\.1:70000"/],
      [["socks", "--max-conns", "0x10"], /invalid --max-conns "0x10"/],
      [["socks", "--max-conns", "0"], /invalid --max-conns "0"/],
      [["socks", "--workers", "0"], /invalid --workers "0"/],
      [["socks", "--idle-timeout", "soon"], /invalid --idle-timeout "soon"/],
      [["socks", "--handshake-timeout", "0"], /invalid --handshake-timeout "0"/],
      [["socks", "--direct", "sometimes"], /invalid --direct "sometimes": expected allow or deny/],
      [["socks", "--upstream", "ftp://127.0.0.1:21"], /invalid --upstream "ftp:\/\/127\.0\.0\.1:21"/],
      [["socks", "--upstream", "socks5://127.0.0.1"], /invalid --upstream .*missing port/],
      [["socks", "--auth", "nocolon"], /invalid --auth: expected USER:PASS/],
      [["socks", "--auth-file", join(dir, "missing")], /invalid --auth-file .*no such file/],
      [["socks", "--log", "xml"], /invalid --log "xml"/],
      [["socks", "--log", "json", "--log", "text"], /--log given 2 times/],
      [["socks", "stray"], /unexpected argument "stray"/],
      [["nosuchcommand"], /unknown command "nosuchcommand"/],
    ];
    // A few at a time: each is a Node start-up.
    const results: Awaited<ReturnType<typeof runSvp>>[] = [];
    for (let i = 0; i < cases.length; i += 4) results.push(...(await Promise.all(cases.slice(i, i + 4).map(([args]) => runSvp(args)))));
    for (const [i, [args, re]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}, stderr ${r.stderr}`);
      assert.match(r.stderr, re, args.join(" "));
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, `${args.join(" ")}: more than one line: ${r.stderr}`);
      assert.equal(r.stdout, "", args.join(" "));
    }
  });

  test("an address already in use is reported and exits 2", async () => {
    const blocker = await targetServer(() => {});
    try {
      const r = await runSvp(["socks", "--listen", `127.0.0.1:${blocker.port}`]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${blocker.port}: address already in use`));
    } finally {
      await blocker.close();
    }
  });
});

describe("svp socks running", () => {
  test(":0 prints the bound address; curl works; one text log line per stream; SIGTERM exits 0", async () => {
    const echo = await targetServer(echoAfterEnd);
    const svp = new SvpProcess(["socks", "--listen", ":0", "--listen", "127.0.0.1:0"]);
    try {
      const lines = await svp.waitFor(/listening on 127\.0\.0\.1:(\d+)\n[\s\S]*listening on 127\.0\.0\.1:(\d+)\n/);
      assert.notEqual(lines[1], "0");
      const port = Number(lines[1]);
      const c = await RawClient.connect(port);
      c.write(socks5Connect("127.0.0.1", echo.port));
      c.write("abc");
      c.end();
      assert.equal(hex(await c.read(12)), SOCKS5_OK);
      assert.equal(dec(await c.readToEnd()), "abc");
      await svp.waitFor(new RegExp(`svp socks: 127\\.0\\.0\\.1:\\d+ socks5 127\\.0\\.0\\.1:${echo.port} via direct: ok; 3 B up, 3 B down, \\d`));
      svp.kill("SIGTERM");
      const { code } = await svp.stopped();
      assert.equal(code, 0, svp.stderr);
      assert.match(svp.stderr, /SIGTERM: stopping/);
      assert.match(svp.stderr, /stopped\n$/);
      assert.equal(svp.stdout, "", "svp socks wrote to stdout");
    } finally {
      svp.kill("SIGKILL");
      await echo.close();
    }
  });

  test("--log json writes NDJSON; --quiet keeps only the listening line", async () => {
    const json = new SvpProcess(["socks", "--listen", "127.0.0.1:0", "--log", "json"]);
    const quiet = new SvpProcess(["socks", "--listen", "127.0.0.1:0", "--quiet"]);
    try {
      const port = Number((await json.waitFor(/"msg":"listening on 127\.0\.0\.1:(\d+)"/))[1]);
      const r = await curl(["-o", "/dev/null", `http://127.0.0.1:${port}/proxy.pac`]);
      assert.equal(r.code, 0);
      await json.waitFor(/"event":"stream"/);
      const qport = (await quiet.address()).port;
      assert.equal((await curl(["-o", "/dev/null", `http://127.0.0.1:${qport}/`])).code, 0);
      json.kill("SIGINT");
      quiet.kill("SIGINT");
      assert.equal((await json.stopped()).code, 0);
      assert.equal((await quiet.stopped()).code, 0);
      const records = json.stderr.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      const stream = records.find((r) => r.event === "stream")!;
      assert.equal(stream.cmd, "socks");
      assert.equal(stream.outcome, "served");
      assert.equal(stream.message, "proxy.pac");
      assert.equal(typeof stream.duration_ms, "number");
      assert.equal(typeof stream.time, "string");
      assert.equal(quiet.stderr, `svp socks: listening on 127.0.0.1:${qport}\n`);
    } finally {
      json.kill("SIGKILL");
      quiet.kill("SIGKILL");
    }
  });

  test("SIGINT lets a live stream finish, then exits 0", async () => {
    let targetSocket: import("node:net").Socket | undefined;
    const t = await targetServer((s) => {
      targetSocket = s;
      s.on("data", (d: Uint8Array) => s.write(d));
      s.on("end", () => s.end());
    });
    const svp = new SvpProcess(["socks", "--listen", "127.0.0.1:0"]);
    try {
      const { port } = await svp.address();
      const c = await RawClient.connect(port);
      c.write(socks5Connect("127.0.0.1", t.port));
      assert.equal(hex(await c.read(12)), SOCKS5_OK);
      await until(() => targetSocket !== undefined, "target connection");
      svp.kill("SIGINT");
      await svp.waitFor(/SIGINT: stopping, letting 1 live connection finish/);
      // New clients are not accepted any more...
      await assert.rejects(RawClient.connect(port));
      // ...but the live stream still works.
      c.write("still here");
      assert.equal(dec(await c.read(10)), "still here");
      assert.equal(svp.child.exitCode, null);
      c.end();
      assert.equal((await c.readToEnd()).length, 0);
      const { code } = await svp.stopped();
      assert.equal(code, 0);
    } finally {
      svp.kill("SIGKILL");
      await t.close();
    }
  });

  test("unix:/path listens owner-only; --auth-file is used and a readable file is warned about", async () => {
    const sock = join(dir, "svp.sock");
    const authFile = join(dir, "users");
    writeFileSync(authFile, "# users\nalice:secret one\n\nbob:two\n");
    chmodSync(authFile, 0o644);
    const svp = new SvpProcess(["socks", "--listen", `unix:${sock}`, "--listen", "127.0.0.1:0", "--auth-file", authFile]);
    try {
      await svp.waitFor(new RegExp(`listening on unix:${sock}`));
      const { port } = await svp.address();
      assert.match(svp.stderr, /warning: svp socks: --auth-file .* is readable by other users/);
      assert.equal(statSync(sock).mode & 0o777, 0o600);
      const unauth = await curl(["-o", "/dev/null", "-w", "%{http_code}", "-x", `http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/`]);
      assert.equal(unauth.stdout, "407");
      const ok = await curl(["-x", `http://127.0.0.1:${port}`, "--proxy-user", "bob:two", `http://127.0.0.1:${port}/`]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /This is svp/);
      const viaUnix = await curl(["--unix-socket", sock, "http://svp/proxy.pac"]);
      assert.match(viaUnix.stdout, /FindProxyForURL/);
      // A hangup (closed terminal or ssh session) is a clean stop too, not death by signal.
      svp.kill("SIGHUP");
      assert.deepEqual(await svp.stopped(), { code: 0, signal: null }, svp.stderr);
      assert.match(svp.stderr, /SIGHUP: stopping/);
      assert.equal(existsSync(sock), false, "socket file left behind");
    } finally {
      svp.kill("SIGKILL");
    }
  });

  test("a non-loopback listener without --auth warns that it is an open proxy", async () => {
    // --direct deny: while it runs it can reach nothing (mesh only, and no mesh yet).
    const open = new SvpProcess(["socks", "--listen", "0.0.0.0:0", "--direct", "deny"]);
    const withAuth = new SvpProcess(["socks", "--listen", "0.0.0.0:0", "--direct", "deny", "--auth", "u:p"]);
    try {
      await open.waitFor(/warning: svp socks: listening on 0\.0\.0\.0:\d+ without --auth: this is an open proxy/);
      await withAuth.waitFor(/listening on 0\.0\.0\.0:\d+/);
      open.kill("SIGTERM");
      withAuth.kill("SIGTERM");
      assert.deepEqual(await open.stopped(), { code: 0, signal: null }, open.stderr);
      assert.deepEqual(await withAuth.stopped(), { code: 0, signal: null }, withAuth.stderr);
      assert.doesNotMatch(withAuth.stderr, /open proxy/);
    } finally {
      open.kill("SIGKILL");
      withAuth.kill("SIGKILL");
    }
  });

  test("out of file descriptors: no crash, no busy loop, serving again once descriptors free up", async (t) => {
    if (!existsSync("/proc/self/stat")) {
      t.skip("needs /proc to read the process's CPU time");
      return;
    }
    const svp = new SvpProcess(["socks", "--listen", "127.0.0.1:0", "--quiet"], { shellPrefix: "ulimit -n 48;" });
    const clients: RawClient[] = [];
    try {
      const { port } = await svp.address();
      const pid = svp.child.pid!;
      const cpuTicks = () => {
        const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        return Number(f[11]) + Number(f[12]);
      };
      // Far more idle connections than descriptors: the kernel queues them, svp cannot accept them all.
      for (let i = 0; i < 60; i++) clients.push(await RawClient.connect(port));
      await new Promise((r) => setTimeout(r, 300));
      const before = cpuTicks();
      await new Promise((r) => setTimeout(r, 1000));
      const used = cpuTicks() - before;
      // A process spinning on accept() burns ~100 ticks per second; an idle one about none.
      assert.ok(used < 50, `svp used ${used} CPU ticks in 1 s while out of descriptors (spinning?)`);
      assert.equal(svp.child.exitCode, null, "svp exited");
      for (const c of clients) c.destroy();
      clients.length = 0;
      await new Promise((r) => setTimeout(r, 200));
      const r = await curl(["-o", "/dev/null", "-w", "%{http_code}", `http://127.0.0.1:${port}/`]);
      assert.equal(r.stdout, "200", r.stderr);
      svp.kill("SIGTERM");
      assert.equal((await svp.stopped()).code, 0);
    } finally {
      for (const c of clients) c.destroy();
      svp.kill("SIGKILL");
    }
  });
});
