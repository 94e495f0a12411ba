import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ReplayWindow } from "../../src/node/replay-window.ts";

describe("ReplayWindow", () => {
  test("accepts each counter once, in any order within the window", () => {
    const w = new ReplayWindow(64);
    for (const c of [1, 3, 2, 10, 5, 4]) {
      assert.equal(w.check(c), true, `first ${c}`);
      w.accept(c);
      assert.equal(w.check(c), false, `replayed ${c}`);
    }
    for (const c of [6, 7, 8, 9]) assert.equal(w.check(c), true, `gap ${c} still open`);
    assert.equal(w.highest, 10);
  });

  test("too old counters are refused; a jump clears the bitmap", () => {
    const w = new ReplayWindow(64);
    w.accept(1);
    w.accept(100);
    assert.equal(w.check(36), false, "100 - 36 >= 64");
    assert.equal(w.check(37), true);
    w.accept(1000);
    assert.equal(w.check(1000 - 63), true);
    assert.equal(w.check(100), false);
  });

  test("zero, negative, fractional and huge counters are refused", () => {
    const w = new ReplayWindow();
    for (const c of [0, -1, 1.5, Infinity, NaN, 2 ** 53]) assert.equal(w.check(c), false, String(c));
  });

  test("reset forgets everything", () => {
    const w = new ReplayWindow(16);
    w.accept(5);
    w.reset();
    assert.equal(w.check(5), true);
    assert.equal(w.highest, 0);
  });

  test("bits of counters that wrapped around the ring are cleared when the window moves", () => {
    const w = new ReplayWindow(8);
    for (let c = 1; c <= 8; c++) w.accept(c);
    assert.equal(w.check(9), true);
    w.accept(12);
    for (const c of [9, 10, 11]) assert.equal(w.check(c), true, `${c} not seen yet`);
    assert.equal(w.check(12), false);
    assert.equal(w.check(4), false, "out of window");
  });
});
