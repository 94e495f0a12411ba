/**
 * `npm run bench` / `make bench`: svp's relay against the physical limit and other proxies,
 * in one run, on loopback only. Not a test: it measures and reports, it never fails on a
 * slow number.
 *
 * Contenders: direct (no proxy), svp socks (dist/svp, else node dist/svp.cjs, with its
 * default event loops: one per CPU; also with --workers 1; with dist/svp also node
 * dist/svp.cjs on the system node, to separate runtime from code), a naive Node relay
 * (bench/naive-relay.ts; on the system Node and on the Node inside dist/svp), microsocks and dante (Debian's dante-server, started here on
 * loopback with a temporary configuration) when installed. Each proxy runs in its own
 * process (dante in several); the load generator and the target server are bench/loadgen.c,
 * compiled here with cc, in another process, so neither the proxy nor the measuring side
 * share a process. Measured:
 *   - bulk throughput: 1 stream up, 1 down, 8 up (MiB/s, ratio to direct)
 *   - connections per second, sequential and 50 concurrent (connect + SOCKS5 handshake +
 *     CONNECT + 32-byte request and answer)
 *   - proxy CPU (user + system of the proxy's process and its child processes, from
 *     /proc/<pid>/stat, read by the load generator over the measured window): seconds per
 *     GiB (1 stream up) and µs per connection (50 concurrent)
 *   - memory per idle tunnel at 1,000 and 9,000 open tunnels (delta of a fresh proxy's
 *     proportional set size, summed over its processes, / tunnels)
 *   - start-up: `dist/svp --version` next to `node -e 0`
 *   - bench/msp.ts, when it exists: run as `node --import tsx bench/msp.ts`; what it prints
 *     on stdout is shown and copied into RESULTS.md's MSP section.
 *   - bench/mesh.ts, when it exists: TCP over MSP through two embedded nodes (svp socks and
 *     svp connect --forward next to direct TCP); its stdout goes into RESULTS.md's mesh section.
 *   - bench/node.ts, when it exists: the embedded node through two daemons (MSP, datagrams,
 *     memory with idle streams); its stdout goes into RESULTS.md's node section.
 *   - bench/msp-link.ts: one MSP stream (and eight) between two embedded nodes across the link
 *     emulator, with svp's MSP extension and with servald's window; RESULTS.md's link section.
 *   - bench/flood.ts: one MSP stream between two embedded nodes with and without a forged-
 *     packet flood from one process (20,000/s and as fast as it sends); RESULTS.md's flood section.
 *   - bench/soak.ts: a soak of `--soak` minutes (default 30; `--skip soak` leaves it out):
 *     socks fetches, a steady mesh stream, listen and both daemons, RSS and fds of each
 *     sampled every minute; RESULTS.md's soak section.
 *   - bench/routing.ts, when it exists: multi-hop routing (scale simulated in-process with
 *     100 and 1,000 nodes; reroute times and MSP through 1, 2 and 4 hops with real daemons in
 *     network namespaces, when they can be made); its stdout goes into RESULTS.md's routing
 *     section.
 *   - bench/servald.ts, only when SVP_SERVALD names a servald binary: svp connect --forward
 *     next to servald's own msp connect --forward through two servald daemons; its stdout
 *     goes into RESULTS.md's servald section.
 * Writes bench/RESULTS.md (only the sections between this script's markers; everything
 * else in the file is kept) and bench/results/latest.json.
 *
 * Options: --seconds N (per bulk/rate measurement, default 2), --rounds N (each measurement
 * is repeated N times, contenders interleaved; the median is reported; default 3), --only a,b (contender
 * names: direct, svp, svp-1, svp-node, naive, naive-sea, microsocks, dante), --skip bulk,rate,idle,startup,msp,mesh,node,routing,servald,link,flood,soak,
 * --soak MINUTES (default 30), --no-write.
 */

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, homedir, tmpdir } from "node:os";
import { connect, createServer, type AddressInfo } from "node:net";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { builtSvpCommand, median, root, sleep } from "./common.ts";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    only: { type: "string" },
    skip: { type: "string", default: "" },
    soak: { type: "string", default: "30" },
    "no-write": { type: "boolean", default: false },
  },
});
const SECONDS = Number(opts.seconds);
if (!Number.isInteger(SECONDS) || SECONDS < 1 || SECONDS > 30) throw new Error("--seconds must be an integer 1..30");
const ROUNDS = Number(opts.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 9) throw new Error("--rounds must be an integer 1..9");
const skip = new Set((opts.skip ?? "").split(",").filter(Boolean));
const only = opts.only ? new Set(opts.only.split(",")) : undefined;
const IDLE_COUNTS = [1000, 9000] as const;

