/** Service discovery on MDP port 11: answer codec, responder and query over the in-memory network. */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { MemoryMdpNetwork } from "../helpers/memory-transport.ts";
import { sidToHex } from "../../src/mesh/sid.ts";
import {
  SERVICE_DISCOVERY_PORT,
  discoverServices,
  formatServiceAnswer,
  isValidServiceName,
  parseServiceAnswer,
  servicePatternMatcher,
  startServiceResponder,
} from "../../src/service/discovery.ts";
import type { ServiceAnswer } from "../../src/service/discovery.ts";
import { drain, runFor } from "../msp/helpers.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("service discovery answers", () => {
  test("the answer is servald's text NAME.msp.port=PORT", () => {
    assert.equal(dec(formatServiceAnswer("http", 80)), "http.msp.port=80");
  });

  test("parses servald's answer, NUL-terminated C strings, properties files and several lines", () => {
    assert.deepEqual(parseServiceAnswer(enc("http.msp.port=80")), [{ service: "http", port: 80 }]);
    assert.deepEqual(parseServiceAnswer(enc("ssh.msp.port=22\0\0")), [{ service: "ssh", port: 22 }]);
    assert.deepEqual(parseServiceAnswer(enc("# comment\n! other\nhttp.msp.port : 8080\r\nweb.site.msp.port=4294967295\nfoo=1\n")), [
      { service: "http", port: 8080 },
      { service: "web.site", port: 4294967295 },
    ]);
    assert.deepEqual(parseServiceAnswer(enc("http.MSP.PORT=80\nhttp.msp.port=80")), [{ service: "http", port: 80 }]);
  });

  test("skips anything malformed: bad ports, names, encodings, oversize payloads", () => {
    for (const bad of ["", "http.msp.port=0", "http.msp.port=4294967296", "http.msp.port=80x", "http.msp.port=-1", ".msp.port=80", "a b.msp.port=80", "http.mdp.port=80", "..msp.port=80", "x".repeat(64) + ".msp.port=1"]) {
      assert.deepEqual(parseServiceAnswer(enc(bad)), [], bad);
    }
    assert.deepEqual(parseServiceAnswer(Uint8Array.of(0xff, 0xfe, 0x41)), []);
    assert.deepEqual(parseServiceAnswer(enc("http.msp.port=80\n" + "#".repeat(3000))), []);
    const many = Array.from({ length: 100 }, (_, i) => `s${i}.msp.port=${i + 1}`).join("\n");
    assert.equal(parseServiceAnswer(enc(many)).length, 32);
  });

  test("service names and patterns", () => {
    for (const ok of ["http", "ssh", "my_web-1", "web.site", "a+b"]) assert.ok(isValidServiceName(ok), ok);
    for (const bad of ["", "-x", ".x", "x.", "a..b", "a b", "a/b", "a=b", "x".repeat(64), "*"]) assert.ok(!isValidServiceName(bad), bad);
    const all = servicePatternMatcher(undefined);
    assert.ok(all("anything"));
    const http = servicePatternMatcher("HTTP");
    assert.ok(http("http"));
    assert.ok(!http("https"));
    const star = servicePatternMatcher("ht*");
    assert.ok(star("http") && star("https") && !star("ssh"));
    const q = servicePatternMatcher("s?h");
    assert.ok(q("ssh") && !q("sssh"));
    assert.ok(servicePatternMatcher("a.b")("a.b") && !servicePatternMatcher("a.b")("axb"));
  });
});

/** The result of `p` once it has settled (undefined before). */
function collect(p: Promise<ServiceAnswer[]>): () => ServiceAnswer[] | undefined {
  const box: { r: ServiceAnswer[] | undefined } = { r: undefined };
  void p.then((x) => (box.r = x));
  return () => box.r;
}

function net3() {
  const clock = new ManualClock();
  const net = new MemoryMdpNetwork({ clock, seed: 5 });
  const a = net.addNode();
  const b = net.addNode();
  const c = net.addNode();
  return { clock, net, a, b, c };
}

