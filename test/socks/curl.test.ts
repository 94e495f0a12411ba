/** Real curl through `svp socks` (in process) to a local HTTP server. Loopback only. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { patternBytes } from "../helpers/wait.ts";
import { proxy, until } from "./helpers.ts";

interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run curl (async: the proxy lives in this process) with a hard time limit. */
function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["--silent", "--show-error", "--noproxy", "", "--max-time", "10", ...args], { timeout: 15_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== "number") return reject(err);
      resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr });
    });
  });
}

describe("curl through svp socks", () => {
  let p: Awaited<ReturnType<typeof proxy>>;
  let authed: Awaited<ReturnType<typeof proxy>>;
  let web: http.Server;
  let url: string;
  let dir: string;

  before(async () => {
    const probe = await curl(["--version"]).catch((e: Error) => ({ code: -1, stdout: "", stderr: e.message }));
    assert.equal(probe.code, 0, `curl is required for these tests (make test-deps installs it): ${probe.stderr}`);
    web = http.createServer((req, res) => {
      let n = 0;
      let sum = 0;
      req.on("data", (d: Uint8Array) => {
        n += d.length;
        for (const b of d) sum = (sum + b) % 65521;
      });
      req.on("end", () => res.end(`${req.method} ${req.url} host=${req.headers.host} body=${n} sum=${sum} conn=${req.headers.connection ?? "-"}\n`));
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    const port = (web.address() as AddressInfo).port;
    url = `http://127.0.0.1:${port}`;
    p = await proxy();
    authed = await proxy({ credentials: [{ user: "alice", pass: "wonder land" }] });
    dir = mkdtempSync(join(tmpdir(), "svp-curl-"));
  });

  after(async () => {
    await p.close(1000);
    await authed.close(1000);
    web.closeAllConnections();
    await new Promise<void>((r) => web.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const proxyAddr = () => `127.0.0.1:${p.port}`;

  test("--socks5-hostname (the proxy resolves the name)", async () => {
    const port = new URL(url).port;
    const r = await curl(["--socks5-hostname", proxyAddr(), `http://localhost:${port}/a`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `GET /a host=localhost:${port} body=0 sum=0 conn=-\n`);
    await until(() => p.records.some((x) => x.protocol === "socks5" && x.dest === `localhost:${port}` && x.outcome === "ok"), "socks5 record");
  });

  test("-x socks5h://", async () => {
    const r = await curl(["-x", `socks5h://${proxyAddr()}`, `${url}/h`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^GET \/h /);
  });

  test("--socks4a", async () => {
    const r = await curl(["--socks4a", proxyAddr(), `${url}/4a`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^GET \/4a /);
    await until(() => p.records.at(-1)?.protocol === "socks4a", "socks4a record");
  });

  test("-x http:// plain GET is forwarded in origin form with Connection: close", async () => {
    const r = await curl(["-x", `http://${proxyAddr()}`, `${url}/plain?q=1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `GET /plain?q=1 host=${new URL(url).host} body=0 sum=0 conn=close\n`);
  });

  test("-x http:// with a 1 MiB POST body loses nothing", async () => {
    const body = patternBytes(1 << 20, 5);
    let sum = 0;
    for (const b of body) sum = (sum + b) % 65521;
    const file = join(dir, "body.bin");
    writeFileSync(file, body);
    const r = await curl(["-x", `http://${proxyAddr()}`, "--data-binary", `@${file}`, `${url}/upload`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `POST /upload host=${new URL(url).host} body=${body.length} sum=${sum} conn=close\n`);
  });

  test("-x http:// -p (CONNECT tunnel)", async () => {
    const r = await curl(["-p", "-x", `http://${proxyAddr()}`, `${url}/tunnel`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^GET \/tunnel .*conn=-\n$/);
    await until(() => p.records.some((x) => x.protocol === "http-connect"), "CONNECT record");
  });

  test("a mesh name via --socks5-hostname is refused with 0x04 (no mesh backend yet)", async () => {
    const sid = "0123456789abcdef".repeat(4);
    const r = await curl(["--socks5-hostname", proxyAddr(), `http://${sid}/`]);
    assert.equal(r.code, 97, r.stderr);
    assert.match(r.stderr, /\(4\)/);
    const http502 = await curl(["-x", `http://${proxyAddr()}`, "-o", "/dev/null", "-w", "%{http_code}", `http://www.${sid}.serval/`]);
    assert.equal(http502.stdout, "502");
  });

  test("proxy authentication: SOCKS5 user/password and HTTP Basic", async () => {
    const addr = `127.0.0.1:${authed.port}`;
    const ok5 = await curl(["--socks5-hostname", addr, "--proxy-user", "alice:wonder land", `${url}/s5auth`]);
    assert.equal(ok5.code, 0, ok5.stderr);
    const bad5 = await curl(["--socks5-hostname", addr, "--proxy-user", "alice:nope", `${url}/s5auth`]);
    assert.notEqual(bad5.code, 0);
    const okHttp = await curl(["-x", `http://${addr}`, "--proxy-user", "alice:wonder land", `${url}/httpauth`]);
    assert.equal(okHttp.code, 0, okHttp.stderr);
    assert.match(okHttp.stdout, /^GET \/httpauth /);
    const noCreds = await curl(["-x", `http://${addr}`, "-o", "/dev/null", "-w", "%{http_code}", `${url}/httpauth`]);
    assert.equal(noCreds.stdout, "407");
  });
});
