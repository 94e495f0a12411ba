/** IdentitySearch: collecting MDP_SEARCH_IDS answers; the primary is the CLOSE's local SID. */

import { test } from "node:test";
import assert from "node:assert/strict";
import { MDP_FLAG } from "../../src/mdp/header.ts";
import type { MdpHeader } from "../../src/mdp/header.ts";
import { SID_ANY, sidToHex } from "../../src/mesh/sid.ts";
import { IdentitySearch } from "../../src/servald/identity-search.ts";
import { sidOf } from "./fake-servald.ts";

const answer = (flags: number, local = SID_ANY): MdpHeader => ({ local: { sid: local, port: 0 }, remote: { sid: SID_ANY, port: 2 }, flags, qos: 0, ttl: 0 });

test("identities arrive one per datagram; the CLOSE names the primary, which comes first and once", () => {
  const s = new IdentitySearch();
  assert.equal(s.onDatagram(answer(0), sidOf(0xa2)), false);
  assert.equal(s.onDatagram(answer(0), sidOf(0xa1)), false);
  assert.equal(s.onDatagram(answer(0), Uint8Array.of(1, 2, 3)), false, "too short: ignored");
  assert.equal(s.done, false);
  assert.deepEqual(s.identities, [], "nothing known before the answer is complete");
  assert.equal(s.has(sidOf(0xa2)), false);
  assert.equal(s.onDatagram(answer(MDP_FLAG.CLOSE, sidOf(0xa1)), new Uint8Array(0)), true);
  assert.equal(s.done, true);
  assert.equal(sidToHex(s.primary!), sidToHex(sidOf(0xa1)));
  assert.deepEqual(s.identities.map(sidToHex), [sidOf(0xa1), sidOf(0xa2)].map(sidToHex));
  assert.ok(s.has(sidOf(0xa2)));
  assert.ok(!s.has(sidOf(0xa3)));
});

test("an ERROR also ends the search; later datagrams change nothing", () => {
  const s = new IdentitySearch();
  assert.equal(s.onDatagram(answer(MDP_FLAG.ERROR, sidOf(0xb1)), new Uint8Array(0)), true);
  assert.deepEqual(s.identities.map(sidToHex), [sidToHex(sidOf(0xb1))]);
  assert.equal(s.onDatagram(answer(0), sidOf(0xb2)), false);
  assert.equal(s.onDatagram(answer(MDP_FLAG.CLOSE, sidOf(0xb3)), new Uint8Array(0)), false);
  assert.deepEqual(s.identities.map(sidToHex), [sidToHex(sidOf(0xb1))]);
});
