/**
 * A forged-packet flood for the flood tests and benchmark, run as its own process:
 *
 *   node --import tsx test/helpers/udp-flooder.ts --port P --victim SID [--peer SID]
 *        [--rate PACKETS_PER_S] [--seconds S]
 *
 * Sends sealed-looking overlay datagrams to 127.0.0.1:P addressed to the victim's SID that
 * cannot authenticate: half with random sender SIDs (each would cost an X25519 agreement),
 * half claiming the SID of the victim's real peer `--peer` (an AEAD check each), all from
 * this process's own address. `--rate 0` sends as fast as one core can. Loopback only;
 * bounded by `--seconds` (default 30) and by SIGTERM/SIGINT. On exit it prints
 * `{"sent": N, "seconds": S}` on stdout, N counting only datagrams the kernel took.
 */

import * as dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { encodeSealedHeader, PACKET_TYPE, SEALED_HEADER_BYTES, TAG_BYTES } from "../../src/node/overlay-packet.ts";
import { sidFromHex } from "../../src/mesh/sid.ts";

const { values: o } = parseArgs({ options: { port: { type: "string" }, victim: { type: "string" }, peer: { type: "string" }, rate: { type: "string", default: "0" }, seconds: { type: "string", default: "30" } } });
const port = Number(o.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("--port: a UDP port is required");
const victim = sidFromHex(o.victim ?? "");
if (!victim) throw new Error("--victim: the victim's SID (64 hex digits) is required");
const peer = o.peer ? sidFromHex(o.peer) : undefined;
if (o.peer && !peer) throw new Error("--peer: a SID (64 hex digits)");
const rate = Number(o.rate);
const seconds = Math.min(600, Number(o.seconds));
if (!(rate >= 0) || !(seconds > 0)) throw new Error("--rate must be >= 0 and --seconds > 0");

/** A pool of distinct forgeries, reused round robin (making each one costs more than sending it). */
const POOL = 4096;
const BODY = 64;
const pool: Uint8Array[] = [];
for (let i = 0; i < POOL; i++) {
  const d = new Uint8Array(SEALED_HEADER_BYTES + BODY + TAG_BYTES);
  const sender = i % 2 && peer ? peer : new Uint8Array(randomBytes(32));
  encodeSealedHeader({ type: PACKET_TYPE.DATA, sender, receiver: victim, senderBoot: new Uint8Array(randomBytes(8)), receiverBoot: new Uint8Array(randomBytes(8)), counter: 1 + i * 7919 }, d);
  d.set(randomBytes(BODY + TAG_BYTES), SEALED_HEADER_BYTES);
  pool.push(d);
}

const sock = dgram.createSocket("udp4");
/** Datagrams handed to the socket, and those the kernel took (what is reported: the rest never left). */
let sent = 0;
let handedOver = 0;
let outstanding = 0;
let stopping = false;
const started = performance.now();

function finish(): void {
  if (stopping) return;
  stopping = true;
  process.stdout.write(JSON.stringify({ sent: handedOver, seconds: (performance.now() - started) / 1000 }) + "\n");
  sock.close();
  process.exit(0);
}
process.on("SIGTERM", finish);
process.on("SIGINT", finish);
setTimeout(finish, seconds * 1000);

const done = (err: Error | null) => {
  outstanding--;
  if (!err) handedOver++;
};
function sendOne(): void {
  outstanding++;
  sock.send(pool[sent % POOL]!, port, "127.0.0.1", done);
  sent++;
}

if (rate > 0) {
  // Paced: every 10 ms, what the rate allows up to now.
  setInterval(() => {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    while (sent < due && outstanding < 4096) sendOne();
  }, 10);
} else {
  const burst = () => {
    if (stopping) return;
    for (let i = 0; i < 256 && outstanding < 1024; i++) sendOne();
    setImmediate(burst);
  };
  sock.bind(0, "127.0.0.1", burst);
}
