/** The one per-connection log line of svp socks, connect and listen (cli/render.ts connectionEvent). */

import { test } from "node:test";
import assert from "node:assert/strict";
import { connectionEvent } from "../../cli/render.ts";

test("connectionEvent: fields in order (event, ids, outcome, counts, extra, message) and the text line of a success", () => {
  const { fields, text } = connectionEvent(
    { event: "connection", ids: { client: "127.0.0.1:5000", target: "node:80" }, who: "127.0.0.1:5000 → node:80" },
    { outcome: "ok", up: 2048, down: 20, durationMs: 12.4 },
  );
  assert.deepEqual(Object.keys(fields), ["event", "client", "target", "outcome", "up_bytes", "down_bytes", "duration_ms"]);
  assert.deepEqual(fields, { event: "connection", client: "127.0.0.1:5000", target: "node:80", outcome: "ok", up_bytes: 2048, down_bytes: 20, duration_ms: 12 });
  assert.equal(text, "127.0.0.1:5000 → node:80: ok; 2.0 KiB up, 20 B down, 12 ms");
});

test("connectionEvent: a failure names its code and message; directions, failure word and extra fields are the caller's", () => {
  const { fields, text } = connectionEvent(
    { event: "stream", ids: { client: "c", dest: null }, who: "c", extra: { user: "bob", absent: undefined }, directions: ["in", "out"], failed: "refused" },
    { outcome: "ERR_NOT_ALLOWED", message: "not on the allow list", up: 0, down: 0, durationMs: 1500 },
  );
  assert.deepEqual(Object.keys(fields), ["event", "client", "dest", "outcome", "up_bytes", "down_bytes", "duration_ms", "user", "message"]);
  assert.equal(fields.user, "bob");
  assert.equal(fields.message, "not on the allow list");
  assert.equal(text, "c: refused (ERR_NOT_ALLOWED): not on the allow list; 0 B in, 0 B out, 1.5 s");
  const plain = connectionEvent({ event: "connection", ids: {}, who: "x" }, { outcome: "ERR_RESET", up: 1, down: 2, durationMs: 0 });
  assert.equal(plain.text, "x: failed (ERR_RESET): ; 1 B up, 2 B down, 0 ms");
});
