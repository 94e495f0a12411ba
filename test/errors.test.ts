/** The abort-reason helpers of src/errors.ts every layer uses to turn an abort into an SvpError. */

import { test } from "node:test";
import assert from "node:assert/strict";
import { SvpError, abortError, failureUnder, throwIfAborted } from "../src/errors.ts";

test("abortError: an SvpError reason is itself; a TimeoutError is ERR_TIMEOUT; anything else ERR_ABORTED with the reason as cause", () => {
  const own = new SvpError("ERR_NO_ROUTE", "peer gone");
  assert.equal(abortError(own, "dial"), own);

  const t = new Error("The operation was aborted due to timeout");
  t.name = "TimeoutError";
  const te = abortError(t, "dial");
  assert.equal(te.code, "ERR_TIMEOUT");
  assert.equal(te.message, "dial timed out: The operation was aborted due to timeout");
  assert.equal(te.cause, t);

  const ac = new AbortController();
  ac.abort();
  const ae = abortError(ac.signal.reason, "connect");
  assert.equal(ae.code, "ERR_ABORTED");
  assert.match(ae.message, /^connect aborted: /);
  assert.equal(ae.cause, ac.signal.reason);

  const plain = abortError("bye", "exec");
  assert.equal(plain.code, "ERR_ABORTED");
  assert.equal(plain.message, "exec aborted");
  assert.equal(plain.cause, "bye");
  assert.equal(abortError(undefined, "exec").message, "exec aborted");
});

test("abortError: AbortSignal.timeout() gives ERR_TIMEOUT", async () => {
  const signal = AbortSignal.timeout(1);
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  assert.equal(abortError(signal.reason, "dial").code, "ERR_TIMEOUT");
});

test("throwIfAborted: nothing for no signal or a live one; the abort reason as SvpError once aborted", () => {
  throwIfAborted(undefined, "lookup");
  const ac = new AbortController();
  throwIfAborted(ac.signal, "lookup");
  const why = new SvpError("ERR_TIMEOUT", "too slow");
  ac.abort(why);
  assert.throws(() => throwIfAborted(ac.signal, "lookup"), (e) => e === why);
  const other = new AbortController();
  other.abort("stop");
  assert.throws(() => throwIfAborted(other.signal, "lookup"), (e) => e instanceof SvpError && e.code === "ERR_ABORTED" && e.message === "lookup aborted");
});

test("failureUnder: the signal's SvpError reason wins once aborted; else the failure itself as SvpError", () => {
  const ac = new AbortController();
  const refused = Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
  const live = failureUnder(ac.signal, refused);
  assert.equal(live.code, "ERR_REFUSED");
  assert.equal(live.cause, refused);

  const why = new SvpError("ERR_TIMEOUT", "handshake timed out");
  ac.abort(why);
  assert.equal(failureUnder(ac.signal, refused), why);

  // Aborted without an SvpError: the failure explains it.
  const plain = new AbortController();
  plain.abort();
  assert.equal(failureUnder(plain.signal, refused).code, "ERR_REFUSED");

  // Any { aborted, reason } (the SOCKS server's DialCancel) will do.
  assert.equal(failureUnder({ aborted: true, reason: why }, refused), why);
  assert.equal(failureUnder({ aborted: false, reason: why }, refused).code, "ERR_REFUSED");
});
