/**
 * The link model on a manual clock: delay and jitter bounds, loss and duplication rates,
 * reordering, the bottleneck's rate and drop-tail queue, reproducibility, bounds.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ManualClock } from "../../src/clock.ts";
import { SvpError } from "../../src/errors.ts";
import { LinkModel, type LinkParams } from "./link-model.ts";

interface Arrival {
  id: number;
  at: number;
  size: number;
}

/** A datagram of `size` bytes whose first 4 bytes are `id` and the rest a function of it. */
function datagram(id: number, size = 100): Uint8Array {
  const d = new Uint8Array(size);
  new DataView(d.buffer).setUint32(0, id);
  for (let i = 4; i < size; i++) d[i] = (id * 31 + i) & 0xff;
  return d;
}

function intact(d: Uint8Array): boolean {
  const id = new DataView(d.buffer, d.byteOffset).getUint32(0);
  for (let i = 4; i < d.length; i++) if (d[i] !== ((id * 31 + i) & 0xff)) return false;
  return true;
}

/**
 * Offer `n` datagrams, one every `gapMs` of virtual time (from t=0), then let the link
 * drain. Returns the arrivals in delivery order and the offer times.
 */
function run(params: LinkParams, n: number, gapMs: number, size = 100): { link: LinkModel; clock: ManualClock; arrivals: Arrival[]; sentAt: number[] } {
  const clock = new ManualClock();
  const arrivals: Arrival[] = [];
  const link = new LinkModel(params, clock, (d) => {
    assert.ok(intact(d), "datagram bytes changed");
    arrivals.push({ id: new DataView(d.buffer, d.byteOffset).getUint32(0), at: clock.now(), size: d.length });
  });
  const sentAt: number[] = [];
  for (let i = 0; i < n; i++) {
    clock.advanceTo(i * gapMs);
    sentAt.push(clock.now());
    link.offer(datagram(i, size));
  }
  clock.runUntilIdle();
  return { link, clock, arrivals, sentAt };
}

/** A count of Bernoulli(p) successes in n trials lies within 5 standard deviations. */
function assertRate(count: number, n: number, p: number, what: string): void {
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(count - n * p) <= 5 * sd, `${what}: ${count} of ${n}, expected ${n * p} ± ${Math.round(5 * sd)}`);
}

function inOrder(arrivals: Arrival[]): boolean {
  return arrivals.every((a, i) => i === 0 || a.id > arrivals[i - 1]!.id);
}

