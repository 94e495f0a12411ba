/** The typed emitter every layer uses instead of node:events. */

import { test } from "node:test";
import assert from "node:assert/strict";
import { Emitter } from "../src/emitter.ts";

class Box extends Emitter<{ x: (n: number) => void }> {
  fire(n: number): void {
    this.emit("x", n);
  }
}

test("emitter: off removes a listener added with once (it never runs); once runs once; off takes one copy at a time", () => {
  const b = new Box();
  const seen: string[] = [];
  const onceFn = (n: number) => seen.push(`once ${n}`);
  b.once("x", onceFn);
  b.off("x", onceFn);
  assert.equal(b.listenerCount("x"), 0);
  b.once("x", onceFn);
  const onFn = (n: number) => seen.push(`on ${n}`);
  b.on("x", onFn);
  b.on("x", onFn);
  b.fire(1);
  b.off("x", onFn);
  b.fire(2);
  assert.deepEqual(seen, ["once 1", "on 1", "on 1", "on 2"]);
});
