/**
 * `svp socks` with several event loops, in a process of its own (loops-child.ts): under
 * load more than one loop serves connections, a worker's mesh stream goes through the main
 * thread's mesh session, `--max-conns` is one limit over all loops, and a graceful stop
 * stops every loop from accepting while the live tunnels of each finish.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { RawClient, SOCKS5_OK, dec, echoAfterEnd, enc, hex, socks5Connect, targetServer, until } from "./helpers.ts";

const CHILD = fileURLToPath(new URL("./loops-child.ts", import.meta.url));
const SID = "4de3e89c159083acc67d88859c474d184aba9ca7e98cfd41a1f1cacad278d92b";

interface Rec {
  outcome?: string;
  route?: string;
  loop?: number;
  address?: string;
  loops?: number;
  note?: string;
  stopped?: boolean;
  closed?: boolean;
}

/** The proxy child: its JSON lines as they come. */
class Child {
  readonly proc: ChildProcess;
  readonly lines: Rec[] = [];
  readonly exited: Promise<number | null>;
  stderr = "";

  constructor(args: string[]) {
    // The same runtime as the test: Deno's loops share the port through reusePort, Node 20's through a duplicated descriptor.
    const isDeno = "Deno" in globalThis;
    const cmd = isDeno ? [process.execPath, "run", "-A", CHILD, ...args] : [process.execPath, "--import", "tsx", CHILD, ...args];
    this.proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let buf = "";
    this.proc.stdout!.on("data", (d: Uint8Array) => {
      buf += new TextDecoder().decode(d);
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        this.lines.push(JSON.parse(buf.slice(0, i)) as Rec);
        buf = buf.slice(i + 1);
      }
    });
    this.proc.stderr!.on("data", (d: Uint8Array) => (this.stderr += new TextDecoder().decode(d)));
    this.exited = new Promise((r) => this.proc.on("close", (code) => r(code)));
  }

  get records(): Rec[] {
    return this.lines.filter((l) => l.outcome !== undefined);
  }

  async port(): Promise<number> {
    await until(() => this.lines.some((l) => l.address), `the proxy's address (stderr: ${this.stderr})`, 20_000);
    const first = this.lines.find((l) => l.address)!;
    assert.equal(first.loops, 2, first.note);
    return Number(/:(\d+)$/.exec(first.address!)![1]);
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

/** One tunnel: SOCKS5 CONNECT to `host`, send `data`, half-close, read the echo to the end. */
async function echoTunnel(port: number, host: string, targetPort: number, data: Uint8Array): Promise<Uint8Array> {
  const c = await RawClient.connect(port);
  c.write(socks5Connect(host, targetPort));
  c.write(data);
  c.end();
  assert.equal(hex(await c.read(12)), SOCKS5_OK);
  return c.readToEnd(10_000);
}

describe("svp socks with two event loops", () => {
  let echo: Awaited<ReturnType<typeof targetServer>>;
  before(async () => {
    echo = await targetServer(echoAfterEnd);
  });
  after(async () => {
    await echo.close();
  });

  test("under load both loops serve; half-close and mesh streams work on each; a stop lets every loop's tunnels finish", async () => {
    const child = new Child(["2"]);
    try {
      const port = await child.port();
      // Rounds of 30 concurrent tunnels (direct and mesh) until both loops have served each kind; bounded.
      const payload = enc("x".repeat(3000));
      for (let round = 0; round < 6; round++) {
        const direct = Array.from({ length: 24 }, () => echoTunnel(port, "127.0.0.1", echo.port, payload));
        const mesh = Array.from({ length: 6 }, () => echoTunnel(port, `${SID}.serval`, 80, payload));
        for (const got of await Promise.all([...direct, ...mesh])) assert.equal(got.length, payload.length);
        const served = (route: string) => new Set(child.records.filter((r) => r.route === route && r.outcome === "ok").map((r) => r.loop));
        await until(() => child.records.length >= (round + 1) * 30, "records");
        if (served("direct").size === 2 && served("mesh").size === 2) break;
      }
      const loops = (route: string) => [...new Set(child.records.filter((r) => r.route === route && r.outcome === "ok").map((r) => r.loop))].sort();
      assert.deepEqual(loops("direct"), [0, 1], "direct tunnels served by both loops");
      assert.deepEqual(loops("mesh"), [0, 1], "mesh tunnels served by both loops (the worker's through the main thread)");
      assert.ok(child.records.every((r) => r.outcome === "ok"), JSON.stringify(child.records.filter((r) => r.outcome !== "ok")));

      // Graceful stop: hold tunnels open (on both loops, most likely), stop, and check.
      const held: RawClient[] = [];
      for (let i = 0; i < 8; i++) {
        const c = await RawClient.connect(port);
        c.write(socks5Connect("127.0.0.1", echo.port));
        assert.equal(hex(await c.read(12)), SOCKS5_OK);
        held.push(c);
      }
      const before = child.records.length;
      // (process.kill: Deno's child.kill() reports the signal as the exit cause even when handled.)
      process.kill(child.proc.pid!, "SIGTERM");
      await until(() => child.lines.some((l) => l.stopped), "stopped accepting", 10_000);
      await assert.rejects(RawClient.connect(port), "a new connection after the stop");
      for (const c of held) {
        c.write("still here");
        c.end();
      }
      for (const c of held) assert.equal(dec(await c.readToEnd()), "still here");
      assert.equal(await child.exited, 0, child.stderr);
      const last = child.records.slice(before);
      assert.equal(last.length, 8);
      assert.ok(last.every((r) => r.outcome === "ok"), JSON.stringify(last));
    } finally {
      child.kill();
    }
  });

  test("--max-conns is one limit over both loops", async () => {
    // Holds each tunnel until the client ends it.
    const silent = await targetServer((s) => s.on("end", () => s.end()));
    const child = new Child(["2", "4"]);
    const held: RawClient[] = [];
    try {
      const port = await child.port();
      for (let i = 0; i < 4; i++) {
        const c = await RawClient.connect(port);
        c.write(socks5Connect("127.0.0.1", silent.port));
        assert.equal(hex(await c.read(12)), SOCKS5_OK);
        held.push(c);
      }
      // Every further request is refused (0x01, limit), whichever loop takes it.
      for (let i = 0; i < 10; i++) {
        const c = await RawClient.connect(port);
        c.write(socks5Connect("127.0.0.1", silent.port));
        assert.equal(hex(await c.read(12)), "05 00 05 01 00 01 00 00 00 00 00 00");
        await c.readToEnd();
      }
      await until(() => child.records.length === 10, "records of the refusals");
      const refusedOn = new Set(child.records.map((r) => r.loop));
      for (const c of held) c.end();
      await until(() => child.records.length === 14, "records of the held tunnels");
      const heldOn = child.records.slice(10).map((r) => r.loop);
      // Global: some loop refused while it held fewer than 4 tunnels itself.
      assert.ok([...refusedOn].some((loop) => heldOn.filter((l) => l === loop).length < 4), `refused on ${[...refusedOn]}, held on ${heldOn}`);
      assert.ok(child.records.slice(0, 10).every((r) => r.outcome === "ERR_LIMIT"));
      // Slots come back: a new tunnel works.
      assert.equal((await echoTunnel(port, "127.0.0.1", echo.port, enc("again"))).length, 5);
    } finally {
      for (const c of held) c.destroy();
      child.kill();
      await silent.close();
    }
  });
});
