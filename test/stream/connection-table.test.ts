import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectionTable, sharedCounts } from "../../src/stream/connection-table.ts";
import type { TableSlot } from "../../src/stream/connection-table.ts";
import { ManualClock } from "../../src/clock.ts";
import { SvpError } from "../../src/errors.ts";

interface Rec {
  outcome: string;
  message?: string;
  durationMs: number;
}

interface Conn extends TableSlot {
  name: string;
  record: Rec;
  /** Relaying (a `cut` case) rather than pending (a `stop` case). */
  live: boolean;
}

function setup(opts: { maxConns?: number; shared?: Int32Array } = {}) {
  const clock = new ManualClock(1000);
  const finished: Array<{ name: string; record: Rec; err: SvpError | undefined }> = [];
  let drained = 0;
  const table = new ConnectionTable<Conn>({
    clock,
    maxConns: opts.maxConns,
    shared: opts.shared,
    finished: (conn, err) => finished.push({ name: conn.name, record: { ...conn.record }, err }),
    drained: () => drained++,
  });
  const admit = (name: string, live = true) => table.admit({ name, live, record: { outcome: "ok", durationMs: 0 } });
  return { clock, table, finished, admit, drained: () => drained };
}

test("local slots: maxConns admits that many counted, the rest uncounted; a finish frees one", () => {
  const { table, admit } = setup({ maxConns: 2 });
  const a = admit("a");
  const b = admit("b");
  const c = admit("c");
  assert.deepEqual([a.counted, b.counted, c.counted], [true, true, false]);
  assert.equal(table.connections, 3, "uncounted connections are live all the same");
  table.finish(a, undefined);
  assert.equal(admit("d").counted, true, "a's slot is free again");
  assert.equal(admit("e").counted, false);
  table.finish(c, undefined); // an uncounted one frees no slot
  assert.equal(admit("f").counted, false);
});

test("no limit: maxConns 0 counts every connection", () => {
  const { admit } = setup({ maxConns: 0 });
  for (let i = 0; i < 5; i++) assert.equal(admit(`c${i}`).counted, true);
});

test("shared slots: the limit and the live count hold across tables sharing the counts", () => {
  const shared = sharedCounts();
  const one = setup({ maxConns: 2, shared });
  const two = setup({ maxConns: 2, shared });
  const a = one.admit("a");
  const b = two.admit("b");
  const c = two.admit("c");
  assert.deepEqual([a.counted, b.counted, c.counted], [true, true, false], "the third, in another table, is over the shared limit");
  assert.equal(one.table.connections, 3);
  assert.equal(two.table.connections, 3);
  assert.equal(one.table.size, 1, "size is this table's own");
  assert.deepEqual([...shared], [3, 2], "LIVE 3, COUNTED 2");
  one.table.finish(a, undefined);
  assert.deepEqual([...shared], [2, 1]);
  assert.equal(two.admit("d").counted, true, "a's slot, freed in the other table, is free here");
  two.table.finish(c, undefined);
  assert.deepEqual([...shared], [2, 2], "finishing an uncounted connection gives back only its LIVE");
});

test("shared counts without a limit touch only LIVE", () => {
  const shared = sharedCounts();
  const { table, admit } = setup({ shared });
  const a = admit("a");
  admit("b");
  assert.deepEqual([...shared], [2, 0]);
  table.finish(a, undefined);
  assert.deepEqual([...shared], [1, 0]);
  assert.equal(table.connections, 1);
});

test("finish once: duration from the clock, outcome and message from the error, reported once", () => {
  const { clock, table, finished, admit } = setup();
  const ok = admit("ok");
  clock.advance(250);
  const bad = admit("bad");
  clock.advance(100);
  assert.equal(table.finish(ok, undefined), true);
  assert.equal(table.finish(bad, new SvpError("ERR_REFUSED", "no thanks")), true);
  assert.equal(table.finish(bad, new SvpError("ERR_TIMEOUT", "later")), false, "a second finish is ignored");
  assert.equal(table.finish(ok, undefined), false);
  assert.deepEqual(
    finished.map((f) => [f.name, f.record, f.err?.code]),
    [
      ["ok", { outcome: "ok", durationMs: 350 }, undefined],
      ["bad", { outcome: "ERR_REFUSED", message: "no thanks", durationMs: 100 }, "ERR_REFUSED"],
    ],
  );
  assert.equal(bad.finished, true);
  assert.equal(table.size, 0);
});