const work = mkdtempSync(`${tmpdir()}/svp-bench-`);
const children = new Set<ChildProcess>();
function cleanup(): void {
  for (const c of children) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(130));

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

// ---------- contenders ----------

interface Proxy {
  pid: number;
  address: string; // 127.0.0.1:port
  stop(): Promise<void>;
}

interface Contender {
  name: string;
  label: string;
  /** Undefined for direct. */
  start?: () => Promise<Proxy>;
  unavailable?: string;
}

function commandExists(cmd: string): boolean {
  return spawnSync("bash", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Start `argv` with the hard fd limit as its soft limit; resolve once `ready` matches its stderr. */
function startProxy(argv: string[], ready: RegExp | { port: number }, env: NodeJS.ProcessEnv = process.env): Promise<Proxy> {
  const child = spawn("bash", ["-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', "bash", ...argv], {
    stdio: ["ignore", "ignore", "pipe"],
    env,
  });
  children.add(child);
  let tail = "";
  let exited = false;
  const exitedP = new Promise<void>((res) => child.once("exit", () => ((exited = true), children.delete(child), res())));
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exitedP;
    clearTimeout(t);
  };
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      child.kill("SIGKILL");
      reject(new Error(`${argv.join(" ")}: ${why}\n${tail.slice(-2000)}`));
    };
    const timer = setTimeout(() => fail("did not become ready within 10 s"), 10_000);
    const onEarlyExit = (code: number | null, sig: NodeJS.Signals | null) => {
      clearTimeout(timer);
      fail(`exited early (${code ?? sig})`);
    };
    child.once("exit", onEarlyExit);
    child.stderr!.setEncoding("utf8");
    let done = false;
    const ok = (address: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.off("exit", onEarlyExit);
      resolve({ pid: child.pid!, address, stop });
    };
    child.stderr!.on("data", (s: string) => {
      tail = (tail + s).slice(-8000);
      if (!done && ready instanceof RegExp) {
        const m = ready.exec(tail);
        if (m) ok(`127.0.0.1:${m[1]}`);
      }
    });
    if (!(ready instanceof RegExp)) {
      const port = ready.port;
      void (async () => {
        for (let i = 0; i < 100 && !done && !exited; i++) {
          if (await canConnect(port)) return ok(`127.0.0.1:${port}`);
          await sleep(50);
        }
      })();
    }
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = connect({ host: "127.0.0.1", port });
    c.once("connect", () => (c.destroy(), res(true)));
    c.once("error", () => res(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => res(p));
    });
  });
}


function svpHasSocks(cmd: string[]): boolean {
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), "socks", "--help"], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0 && r.stdout.includes("--listen");
}