describe("service discovery over the mesh", () => {
  test("a query finds every node's services (two sharing port 11 with REUSE) and its own, within the timeout", async () => {
    const { clock, net, a, b, c } = net3();
    const r1 = await startServiceResponder(b, { service: "http", port: 80, clock });
    const r2 = await startServiceResponder(b, { service: "ssh", port: 22, clock });
    const r3 = await startServiceResponder(c, { service: "http", port: 8080, clock });
    const r4 = await startServiceResponder(a, { service: "own", port: 7, clock });
    const seen: ServiceAnswer[] = [];
    const got = collect(discoverServices(a, { clock, timeoutMs: 2000, onAnswer: (x) => seen.push(x) }));
    await runFor(clock, 1999);
    assert.equal(got(), undefined, "resolved before the timeout");
    await runFor(clock, 1);
    const result = got();
    assert.ok(result);
    const rows = result.map((x) => `${sidToHex(x.sid) === sidToHex(b.localSid) ? "b" : sidToHex(x.sid) === sidToHex(c.localSid) ? "c" : "a"} ${x.service} ${x.port} ${x.self}`).sort();
    assert.deepEqual(rows, ["a own 7 true", "b http 80 false", "b ssh 22 false", "c http 8080 false"]);
    assert.equal(seen.length, 4);
    // Queries were repeated (every 500 ms) but answers are not listed twice.
    assert.ok(r1.answered >= 3, `answered ${r1.answered}`);
    for (const r of [r1, r2, r3, r4]) r.close();
    assert.deepEqual(b.boundPorts, []);
    assert.deepEqual(a.boundPorts, [], "the query's port is released");
    net.close();
  });

  test("a pattern filters, a target asks one node, `first` resolves at the first answer", async () => {
    const { clock, net, a, b, c } = net3();
    await startServiceResponder(b, { service: "http", port: 80, clock });
    await startServiceResponder(b, { service: "ssh", port: 22, clock });
    await startServiceResponder(c, { service: "http", port: 8080, clock });
    let got = collect(discoverServices(a, { clock, pattern: "ss*" }));
    await runFor(clock, 2000);
    assert.deepEqual(got()?.map((x) => `${x.service}:${x.port}`), ["ssh:22"]);
    got = collect(discoverServices(a, { clock, pattern: "http", target: c.localSid }));
    await runFor(clock, 2000);
    assert.deepEqual(got()?.map((x) => `${x.service}:${x.port}`), ["http:8080"]);
    const started = clock.now();
    got = collect(discoverServices(a, { clock, pattern: "http", first: true, timeoutMs: 5000 }));
    await drain(clock);
    assert.equal(got()?.length, 1);
    assert.equal(clock.now(), started, "did not wait for the timeout");
    net.close();
  });

  test("the query carries the pattern plus NUL; the responder answers any payload and ignores port 11 and broadcast sources", async () => {
    const { clock, net, a, b } = net3();
    const seenQueries: string[] = [];
    net.filter = (d) => {
      if (d.to.port === SERVICE_DISCOVERY_PORT) seenQueries.push(JSON.stringify(dec(d.payload)));
    };
    const resp = await startServiceResponder(b, { service: "http", port: 80, clock });
    void discoverServices(a, { clock, pattern: "web", timeoutMs: 100 });
    await runFor(clock, 100);
    assert.ok(seenQueries.includes(JSON.stringify("web\0")), seenQueries.join(","));
    // Any payload gets an answer (as servald does), binary included.
    const probe = await a.bind(0);
    const got: string[] = [];
    probe.on("message", (p, from) => got.push(`${from.port} ${dec(p)}`));
    probe.send({ sid: b.localSid, port: SERVICE_DISCOVERY_PORT }, Uint8Array.of(0, 1, 2, 0xff));
    await runFor(clock, 10);
    assert.deepEqual(got, ["11 http.msp.port=80"]);
    // A datagram from port 11 (another responder) is never answered: no answer loops.
    const before = resp.answered;
    const loop = await a.bind(SERVICE_DISCOVERY_PORT, { reuse: true });
    loop.send({ sid: b.localSid, port: SERVICE_DISCOVERY_PORT }, enc("http.msp.port=1"));
    await runFor(clock, 10);
    assert.equal(resp.answered, before);
    assert.equal(resp.ignored, 1);
    net.close();
  });

  test("answers are rate-limited", async () => {
    const { clock, net, a, b } = net3();
    const resp = await startServiceResponder(b, { service: "http", port: 80, clock, maxAnswersPerSecond: 5 });
    const s = await a.bind(0);
    let answers = 0;
    s.on("message", () => answers++);
    for (let i = 0; i < 20; i++) s.send({ sid: b.localSid, port: SERVICE_DISCOVERY_PORT }, enc("x"));
    await runFor(clock, 10);
    assert.equal(answers, 5);
    assert.equal(resp.ignored, 15);
    await runFor(clock, 1000);
    s.send({ sid: b.localSid, port: SERVICE_DISCOVERY_PORT }, enc("x"));
    await runFor(clock, 10);
    assert.equal(answers, 6);
    net.close();
  });

  test("lost queries are repeated; unreachable nodes are not asked; garbage answers are ignored", async () => {
    const { clock, net, a, b, c } = net3();
    await startServiceResponder(b, { service: "http", port: 80, clock });
    await startServiceResponder(c, { service: "http", port: 81, clock });
    net.cut(a.localSid, c.localSid);
    let dropped = 0;
    net.filter = (d) => {
      if (d.to.port === SERVICE_DISCOVERY_PORT && dropped < 2) {
        dropped++;
        return false;
      }
    };
    // A hostile node answering with garbage from port 11.
    const liar = net.addNode();
    const ls = await liar.bind(SERVICE_DISCOVERY_PORT, { reuse: true });
    ls.on("message", (_p, from) => {
      ls.send(from, Uint8Array.of(0xc3, 0x28));
      ls.send(from, enc("http.msp.port=99999999999"));
    });
    const got = collect(discoverServices(a, { clock, timeoutMs: 2000 }));
    await runFor(clock, 2000);
    assert.ok(dropped === 2);
    assert.deepEqual(got()?.map((x) => `${x.service}:${x.port}`), ["http:80"]);
    net.close();
  });

  test("each reachable peer is also asked directly: one that gets no broadcasts (a servald link after a restart) still answers", async () => {
    const { clock, net, a, b } = net3();
    await startServiceResponder(b, { service: "http", port: 80, clock });
    let broadcasts = 0;
    let direct = 0;
    net.filter = (d) => {
      if (d.to.port !== SERVICE_DISCOVERY_PORT) return;
      if (d.to.sid.every((x) => x === 0xff)) {
        broadcasts++;
        return false;
      }
      if (sidToHex(d.to.sid) === sidToHex(b.localSid)) direct++;
    };
    const got = collect(discoverServices(a, { clock, timeoutMs: 1900 }));
    await runFor(clock, 1900);
    assert.equal(broadcasts, 4, "a broadcast every 500 ms (all dropped)");
    assert.equal(direct, 1, "the direct query goes in the first round (and every 4th), not every 500 ms");
    assert.deepEqual(got()?.map((x) => `${sidToHex(x.sid) === sidToHex(b.localSid) ? "b" : "?"} ${x.service}:${x.port}`), ["b http:80"]);
    net.close();
  });

  test("an aborted query resolves with what it has and releases its port", async () => {
    const { clock, net, a } = net3();
    const ac = new AbortController();
    let r: ServiceAnswer[] | undefined;
    void discoverServices(a, { clock, timeoutMs: 60_000, signal: ac.signal }).then((x) => (r = x));
    await runFor(clock, 100);
    ac.abort();
    await drain(clock);
    assert.deepEqual(r, []);
    assert.deepEqual(a.boundPorts, []);
    assert.equal(clock.pendingCount, 0, "timers left behind");
    net.close();
  });
});
