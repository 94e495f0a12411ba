import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EntryList } from "../../src/node/entry-list.ts";
import { METRIC_INFINITY } from "../../src/node/route-packet.ts";
import { routeMetric, selectRoute, type SelectableEntry } from "../../src/node/select-route.ts";
import { type RouteSource, SourceTable, updateFd } from "../../src/node/source-table.ts";

const sources = new SourceTable(16);
const boot = new Uint8Array(8).fill(1);
function src(bootKey: string, firstSeen: number): RouteSource {
  return sources.add("d", bootKey, boot, 0, 8, firstSeen);
}
function entry(key: string, s: RouteSource, metric: number, cost = 256, hops = 1, seqno = 1): SelectableEntry {
  return { neighbour: { key, cost }, src: s, seqno, metric, hops };
}
function list(...es: SelectableEntry[]): EntryList<SelectableEntry> {
  const l = new EntryList<SelectableEntry>();
  for (const e of es) l.set(e.neighbour.key, e);
  return l;
}

describe("selectRoute", () => {
  test("routeMetric adds the link cost and caps at infinity", () => {
    const s = src("m", 0);
    assert.equal(routeMetric(entry("a", s, 512, 300)), 812);
    assert.equal(routeMetric(entry("a", s, METRIC_INFINITY - 10, 300)), METRIC_INFINITY);
    assert.equal(routeMetric(entry("a", s, 0, METRIC_INFINITY)), METRIC_INFINITY);
  });

  test("smallest metric wins; on a tie the current route, else fewer hops", () => {
    const s = src("t", 0);
    const a = entry("a", s, 512, 256, 2);
    const b = entry("b", s, 768, 256, 3);
    const c = entry("c", s, 512, 256, 1);
    assert.equal(selectRoute(list(a, b), undefined).best, a);
    assert.equal(selectRoute(list(a, c), undefined).best, c, "same metric, fewer hops");
    assert.equal(selectRoute(list(a, c), a).best, a, "same metric: stay");
    assert.equal(selectRoute(list(a, b), a).bestM, 768);
  });

  test("hysteresis: a slightly better route does not replace the current one; a hop better does", () => {
    const s = src("h", 0);
    const cur = entry("a", s, 1024);
    const slightly = entry("b", s, 1024 - 60);
    const muchBetter = entry("c", s, 1024 - 256);
    assert.equal(selectRoute(list(cur, slightly), cur).best, cur);
    assert.equal(selectRoute(list(cur, slightly), undefined).best, slightly);
    assert.equal(selectRoute(list(cur, muchBetter), cur).best, muchBetter);
  });

  test("the newest source wins whatever its metric", () => {
    const old = src("o", 0);
    const fresh = src("n", 100);
    const a = entry("a", old, 256);
    const b = entry("b", fresh, 2048, 256, 8);
    assert.equal(selectRoute(list(a, b), a).best, b);
  });

  test("unfeasible routes are left out and reported", () => {
    const s = src("u", 0);
    updateFd(s, 1, 512, 0);
    const far = entry("a", s, 1024);
    const near = entry("b", s, 512);
    const r = selectRoute(list(far, near), undefined);
    assert.equal(r.best, undefined, "neither is strictly below the FD with seqno 1");
    assert.equal(r.unfeasible, true);
    assert.equal(r.unfeasibleM, 768);
    const newer = entry("c", s, 4096, 256, 9, 2);
    assert.equal(selectRoute(list(far, newer), undefined).best, newer);
  });
});
