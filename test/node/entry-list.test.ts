import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { EntryList } from "../../src/node/entry-list.ts";

const e = (key: string, v: number) => ({ neighbour: { key }, v });

describe("EntryList", () => {
  test("one entry per neighbour key: set replaces, get/has find it", () => {
    const l = new EntryList<ReturnType<typeof e>>();
    l.set("a", e("a", 1));
    l.set("b", e("b", 2));
    l.set("a", e("a", 3));
    assert.equal(l.size, 2);
    assert.equal(l.get("a")!.v, 3);
    assert.ok(l.has("b"));
    assert.ok(!l.has("c"));
    assert.equal(l.get("c"), undefined);
  });

  test("delete moves the last entry into the gap (the order the router iterates in)", () => {
    const l = new EntryList<ReturnType<typeof e>>();
    for (const k of ["a", "b", "c", "d"]) l.set(k, e(k, 0));
    assert.equal(l.delete("b"), true);
    assert.equal(l.delete("b"), false);
    assert.deepEqual(
      l.values().map((x) => x.neighbour.key),
      ["a", "d", "c"],
    );
    l.delete("c");
    assert.deepEqual(
      l.values().map((x) => x.neighbour.key),
      ["a", "d"],
    );
  });
});
