/**
 * svp's real command line on the servald backend against servald's own tools (SVP_SERVALD),
 * two linked instances A and B. svp runs unchanged: the backend comes from
 * SERVALINSTANCE_PATH with `--mesh auto` (the default), as a user would run it; SVP_HOME
 * points at an empty directory so that a wrong fallback to the embedded node shows.
 * - pages: `svp connect` (stdio and --forward) → `servald msp listen --forward`;
 *   `servald msp connect` → `svp listen --forward`; curl → `svp socks` → servald;
 * - 1 MiB each way checksummed and half-close (the server answers after EOF), both pairings;
 * - refused forward ports on either side: exit 4, SOCKS reply 5, servald's tool ends at once;
 * - discovery: `svp discover` finds `servald msp listen --service`; a Java-style query
 *   (pattern + NUL to port 11, unicast and broadcast) gets `svp listen --service`'s answer;
 * - `svp status` / `svp id` on servald, `--mesh auto|servald` choices, the daemon going away.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import type { Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SvpProcess, svpCommand } from "../cli/entry.ts";
import { ServaldMesh, SERVALD, SKIP_REASON, run } from "./servald-harness.ts";
import type { ServaldNode } from "./servald-harness.ts";
import { openUnixDatagram } from "../../src/platform/unix-dgram.ts";
import { connectServald } from "../../src/servald/connect-servald.ts";
import type { ServaldTransport } from "../../src/servald/servald-transport.ts";
import { SID_BROADCAST, parseSid, sidToBase32, sidToHex } from "../../src/mesh/sid.ts";
import { concat, patternBytes, within } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Ran {
  code: number | null;
  stdout: Uint8Array;
  stderr: string;
}

/** Reads a socket to EOF. */
function drain(s: Socket): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    s.on("data", (c: Buffer) => chunks.push(new Uint8Array(c)));
    s.once("end", () => resolve(concat(chunks)));
    s.once("error", reject);
  });
}

