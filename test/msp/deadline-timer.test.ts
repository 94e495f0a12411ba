/** The MSP connection's one timer (src/msp/deadline-timer.ts): earliest deadline wins, cancel, re-arm from the callback. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { DeadlineTimer } from "../../src/msp/deadline-timer.ts";

describe("DeadlineTimer", () => {
  test("keeps the earliest deadline: a later arm is ignored, an earlier one replaces it", () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    const t = new DeadlineTimer(clock, () => fired.push(clock.now()));
    t.arm(100);
    t.arm(200);
    assert.equal(t.at, 100);
    t.arm(50);
    assert.equal(t.at, 50);
    assert.equal(clock.pendingCount, 1);
    clock.advance(300);
    assert.deepEqual(fired, [50]);
    assert.equal(t.at, Infinity);
  });

  test("cancel disarms; a deadline in the past fires at once", () => {
    const clock = new ManualClock(1000);
    let fired = 0;
    const t = new DeadlineTimer(clock, () => fired++);
    t.arm(1500);
    t.cancel();
    clock.advance(1000);
    assert.equal(fired, 0);
    assert.equal(clock.pendingCount, 0);
    t.arm(10);
    clock.advance(0);
    assert.equal(fired, 1);
  });

  test("the callback may arm again (it is disarmed by then), even for a later deadline", () => {
    const clock = new ManualClock();
    const fired: number[] = [];
    const t = new DeadlineTimer(clock, () => {
      fired.push(clock.now());
      if (fired.length < 3) t.arm(clock.now() + 10);
    });
    t.arm(10);
    clock.advance(100);
    assert.deepEqual(fired, [10, 20, 30]);
  });
});
