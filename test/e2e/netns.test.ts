/**
 * Real daemons on real links: private network namespaces joined by veth pairs and a Linux
 * bridge (see netns.ts), `svp daemon run` in each, real curl, svp socks and svp listen.
 *   - a chain of 5: curl through `svp socks` on the first fetches 2 MiB intact from a page
 *     served with `svp listen --forward` on the last (4 hops);
 *   - a diamond A–B–D, A–C–D: stopping the middle node A's traffic goes through keeps an MSP
 *     stream from A to D going through the other one, within the reroute time;
 *   - three namespaces on one bridge find each other with `--lan`, and a fourth on a second
 *     bridge (behind a node with two interfaces) is found and reached through it.
 * Needs root and `ip netns`; skips with the reason otherwise. Fast hellos (250 ms); every
 * wait bounded; every namespace removed in `finally`, even when a test fails.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connectEmbedded } from "../../src/platform/embedded-node.ts";
import type { EmbeddedTransport } from "../../src/node/embedded-transport.ts";
import { connectMsp } from "../../src/msp/connect.ts";
import { listenMsp } from "../../src/msp/listener.ts";
import type { MspStream } from "../../src/msp/msp-stream.ts";
import { fromHex } from "../../src/bytes/hex.ts";
import { runSvp, svpCommand } from "../cli/entry.ts";
import { NetnsLab, netnsUnavailable } from "./netns.ts";

const unavailable = netnsUnavailable();
if (unavailable) process.stderr.write(`netns tests skipped: ${unavailable}\n`);

const HELLO = ["--hello-interval", "250ms"];
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const sid = (hex: string) => fromHex(hex)!;

async function until(pred: () => boolean | Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function withLab(fn: (lab: NetnsLab, clients: EmbeddedTransport[]) => Promise<void>): Promise<void> {
  const lab = new NetnsLab(svpCommand());
  const clients: EmbeddedTransport[] = [];
  try {
    await fn(lab, clients);
  } finally {
    for (const c of clients) c.close();
    await lab.close();
    assert.deepEqual(NetnsLab.leftovers(), [], "every namespace of this run is gone");
  }
}

async function client(clients: EmbeddedTransport[], home: string): Promise<EmbeddedTransport> {
  // The local API is a Unix socket: reachable from here whatever namespace the daemon runs in.
  const t = await connectEmbedded({ home, autostart: false, name: "netns test" });
  clients.push(t);
  return t;
}

describe("svp daemons in network namespaces", { skip: unavailable }, () => {
  test("a chain of 5: curl through svp socks on the first gets a 2 MiB page served by svp listen on the last, intact", { timeout: 120_000 }, async () => {
    await withLab(async (lab, clients) => {
      const ns = [1, 2, 3, 4, 5].map((i) => lab.ns(`c${i}`));
      for (let i = 0; i < 4; i++) lab.link(ns[i]!, `10.231.${i}.1/24`, ns[i + 1]!, `10.231.${i}.2/24`);
      const nodes: import("./netns.ts").DaemonNode[] = [];
      for (let i = 0; i < 5; i++) {
        const peers = [...(i > 0 ? ["--peer", `10.231.${i - 1}.1:4111`] : []), ...(i < 4 ? ["--peer", `10.231.${i}.2:4111`] : [])];
        nodes.push(await lab.daemon(`c${i + 1}`, ns[i]!, [...HELLO, ...peers]));
      }
      const first = nodes[0]!;
      const last = nodes[4]!;
      const t1 = await client(clients, first.home);
      await until(() => t1.reachability(sid(last.sid)) === "reachable", "a route from the first node to the last", 20_000);
      assert.equal(t1.hops(sid(last.sid)), 4);
      assert.equal(t1.pathMtu(sid(last.sid)), 1160, "veth links are not loopback: 1160");
      // A 2 MiB page on the last node's loopback, offered on the mesh by svp listen.
      const size = 2 * 1024 * 1024;
      const server = lab.spawn(ns[4]!, [
        "node",
        "-e",
        `const n=${size};const b=Buffer.alloc(n);for(let i=0;i<n;i++)b[i]=(i*31+7)&255;require("http").createServer((q,r)=>{r.writeHead(200,{"content-length":n});r.end(b)}).listen(8080,"127.0.0.1",()=>console.error("ready"))`,
      ]);
      await server.waitFor(/ready/);
      const listen = lab.svp(ns[4]!, ["listen", "--home", last.home, "--forward", "8080", "80"]);
      await listen.waitFor(/listening on [0-9A-F]{64}:80/);
      const socks = lab.svp(ns[0]!, ["socks", "--home", first.home, "--listen", "127.0.0.1:1080"]);
      await socks.waitFor(/listening on 127\.0\.0\.1:1080/);
      const r = await lab.run(ns[0]!, ["curl", "--silent", "--show-error", "--noproxy", "", "--max-time", "90", "--socks5-hostname", "127.0.0.1:1080", `http://${last.sid}.serval/`], 100_000);
      assert.equal(r.code, 0, `curl: ${r.stderr}\nsocks: ${socks.stderr}`);
      const expected = new Uint8Array(size);
      for (let i = 0; i < size; i++) expected[i] = (i * 31 + 7) & 255;
      assert.equal(r.stdout.length, size);
      assert.equal(sha(r.stdout), sha(expected));
      // The middle nodes forwarded it, and say so.
      const st = await (await client(clients, nodes[2]!.home)).status();
      assert.ok(st.routing!.forwardedBytes > size, `node 3 forwarded ${st.routing!.forwardedBytes} bytes`);
      const routes = (await t1.status()).routes!;
      assert.deepEqual(routes.map((x) => x.hops).sort(), [1, 2, 3, 4]);
    });
  });

  test("a diamond A-B-D, A-C-D: stopping the node A's stream goes through moves it to the other within the reroute time, intact", { timeout: 90_000 }, async () => {
    await withLab(async (lab, clients) => {
      const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => lab.ns(`d${n}`)) as [string, string, string, string];
      lab.link(a, "10.232.1.1/24", b, "10.232.1.2/24");
      lab.link(a, "10.232.2.1/24", c, "10.232.2.2/24");
      lab.link(b, "10.232.3.1/24", d, "10.232.3.2/24");
      lab.link(c, "10.232.4.1/24", d, "10.232.4.2/24");
      // A long peer timeout: only the goodbye of a clean stop can make the reroute fast.
      const slow = [...HELLO, "--peer-timeout", "30s"];
      const A = await lab.daemon("A", a, [...slow, "--peer", "10.232.1.2:4111", "--peer", "10.232.2.2:4111"]);
      const B = await lab.daemon("B", b, [...slow, "--peer", "10.232.3.2:4111"]);
      const C = await lab.daemon("C", c, [...slow, "--peer", "10.232.4.2:4111"]);
      const D = await lab.daemon("D", d, slow);
      const ta = await client(clients, A.home);
      const td = await client(clients, D.home);
      await until(() => ta.reachability(sid(D.sid)) === "reachable" && ta.hops(sid(D.sid)) === 2, "a 2-hop route from A to D", 20_000);
      const nextHop = async () => (await ta.status()).routes!.find((r) => r.sid === D.sid)?.nextHop;
      await until(async () => (await nextHop()) !== undefined, "A's route to D in status", 5000);
      const via = (await nextHop())!;
      const [gone, stays] = via === B.sid ? [B, C] : [C, B];
      // An MSP stream A -> D that echoes, fed continuously while the middle node goes away.
      const listener = await listenMsp(td, 80);
      listener.on("accept", (s: MspStream) => {
        s.on("data", (chunk) => s.write(chunk.slice()));
        s.on("end", () => s.closeWrite());
        s.resume();
      });
      const stream = await connectMsp(ta, { sid: sid(D.sid), port: 80 });
      let echoed = 0;
      let lastAt = Date.now();
      let maxGap = 0;
      stream.on("data", (chunk) => {
        echoed += chunk.length;
        const now = Date.now();
        maxGap = Math.max(maxGap, now - lastAt);
        lastAt = now;
      });
      stream.resume();
      const chunk = new Uint8Array(512).fill(0x42);
      let sent = 0;
      let feeding = true;
      const feeder = (async () => {
        while (feeding) {
          stream.write(chunk);
          sent += chunk.length;
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await until(() => echoed > 8 * 1024, "echo flowing", 10_000);
      maxGap = 0;
      const t0 = Date.now();
      const stop = await runSvp(["daemon", "stop", "--home", gone.home], { env: lab.env });
      assert.equal(stop.code, 0, stop.stderr);
      await until(async () => (await nextHop()) === stays.sid, `A's route to D through ${stays.name}`, 5000);
      const reroute = Date.now() - t0;
      assert.ok(reroute < 2000, `rerouted in ${reroute} ms (goodbye, not the 30 s peer timeout)`);
      const before = echoed;
      await until(() => echoed > before + 8 * 1024, "echo flowing again through the other node", 15_000);
      feeding = false;
      await feeder;
      stream.closeWrite();
      await until(() => echoed === sent, `all ${sent} bytes echoed (got ${echoed})`, 15_000);
      assert.ok(maxGap < 5000, `the stream stalled at most ${maxGap} ms`);
      listener.close();
    });
  });

  test("--lan on a bridge: three namespaces find each other; a fourth behind a node with two interfaces is found and reached through it", { timeout: 60_000 }, async () => {
    await withLab(async (lab, clients) => {
      const sw = lab.ns("sw");
      lab.bridge(sw, "br0");
      lab.bridge(sw, "br1");
      const l = [1, 2, 3, 4].map((i) => lab.ns(`l${i}`));
      lab.plug(sw, "br0", l[0]!, "10.233.0.1/24");
      lab.plug(sw, "br0", l[1]!, "10.233.0.2/24");
      lab.plug(sw, "br0", l[2]!, "10.233.0.3/24");
      lab.plug(sw, "br1", l[2]!, "10.233.1.3/24"); // l3 is on both segments
      lab.plug(sw, "br1", l[3]!, "10.233.1.4/24");
      const nodes: import("./netns.ts").DaemonNode[] = [];
      for (let i = 0; i < 4; i++) nodes.push(await lab.daemon(`l${i + 1}`, l[i]!, [...HELLO, "--lan"]));
      const t = await Promise.all(nodes.map((n) => client(clients, n.home)));
      const peersOf = async (i: number) => (await t[i]!.status()).peers.filter((p) => p.live);
      await until(async () => (await peersOf(0)).length === 2 && (await peersOf(1)).length === 2 && (await peersOf(2)).length === 3 && (await peersOf(3)).length === 1, "LAN neighbours on both segments", 20_000);
      const p1 = await peersOf(0);
      assert.deepEqual(p1.map((p) => p.sid).sort(), [nodes[1]!.sid, nodes[2]!.sid].sort());
      assert.ok(p1.every((p) => p.source === "lan" && /^10\.233\.0\.\d:4111$/.test(p.address!)), JSON.stringify(p1));
      assert.deepEqual((await peersOf(3)).map((p) => p.address), ["10.233.1.3:4111"]);
      // l1 and l4 share no segment: routed through l3.
      await until(() => t[0]!.reachability(sid(nodes[3]!.sid)) === "reachable", "a route from l1 to l4", 10_000);
      assert.equal(t[0]!.hops(sid(nodes[3]!.sid)), 2);
      const r = (await t[0]!.status()).routes!.find((x) => x.sid === nodes[3]!.sid)!;
      assert.equal(r.nextHop, nodes[2]!.sid);
      // Discovery floods across both segments; the answer comes back routed.
      const listen = lab.svp(l[3]!, ["listen", "--home", nodes[3]!.home, "--exec", "cat", "--service", "echo", "7"]);
      await listen.waitFor(/listening on [0-9A-F]{64}:7/);
      const found = await runSvp(["discover", "--home", nodes[0]!.home, "--timeout", "3s", "echo"], { env: lab.env });
      assert.equal(found.code, 0, found.stderr);
      assert.match(found.stdout, new RegExp(nodes[3]!.sid));
    });
  });
});