async function contenders(naiveJs: string): Promise<Contender[]> {
  const list: Contender[] = [{ name: "direct", label: "direct (no proxy)" }];
  const svp = builtSvpCommand();
  const svpHome = `${work}/svp-home`;
  mkdirSync(svpHome, { recursive: true, mode: 0o700 });
  list.push(
    !svp
      ? { name: "svp", label: "svp socks", unavailable: "dist/svp.cjs missing (make dist)" }
      : !svpHasSocks(svp)
        ? { name: "svp", label: "svp socks", unavailable: "this build has no `svp socks` yet" }
        : {
            name: "svp",
            label: `svp socks (${svp.length === 1 ? "dist/svp" : "node dist/svp.cjs"})`,
            start: () =>
              startProxy([...svp, "socks", "--listen", "127.0.0.1:0", "--quiet"], /listening on 127\.0\.0\.1:(\d+)/, {
                ...process.env,
                SVP_HOME: svpHome,
                NO_COLOR: "1",
              }),
          },
  );
  // One event loop: the single-loop path on its own, and what the default's extra loops add.
  if (svp && svpHasSocks(svp)) {
    list.push({
      name: "svp-1",
      label: `svp socks --workers 1 (${svp.length === 1 ? "dist/svp" : "node dist/svp.cjs"})`,
      start: () =>
        startProxy([...svp, "socks", "--listen", "127.0.0.1:0", "--quiet", "--workers", "1"], /listening on 127\.0\.0\.1:(\d+)/, {
          ...process.env,
          SVP_HOME: svpHome,
          NO_COLOR: "1",
        }),
    });
  }
  // The same bundle on the system node, to tell the binary's runtime apart from svp's code.
  if (svp && svp.length === 1 && existsSync(`${root}dist/svp.cjs`) && svpHasSocks([process.execPath, `${root}dist/svp.cjs`])) {
    list.push({
      name: "svp-node",
      label: `svp socks (node dist/svp.cjs, Node ${process.versions.node})`,
      start: () =>
        startProxy([process.execPath, `${root}dist/svp.cjs`, "socks", "--listen", "127.0.0.1:0", "--quiet"], /listening on 127\.0\.0\.1:(\d+)/, {
          ...process.env,
          SVP_HOME: svpHome,
          NO_COLOR: "1",
        }),
    });
  }
  list.push({
    name: "naive",
    label: `naive Node relay (Node ${process.versions.node})`,
    start: () => startProxy([process.execPath, naiveJs, "0"], /listening on 127\.0\.0\.1:(\d+)/),
  });
  // The same relay on the Node that dist/svp carries (scripts/sea.mjs caches it), when it is
  // not the system Node: what Node itself costs per connection, next to svp on that runtime.
  const seaNode = seaRuntime();
  if (seaNode && seaNode.version !== process.versions.node) {
    list.push({
      name: "naive-sea",
      label: `naive Node relay (Node ${seaNode.version}, as in dist/svp)`,
      start: () => startProxy([seaNode.path, naiveJs, "0"], /listening on 127\.0\.0\.1:(\d+)/),
    });
  }
  list.push(
    commandExists("microsocks")
      ? {
          name: "microsocks",
          label: "microsocks",
          start: async () => {
            const port = await freePort();
            return startProxy(["microsocks", "-i", "127.0.0.1", "-p", String(port)], { port });
          },
        }
      : { name: "microsocks", label: "microsocks", unavailable: "not installed (apt-get install microsocks)" },
  );
  const danted = ["/usr/sbin/danted", "/usr/local/sbin/danted"].find((p) => existsSync(p)) ?? (commandExists("danted") ? "danted" : undefined);
  list.push(
    danted
      ? {
          name: "dante",
          label: "dante (danted)",
          start: async () => {
            const port = await freePort();
            const dir = mkdtempSync(`${work}/dante-`);
            writeFileSync(`${dir}/danted.conf`, danteConfig(port));
            return startProxy([danted, "-f", `${dir}/danted.conf`, "-p", `${dir}/danted.pid`], { port });
          },
        }
      : { name: "dante", label: "dante (danted)", unavailable: "not installed (apt-get install dante-server)" },
  );
  return list.filter((c) => !only || only.has(c.name));
}

/**
 * dante on 127.0.0.1:`port` only, no authentication, CONNECT to loopback destinations only,
 * errors to stderr (the benchmark's own pipe), no system files touched.
 */
function danteConfig(port: number): string {
  return [
    "logoutput: stderr",
    `internal: 127.0.0.1 port = ${port}`,
    "external: 127.0.0.1",
    "socksmethod: none",
    "clientmethod: none",
    "user.privileged: root",
    "user.unprivileged: nobody",
    "client pass {",
    "  from: 127.0.0.0/8 to: 0.0.0.0/0",
    "  log: error",
    "}",
    "socks pass {",
    "  from: 127.0.0.0/8 to: 127.0.0.0/8",
    "  command: connect",
    "  log: error",
    "}",
    "",
  ].join("\n");
}

// ---------- measurements ----------

let loadgen = "";