test("close: stops pending connections at once, drains live ones until drainMs, then cuts; resolves when the last is gone", async () => {
  const { clock, table, admit, finished, drained } = setup();
  const pending = admit("pending", false);
  const live = admit("live");
  const stopped: string[] = [];
  const cut: string[] = [];
  const hooks = {
    stop: (c: Conn) => {
      stopped.push(c.name);
      if (!c.live) table.finish(c, new SvpError("ERR_ABORTED", "shutting down"));
    },
    cut: (c: Conn) => {
      cut.push(c.name);
      table.finish(c, new SvpError("ERR_ABORTED", "still open"));
    },
  };
  let resolved = false;
  const closed = table.close(1000, hooks).then(() => (resolved = true));
  assert.equal(table.closing, true);
  assert.deepEqual(stopped, ["pending", "live"], "stop sees every connection once");
  assert.equal(pending.finished, true);
  assert.equal(live.finished, false, "a live one is left to drain");
  clock.advance(999);
  await Promise.resolve();
  assert.equal(resolved, false);
  assert.deepEqual(cut, []);
  clock.advance(1);
  assert.deepEqual(cut, ["live"]);
  await closed;
  assert.equal(resolved, true);
  assert.equal(drained(), 1);
  assert.deepEqual(
    finished.map((f) => f.record.message),
    ["shutting down", "still open"],
  );
  assert.equal(clock.pendingCount, 0);
});

test("close twice: the second call sets a sooner deadline and does not stop again", () => {
  const { clock, table, admit } = setup();
  admit("live");
  const stops: string[] = [];
  const cuts: number[] = [];
  const hooks = (tag: number) => ({ stop: (c: Conn) => stops.push(c.name), cut: (c: Conn) => (cuts.push(tag), table.finish(c, undefined)) });
  const first = table.close(10_000, hooks(1));
  const second = table.close(500, hooks(2));
  assert.equal(first, second, "one promise for both calls");
  assert.deepEqual(stops, ["live"]);
  clock.advance(500);
  assert.deepEqual(cuts, [2], "the sooner deadline cut");
  assert.equal(clock.pendingCount, 0, "the later deadline was cancelled when the last connection went");
});

test("drained: connections finishing on their own resolve the close and cancel the deadline", async () => {
  const { clock, table, admit, drained } = setup();
  const a = admit("a");
  const b = admit("b");
  const closed = table.close(5000, { stop: () => {}, cut: () => assert.fail("nothing is left to cut") });
  table.finish(a, undefined);
  assert.equal(drained(), 0, "one is still live");
  table.finish(b, undefined);
  assert.equal(drained(), 1);
  await closed;
  assert.equal(clock.pendingCount, 0);
  clock.advance(10_000);
});

test("close with nothing live resolves at once, with no deadline", async () => {
  const { clock, table, drained } = setup();
  await table.close(1000, { stop: () => assert.fail(), cut: () => assert.fail() });
  assert.equal(clock.pendingCount, 0);
  assert.equal(drained(), 0, "drained tells of a last finish, not of an empty close");
});

test("stopAccepting marks closing without stopping anyone; cancelDrain keeps live connections from the cut", () => {
  const { clock, table, admit, drained } = setup();
  const a = admit("a");
  table.stopAccepting();
  const stops: string[] = [];
  void table.close(100, { stop: (c) => stops.push(c.name), cut: () => assert.fail("the deadline was cancelled") });
  assert.deepEqual(stops, [], "already closing: close does not stop again");
  table.cancelDrain();
  clock.advance(1000);
  assert.equal(a.finished, false);
  table.finish(a, undefined);
  assert.equal(drained(), 1);
});
