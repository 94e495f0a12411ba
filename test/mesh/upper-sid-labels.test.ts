/** upperSidLabels: SIDs in names print in upper case, everything else as given. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { upperSidLabels } from "../../src/mesh/sid.ts";

const HEX = "4de3e89c159083acc67d88859c474d184aba9ca7e98cfd41a1f1cacad278d92b";
const B32 = "jd7cswvcwewpojige2ykzeulku3ftr5pq4n7noshbrghcg7upjiq";

test("64-hex labels go upper case; base32, other labels and near-misses stay", () => {
  assert.equal(upperSidLabels(HEX), HEX.toUpperCase());
  assert.equal(upperSidLabels(`www.${HEX}.serval`), `www.${HEX.toUpperCase()}.serval`);
  assert.equal(upperSidLabels(`${B32}.serval`), `${B32}.serval`);
  assert.equal(upperSidLabels(`${HEX.slice(1)}.serval`), `${HEX.slice(1)}.serval`);
  assert.equal(upperSidLabels(`${HEX.slice(0, 63)}g.serval`), `${HEX.slice(0, 63)}g.serval`);
  assert.equal(upperSidLabels("example.com"), "example.com");
  assert.equal(upperSidLabels(""), "");
});
