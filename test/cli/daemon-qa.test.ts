/**
 * `svp daemon` / `svp id` / `svp status` edge cases a user or a systemd admin runs into:
 * keep-alive flags outside the range svp.conf allows, an instance "directory" that is a
 * file, a keyring that cannot be written, the daemon losing its stderr, durations in the
 * human status output.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { daemonSandbox, runSvp, svpCommand } from "./entry.ts";
import { formatDuration } from "../../cli/render.ts";
import { formatStatus } from "../../cli/status.ts";
import type { StatusReport } from "../../src/status/status-report.ts";
import { keyringStore } from "../../src/platform/instance-files.ts";
import { isSvpError } from "../../src/errors.ts";
import { unixDatagramSupport } from "../../src/platform/unix-dgram.ts";
import { checkBindAddress, checkTimers, emptyNodeConfig, parseNodeConfig } from "../../src/node/node-config.ts";

const { root, env, home } = daemonSandbox("svp-cli-daemon-qa-");
const ROOT = new URL("../..", import.meta.url).pathname;

const svp = (args: string[], extraEnv: Record<string, string> = {}) => runSvp(args, { env: { ...env, ...extraEnv }, timeoutMs: 30_000 });

describe("svp daemon flags", () => {
  test("--hello-interval / --peer-timeout below svp.conf's minimum and a non-numeric --bind are usage errors (no daemon starts)", async () => {
    const h = home();
    for (const [args, re] of [
      [["--hello-interval", "0"], /--hello-interval must be at least 100ms/],
      [["--hello-interval", "1ms"], /--hello-interval must be at least 100ms/],
      [["--peer-timeout", "0"], /--peer-timeout must be at least 200ms/],
      [["--bind", "eth0"], /--bind expects a numeric IP address, got "eth0"/],
    ] as const) {
      for (const action of ["start", "run"]) {
        const r = await svp(["daemon", action, "--home", h, "--port", "0", ...args]);
        assert.equal(r.code, 2, `${action} ${args.join(" ")}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.equal(r.stdout, "");
      }
    }
    assert.equal((await svp(["daemon", "status", "--home", h])).code, 1, "no daemon was started");
  });

  test("a peer timeout not longer than the hello interval (peers would flap every hello) is a usage error", async () => {
    const h = home();
    const r = await svp(["daemon", "start", "--home", h, "--port", "0", "--hello-interval", "1s", "--peer-timeout", "300ms"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /peer timeout \(300 ms\) must be longer than the hello interval \(1000 ms\)/);
    mkdirSync(h, { recursive: true, mode: 0o700 });
    writeFileSync(join(h, "svp.conf"), "peer-timeout = 2s\n");
    const conf = await svp(["daemon", "run", "--home", h, "--port", "0"]);
    assert.equal(conf.code, 2, conf.stderr);
    assert.match(conf.stderr, /peer timeout \(2000 ms\) must be longer than the hello interval \(5000 ms\)/);
    // Both settings together, longer timeout: fine (checked without starting anything).
    assert.doesNotThrow(() => checkTimers({ ...emptyNodeConfig(), helloIntervalMs: 1000, peerTimeoutMs: 1500 }));
    assert.doesNotThrow(() => checkTimers({ ...emptyNodeConfig(), helloIntervalMs: 60_000 }));
  });

  test("start: --log is checked and passed on to the background daemon (daemon.log in JSON)", async () => {
    const h = home();
    const bad = await svp(["daemon", "start", "--home", h, "--port", "0", "--log", "xml"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /invalid --log "xml": expected text or json/);
    const ok = await svp(["daemon", "start", "--home", h, "--port", "0", "--log", "json"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
    const lines = readFileSync(join(h, "daemon.log"), "utf8").trim().split("\n");
    assert.ok(lines.length >= 2, lines.join("\n"));
    for (const l of lines) assert.equal(JSON.parse(l).cmd, "daemon", l);
    // A failing start in JSON mode still shows only the reason.
    const fail = await svp(["daemon", "start", "--home", h, "--port", "0", "--log", "json", "--bind", "192.0.2.1"]);
    assert.notEqual(fail.code, 0);
    assert.equal(fail.stderr.trim().split("\n").length, 1, fail.stderr);
    assert.match(fail.stderr, /^svp daemon: cannot start the daemon: the daemon exited during start-up \(exit code 1\): cannot bind UDP 192\.0\.2\.1:0: /);
  });

  test("an IPv6 bind address may carry a zone (fe80::1%eth0), in svp.conf and as --bind", () => {
    assert.deepEqual(parseNodeConfig("bind = fe80::1%eth0\n", "svp.conf").bind, ["fe80::1%eth0"]);
    assert.equal(checkBindAddress("fe80::1%eth0", "--bind"), "fe80::1%eth0");
    assert.throws(() => checkBindAddress("eth0", "--bind"), /--bind expects a numeric IP address/);
  });
});

describe("a stale pid file naming the very process that reads it (containers: the same pid after every restart)", () => {
  const sh = (h: string, args: string[]) => {
    const quoted = [...svpCommand(), ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    // exec keeps the shell's pid: svp finds its own pid in the pid file, as after a crash.
    return `mkdir -p '${h}' && echo $$ > '${h}/daemon.pid' && exec ${quoted}`;
  };

  test("svp daemon run takes it for stale and starts", async () => {
    const h = home();
    const child = spawn("/bin/sh", ["-c", sh(h, ["daemon", "run", "--home", h, "--port", "0"])], { env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      let up = false;
      for (const end = Date.now() + 20_000; !up && Date.now() < end && child.exitCode === null; ) {
        up = (await svp(["daemon", "status", "--home", h])).code === 0;
        if (!up) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(up, `the daemon runs: ${stderr}`);
      assert.doesNotMatch(stderr, /already running/);
      assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
      assert.equal(await exited, 0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("svp daemon start takes it for stale and starts the daemon", async () => {
    const h = home();
    const child = spawn("/bin/sh", ["-c", sh(h, ["daemon", "start", "--home", h, "--port", "0"])], { env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^[0-9A-F]{64}\n$/);
    assert.equal((await svp(["daemon", "status", "--home", h])).code, 0);
    assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
  });
});

describe("svp daemon start failing after the daemon logged something", () => {
  test("shows the reason in one line, not the daemon's timestamped progress lines", async () => {
    const h = home(); // fresh: the daemon first logs "created a new identity"
    const r = await svp(["daemon", "start", "--home", h, "--port", "0", "--bind", "192.0.2.1"]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^svp daemon: cannot start the daemon: the daemon exited during start-up \(exit code 1\): cannot bind UDP 192\.0\.2\.1:0: /);
    assert.doesNotMatch(r.stderr, /created a new identity/);
  });
});

describe("instance directory problems", () => {
  test("SVP_HOME naming a file: a clear 'not a directory' error from id and daemon start", async () => {
    const file = join(root, "a-file");
    writeFileSync(file, "x");
    for (const args of [["id"], ["daemon", "start", "--port", "0"]]) {
      const r = await svp(args, { SVP_HOME: file });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`instance directory ${file} is not a directory`));
      assert.doesNotMatch(r.stderr, /EEXIST|ENOTDIR|svp\.conf/);
    }
  });

  test("a symlink to a directory is a usable instance directory (the target is checked)", async () => {
    const real = join(root, "real-home");
    mkdirSync(real, { mode: 0o755 });
    const link = home("linked-home");
    symlinkSync(real, link);
    const id = await svp(["id", "--home", link]);
    assert.equal(id.code, 0, id.stderr);
    assert.ok(existsSync(join(real, "keyring.json")), "the keyring is in the target");
    assert.equal(statSync(real).mode & 0o777, 0o700, "the target is made owner-only");
    const start = await svp(["daemon", "start", "--home", link, "--port", "0"]);
    assert.equal(start.code, 0, start.stderr);
    assert.equal(start.stdout, id.stdout);
    assert.equal((await svp(["daemon", "stop", "--home", link])).code, 0);
  });

  test("a keyring that cannot be written names the file and the reason", () => {
    const store = keyringStore(join(root, "no-such-dir"));
    assert.throws(
      () => store.create(new Uint8Array([1, 2, 3])),
      (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED") && e.message.includes(join(root, "no-such-dir", "keyring.json")) && /ENOENT/.test(e.message),
    );
    assert.throws(
      () => store.write(new Uint8Array([1, 2, 3])),
      (e: unknown) => isSvpError(e, "ERR_NOT_ALLOWED") && e.message.includes(join(root, "no-such-dir", "keyring.json")),
    );
  });
});

describe("messages that name the real problem", () => {
  const asRoot = typeof process.getuid === "function" && process.getuid() === 0;

  test("svp status and svp daemon status on a home this user cannot read: permission denied, not 'no daemon is running'", async () => {
    const h = home();
    assert.equal((await svp(["daemon", "start", "--home", h, "--port", "0"])).code, 0);
    // As root every directory is readable: ask as another user (nobody) instead; otherwise lock a parent.
    const locked = asRoot ? h : join(root, "locked");
    let target = h;
    if (!asRoot) {
      mkdirSync(locked, { recursive: true });
      target = join(locked, "inner");
      mkdirSync(target);
      chmodSync(locked, 0);
    }
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const [cmd, ...pre] = svpCommand();
        const child = spawn(cmd!, [...pre, ...args], { cwd: ROOT, env: { ...process.env, ...env, NO_COLOR: "1", HOME: "/tmp" }, stdio: ["ignore", "pipe", "pipe"], ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
        child.stderr.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code, stdout, stderr });
        });
      });
    try {
      const st = await run(["status", "--home", target]);
      assert.equal(st.code, 7, st.stderr);
      assert.equal(st.stdout, "");
      assert.match(st.stderr, new RegExp(`^svp status: cannot query the daemon: instance directory ${target}: permission denied`));
      assert.doesNotMatch(st.stderr, /no svp daemon is running/);
      const ds = await run(["daemon", "status", "--home", target]);
      assert.equal(ds.code, 7, ds.stderr);
      assert.match(ds.stderr, /permission denied/);
    } finally {
      if (!asRoot) chmodSync(locked, 0o700);
    }
    assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
  });

  test("svp daemon start says itself that same-host discovery is off when its directory is unusable (not only in daemon.log)", async () => {
    const file = join(root, "discovery-is-a-file");
    writeFileSync(file, "x");
    const squats: [string, RegExp][] = [[file, /same-host discovery is off: .*(EEXIST|ENOTDIR|not a directory)/]];
    if (asRoot) {
      // Squatted: another user made the directory first.
      const other = join(root, "discovery-of-nobody");
      mkdirSync(other, { mode: 0o700 });
      chownSync(other, 65534, 65534);
      squats.push([other, /same-host discovery is off: discovery directory .* belongs to another user/]);
    }
    for (const [dir, re] of squats) {
      const h = home();
      const r = await svp(["daemon", "start", "--home", h, "--port", "0"], { SVP_DISCOVERY_DIR: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`^svp daemon: started \\(pid \\d+\\) for ${h}\nwarning: svp daemon: ${re.source}`));
      const st = await svp(["status", "--home", h], { SVP_DISCOVERY_DIR: dir });
      assert.match(st.stdout, new RegExp(`^note +${re.source}`, "m"), "svp status shows it too");
      assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
    }
  });
});

describe("svp daemon run", () => {
  test("keeps running when the reader of its stderr goes away", async () => {
    const h = home();
    const other = home();
    // `head -c 1` reads the first log line's first byte and exits: later log lines get EPIPE.
    const quoted = [...svpCommand(), "daemon", "run", "--home", h, "--port", "0", "--hello-interval", "200ms"].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    const child = spawn("/bin/sh", ["-c", `${quoted} 2>&1 | head -c 1 >/dev/null`], { env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: "ignore" });
    try {
      let up = false;
      for (const end = Date.now() + 20_000; !up && Date.now() < end; ) {
        up = (await svp(["daemon", "status", "--home", h])).code === 0;
        if (!up) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(up, "the daemon came up");
      // A second node: the first logs "peer … up" into the closed pipe.
      assert.equal((await svp(["daemon", "start", "--home", other, "--port", "0", "--hello-interval", "200ms"])).code, 0);
      const sidOther = (await svp(["id", "--home", other])).stdout.trim();
      let seen = false;
      for (const end = Date.now() + 15_000; !seen && Date.now() < end; ) {
        const st = await svp(["status", "--home", other, "--json"]);
        seen = st.code === 0 && (JSON.parse(st.stdout).peers as { live: boolean }[]).some((p) => p.live);
        if (!seen) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(seen, "the nodes found each other");
      await new Promise((r) => setTimeout(r, 300));
      const st = await svp(["status", "--home", h, "--json"]);
      assert.equal(st.code, 0, `the daemon still runs: ${st.stderr}`);
      assert.ok((JSON.parse(st.stdout).peers as { sid: string; live: boolean }[]).some((p) => p.sid === sidOther && p.live));
      assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("a daemon that does not answer (SIGSTOP)", () => {
  test("svp status and svp daemon status say it does not answer, not that none runs", async () => {
    const h = home();
    const start = await svp(["daemon", "start", "--home", h, "--port", "0"]);
    assert.equal(start.code, 0, start.stderr);
    const pid = Number(/pid (\d+)/.exec(start.stderr)![1]);
    process.kill(pid, "SIGSTOP");
    try {
      const st = await svp(["status", "--home", h]);
      assert.equal(st.code, 1);
      assert.equal(st.stdout, "");
      assert.match(st.stderr, new RegExp(`^svp status: the svp daemon for ${h} \\(pid ${pid}\\) does not answer on its local API socket\n$`));
      const ds = await svp(["daemon", "status", "--home", h]);
      assert.notEqual(ds.code, 0);
      assert.match(ds.stderr, /^svp daemon: cannot query the daemon: .*does not answer/);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    assert.equal((await svp(["daemon", "stop", "--home", h])).code, 0);
  });
});

describe("svp status durations", () => {
  test("rounding carries into the next unit (never '60 s' or '60 m')", () => {
    assert.equal(formatDuration(999.6), "1.0 s");
    assert.equal(formatDuration(59_960), "1 m 0 s");
    assert.equal(formatDuration(179_600), "3 m 0 s");
    assert.equal(formatDuration(3_599_700), "1 h 0 m");
    assert.equal(formatDuration(7_170_000), "2 h 0 m");
    assert.equal(formatDuration(61_000), "1 m 1 s");
    assert.equal(formatDuration(12_345), "12.3 s");
    assert.equal(formatDuration(250), "250 ms");
  });
});

describe("svp status with SERVALINSTANCE_PATH set and nothing running", () => {
  const addon = unixDatagramSupport();
  test("says that servald does not answer as well as that no svp daemon runs", { skip: addon.available ? false : `the native addon is not loaded: ${addon.reason}` }, async () => {
    const servaldHome = home();
    mkdirSync(servaldHome, { recursive: true, mode: 0o700 });
    const st = await svp(["status", "--home", home()], { SERVALINSTANCE_PATH: servaldHome });
    assert.equal(st.code, 1, st.stderr);
    assert.match(st.stderr, new RegExp(`^svp status: no servald answers at instance ${servaldHome}`));
    assert.match(st.stderr, /\nsvp status: no svp daemon is running for /);
  });
});

describe("svp status marks what only the clients say", () => {
  test("claimed pids, self-given names and reported streams are marked; notes and the local API line are shown", () => {
    const sid = "AB".repeat(32);
    const report: StatusReport = {
      schema: 1,
      backend: "embedded",
      identity: { sid, base32: "x", sids: [sid] },
      daemon: { pid: 1, version: "t", home: "/h", startedAt: "", uptimeMs: 1000, udp: [], discovery: [], notes: ["same-host discovery is off: test"], api: { clients: 2, maxClients: 128, queuedBytes: 2048, partialBytes: 0, ports: 2, mspRemotes: 1, disconnected: { "slow-reader": 1, "hello-timeout": 0 } } },
      peers: [],
      ports: [
        { sid, port: 80, pid: 4242, uid: 1000, client: "svp listen", clientReported: ["client"] },
        { sid, port: 81, pid: 424242, uid: null, client: "attacker", clientReported: ["client", "pid"] },
      ],
      streams: [{ localSid: sid, localPort: 80, remoteSid: sid, remotePort: 9, state: "open", bytesIn: 1, bytesOut: 2, ageMs: 3, pid: 424242, client: "attacker", clientReported: ["remoteSid", "remotePort", "state", "bytesIn", "bytesOut", "ageMs", "client", "pid"] }],
      drops: {},
    };
    const text = formatStatus(report);
    assert.match(text, /^note +same-host discovery is off: test$/m);
    assert.match(text, /^local api  2 clients \(limit 128\), 2\.0 KiB unread by them, 0 B of unfinished frames; disconnected: slow-reader 1$/m);
    assert.match(text, /PID +CLIENT \(as it names itself\)/);
    assert.match(text, /80 +4242 +svp listen$/m);
    assert.match(text, /81 +424242 \(claimed\) +attacker$/m);
    assert.match(text, /^streams \(1; as reported by their clients\)$/m);
    assert.match(text, /attacker \(pid 424242, claimed\)$/m);
  });
});
