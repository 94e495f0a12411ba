/** `svp status` on servald: parsing servald's CLI output and building the report. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseIdSelf, parseKeyValues, parseRoutePrint, parseServaldVersion, reachabilityNames, servaldStatusReport } from "../../src/servald/servald-status.ts";
import type { ServaldFacts } from "../../src/servald/servald-status.ts";
import { REACHABLE } from "../../src/servald/route-record.ts";
import { sidFromHex } from "../../src/mesh/sid.ts";
import { isStatusReport } from "../../src/status/status-report.ts";

const A = "7233F06984A9D2004E0133CDF2B3A5B88C667453E3AE95A44866F3FD40687826";
const B = "287D11FCF17467065A86BBAB74E28C96B1115365D99253A1614AB3BC619F672D";
const C = "C88E12E2E1915273EEAF5E1F91BB6848CED4CF8B03B26F852892A51FB5CB582F";
const D = "0000000000000000000000000000000000000000000000000000000000000DDD";
const sid = (hex: string) => sidFromHex(hex)!;

describe("servald CLI output", () => {
  test("route print (a number for combined flags): rows with flags, interface, next and prior hop; junk rows skipped", () => {
    const text = [
      "5",
      "Subscriber id:Routing flags:Interface:Next hop:Prior hop",
      `${A}:SELF:dummy1::`,
      `${B}:UNICAST:dummy1::`,
      `${C}:INDIRECT::${B}:`,
      `${D}:UNREACHABLE:::`,
      "not-a-sid:UNICAST:x::",
      `${B}:too:few`,
      "",
    ].join("\n");
    const rows = parseRoutePrint(text);
    assert.deepEqual(
      rows.map((r) => [r.flags, r.interface, r.nextHop !== null, r.priorHop !== null]),
      [
        [["self"], "dummy1", false, false],
        [["unicast"], "dummy1", false, false],
        [["indirect"], null, true, false],
        [["unreachable"], null, false, false],
      ],
    );
    assert.deepEqual(rows[2]!.nextHop, sid(B));
    assert.deepEqual(parseRoutePrint("garbage"), []);
  });

  test("id self, status key:values, version", () => {
    assert.deepEqual(parseIdSelf(`1\nsid\n${A}\n${C}\n`), [sid(A), sid(C)]);
    assert.deepEqual(parseIdSelf("1\nsid\n"), []);
    const kv = parseKeyValues("instancepath:/tmp/x/servald\nstatus:running\npid:12480\nprimary_sid:" + A + "\n");
    assert.equal(kv.status, "running");
    assert.equal(kv.pid, "12480");
    assert.equal(kv.instancepath, "/tmp/x/servald");
    assert.equal(parseServaldVersion("Serval DNA version START-3912-g029adc17\nPortions Copyright…\n"), "START-3912-g029adc17");
    assert.equal(parseServaldVersion("servald: command not found"), undefined);
  });

  test("reachability names", () => {
    assert.deepEqual(reachabilityNames(0), ["unreachable"]);
    assert.deepEqual(reachabilityNames(REACHABLE.BROADCAST | REACHABLE.UNICAST), ["broadcast", "unicast"]);
    assert.deepEqual(reachabilityNames(REACHABLE.SELF), ["self"]);
  });
});

describe("servald status report", () => {
  const base: Omit<ServaldFacts, "routes" | "via"> = {
    instance: { path: "/tmp/x/servald", source: "env" },
    identities: [sid(A), sid(D)],
    pid: 4242,
    startedAtMs: 1_000_000,
    version: "START-3912-g029adc17",
    cli: "/usr/bin/servald",
    notes: [],
  };

  test("from the socket's route records: self and own identities left out, reachable peers first", () => {
    const r = servaldStatusReport(
      {
        ...base,
        via: "socket",
        routes: [
          { sid: sid(A), reachable: REACHABLE.SELF, hopCount: 0, interfaceName: "dummy1" },
          { sid: sid(C), reachable: REACHABLE.NONE },
          { sid: sid(B), reachable: REACHABLE.UNICAST, hopCount: 1, interfaceName: "dummy1" },
          { sid: sid(D), reachable: REACHABLE.UNICAST, hopCount: 1, interfaceName: "dummy1" },
        ],
      },
      1_005_000,
    );
    assert.ok(isStatusReport(r), "not a StatusReport");
    assert.equal(r.backend, "servald");
    assert.deepEqual(r.identity.sids, [A, D]);
    assert.equal(r.identity.sid, A);
    assert.deepEqual(r.daemon, { pid: 4242, version: "servald START-3912-g029adc17", home: "/tmp/x/servald", startedAt: new Date(1_000_000).toISOString(), uptimeMs: 5000, udp: [], discovery: [] });
    assert.deepEqual(r.peers.map((p) => [p.sid, p.live, p.route?.reachable, p.route?.hops, p.route?.interface]), [
      [B, true, ["unicast"], 1, "dummy1"],
      [C, false, ["unreachable"], null, null],
    ]);
    assert.deepEqual(r.servald, { instance: "/tmp/x/servald", instanceSource: "env", via: "socket", cli: "/usr/bin/servald", interfaces: ["dummy1"], notes: [] });
    assert.deepEqual([r.ports, r.streams], [[], []]);
  });

  test("uptime is whole milliseconds, like the embedded node's (a pid file's mtime has fractions)", () => {
    const r = servaldStatusReport({ ...base, startedAtMs: 1_000_000.4567, via: "socket", routes: [] }, 1_005_000.9);
    assert.equal(r.daemon.uptimeMs, 5000);
  });

  test("from route print rows (the CLI stand-in); an indirect peer shows its next hop; unknown version and pid", () => {
    const r = servaldStatusReport(
      {
        ...base,
        pid: null,
        startedAtMs: null,
        version: undefined,
        via: "cli",
        routes: parseRoutePrint(`5\nh\n${A}:SELF:eth0::\n${B}:6:eth0::\n${C}:INDIRECT::${B}:\n`),
      },
      5,
    );
    assert.deepEqual(r.peers.map((p) => [p.sid, p.live, p.route?.reachable, p.route?.hops, p.route?.nextHop]), [
      [B, true, ["broadcast", "unicast"], 1, null],
      [C, true, ["indirect"], 2, B],
    ]);
    assert.equal(r.daemon.pid, 0);
    assert.equal(r.daemon.startedAt, "");
    assert.equal(r.daemon.version, "servald (version unknown)");
    assert.deepEqual(r.servald?.interfaces, ["eth0"]);
  });
});
