import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { METRIC_INFINITY } from "../../src/node/route-packet.ts";
import { isFeasible, SourceTable, updateFd } from "../../src/node/source-table.ts";

const boot = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

describe("SourceTable and the feasibility condition", () => {
  test("a source without FD accepts anything; after announcing, only newer seqnos or strictly smaller metrics", () => {
    const t = new SourceTable(4);
    const s = t.add("d", "b", boot, 1, 8, 100);
    assert.deepEqual(s.boot, boot.subarray(1, 9));
    assert.equal(s.firstSeen, 100);
    assert.ok(isFeasible(s, 0, 60000));
    updateFd(s, 5, 512, 200);
    assert.equal(s.usedAt, 200);
    assert.ok(!isFeasible(s, 5, 512), "equal metric: not strictly closer");
    assert.ok(isFeasible(s, 5, 511));
    assert.ok(!isFeasible(s, 4, 0), "older seqno never");
    assert.ok(isFeasible(s, 6, 5000), "newer seqno always");
    assert.ok(isFeasible(s, 0, 5000) === false);
  });

  test("the FD only goes down within a seqno, resets with a newer one, and ignores retractions and older seqnos", () => {
    const s = new SourceTable(4).add("d", "b", boot, 0, 8, 0);
    updateFd(s, 5, 512, 1);
    updateFd(s, 5, 768, 2);
    assert.equal(s.fdMetric, 512);
    updateFd(s, 5, 300, 3);
    assert.equal(s.fdMetric, 300);
    updateFd(s, 4, 100, 4);
    assert.deepEqual([s.fdSeqno, s.fdMetric], [5, 300]);
    updateFd(s, 6, 900, 5);
    assert.deepEqual([s.fdSeqno, s.fdMetric], [6, 900]);
    updateFd(s, 7, METRIC_INFINITY, 6);
    assert.deepEqual([s.fdSeqno, s.fdMetric, s.usedAt], [6, 900, 5]);
    updateFd(s, 0xffff, 1, 7);
    assert.equal(s.fdSeqno, 6, "0xffff is older than 6 (wrapping)");
  });

  test("bounded; the sweep forgets idle sources nothing refers to", () => {
    const t = new SourceTable(2);
    const a = t.add("a", "1", boot, 0, 8, 0);
    assert.ok(!t.full);
    const b = t.add("b", "1", boot, 0, 8, 500);
    assert.ok(t.full);
    assert.equal(t.get("a", "1"), a);
    assert.equal(t.get("a", "2"), undefined);
    t.sweep(1000, 800, () => false);
    assert.equal(t.size, 1, "a was idle for 1000 ms");
    assert.equal(t.get("b", "1"), b);
    t.sweep(2000, 800, (s) => s === b);
    assert.equal(t.size, 1, "b is still in use");
    t.sweep(2000, 800, () => false);
    assert.equal(t.size, 0);
  });
});
