/**
 * The svp commands on the servald backend against servald's own tools (SVP_SERVALD), on two
 * linked instances A and B:
 * - `servald msp listen --forward=<port> --service=web 8080` on B: `svp discover` on A
 *   finds it, `svp connect <SID> web` resolves the service and fetches the page, a refused
 *   forward is exit 4;
 * - `svp listen --forward <port> 80 --service http` on B: `servald msp connect` on A gets
 *   the page, and svp's own discovery and connect reach it through servald too.
 */

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { SvpProcess, svpCommand } from "../cli/entry.ts";
import { ServaldMesh, SKIP_REASON, run } from "./servald-harness.ts";
import type { ServaldNode } from "./servald-harness.ts";

const PAGE = "served over the mesh";

describe("svp listen/connect/discover with servald", { skip: SKIP_REASON }, () => {
  let mesh: ServaldMesh;
  let A: ServaldNode;
  let B: ServaldNode;
  let web: Server;
  let webPort = 0;
  const procs: SvpProcess[] = [];

  const svp = (node: ServaldNode, args: string[], input?: string) => {
    const [cmd, ...pre] = svpCommand();
    return run(cmd!, [...pre, ...args, "--mesh", "servald", "--servald-instance", node.instance], { env: { ...process.env, NO_COLOR: "1" }, ...(input !== undefined ? { input } : {}) }, 30_000);
  };

  before(async () => {
    mesh = await ServaldMesh.start(2, { debugMsp: true });
    [A, B] = mesh.nodes as [ServaldNode, ServaldNode];
    web = createServer({ allowHalfOpen: true }, (s) => {
      let req = "";
      s.on("data", (c: Buffer) => {
        req += c.toString();
        if (req.includes("\r\n\r\n")) s.end(`HTTP/1.0 200 OK\r\n\r\n${PAGE} host=${/host: (\S+)/i.exec(req)?.[1] ?? "-"}\n`);
      });
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    webPort = (web.address() as { port: number }).port;
  });

  after(async () => {
    for (const p of procs) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.stopped(5000)));
    await mesh?.stop();
    web?.close();
  });

  let servaldWeb: ReturnType<ServaldMesh["spawn"]> | undefined;

  test("servald msp listen --service: svp discover finds it, svp connect resolves and reaches it", async () => {
    servaldWeb = mesh.spawn(B, ["msp", "listen", `--forward=${webPort}`, "--service=web", "8080"]);
    await mesh.waitForStderr(servaldWeb, /Forwarding from port 8080\b/);
    const found = await svp(A, ["discover", "--timeout", "2s", "--json"]);
    assert.equal(found.code, 0, found.stderr);
    assert.deepEqual(JSON.parse(found.stdout), [{ sid: B.sid, service: "web", port: 8080, self: false }]);
    const r = await svp(A, ["connect", `${B.sid}.serval`, "web"], "GET / HTTP/1.0\r\nHost: by-service\r\n\r\n");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^HTTP/1\\.0 200 OK\\r\\n\\r\\n${PAGE} host=by-service\\n$`));
  });

  test("svp connect to a servald listener whose forward is refused: exit 4", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const child = mesh.spawn(B, ["msp", "listen", `--forward=${port}`, "8081"]);
    await mesh.waitForStderr(child, /Forwarding from port 8081\b/);
    const r = await svp(A, ["connect", B.sid, "8081"], "hello");
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /cannot connect to .* 8081: connection refused/);
  });

  test("svp listen --service on servald: servald msp connect gets the page; svp discover and connect reach it", async () => {
    // servald lets one client per node bind the discovery port: while servald's own
    // listener holds it, svp listens without answering discovery, and says so.
    const second = new SvpProcess(["listen", "--mesh", "servald", "--servald-instance", B.instance, "--forward", String(webPort), "81", "--service", "http"]);
    procs.push(second);
    await second.waitFor(/warning: svp listen: service discovery for "http" is not available: .*serving without it/, 15_000);
    await second.waitFor(new RegExp(`listening on ${B.sid}:81`), 15_000);
    const viaServald = await mesh.servald(A, ["msp", "connect", B.sid, "81"], { input: "GET / HTTP/1.0\r\nHost: from-servald\r\n\r\n" });
    assert.equal(viaServald.code, 0, viaServald.stderr);
    assert.ok(viaServald.stdout.endsWith(`${PAGE} host=from-servald\n`), viaServald.stdout);
    second.kill("SIGTERM");
    assert.equal((await second.stopped()).code, 0, second.stderr);
    // With servald's listener gone, svp answers discovery for its service.
    servaldWeb?.kill("SIGTERM");
    await new Promise((r) => (servaldWeb?.exitCode !== null ? r(undefined) : servaldWeb.once("exit", r)));
    const listen = new SvpProcess(["listen", "--mesh", "servald", "--servald-instance", B.instance, "--forward", String(webPort), "80", "--service", "http"]);
    procs.push(listen);
    await listen.waitFor(new RegExp(`listening on ${B.sid}:80`), 15_000);
    assert.doesNotMatch(listen.stderr, /not available/);
    const found = await svp(A, ["discover", "http", "--timeout", "2s"]);
    assert.equal(found.code, 0, found.stderr);
    assert.match(found.stdout, new RegExp(`^${B.sid}  http +80\\n$`));
    const c = await svp(A, ["connect", `http.${B.sid}.serval`], "GET / HTTP/1.0\r\nHost: from-svp\r\n\r\n");
    assert.equal(c.code, 0, c.stderr);
    assert.ok(c.stdout.endsWith(`${PAGE} host=from-svp\n`), c.stdout);
    await listen.waitFor(new RegExp(`${A.sid}:\\d+ → 127\\.0\\.0\\.1:${webPort}: ok`), 5000);
  });
});