/** Run the load generator; with `watchPid` it also reports that process's CPU seconds over the window. */
function runLoadgen(args: string[], timeoutMs: number, watchPid?: number): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const env = watchPid ? { ...process.env, LOADGEN_PID: String(watchPid) } : process.env;
    const child = spawn(loadgen, args, { stdio: ["ignore", "pipe", "pipe"], env });
    children.add(child);
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
    child.stderr.setEncoding("utf8").on("data", (s: string) => (err = (err + s).slice(-2000)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code, sig) => {
      clearTimeout(timer);
      children.delete(child);
      if (code !== 0) return reject(new Error(`loadgen ${args.join(" ")}: ${code ?? sig} ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim()) as Record<string, number>);
      } catch {
        reject(new Error(`loadgen ${args.join(" ")}: bad output ${out}`));
      }
    });
  });
}

/**
 * Memory of process `pid` and every process below it (dante forks children), KiB: the
 * proportional set size, so pages the processes share (dante's forked children) count once.
 */
function rssKiB(pid: number): number {
  const parents = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone
    }
  }
  const tree = new Set([pid]);
  for (let changed = true; changed; ) {
    changed = false;
    for (const [p, parent] of parents) if (!tree.has(p) && tree.has(parent)) (tree.add(p), (changed = true));
  }
  let total = 0;
  for (const p of tree) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, "utf8"));
      if (m) total += Number(m[1]);
    } catch {
      // gone
    }
  }
  if (total === 0) throw new Error(`no memory figure for ${pid}`);
  return total;
}

type Row = Record<string, number | string | undefined>;
const results: Record<string, Row> = {};
const notes: string[] = [];

const TRAFFIC = [
  { key: "up1", args: ["bulk", "up", "1"], value: "mibps" },
  { key: "down1", args: ["bulk", "down", "1"], value: "mibps" },
  { key: "up8", args: ["bulk", "up", "8"], value: "mibps" },
  { key: "seq", args: ["rate", "1"], value: "rate" },
  { key: "conc50", args: ["rate", "50"], value: "rate" },
] as const;

/**
 * Throughput and connection rate. All proxies run side by side (idle ones cost nothing) and
 * are warmed up first;
 * each measurement is taken ROUNDS times, contenders interleaved in a rotating order, so
 * drift of this shared machine hits them alike. A value is the median over rounds; a
 * ratio is the median of the per-round ratios to direct.
 */
async function measureTraffic(list: Contender[]): Promise<void> {
  const live = list.filter((c) => !c.unavailable);
  const proxies = new Map<string, Proxy>();
  const samples = new Map<string, number[]>();
  const cpu = new Map<string, { seconds: number; user: number; units: number }>();
  try {
    for (const c of live) {
      if (!c.start) continue;
      try {
        proxies.set(c.name, await c.start());
      } catch (err) {
        (results[c.name] ??= {}).error = (err as Error).message.split("\n")[0];
        notes.push(`${c.label}: ${(err as Error).message}`);
      }
    }
    const limit = (SECONDS + 30) * 1000;
    // Warm every proxy up first (connections and a few bulk streams), so that no measurement
    // pays for compiling its code paths: a proxy with several event loops (svp's default)
    // warms each loop on its own, and a single-stream run may land on a cold one.
    for (const [name, proxy] of proxies) {
      log(`${name}: warm-up`);
      try {
        await runLoadgen(["rate", proxy.address, "16", "1", "3000"], limit);
        await runLoadgen(["bulk", proxy.address, "up", "8", "1"], limit);
      } catch (err) {
        notes.push(`${name}: warm-up failed: ${(err as Error).message}`);
      }
    }
    for (const m of TRAFFIC) {
      if (skip.has(m.args[0] === "bulk" ? "bulk" : "rate")) continue;
      for (let round = 0; round < ROUNDS; round++) {
        const order = live.map((_, i) => live[(i + round) % live.length]!);
        for (const c of order) {
          const proxy = proxies.get(c.name);
          if (c.start && !proxy) continue;
          if (results[c.name]?.error) continue;
          const target = proxy?.address ?? "direct";
          const args =
            m.args[0] === "bulk"
              ? ["bulk", target, m.args[1], m.args[2], String(SECONDS)]
              : ["rate", target, m.args[1], String(SECONDS), "1000000"];
          log(`${c.name}: ${m.key} (round ${round + 1}/${ROUNDS})`);
          try {
            const r = await runLoadgen(args, limit, proxy?.pid);
            const v = r[m.value];
            if (typeof v !== "number") throw new Error(`loadgen printed no ${m.value}`);
            const k = `${c.name}/${m.key}`;
            samples.set(k, [...(samples.get(k) ?? []), v]);
            if ((r.errors ?? 0) > 0) notes.push(`${c.label}: ${r.errors} failed connections in a ${m.key} run`);
            const used = r.proxy_cpu ?? -1;
            if (proxy && used >= 0) {
              const acc = cpu.get(k) ?? { seconds: 0, user: 0, units: 0 };
              acc.seconds += used;
              acc.user += Math.max(0, r.proxy_user ?? 0);
              // per GiB moved (bulk) or per completed connection (rate)
              acc.units += m.value === "mibps" ? (v * (r.seconds ?? 0)) / 1024 : (r.ok ?? 0);
              cpu.set(k, acc);
            }
          } catch (err) {
            (results[c.name] ??= {}).error = (err as Error).message.split("\n")[0];
            notes.push(`${c.label}: ${(err as Error).message}`);
            log(`${c.name}: FAILED: ${(err as Error).message}`);
          }
        }
      }
    }
  } finally {
    for (const p of proxies.values()) await p.stop();
  }
  for (const c of live) {
    const row = (results[c.name] ??= {});
    for (const m of TRAFFIC) {
      const xs = samples.get(`${c.name}/${m.key}`);
      if (!xs || xs.length === 0) continue;
      row[m.key] = median(xs);
      row[`${m.key}Samples`] = xs.map((x) => Math.round(x)).join(" ");
      const d = samples.get(`direct/${m.key}`);
      if (c.name !== "direct" && d && d.length === xs.length) row[`${m.key}Ratio`] = median(xs.map((x, i) => x / d[i]!));
    }
    const perGiB = cpu.get(`${c.name}/up1`);
    if (perGiB && perGiB.units > 0) row.cpuPerGiB = perGiB.seconds / perGiB.units;
    const perConn = cpu.get(`${c.name}/conc50`);
    if (perConn && perConn.units > 0) {
      row.cpuPerConnUs = (perConn.seconds * 1e6) / perConn.units;
      // The user-space part: the proxy's code and runtime; the rest is the kernel's socket work.
      row.userPerConnUs = (perConn.user * 1e6) / perConn.units;
    }
  }
}

/** RSS per idle tunnel of a fresh proxy process holding `count` tunnels. */
async function measureIdle(c: Contender, count: number): Promise<void> {
  const row = (results[c.name] ??= {});
  if (!c.start) return;
  const proxy = await c.start();
  let lg: ChildProcess | undefined;
  try {
    // Warm up code paths and allocator pools first, so the delta is the tunnels' own.
    await runLoadgen(["rate", proxy.address, "8", "1", "300"], 30_000);
    await sleep(500);
    const before = rssKiB(proxy.pid);
    log(`${c.name}: opening ${count} idle tunnels`);
    const child = spawn(loadgen, ["idle", proxy.address, String(count)], { stdio: ["pipe", "pipe", "pipe"] });
    lg = child;
    children.add(child);
    const opened = await new Promise<Record<string, number>>((resolve, reject) => {
      let out = "";
      let err = "";
      const timer = setTimeout(() => reject(new Error("idle tunnels not open within 150 s")), 150_000);
      child.stderr!.setEncoding("utf8").on("data", (s: string) => (err += s));
      child.stdout!.setEncoding("utf8").on("data", (s: string) => {
        out += s;
        if (out.includes("\n")) {
          clearTimeout(timer);
          resolve(JSON.parse(out) as Record<string, number>);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`loadgen idle exited ${code}: ${err.trim()}`));
      });
    });
    // Let timers and the garbage collector settle; take the larger of two samples.
    await sleep(1000);
    const after1 = rssKiB(proxy.pid);
    await sleep(1000);
    const after = Math.max(after1, rssKiB(proxy.pid));
    const n = opened.opened ?? 0;
    if ((opened.errors ?? 0) > 0) notes.push(`${c.label}: ${opened.errors} of ${count} idle tunnels failed to open`);
    row[`idle${count}`] = n > 0 ? (after - before) / n : undefined;
    row[`idle${count}open`] = n;
  } catch (err) {
    row[`idle${count}`] = undefined;
    notes.push(`${c.label}: idle ${count}: ${(err as Error).message}`);
    log(`${c.name}: idle ${count} FAILED: ${(err as Error).message}`);
  } finally {
    if (lg) {
      const child = lg;
      child.stdin!.end("\n");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
      clearTimeout(t);
      children.delete(child);
    }
    await proxy.stop();
  }
}

interface StartupRow {
  command: string;
  ms: number;
  /** Median of the per-round ratios to `node -e 0`. */
  ratio?: number;
}
interface Startup {
  rows: StartupRow[];
  runs: number;
  what?: string;
}


/**
 * Wall time from spawn to exit, in rounds that alternate the commands; stdout is a pipe,
 * as when a script runs svp. `--help` loads the whole command line (every command module);
 * `--version` is what the binary costs before any command runs.
 */
function measureStartup(): Startup {
  const svp = builtSvpCommand();
  const runs = 20;
  if (!svp) return { rows: [], runs: 0, what: "dist/svp missing" };
  const name = svp.length === 1 ? "dist/svp" : "node dist/svp.cjs";
  const cmds: [string, string, string[]][] = [
    ["node -e 0", process.execPath, ["-e", "0"]],
    [`${name} --version`, svp[0]!, [...svp.slice(1), "--version"]],
    [`${name} --help`, svp[0]!, [...svp.slice(1), "--help"]],
  ];
  const time = (cmd: string, args: string[]) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}`);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  for (const [, cmd, args] of cmds) time(cmd, args);
  const ms = cmds.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) cmds.forEach(([, cmd, args], j) => ms[j]!.push(time(cmd, args)));
  return {
    runs,
    rows: cmds.map(([label], j) => ({
      command: label,
      ms: median(ms[j]!),
      ...(j > 0 ? { ratio: median(ms[j]!.map((x, i) => x / ms[0]![i]!)) } : {}),
    })),
  };
}

function runMsp(): string | undefined {
  if (!existsSync(`${root}bench/msp.ts`)) return undefined;
  log("bench/msp.ts");
  const r = spawnSync(process.execPath, ["--import", "tsx", `${root}bench/msp.ts`], {
    cwd: root,
    encoding: "utf8",
    timeout: 600_000,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status !== 0) return `bench/msp.ts failed (${r.status ?? r.signal ?? r.error?.message})\n${r.stdout ?? ""}`;
  return r.stdout.trimEnd();
}

function runMesh(): string | undefined {
  if (!existsSync(`${root}bench/mesh.ts`)) return undefined;
  log("bench/mesh.ts");
  const r = spawnSync(process.execPath, ["--import", "tsx", `${root}bench/mesh.ts`, "--seconds", String(SECONDS), "--rounds", String(ROUNDS)], {
    cwd: root,
    encoding: "utf8",
    timeout: 1_200_000,
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status !== 0) return `bench/mesh.ts failed (${r.status ?? r.signal ?? r.error?.message})\n${r.stdout ?? ""}`;
  return r.stdout.trimEnd();
}

/** bench/node.ts: the embedded node through two `svp daemon` processes. */
function runNodeBench(): string | undefined {
  if (!existsSync(`${root}bench/node.ts`)) return undefined;
  log("bench/node.ts");
  const r = spawnSync(process.execPath, ["--import", "tsx", `${root}bench/node.ts`, "--seconds", String(SECONDS), "--rounds", String(ROUNDS)], { cwd: root, encoding: "utf8", timeout: 900_000, stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) return `bench/node.ts failed (${r.status ?? r.signal ?? r.error?.message})\n${r.stdout ?? ""}`;
  return r.stdout.trimEnd();
}

/** Run one part of the benchmark (bench/<name>.ts) in its own process; its stdout (markdown) or why it failed. */
function runPart(name: string, args: string[], timeoutMs: number, nodeFlags: string[] = []): string | undefined {
  const file = `${root}bench/${name}.ts`;
  if (!existsSync(file)) return undefined;
  log(`bench/${name}.ts`);
  const r = spawnSync(process.execPath, [...nodeFlags, "--import", "tsx", file, ...args], { cwd: root, encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) return `bench/${name}.ts failed (${r.status ?? r.signal ?? r.error?.message})\n${r.stdout ?? ""}`;
  return r.stdout.trimEnd();
}

/** bench/servald.ts (SVP_SERVALD set): svp next to servald's own tools through two servald daemons. */
function runServaldBench(): string | undefined {
  if (!process.env.SVP_SERVALD || !existsSync(`${root}bench/servald.ts`)) return undefined;
  log("bench/servald.ts");
  const r = spawnSync(process.execPath, ["--import", "tsx", `${root}bench/servald.ts`, "--rounds", String(Math.max(ROUNDS, 5))], { cwd: root, encoding: "utf8", timeout: 900_000, stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) return `bench/servald.ts failed (${r.status ?? r.signal ?? r.error?.message})\n${r.stdout ?? ""}`;
  return r.stdout.trimEnd();
}

// ---------- report ----------

const fmt = (v: unknown, digits = 0) => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");

function cell(c: Contender, key: string, digits: number, ratio: boolean): string {
  if (c.unavailable) return "n/a";
  const r = results[c.name] ?? {};
  const v = r[key];
  if (typeof v !== "number") return r.error && key !== "idle1000" && key !== "idle9000" ? "failed" : "–";
  const q = r[`${key}Ratio`];
  return ratio && typeof q === "number" ? `${fmt(v, digits)} (${q.toFixed(2)}×)` : fmt(v, digits);
}

function table(list: Contender[]): string {
  const rows: [string, string, number, boolean][] = [
    ["bulk 1 stream up, MiB/s", "up1", 0, true],
    ["bulk 1 stream down, MiB/s", "down1", 0, true],
    ["bulk 8 streams up, MiB/s", "up8", 0, true],
    ["connections/s, sequential", "seq", 0, true],
    ["connections/s, 50 concurrent", "conc50", 0, true],
    ["proxy CPU s per GiB (1 stream up)", "cpuPerGiB", 2, false],
    ["proxy CPU µs per connection (50 concurrent)", "cpuPerConnUs", 0, false],
    ["of which user space (the rest: kernel)", "userPerConnUs", 0, false],
    ["KiB per idle tunnel, 1,000 open", "idle1000", 1, false],
    ["KiB per idle tunnel, 9,000 open", "idle9000", 1, false],
  ];
  const head = ["", ...list.map((c) => c.label)];
  const body = rows.map(([label, key, digits, ratio]) => [label, ...list.map((c) => cell(c, key, digits, ratio))]);
  const lines = [head, head.map(() => "---"), ...body].map((r) => `| ${r.join(" | ")} |`);
  return lines.join("\n");
}

/** The Node inside dist/svp, from the cache scripts/sea.mjs fills; undefined when absent. */
function seaRuntime(): { path: string; version: string } | undefined {
  const m = /const SEA_NODE_VERSION = "([\d.]+)"/.exec(readFileSync(`${root}scripts/sea.mjs`, "utf8"));
  const base = process.env.XDG_CACHE_HOME?.startsWith("/") ? `${process.env.XDG_CACHE_HOME}/svp` : `${homedir()}/.cache/svp`;
  const path = m ? `${base}/node-v${m[1]}/bin/node` : "";
  return m && existsSync(path) ? { path, version: m[1]! } : undefined;
}

/** The 1-minute load average: on a shared machine, say how busy it was. */
function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ")[0] ?? "?";
}

function machine(): string {
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const kernel = spawnSync("uname", ["-r"], { encoding: "utf8" }).stdout.trim();
  return `${cpus().length} × ${cpu}, Linux ${kernel}, Node ${process.versions.node}`;
}

function replaceSection(doc: string, name: string, body: string): string {
  const begin = `<!-- bench:${name}:begin (written by bench/run.ts) -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${begin}\n${body.trim()}\n${end}`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) return doc.slice(0, i) + block + doc.slice(j + end.length);
  return `${doc.trimEnd()}\n\n${block}\n`;
}

// ---------- main ----------

async function main(): Promise<void> {
  if (!commandExists("cc")) throw new Error("a C compiler (cc) is needed for the load generator: apt-get install gcc");
  loadgen = `${work}/loadgen`;
  const cc = spawnSync("cc", ["-O2", "-pthread", "-o", loadgen, `${root}bench/loadgen.c`], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`cc bench/loadgen.c failed:\n${cc.stderr}`);
  const naiveJs = `${work}/naive-relay.mjs`;
  await build({ entryPoints: [`${root}bench/naive-relay.ts`], outfile: naiveJs, bundle: true, platform: "node", format: "esm", logLevel: "warning" });

  const list = await contenders(naiveJs);
  for (const c of list) if (c.unavailable) notes.push(`${c.label}: not measured: ${c.unavailable}`);
  const date = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const loadBefore = loadAverage();
  log(`machine: ${machine()}; ${SECONDS} s per measurement`);

  if (!skip.has("bulk") || !skip.has("rate")) await measureTraffic(list);
  if (!skip.has("idle")) {
    for (const count of IDLE_COUNTS) for (const c of list) if (c.start && !c.unavailable) await measureIdle(c, count);
  }
  const startup = skip.has("startup") ? undefined : measureStartup();
  const msp = skip.has("msp") ? undefined : runMsp();
  const mesh = skip.has("mesh") ? undefined : runMesh();
  const embedded = skip.has("node") ? undefined : runNodeBench();
  // --expose-gc: heap per route; the 1,000-node simulation holds a million routes.
  const routing = skip.has("routing") ? undefined : runPart("routing", ["--seconds", String(SECONDS), "--rounds", String(ROUNDS)], 3_600_000, ["--expose-gc", "--max-old-space-size=8192"]);
  const servald = skip.has("servald") ? undefined : runServaldBench();
  const link = skip.has("link") ? undefined : runPart("msp-link", ["--seconds", String(Math.max(SECONDS, 8))], 1_200_000);
  const flood = skip.has("flood") ? undefined : runPart("flood", ["--seconds", String(Math.max(SECONDS, 4)), "--rounds", String(ROUNDS)], 600_000);
  const soakMinutes = Number(opts.soak);
  if (!skip.has("soak") && !(soakMinutes >= 1)) throw new Error("--soak must be a number of minutes, at least 1");
  const soak = skip.has("soak") ? undefined : runPart("soak", ["--minutes", String(soakMinutes), "--warmup", String(Math.min(5, soakMinutes / 3)), "--sample", "60"], (soakMinutes + 5) * 60_000);

  const tbl = table(list);
  const startupText = startup?.rows.length
    ? `| command | median wall ms (${startup.runs} alternating runs) | ratio to \`node -e 0\` |\n| --- | --- | --- |\n` +
      startup.rows.map((r) => `| \`${r.command}\` | ${fmt(r.ms, 1)} | ${r.ratio === undefined ? "1" : fmt(r.ratio, 2)} |`).join("\n")
    : `not measured${startup?.what ? `: ${startup.what}` : ""}`;

  const header = `Run ${date} on ${machine()}; load average ${loadBefore} at the start and ${loadAverage()} at the end (other jobs share this machine). Loopback only; each throughput and connection-rate figure is the median of ${ROUNDS} interleaved runs of ${SECONDS} s (ratio: median of the per-run ratios to direct); load generator and target: bench/loadgen.c (C, threads) in their own process; each proxy in its own process (dante: its process tree); proxy CPU and memory count all of a proxy's threads and processes (memory: proportional set size).`;
  process.stdout.write(`\n${header}\n\n${tbl}\n\nStart-up:\n${startupText}\n`);
  if (notes.length) process.stdout.write(`\nNotes:\n${notes.map((n) => `- ${n}`).join("\n")}\n`);
  if (msp !== undefined) process.stdout.write(`\nMSP (bench/msp.ts):\n${msp}\n`);
  if (mesh !== undefined) process.stdout.write(`\nMesh (bench/mesh.ts):\n${mesh}\n`);
  if (embedded !== undefined) process.stdout.write(`\nEmbedded node (bench/node.ts):\n${embedded}\n`);
  if (routing !== undefined) process.stdout.write(`\nRouting (bench/routing.ts):\n${routing}\n`);
  if (servald !== undefined) process.stdout.write(`\nservald backend (bench/servald.ts):\n${servald}\n`);
  if (link !== undefined) process.stdout.write(`\nMSP on emulated links (bench/msp-link.ts):\n${link}\n`);
  if (flood !== undefined) process.stdout.write(`\nFlood (bench/flood.ts):\n${flood}\n`);
  if (soak !== undefined) process.stdout.write(`\nSoak (bench/soak.ts):\n${soak}\n`);

  mkdirSync(`${root}bench/results`, { recursive: true });
  writeFileSync(`${root}bench/results/latest.json`, JSON.stringify({ date, machine: machine(), seconds: SECONDS, results, startup, notes, msp, mesh, node: embedded, routing, servald, link, flood, soak }, null, 2) + "\n");
  if (opts["no-write"]) return;
  const path = `${root}bench/RESULTS.md`;
  let doc = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmark results\n\nLatest `npm run bench` results. Sections between `bench:` markers are rewritten by bench/run.ts on every run; the rest is kept.\n";
  const notesText = notes.length ? `\n\nNotes from the run:\n${notes.map((n) => `- ${n.split("\n")[0]}`).join("\n")}` : "";
  doc = replaceSection(doc, "socks", `## SOCKS relay\n\n${header}\n\n${tbl}${notesText}`);
  doc = replaceSection(doc, "startup", `## Start-up\n\n${startupText}`);
  if (msp !== undefined) doc = replaceSection(doc, "msp", `## MSP: latest \`npm run bench\` (output of bench/msp.ts)\n\n${msp}`);
  if (mesh !== undefined) doc = replaceSection(doc, "mesh", `## Mesh: TCP over MSP through two embedded nodes (output of bench/mesh.ts)\n\n${mesh}`);
  if (embedded !== undefined) doc = replaceSection(doc, "node", `## Embedded node (bench/node.ts)\n\n${embedded}`);
  if (routing !== undefined) doc = replaceSection(doc, "routing", `## Routing: multi-hop mesh (output of bench/routing.ts)\n\n${routing}`);
  if (servald !== undefined) doc = replaceSection(doc, "servald", `## servald backend: svp next to servald's own tools (output of bench/servald.ts)\n\n${servald}`);
  if (link !== undefined) doc = replaceSection(doc, "link", `## MSP on emulated links (output of bench/msp-link.ts)\n\n${link}`);
  if (flood !== undefined) doc = replaceSection(doc, "flood", `## Flood: a stream under a forged-packet flood (output of bench/flood.ts)\n\n${flood}`);
  if (soak !== undefined) doc = replaceSection(doc, "soak", `## Soak: memory and descriptors over a long run (output of bench/soak.ts)\n\n${soak}`);
  writeFileSync(path, doc);
  log(`wrote bench/RESULTS.md and bench/results/latest.json`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
