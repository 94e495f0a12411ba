/**
 * The link emulator with real UDP sockets on loopback: two plain sockets play node A and
 * node B; the relay's addresses, bytes, delay and counters are checked, and its CLI is run
 * as its own process.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as dgram from "node:dgram";
import { fileURLToPath } from "node:url";
import { SvpError } from "../../src/errors.ts";
import { parseLinkEmulatorArgs, parseProbability, parseRate, startLinkEmulator, type LinkEmulator } from "./link-emulator.ts";
import { within } from "./wait.ts";

interface Received {
  data: Uint8Array;
  address: string;
  port: number;
  at: number;
}

async function endpoint(): Promise<{ sock: dgram.Socket; port: number; got: Received[] }> {
  const sock = dgram.createSocket("udp4");
  const got: Received[] = [];
  sock.on("message", (msg, rinfo) => got.push({ data: new Uint8Array(msg), address: rinfo.address, port: rinfo.port, at: performance.now() }));
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { sock, port: sock.address().port, got };
}

/** Wait (bounded) until `cond` holds; checks every 2 ms. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function payload(i: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  for (let j = 0; j < size; j++) d[j] = (i * 7 + j) & 0xff;
  return d;
}

/** The CLI as a child process (killed after 20 s whatever happens). */
function emulatorProcess(args: string[]) {
  const script = fileURLToPath(new URL("./link-emulator.ts", import.meta.url));
  const node = /(^|[\\/])node(\.exe)?$/.test(process.execPath) ? process.execPath : "node";
  const child = spawn(node, ["--import", "tsx", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
  child.stderr.on("data", (d: Uint8Array) => (err += new TextDecoder().decode(d)));
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const exited = new Promise<number | null>((r) =>
    child.on("close", (code) => {
      clearTimeout(killer);
      r(code);
    }),
  );
  return {
    child,
    exited,
    out: () => out,
    err: () => err,
    /** Side A's port, from the "listening" line. */
    async listening(): Promise<number> {
      await until(() => /\n/.test(out) || child.exitCode !== null, 15_000, "the emulator to start");
      const m = /^link-emulator: listening 127\.0\.0\.1:(\d+)\n/.exec(out);
      assert.ok(m, `stdout: ${out} stderr: ${err}`);
      return Number(m[1]);
    },
  };
}

describe("link emulator over loopback UDP", () => {
  const open: { close(): unknown }[] = [];
  after(async () => {
    for (const o of open) await o.close();
  });

  test("relays both ways with the right addresses, bytes intact, delayed, counted", async () => {
    const a = await endpoint();
    const b = await endpoint();
    open.push(a.sock, b.sock);
    const emu = await startLinkEmulator({ target: { host: "127.0.0.1", port: b.port }, link: { delayMs: 5 } });
    open.push(emu);
    assert.notEqual(emu.portA, emu.portB);
    const n = 20;
    const sentAt: number[] = [];
    for (let i = 0; i < n; i++) {
      sentAt.push(performance.now());
      a.sock.send(payload(i, 100 + i), emu.portA, "127.0.0.1");
    }
    await until(() => b.got.length === n, 5000, "A→B datagrams at B");
    // Datagram i is 100 + i bytes long (Deno's node:dgram sends a burst in reverse order).
    for (const r of b.got) {
      const i = r.data.length - 100;
      // Node B sees the relay's side B as its peer, never node A's real port.
      assert.equal(r.address, "127.0.0.1");
      assert.equal(r.port, emu.portB);
      assert.deepEqual(r.data, payload(i, 100 + i));
      assert.ok(r.at - sentAt[i]! >= 5, `A→B took ${r.at - sentAt[i]!} ms, less than the 5 ms delay`);
    }
    assert.equal(new Set(b.got.map((r) => r.data.length)).size, n);
    // B answers to whoever it saw: side B. It reaches A from side A.
    for (let i = 0; i < n; i++) b.sock.send(payload(1000 + i, 300 + i), b.got[0]!.port, "127.0.0.1");
    await until(() => a.got.length === n, 5000, "B→A datagrams at A");
    for (const r of a.got) {
      assert.equal(r.port, emu.portA);
      assert.deepEqual(r.data, payload(1000 + r.data.length - 300, r.data.length));
    }
    assert.equal(new Set(a.got.map((r) => r.data.length)).size, n);
    const s = emu.stats();
    assert.equal(s.peerA, `127.0.0.1:${a.port}`);
    assert.equal(s.ab.offered, n);
    assert.equal(s.ab.delivered, n);
    assert.equal(s.ab.deliveredBytes, n * 100 + (n * (n - 1)) / 2);
    assert.equal(s.ba.delivered, n);
    assert.equal(s.ba.deliveredBytes, n * 300 + (n * (n - 1)) / 2);
    assert.equal(s.strayDrops + s.noPeerDrops + s.sendErrors, 0);
    if (s.kernelDrops !== undefined) assert.equal(s.kernelDrops, 0);

    // A stranger writing to side B is not relayed.
    const stranger = await endpoint();
    open.push(stranger.sock);
    stranger.sock.send(Uint8Array.of(1), emu.portB, "127.0.0.1");
    await until(() => emu.stats().strayDrops === 1, 5000, "the stranger's datagram counted");
    assert.equal(emu.stats().ba.offered, n);
  });

  test("with loss 1 nothing crosses, and the counters say so", async () => {
    const a = await endpoint();
    const b = await endpoint();
    open.push(a.sock, b.sock);
    const emu = await startLinkEmulator({ target: { host: "127.0.0.1", port: b.port }, ab: { loss: 1 }, ba: { loss: 1 } });
    open.push(emu);
    for (let i = 0; i < 50; i++) a.sock.send(payload(i, 64), emu.portA, "127.0.0.1");
    await until(() => emu.stats().ab.offered === 50, 5000, "50 datagrams offered to the link");
    const s = emu.stats().ab;
    assert.equal(s.lost, 50);
    assert.equal(s.delivered, 0);
    assert.equal(s.held, 0, "nothing left that could still arrive");
    assert.equal(b.got.length, 0);
  });

  test("refuses non-loopback addresses and bad parameters clearly", async () => {
    for (const host of ["192.0.2.1", "10.0.0.1", "localhost", "::2"]) {
      await assert.rejects(startLinkEmulator({ target: { host, port: 4111 } }), (e: unknown) => e instanceof SvpError && e.code === "ERR_NOT_ALLOWED" && /not a loopback IP address/.test(e.message));
    }
    await assert.rejects(startLinkEmulator({ target: { host: "127.0.0.1", port: 4111 }, ab: { loss: 2 } }), /invalid link parameter loss=2/);
    await assert.rejects(startLinkEmulator({ target: { host: "127.0.0.1", port: 0 } }), /invalid target port 0/);
  });

  test("command line parsing", () => {
    const r = parseLinkEmulatorArgs(["--target", "127.0.0.1:4111", "--delay", "10ms", "--jitter", "0.5ms", "--loss", "3%", "--dup", "0.02", "--reorder", "0.02", "--rate", "2MiB/s", "--queue", "100", "--seed", "7", "--ba-loss", "0", "--burst-loss", "0.01,0.25", "--duration", "60s"]);
    assert.notEqual(r, "help");
    if (r === "help") return;
    assert.deepEqual(r.options.target, { host: "127.0.0.1", port: 4111 });
    assert.deepEqual(r.options.link, { delayMs: 10, jitterMs: 0.5, reorder: 0.02, loss: 0.03, duplicate: 0.02, rateBytesPerSec: 2 * 1024 * 1024, queueLimit: 100, burstLoss: { enter: 0.01, exit: 0.25 } });
    assert.deepEqual(r.options.ba, { loss: 0 });
    assert.equal(r.options.seed, 7);
    assert.equal(r.durationMs, 60_000);
    assert.equal(parseRate("16Mbit/s"), 2_000_000);
    assert.equal(parseRate("500KB/s"), 500_000);
    assert.equal(parseRate("1000"), 1000);
    assert.equal(parseProbability("2.5%", "x"), 0.025);
    assert.throws(() => parseRate("fast"), /invalid --rate "fast"/);
    assert.throws(() => parseProbability("1.5", "--loss"), /invalid --loss "1.5"/);
    assert.throws(() => parseLinkEmulatorArgs(["--delay", "10ms"]), /--target HOST:PORT is required/);
    assert.throws(() => parseLinkEmulatorArgs(["--target", "127.0.0.1:1", "--bogus", "1"]), /bogus/);
    assert.throws(() => parseLinkEmulatorArgs(["--target", "127.0.0.1:1", "--duration", "soon"]), /invalid --duration "soon"/);
  });

  test("as a process: prints its address, relays, and ends on SIGTERM or by itself after --duration with one JSON line of statistics", async () => {
    const b = await endpoint();
    const a = await endpoint();
    open.push(a.sock, b.sock);
    // Two at once (each pays tsx's start-up): one stopped by SIGTERM, one left to its --duration.
    const [term, timed] = [emulatorProcess(["--target", `127.0.0.1:${b.port}`, "--delay", "2ms"]), emulatorProcess(["--target", `127.0.0.1:${b.port}`, "--duration", "2s"])];
    try {
      const ports = await Promise.all([term, timed].map((p) => p.listening()));
      for (let i = 0; i < 5; i++) a.sock.send(payload(i, 50), ports[0]!, "127.0.0.1");
      for (let i = 0; i < 3; i++) a.sock.send(payload(i, 60), ports[1]!, "127.0.0.1");
      await until(() => b.got.length === 8, 5000, "8 datagrams through the emulator processes");
      // process.kill, not child.kill: under Deno the latter reports the signal as the exit cause even when the child exits 0.
      process.kill(term.child.pid!, "SIGTERM");
      for (const [p, why, n] of [[term, "SIGTERM", 5], [timed, "duration", 3]] as const) {
        assert.equal(await within(p.exited, 10_000, `the emulator to exit on ${why}`), 0);
        const line = p.out().split("\n").find((l) => l.startsWith("{"));
        assert.ok(line, `no stats line in ${p.out()}`);
        const stats = JSON.parse(line) as { why: string; ab: { delivered: number } };
        assert.equal(stats.why, why);
        assert.equal(stats.ab.delivered, n);
      }
    } finally {
      term.child.kill("SIGKILL");
      timed.child.kill("SIGKILL");
    }
  });

  test("as a process: a usage error exits 2 and says what is wrong", async () => {
    const p = emulatorProcess(["--target", "192.0.2.1:4111"]);
    assert.equal(await within(p.exited, 15_000, "the emulator to exit"), 1);
    assert.match(p.err(), /^link-emulator: target "192\.0\.2\.1" is not a loopback IP address/);
    const q = emulatorProcess(["--target", "127.0.0.1:4111", "--loss", "lots"]);
    assert.equal(await within(q.exited, 15_000, "the emulator to exit"), 2);
    assert.match(q.err(), /invalid --loss "lots"/);
  });
});