describe("LinkModel", () => {
  test("with every parameter at zero it is a FIFO that delivers at once, synchronously", () => {
    const clock = new ManualClock();
    const got: number[] = [];
    const link = new LinkModel({}, clock, (d) => got.push(d[0]!));
    for (let i = 0; i < 200; i++) {
      link.offer(Uint8Array.of(i));
      assert.equal(got.length, i + 1, "delivered during offer()");
    }
    assert.deepEqual(got, [...Array(200).keys()]);
    assert.equal(clock.pendingCount, 0);
    const s = link.stats();
    assert.equal(s.offered, 200);
    assert.equal(s.delivered, 200);
    assert.equal(s.deliveredBytes, 200);
    assert.equal(s.reordered, 0);
    assert.equal(s.held, 0);
    assert.equal(s.meanQueueDelayMs, 0);
  });

  test("a delay alone keeps the order and delays each datagram by exactly delayMs", () => {
    const { arrivals, sentAt, link } = run({ delayMs: 25 }, 1000, 0.25);
    assert.equal(arrivals.length, 1000);
    assert.ok(inOrder(arrivals));
    for (const a of arrivals) assert.equal(a.at - sentAt[a.id]!, 25);
    assert.equal(link.stats().reordered, 0);
  });

  test("jitter stays within [delay, delay + jitter), spans it, and reorders close datagrams", () => {
    const { arrivals, sentAt, link } = run({ delayMs: 20, jitterMs: 10, seed: 7 }, 2000, 1);
    assert.equal(arrivals.length, 2000);
    const lat = arrivals.map((a) => a.at - sentAt[a.id]!);
    assert.ok(Math.min(...lat) >= 20 && Math.min(...lat) < 20.1, `min ${Math.min(...lat)}`);
    assert.ok(Math.max(...lat) < 30 && Math.max(...lat) > 29.9, `max ${Math.max(...lat)}`);
    const mean = lat.reduce((x, y) => x + y, 0) / lat.length;
    assert.ok(Math.abs(mean - 25) < 0.5, `mean latency ${mean}`);
    // 1 ms apart with 10 ms of jitter: many overtake one another.
    assert.ok(link.stats().reordered > 500, `reordered ${link.stats().reordered}`);
    assert.ok(!inOrder(arrivals));
  });

  test("loss and duplication happen at their rates over 10,000 datagrams, bytes intact", () => {
    const n = 10_000;
    const { link, arrivals } = run({ loss: 0.03, duplicate: 0.02, seed: 42 }, n, 1);
    const s = link.stats();
    assertRate(s.lost, n, 0.03, "lost");
    assertRate(s.duplicated, n - s.lost, 0.02, "duplicated");
    assert.equal(s.delivered, n - s.lost + s.duplicated);
    assert.equal(arrivals.length, s.delivered);
    const ids = new Set(arrivals.map((a) => a.id));
    assert.equal(ids.size, n - s.lost, "every datagram not lost arrived, duplicates are copies");
    assert.equal(s.offeredBytes, n * 100);
    assert.equal(s.deliveredBytes, s.delivered * 100);
    // No delay, no jitter: a duplicate arrives right behind its original, nothing reorders.
    assert.equal(s.reordered, 0);
  });

  test("loss 1 delivers nothing; loss 0 delivers everything", () => {
    assert.equal(run({ loss: 1 }, 500, 1).arrivals.length, 0);
    assert.equal(run({ loss: 1 }, 500, 1).link.stats().lost, 500);
    assert.equal(run({ loss: 0, delayMs: 3 }, 500, 1).arrivals.length, 500);
  });

  test("reorder holds some datagrams back so later ones overtake them; none without it", () => {
    const n = 5000;
    const { link, arrivals } = run({ delayMs: 10, reorder: 0.05, reorderExtraMs: 5, seed: 3 }, n, 1);
    const s = link.stats();
    assertRate(s.reorderHeld, n, 0.05, "held back");
    assert.ok(s.reordered > 0);
    // Each held-back datagram is overtaken by the ~4 offered in the next 5 ms; it alone counts.
    assert.equal(s.reordered, arrivals.filter((a, i) => arrivals.slice(0, i).some((b) => b.id > a.id)).length);
    assert.equal(arrivals.length, n);
    const plain = run({ delayMs: 10, rateBytesPerSec: 1e6, seed: 3 }, n, 1);
    assert.ok(inOrder(plain.arrivals));
    assert.equal(plain.link.stats().reordered, 0);
  });

  test("Gilbert-Elliott burst loss loses in runs at the stationary rate", () => {
    const n = 20_000;
    const enter = 0.01;
    const exit = 0.25;
    const clock = new ManualClock();
    const got = new Set<number>();
    const link = new LinkModel({ burstLoss: { enter, exit }, seed: 11 }, clock, (d) => got.add(new DataView(d.buffer).getUint32(0)));
    for (let i = 0; i < n; i++) link.offer(datagram(i, 8));
    const lostRate = link.stats().lost / n;
    const expected = enter / (enter + exit);
    assert.ok(Math.abs(lostRate - expected) < 0.01, `lost ${lostRate}, expected ${expected}`);
    // Mean burst length is 1/exit = 4 datagrams; independent loss would give about 1.
    let runs = 0;
    for (let i = 0; i < n; i++) if (!got.has(i) && (i === 0 || got.has(i - 1))) runs++;
    const meanRun = link.stats().lost / runs;
    assert.ok(meanRun > 3 && meanRun < 5, `mean burst ${meanRun}`);
  });

  describe("bottleneck", () => {
    const rate = 1_000_000; // 1000-byte datagrams: one per millisecond
    const size = 1000;

    test("offered twice its rate, it delivers at the rate, drops at the tail and reports the queueing delay", () => {
      const queueLimit = 50;
      const n = 4000; // one every 0.5 ms for 2 s
      const { link, arrivals, sentAt } = run({ rateBytesPerSec: rate, queueLimit, delayMs: 5 }, n, 0.5, size);
      const s = link.stats();
      // Measured in virtual time once the queue has filled: one datagram per millisecond.
      const inWindow = arrivals.filter((a) => a.at >= 500 && a.at < 1500);
      assert.equal(inWindow.length, 1000);
      // The link sent for ~2 s + the queue's 50 ms; the rest was dropped at the tail.
      assert.equal(s.delivered + s.queueDrops, n);
      assert.ok(Math.abs(s.delivered - (2000 + queueLimit)) <= 2, `delivered ${s.delivered}`);
      // A full queue of 50 ahead: 50 ms of waiting, never more.
      assert.ok(s.maxQueueDelayMs <= queueLimit && s.maxQueueDelayMs >= queueLimit - 1, `max queueing ${s.maxQueueDelayMs}`);
      assert.ok(s.meanQueueDelayMs > 45, `mean queueing ${s.meanQueueDelayMs}`);
      for (const a of arrivals) {
        const lat = a.at - sentAt[a.id]!;
        assert.ok(lat >= 5 + 1 && lat <= 5 + 1 + queueLimit, `latency ${lat}`);
      }
      assert.ok(inOrder(arrivals));
      // The deepest the queue ever holds is queueLimit waiting + the one being sent.
      assert.ok(s.held <= queueLimit + 1);
    });

    test("below its rate nothing waits and nothing drops", () => {
      const { link, arrivals, sentAt } = run({ rateBytesPerSec: rate, queueLimit: 1, delayMs: 5 }, 1000, 2, size);
      const s = link.stats();
      assert.equal(s.queueDrops, 0);
      assert.equal(s.maxQueueDelayMs, 0);
      for (const a of arrivals) assert.equal(a.at - sentAt[a.id]!, 6); // 1 ms to send + 5 ms
    });

    test("a burst larger than the queue: queueLimit + 1 get through (one is on the wire)", () => {
      const clock = new ManualClock();
      let n = 0;
      const link = new LinkModel({ rateBytesPerSec: rate, queueLimit: 10 }, clock, () => n++);
      for (let i = 0; i < 100; i++) link.offer(datagram(i, size));
      assert.equal(link.stats().queueDrops, 89);
      assert.equal(link.stats().held, 11);
      clock.advance(10.5);
      assert.equal(n, 10);
      clock.runUntilIdle();
      assert.equal(n, 11);
      assert.equal(clock.now(), 11);
      assert.equal(link.stats().maxQueueDelayMs, 10);
    });

    test("queueLimit 0: only an idle link admits", () => {
      const clock = new ManualClock();
      const link = new LinkModel({ rateBytesPerSec: rate, queueLimit: 0 }, clock, () => {});
      link.offer(datagram(0, size));
      link.offer(datagram(1, size));
      clock.advance(1);
      link.offer(datagram(2, size));
      assert.equal(link.stats().queueDrops, 1);
      clock.runUntilIdle();
      assert.equal(link.stats().delivered, 2);
    });
  });

  test("the same seed gives the same outcome; another seed another", () => {
    const params: LinkParams = { delayMs: 10, jitterMs: 8, loss: 0.05, duplicate: 0.05, reorder: 0.05, rateBytesPerSec: 150_000, queueLimit: 20 };
    const a = run({ ...params, seed: 5 }, 3000, 0.5);
    const b = run({ ...params, seed: 5 }, 3000, 0.5);
    const c = run({ ...params, seed: 6 }, 3000, 0.5);
    assert.deepEqual(a.arrivals, b.arrivals);
    assert.deepEqual(a.link.stats(), b.link.stats());
    assert.notDeepEqual(a.arrivals, c.arrivals);
  });

  test("what it holds is bounded; close() discards it and leaves no timer", () => {
    const clock = new ManualClock();
    let n = 0;
    const link = new LinkModel({ delayMs: 1000, maxHeld: 100, maxHeldBytes: 50_000 }, clock, () => n++);
    for (let i = 0; i < 1000; i++) link.offer(datagram(i, 100));
    assert.equal(link.stats().held, 100);
    assert.equal(link.stats().overflowDrops, 900);
    assert.equal(clock.pendingCount, 1, "one timer, however many datagrams");
    const big = new LinkModel({ delayMs: 1000, maxHeldBytes: 50_000 }, clock, () => n++);
    for (let i = 0; i < 100; i++) big.offer(datagram(i, 1000));
    assert.equal(big.stats().held, 50);
    assert.equal(big.stats().overflowDrops, 50);
    link.close();
    big.close();
    assert.equal(clock.pendingCount, 0);
    assert.equal(link.stats().discarded, 100);
    assert.equal(link.stats().held, 0);
    link.offer(datagram(0));
    assert.equal(link.stats().discarded, 101);
    clock.runUntilIdle();
    assert.equal(n, 0);
  });

  test("bad parameters are usage errors that name the parameter", () => {
    const clock = new ManualClock();
    const bad: [LinkParams, RegExp][] = [
      [{ loss: 1.5 }, /loss=1\.5/],
      [{ delayMs: -1 }, /delayMs=-1/],
      [{ duplicate: Number.NaN }, /duplicate=NaN/],
      [{ queueLimit: 2.5 }, /queueLimit=2\.5/],
      [{ rateBytesPerSec: Infinity }, /rateBytesPerSec=Infinity/],
      [{ burstLoss: { enter: 0.1, exit: 0 } }, /burstLoss\.exit=0/],
      [{ seed: 1.5 }, /seed=1\.5/],
    ];
    for (const [p, re] of bad) {
      assert.throws(() => new LinkModel(p, clock, () => {}), (e: unknown) => e instanceof SvpError && e.code === "ERR_USAGE" && re.test(e.message));
    }
  });
});