describe("svp CLI on the servald backend", { skip: SKIP_REASON }, () => {
  let mesh: ServaldMesh;
  let A: ServaldNode;
  let B: ServaldNode;
  let dir: string;
  let home: string;
  const servers: Server[] = [];
  const procs: SvpProcess[] = [];

  /** svp's environment for a node: its instance in SERVALINSTANCE_PATH, nothing else chosen. */
  const envOf = (node: ServaldNode): Record<string, string> => ({ SERVALINSTANCE_PATH: node.instance, SVP_HOME: home, NO_COLOR: "1", SVP_SERVALD: SERVALD! });

  /** Run svp to completion with binary stdin/stdout (bounded). */
  function svp(node: ServaldNode | undefined, args: string[], options: { input?: Uint8Array | string; env?: Record<string, string>; timeoutMs?: number; endInputAfter?: number } = {}): Promise<Ran> {
    const [cmd, ...pre] = svpCommand();
    const env: NodeJS.ProcessEnv = { ...process.env, ...(node ? envOf(node) : { SVP_HOME: home, NO_COLOR: "1" }), ...options.env };
    if (!node) delete env.SERVALINSTANCE_PATH;
    return new Promise((resolve, reject) => {
      const child = spawn(cmd!, [...pre, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
      const out: Uint8Array[] = [];
      let stderr = "";
      let outBytes = 0;
      child.stdout.on("data", (c: Buffer) => {
        out.push(new Uint8Array(c));
        outBytes += c.length;
        if (options.endInputAfter !== undefined && outBytes >= options.endInputAfter) child.stdin.end();
      });
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.stdin.on("error", () => undefined); // svp may finish before reading all of it
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: concat(out), stderr });
      });
      // endInputAfter: stdin stays open until that much output arrived (EOF only then).
      if (options.endInputAfter !== undefined) child.stdin.write(options.input ?? "");
      else child.stdin.end(options.input ?? "");
    });
  }

  /** A long-running svp on `node`, remembered for clean-up. */
  function svpProcess(node: ServaldNode, args: string[], env: Record<string, string> = {}): SvpProcess {
    const p = new SvpProcess(args, { env: { ...envOf(node), ...env } });
    procs.push(p);
    return p;
  }

  async function server(handle: (s: Socket) => void): Promise<number> {
    const s = createServer({ allowHalfOpen: true }, handle);
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    servers.push(s);
    return (s.address() as { port: number }).port;
  }

  /** A port nothing listens on (bound, then closed). */
  async function closedPort(): Promise<number> {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as { port: number }).port;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }

  /** An HTTP/1.0 server answering every request with `page` and the Host it was asked for. */
  const web = (page: string) =>
    server((s) => {
      let req = "";
      s.on("data", (c: Buffer) => {
        req += c.toString();
        if (req.includes("\r\n\r\n")) s.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n${page} host=${/host: (\S+)/i.exec(req)?.[1] ?? "-"}\n`);
      });
    });

  /** Answers after EOF: "got <n> bytes sha256 <hex>", then closes. */
  const answerAfterEof = () => server((s) => void drain(s).then((got) => s.end(`got ${got.length} bytes sha256 ${sha(got)}`)));

  /** Records what it got (sha) and sends `reply` at once, concurrently with the upload. */
  async function exchangeServer(reply: Uint8Array): Promise<{ port: number; got: () => Promise<Uint8Array> }> {
    let got: Promise<Uint8Array> | undefined;
    let arrived: () => void = () => undefined;
    const connected = new Promise<void>((r) => (arrived = r));
    const port = await server((s) => {
      got = drain(s);
      got.catch(() => undefined); // awaited by the test
      s.end(reply);
      arrived();
    });
    return { port, got: async () => (await within(connected, 30_000, "a connection at the server"), within(got!, 60_000, "the upload at the server")) };
  }

  /** `servald msp listen [--service] --forward=<tcpPort> <mdpPort>` on `node`, once bound. */
  async function servaldListen(node: ServaldNode, tcpPort: number, mdpPort: number, service?: string) {
    const child = mesh.spawn(node, ["msp", "listen", `--forward=${tcpPort}`, ...(service ? [`--service=${service}`] : []), String(mdpPort)]);
    await mesh.waitForStderr(child, new RegExp(`Forwarding from port ${mdpPort}\\b`));
    return child;
  }

  /** `svp listen --forward <tcpPort> <mdpPort>` on `node`, once it listens. */
  async function svpListen(node: ServaldNode, tcpPort: number, mdpPort: number, extra: string[] = []): Promise<SvpProcess> {
    const p = svpProcess(node, ["listen", "--forward", String(tcpPort), String(mdpPort), ...extra]);
    await p.waitFor(new RegExp(`listening on ${node.sid}:${mdpPort} via servald \\(instance ${node.instance}\\)`), 20_000);
    return p;
  }

  before(async () => {
    mesh = await ServaldMesh.start(2, { debugMsp: true });
    [A, B] = mesh.nodes as [ServaldNode, ServaldNode];
    dir = mkdtempSync(join(tmpdir(), "svp-cli-interop-"));
    home = join(dir, "svp-home");
  });

  after(async () => {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.stopped(5000)));
    await mesh?.stop();
    for (const s of servers) s.close();
    // A wrong fallback would have left an embedded daemon running: stop it.
    if (home && existsSync(join(home, "daemon.pid"))) await svp(undefined, ["daemon", "stop", "--home", home]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("svp connect <SID> 80 (stdio, then --forward) → servald msp listen --forward → HTTP: the page", async () => {
    const port = await web("page via servald");
    await servaldListen(B, port, 80);
    const r = await svp(A, ["connect", "--verbose", B.sid, "80"], { input: "GET / HTTP/1.0\r\nHost: stdio\r\n\r\n" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(dec.decode(r.stdout), "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npage via servald host=stdio\n");
    assert.match(r.stderr, new RegExp(`connected to ${B.sid}:80 via servald \\(instance ${A.instance}\\)`));

    const fwd = svpProcess(A, ["connect", "--forward", "127.0.0.1:0", `${B.sid}.serval`, "80"]);
    const m = await fwd.waitFor(/listening on 127\.0\.0\.1:(\d+), forwarding to .* via servald/, 20_000);
    const c = tcpConnect(Number(m[1]), "127.0.0.1");
    const body = drain(c);
    c.end("GET / HTTP/1.0\r\nHost: forward\r\n\r\n");
    assert.match(dec.decode(await within(body, 20_000, "the page through --forward")), /page via servald host=forward\n$/);
    await fwd.waitFor(/→ .*:80: ok; /, 10_000);
    fwd.kill("SIGTERM");
    assert.equal((await fwd.stopped()).code, 0, fwd.stderr);
  });

  test("servald msp connect <SID> 80 → svp listen --forward <port> 80 → HTTP: the page", async () => {
    const port = await web("page via svp listen");
    const listen = await svpListen(A, port, 80);
    const r = await mesh.servald(B, ["msp", "connect", A.sid, "80"], { input: "GET / HTTP/1.0\r\nHost: from-servald\r\n\r\n", timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr.slice(-500));
    assert.equal(r.stdout, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npage via svp listen host=from-servald\n");
    await listen.waitFor(new RegExp(`${B.sid}:\\d+ → 127\\.0\\.0\\.1:${port}: ok`), 10_000);
    listen.kill("SIGTERM");
    assert.equal((await listen.stopped()).code, 0, listen.stderr);
  });

  test("curl --socks5-hostname → svp socks → servald msp listen --forward on the other node", async () => {
    const port = await web("page via socks");
    await servaldListen(B, port, 8081);
    const socks = svpProcess(A, ["socks", "--listen", "127.0.0.1:0"]);
    const { port: proxyPort } = await socks.address();
    for (const host of [`${B.sid}.serval`, `${sidToBase32(parseSid(B.sid)!)}.serval`]) {
      const curl = await run("curl", ["-sS", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${proxyPort}`, `http://${host}:8081/`], {}, 25_000);
      assert.equal(curl.code, 0, curl.stderr);
      assert.equal(curl.stdout, `page via socks host=${host}:8081\n`);
    }
    await socks.waitFor(/mesh: servald \(instance /, 5000);
  });

  test("1 MiB each way, checksummed: svp connect → servald msp listen", async () => {
    const down = patternBytes(MiB, 21);
    const up = patternBytes(MiB, 22);
    const srv = await exchangeServer(down);
    await servaldListen(B, srv.port, 85);
    // svp's EOF only after the whole download: servald's `msp listen --forward` stops reading
    // its target once the target has closed after the MSP peer's SHUTDOWN, losing what is
    // still buffered (its own `msp connect` loses the same; see README.md).
    const r = await svp(A, ["connect", B.sid, "85"], { input: up, endInputAfter: MiB, timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, MiB);
    assert.equal(sha(r.stdout), sha(down));
    const got = await srv.got();
    assert.equal(got.length, MiB);
    assert.equal(sha(got), sha(up));
  });

  test("1 MiB each way, checksummed: servald msp connect → svp listen", async () => {
    const down = patternBytes(MiB, 23);
    const up = patternBytes(MiB, 24);
    const srv = await exchangeServer(down);
    const listen = await svpListen(A, srv.port, 86);
    const r = await mesh.mspConnect(B, A.sid, 86, up, 90_000);
    assert.equal(r.code, 0, r.stderr);
    const got = r.stdout;
    assert.equal(got.length, MiB, listen.stderr);
    assert.equal(sha(got), sha(down));
    const atServer = await srv.got();
    assert.equal(sha(atServer), sha(up));
    await listen.waitFor(/: ok; 1\.0 MiB in, 1\.0 MiB out/, 10_000);
  });

  test("half-close, the server answers after EOF: svp connect → servald msp listen", async () => {
    const port = await answerAfterEof();
    await servaldListen(B, port, 87);
    const request = patternBytes(5000, 9);
    const r = await svp(A, ["connect", B.sid, "87"], { input: request });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(dec.decode(r.stdout), `got 5000 bytes sha256 ${sha(request)}`);
  });

  test("half-close, the server answers after EOF: servald msp connect → svp listen (a 100 KiB answer, all of it)", async () => {
    // (servald's own listener loses most of an answer this long: see README.md.)
    const tail = "x".repeat(100 * 1024);
    const port = await server((s) => void drain(s).then((got) => s.end(`got ${got.length} bytes sha256 ${sha(got)}\n${tail}`)));
    const listen = await svpListen(A, port, 88);
    const request = "a request that ends with EOF";
    const r = await mesh.servald(B, ["msp", "connect", A.sid, "88"], { input: request, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr.slice(-500));
    const expected = `got ${request.length} bytes sha256 ${sha(enc.encode(request))}\n${tail}`;
    assert.equal(r.stdout.length, expected.length);
    assert.ok(r.stdout === expected, r.stdout.slice(0, 120));
    await listen.waitFor(new RegExp(`→ 127\\.0\\.0\\.1:${port}: ok`), 10_000);
  });

  test("refused forward port on servald's side: svp connect exits 4, svp socks answers SOCKS 5 (refused)", async () => {
    await servaldListen(B, await closedPort(), 8082);
    const r = await svp(A, ["connect", B.sid, "8082"], { input: "anyone?" });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot connect to ${B.sid}.* 8082: connection refused`));
    const socks = svpProcess(A, ["socks", "--listen", "127.0.0.1:0"]);
    const { port } = await socks.address();
    const curl = await run("curl", ["-sS", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${port}`, `http://${B.sid}.serval:8082/`], {}, 25_000);
    assert.equal(curl.code, 97, curl.stderr); // CURLE_PROXY
    assert.match(curl.stderr, /refused|\(5\)/i);
    // --forward sends the client's bytes with the connection request; the refusal resets the client.
    const fwd = svpProcess(A, ["connect", "--forward", "127.0.0.1:0", B.sid, "8082"]);
    const m = await fwd.waitFor(/listening on 127\.0\.0\.1:(\d+)/, 20_000);
    const c = tcpConnect(Number(m[1]), "127.0.0.1");
    c.end("hello?");
    const outcome = await within(
      new Promise<string>((res) => {
        let got = 0;
        c.on("data", (d: Buffer) => (got += d.length));
        c.once("error", (e: NodeJS.ErrnoException) => res(`error ${e.code} after ${got} bytes`));
        c.once("close", () => res(`closed after ${got} bytes`));
      }),
      15_000,
      "the forwarded client to be turned away",
    );
    assert.match(outcome, /^(error ECONNRESET|closed) after 0 bytes$/);
    await fwd.waitFor(new RegExp(`→ ${B.sid.slice(0, 8)}…:8082: failed \\(ERR_REFUSED\\)`), 10_000);
  });

  test("refused forward port on svp's side: servald msp connect sees STOP at once", async () => {
    const port = await closedPort();
    const listen = await svpListen(A, port, 89);
    const started = Date.now();
    const r = await mesh.servald(B, ["msp", "connect", A.sid, "89"], { input: "anyone?", timeoutMs: 20_000 });
    // servald's tool exits 0 on STOP (a defect svp does not copy); it must end at once.
    assert.equal(r.stdout, "");
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
    await listen.waitFor(new RegExp(`→ 127\\.0\\.0\\.1:${port}: failed \\(ERR_REFUSED\\): forward to 127\\.0\\.0\\.1:${port}: connection refused`), 10_000);
  });

  test("svp discover finds servald msp listen --service", async () => {
    const port = await web("service page");
    const sd = await servaldListen(B, port, 8090, "interop-web");
    const r = await svp(A, ["discover", "interop-*", "--json", "--timeout", "2s"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(dec.decode(r.stdout)), [{ sid: B.sid, service: "interop-web", port: 8090, self: false }]);
    sd.kill("SIGTERM"); // frees B's port 11 for later tests
    await new Promise((res) => (sd.exitCode !== null ? res(undefined) : sd.once("exit", res)));
  });

  test("a Java-style query (pattern + NUL to port 11, unicast and broadcast) gets svp listen --service's answer", async () => {
    const port = await web("java");
    await svpListen(A, port, 91, ["--service", "java-svc"]);
    const t: ServaldTransport = await connectServald({ openSocket: openUnixDatagram, instance: B.instance });
    try {
      const sock = await t.bind(0);
      const answers: string[] = [];
      sock.on("message", (payload, from) => answers.push(`${sidToHex(from.sid)}:${from.port} ${dec.decode(payload)}`));
      const expected = `${A.sid}:11 java-svc.msp.port=91`;
      for (const [what, send] of [
        ["unicast", () => sock.send({ sid: parseSid(A.sid)!, port: 11 }, enc.encode("java-svc\0"))],
        ["broadcast, unencrypted", () => sock.send({ sid: SID_BROADCAST, port: 11 }, enc.encode("java*\0"), { noCrypt: true })],
      ] as const) {
        answers.length = 0;
        const deadline = Date.now() + 10_000;
        while (!answers.includes(expected) && Date.now() < deadline) {
          send();
          await new Promise((r) => setTimeout(r, 300));
        }
        assert.ok(answers.includes(expected), `${what}: answers ${JSON.stringify(answers)}`);
      }
    } finally {
      t.close();
    }
  });

  test("svp status and svp id show servald's identity and peers", async () => {
    const id = await svp(A, ["id"]);
    assert.equal(id.code, 0, id.stderr);
    assert.equal(dec.decode(id.stdout), `${A.sid}\n`);
    const idB = await svp(undefined, ["id", "--servald-instance", B.instance]);
    assert.equal(dec.decode(idB.stdout), `${B.sid}\n`, idB.stderr);

    const human = await svp(A, ["status"]);
    assert.equal(human.code, 0, human.stderr);
    const text = dec.decode(human.stdout);
    assert.match(text, new RegExp(`^identity +${A.sid}\\nbackend +servald\\ninstance +${A.instance} \\(SERVALINSTANCE_PATH\\)\\ndaemon +pid \\d+, up .*, servald START-\\S+\\ninterfaces +dummy1\\n`));
    assert.match(text, new RegExp(`peers \\(1 reachable\\)\\n.*\\n  ${B.sid}  unicast +1 +dummy1\\n`));

    const json = JSON.parse(dec.decode((await svp(A, ["status", "--json"])).stdout));
    assert.equal(json.backend, "servald");
    assert.equal(json.identity.sid, A.sid);
    assert.equal(json.daemon.home, A.instance);
    assert.deepEqual(json.peers.map((p: { sid: string; live: boolean; route: { reachable: string[]; hops: number } }) => [p.sid, p.live, p.route.reachable, p.route.hops]), [[B.sid, true, ["unicast"], 1]]);

    // Without the native addon, servald's CLI stands in.
    const viaCli = await svp(B, ["status", "--mesh", "servald", "--json"], { env: { SVP_NATIVE_ADDON: join(dir, "missing.node") } });
    assert.equal(viaCli.code, 0, viaCli.stderr);
    const c = JSON.parse(dec.decode(viaCli.stdout));
    assert.equal(c.servald.via, "cli");
    assert.equal(c.identity.sid, B.sid);
    assert.deepEqual(c.peers.map((p: { sid: string; live: boolean }) => [p.sid, p.live]), [[A.sid, true]]);
    assert.match(c.servald.notes[0], /native addon not usable/);
  });

  test("--mesh: auto uses embedded when no servald answers, servald then fails with exit 6", async () => {
    const nowhere = join(dir, "no-servald");
    const env = { SERVALINSTANCE_PATH: nowhere };
    const r = await svp(A, ["connect", "--mesh", "servald", B.sid, "80"], { env });
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`^svp connect: cannot open the mesh: no servald answers at instance ${nowhere} \\(.*\\); start it with \`servald start\``));
    const st = await svp(A, ["status", "--mesh", "servald"], { env });
    assert.equal(st.code, 6, st.stderr);
    // auto: the embedded node (not started here: --no-autostart).
    const d = await svp(A, ["discover", "--no-autostart", "--timeout", "1s"], { env });
    assert.equal(d.code, 6, d.stderr);
    assert.match(d.stderr, /^svp discover: cannot open the mesh: no svp daemon is running for /);
    // auto: the embedded node's identity (created in SVP_HOME; no daemon needed for `svp id`).
    const id = await svp(A, ["id"], { env });
    assert.equal(id.code, 0, id.stderr);
    assert.match(dec.decode(id.stdout), /^[0-9A-F]{64}\n$/);
    assert.notEqual(dec.decode(id.stdout).trim(), A.sid);
    assert.match(id.stderr, /created a new identity in /);
  });

  test("the daemon goes away: svp listen exits 6, svp socks --mesh servald answers mesh requests with SOCKS 1", async () => {
    const port = await web("late");
    const listen = await svpListen(A, port, 92);
    // (With --mesh auto, svp socks would open the embedded node instead once servald is gone.)
    const socks = svpProcess(A, ["socks", "--listen", "127.0.0.1:0", "--mesh", "servald"]);
    const { port: proxyPort } = await socks.address();
    await socks.waitFor(/mesh: servald \(instance /, 10_000);
    await mesh.stopNode(A);
    const end = await listen.stopped(20_000);
    assert.equal(end.code, 6, listen.stderr);
    assert.match(listen.stderr, new RegExp(`lost the mesh backend: servald at ${A.instance} went away`));
    const curl = await run("curl", ["-sS", "--max-time", "20", "--socks5-hostname", `127.0.0.1:${proxyPort}`, `http://${B.sid}.serval:80/`], {}, 25_000);
    assert.equal(curl.code, 97, curl.stderr);
    assert.match(curl.stderr, /\(1\)\n$/);
    await socks.waitFor(new RegExp(`mesh: lost servald \\(instance ${A.instance}\\)`), 5000);
    // Nothing fell back to an embedded daemon along the way.
    assert.ok(!existsSync(join(home, "daemon.pid")), `an embedded daemon was started in ${home}`);
  });
});
