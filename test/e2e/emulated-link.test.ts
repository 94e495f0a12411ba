/**
 * Two real `svp daemon` processes whose overlay runs through the link emulator
 * (test/helpers/link-emulator.ts) with 10 ms of delay each way: they become peers through
 * it, and `svp connect` → `svp listen --forward` carries bytes intact across it. The set-up
 * `npm run bench` uses for its lossy and slow-link figures, checked here for a few seconds.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { runSvp } from "../cli/entry.ts";
import { startLinkEmulator, type LinkEmulator } from "../helpers/link-emulator.ts";
import { equalBytes, patternBytes } from "../helpers/wait.ts";
import { MeshLab } from "./harness.ts";

describe("two svp daemons through the link emulator", () => {
  const lab = new MeshLab();
  let emu: LinkEmulator | undefined;
  let lossy: LinkEmulator | undefined;
  let echo: net.Server | undefined;
  after(async () => {
    await lab.close();
    await emu?.close();
    await lossy?.close();
    echo?.close();
  });

  test("they become peers across it and a stream crosses it intact", async () => {
    // B first: its overlay port is the emulator's target; A's only peer is the emulator's side A.
    const B = await lab.startNode("b", ["--no-discovery"]);
    emu = await startLinkEmulator({ target: { host: "127.0.0.1", port: await lab.overlayPort(B) }, link: { delayMs: 10 } });
    const A = await lab.startNode("a", ["--no-discovery", "--peer", `127.0.0.1:${emu.portA}`]);
    await Promise.all([lab.waitPeer(A, B.sid), lab.waitPeer(B, A.sid)]);

    // B knows A only as the emulator's side B; A's packets reached it through the relay.
    const status = await runSvp(["status", "--home", B.home, "--json"], { env: lab.env });
    const peers = (JSON.parse(status.stdout) as { peers: { sid: string; address: string | null }[] }).peers;
    assert.equal(peers.find((p) => p.sid === A.sid)?.address, `127.0.0.1:${emu.portB}`);
    assert.equal(emu.stats().peerA, `127.0.0.1:${await lab.overlayPort(A)}`);

    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo!.listen(0, "127.0.0.1", r));
    const listener = lab.spawn(["listen", "--home", B.home, "--forward", String((echo.address() as net.AddressInfo).port), "7001"]);
    await listener.waitFor(/listening on [0-9A-F]{64}:7001/, 20_000);

    const before = emu.stats();
    const data = patternBytes(48 * 1024, 14);
    const r = await lab.run(["connect", "--home", A.home, B.sid, "7001"], { input: data, timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(equalBytes(r.stdout, data), `echoed ${r.stdout.length} of ${data.length} bytes, or changed`);

    // Everything went through the emulator: at least the data each way, sealed, crossed it.
    const s = emu.stats();
    assert.ok(s.ab.deliveredBytes - before.ab.deliveredBytes > data.length, `A→B carried ${s.ab.deliveredBytes - before.ab.deliveredBytes} bytes`);
    assert.ok(s.ba.deliveredBytes - before.ba.deliveredBytes > data.length, `B→A carried ${s.ba.deliveredBytes - before.ba.deliveredBytes} bytes`);
    assert.equal(s.ab.lost + s.ba.lost + s.strayDrops + s.noPeerDrops + s.sendErrors, 0);
    // The overlay's own round-trip measurement (hello request → reply) sees the 2 × 10 ms.
    const aStatus = await runSvp(["status", "--home", A.home, "--json"], { env: lab.env });
    const rtt = (JSON.parse(aStatus.stdout) as { peers: { sid: string; rttMs: number | null }[] }).peers.find((p) => p.sid === B.sid)?.rttMs;
    assert.ok(typeof rtt === "number" && rtt >= 20 && rtt < 1000, `A measured a round trip of ${rtt} ms to B`);
  });

  test("over a lossy link the stream uses the MSP extension: intact, and status and --verbose show its telemetry", async () => {
    const B = await lab.startNode("d", ["--no-discovery"]);
    lossy = await startLinkEmulator({ target: { host: "127.0.0.1", port: await lab.overlayPort(B) }, link: { delayMs: 10, jitterMs: 5, loss: 0.03, duplicate: 0.02, reorder: 0.02 }, seed: 3 });
    const A = await lab.startNode("c", ["--no-discovery", "--peer", `127.0.0.1:${lossy.portA}`]);
    await Promise.all([lab.waitPeer(A, B.sid), lab.waitPeer(B, A.sid)]);
    const port = (echo!.address() as net.AddressInfo).port;
    const listener = lab.spawn(["listen", "--home", B.home, "--forward", String(port), "7002"]);
    await listener.waitFor(/listening on [0-9A-F]{64}:7002/, 20_000);
    // A live stream: its telemetry is in A's status while it runs.
    const live = lab.spawn(["connect", "--home", A.home, "--verbose", B.sid, "7002"], {}, "pipe");
    await live.waitFor(/connected to/, 20_000);
    live.child.stdin!.write(patternBytes(1000, 1));
    let stream: { msp?: { extension: string; srttMs: number | null; messageSize: number } } | undefined;
    for (let i = 0; i < 50 && !stream?.msp?.srttMs; i++) {
      const st = JSON.parse((await runSvp(["status", "--home", A.home, "--json"], { env: lab.env })).stdout) as { streams: (typeof stream & { remotePort: number })[] };
      stream = st.streams.find((x) => x!.remotePort === 7002);
      if (!stream?.msp?.srttMs) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(stream?.msp?.extension, "on", JSON.stringify(stream));
    assert.ok(stream.msp.srttMs! >= 20, `srtt ${stream.msp.srttMs} ms across 2 × 10 ms`);
    live.child.stdin!.end();
    await live.exit;

    const data = patternBytes(256 << 10, 15);
    const r = await lab.run(["connect", "--home", A.home, "--verbose", B.sid, "7002"], { input: data, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(equalBytes(r.stdout, data), `echoed ${r.stdout.length} of ${data.length} bytes, or changed`);
    assert.match(r.stderr, /done; 256(\.0)? KiB sent, 256(\.0)? KiB received, .*; extension on, .* messages, .* in flight \(cwnd .*\), rtt [0-9.]+ ± [0-9.]+ ms, \d+ retransmissions, \d+ losses, \d+ probes/);
    const s = lossy.stats();
    assert.ok(s.ab.lost + s.ba.lost > 0, "the link lost packets");
  });
});
