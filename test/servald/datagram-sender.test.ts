/** DatagramSender: order under EAGAIN, the bounded queue, one `writable` wait, socket-gone reports. */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Emitter } from "../../src/emitter.ts";
import { DatagramSender } from "../../src/servald/datagram-sender.ts";
import type { DatagramSendResult, DatagramSocket, DatagramSocketEvents } from "../../src/servald/datagram-socket.ts";

/** A socket whose send results are scripted; records what got through. */
class ScriptedSocket extends Emitter<DatagramSocketEvents> implements DatagramSocket {
  readonly address = new Uint8Array(0);
  readonly delivered: number[] = [];
  /** Results for the next sends (then "ok"). */
  results: DatagramSendResult[] = [];
  wantWritableCalls = 0;
  send(data: Uint8Array): DatagramSendResult {
    const r = this.results.shift() ?? "ok";
    if (r === "ok") this.delivered.push(data[0]!);
    return r;
  }
  wantWritable(): void {
    this.wantWritableCalls++;
  }
  close(): void {}
  ref(): void {}
  /** The daemon's queue has room again. */
  writable(): void {
    this.emit("writable");
  }
}

function setup(maxQueued = 10) {
  const socket = new ScriptedSocket();
  const stats = { datagramsSent: 0, datagramsDropped: 0, datagramsDeferred: 0 };
  const gone: string[] = [];
  const sender = new DatagramSender(socket, { maxQueued, stats, onGone: (e) => gone.push(e) });
  return { socket, stats, gone, sender };
}

const d = (n: number) => Uint8Array.of(n);

describe("DatagramSender", () => {
  test("sends straight through while the daemon takes them", () => {
    const { socket, stats, sender } = setup();
    sender.send(d(1));
    sender.send(d(2));
    assert.deepEqual(socket.delivered, [1, 2]);
    assert.deepEqual(stats, { datagramsSent: 2, datagramsDropped: 0, datagramsDeferred: 0 });
    assert.equal(socket.wantWritableCalls, 0);
  });

  test("EAGAIN queues; later sends wait behind the queue; writable flushes in order", () => {
    const { socket, stats, sender } = setup();
    socket.results = ["EAGAIN"];
    sender.send(d(1));
    sender.send(d(2)); // would succeed, but must not overtake 1
    sender.send(d(3));
    assert.deepEqual(socket.delivered, []);
    assert.equal(sender.queued, 3);
    assert.equal(stats.datagramsDeferred, 3);
    assert.equal(socket.wantWritableCalls, 1, "one writable wait for the whole queue");
    socket.results = ["ok", "EAGAIN"];
    socket.writable();
    assert.deepEqual(socket.delivered, [1]);
    assert.equal(sender.queued, 2);
    assert.equal(socket.wantWritableCalls, 2, "full again: wait again");
    socket.writable();
    assert.deepEqual(socket.delivered, [1, 2, 3]);
    assert.equal(sender.queued, 0);
    assert.equal(stats.datagramsSent, 3);
  });

  test("the queue is bounded: overflow is dropped and counted", () => {
    const { socket, stats, sender } = setup(2);
    socket.results = ["EAGAIN"];
    for (let i = 1; i <= 4; i++) sender.send(d(i));
    assert.equal(sender.queued, 2);
    assert.equal(stats.datagramsDropped, 2);
    socket.writable();
    assert.deepEqual(socket.delivered, [1, 2]);
  });

  test("a gone socket is reported with its errno; other errors drop the datagram", () => {
    const { socket, stats, gone, sender } = setup();
    socket.results = ["ECONNREFUSED", "EMSGSIZE", "EPIPE"];
    sender.send(d(1));
    sender.send(d(2));
    assert.equal(sender.sendNow(d(3)), "EPIPE");
    assert.deepEqual(gone, ["ECONNREFUSED", "EPIPE"]);
    assert.equal(stats.datagramsDropped, 1, "EMSGSIZE: dropped, not gone");
    assert.equal(sender.queued, 0);
  });

  test("clear() forgets the queue: nothing goes out on the next writable", () => {
    const { socket, sender } = setup();
    socket.results = ["EAGAIN"];
    sender.send(d(1));
    sender.send(d(2));
    sender.clear();
    socket.writable();
    assert.deepEqual(socket.delivered, []);
  });

  test("going down while flushing stops the flush", () => {
    const socket = new ScriptedSocket();
    const stats = { datagramsSent: 0, datagramsDropped: 0, datagramsDeferred: 0 };
    let sender!: DatagramSender;
    const gone: string[] = [];
    sender = new DatagramSender(socket, { maxQueued: 10, stats, onGone: (e) => (gone.push(e), sender.clear()) });
    socket.results = ["EAGAIN"];
    sender.send(d(1));
    sender.send(d(2));
    socket.results = ["ENOTCONN"];
    socket.writable();
    assert.deepEqual(gone, ["ENOTCONN"], "reported once, the rest is not tried");
    assert.equal(sender.queued, 0);
  });
});
