/**
 * The local API between the daemon and client processes (svp socks/connect/listen/status),
 * over a Unix stream socket in the instance directory.
 *
 * Frame: uint32 BE length of what follows (type + body), uint8 type, body. Frames are
 * capped at API_MAX_FRAME bytes. The hot path (SEND, DELIVER) is fixed binary layout with
 * the datagram bytes appended as they are; control messages carry small JSON bodies.
 *
 * Client → daemon
 *   HELLO     JSON {version, pid, name}                                  (first frame)
 *   BIND      reqId u32, port u32, flags u8 (1 = reuse), sid 32 (zero = primary)
 *   UNBIND    sid 32, port u32
 *   SEND      local sid 32, local port u32, remote sid 32, remote port u32, payload
 *   STATUS    reqId u32
 *   STREAMS   JSON [StreamStat…] (replaces this client's previous report)
 *   SHUTDOWN  reqId u32 (stop the daemon; answered by OK, then the daemon exits)
 * Daemon → client
 *   WELCOME   JSON {version, pid, primary, sids, mtu, maxMtu, peers, routes?}
 *   BOUND     reqId u32, port u32, sid 32
 *   ERROR     reqId u32, JSON {code, message}; reqId 0 answers no request: the daemon is
 *             disconnecting this client and says why (refused: too many clients; cut off)
 *   DELIVER   local sid 32, local port u32, remote sid 32, remote port u32, flags u8 (1 = broadcast), payload
 *   STATUS_REPLY reqId u32, JSON StatusReport
 *   PEER      up u8, sid 32
 *   OK        reqId u32
 *   ROUTE     up u8, sid 32, mtu u32, hops u8
 *
 * Reachability: a client that says `routes: true` in its HELLO gets `routes` in WELCOME
 * ([[SID hex, path MTU, hops], …] for every reachable node) and then a ROUTE message
 * whenever a node becomes reachable (up 1), unreachable (up 0) or its path MTU or hop count
 * changes; other clients get PEER messages (up/down only), as before. `peers` in WELCOME
 * lists every reachable node, neighbour or not; `mtu` is the MDP payload any path carries
 * (1160), `maxMtu` the largest this daemon takes (to its own SIDs).
 */

import { SID_BYTES, type Sid } from "../mesh/sid.ts";
import { MAX_MDP_MTU } from "./overlay-packet.ts";

export const API_VERSION = 1;
/** Largest frame (length field value) either side accepts. */
export const API_MAX_FRAME = 4 * 1024 * 1024;
/**
 * Largest frame the daemon accepts from a client, other than STREAMS: a SEND is at most
 * 73 bytes plus one MDP payload (MAX_MDP_MTU, 16 KiB on loopback links), the rest are
 * smaller still. A modest cap keeps a client from making the daemon hold megabytes of a
 * frame it has not finished.
 */
export const API_MAX_CLIENT_FRAME = MAX_MDP_MTU + 1024;
/** Largest STREAMS frame (a client's list of live streams, ~300 bytes each): see `clientFrameLimit`. */
export const API_MAX_STREAMS_FRAME = 1024 * 1024;

/** The daemon's per-type cap on frames from a client (FrameDecoder's `limitFor`). */
export function clientFrameLimit(type: number): number {
  return type === API_TYPE.STREAMS ? API_MAX_STREAMS_FRAME : API_MAX_CLIENT_FRAME;
}

export const API_TYPE = {
  HELLO: 0x01,
  BIND: 0x02,
  UNBIND: 0x03,
  SEND: 0x04,
  STATUS: 0x05,
  STREAMS: 0x06,
  SHUTDOWN: 0x07,
  WELCOME: 0x81,
  BOUND: 0x82,
  ERROR: 0x83,
  DELIVER: 0x84,
  STATUS_REPLY: 0x85,
  PEER: 0x86,
  OK: 0x87,
  ROUTE: 0x88,
} as const;

export type ApiMessage =
  | { type: typeof API_TYPE.HELLO; json: unknown }
  | { type: typeof API_TYPE.BIND; reqId: number; port: number; reuse: boolean; sid: Sid }
  | { type: typeof API_TYPE.UNBIND; sid: Sid; port: number }
  | { type: typeof API_TYPE.SEND; sid: Sid; port: number; remoteSid: Sid; remotePort: number; payload: Uint8Array }
  | { type: typeof API_TYPE.STATUS; reqId: number }
  | { type: typeof API_TYPE.STREAMS; json: unknown }
  | { type: typeof API_TYPE.SHUTDOWN; reqId: number }
  | { type: typeof API_TYPE.WELCOME; json: unknown }
  | { type: typeof API_TYPE.BOUND; reqId: number; port: number; sid: Sid }
  | { type: typeof API_TYPE.ERROR; reqId: number; json: unknown }
  | { type: typeof API_TYPE.DELIVER; sid: Sid; port: number; remoteSid: Sid; remotePort: number; broadcast: boolean; payload: Uint8Array }
  | { type: typeof API_TYPE.STATUS_REPLY; reqId: number; json: unknown }
  | { type: typeof API_TYPE.PEER; up: boolean; sid: Sid }
  | { type: typeof API_TYPE.OK; reqId: number }
  | { type: typeof API_TYPE.ROUTE; up: boolean; sid: Sid; mtu: number; hops: number };

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function frame(type: number, bodyLength: number): { out: Uint8Array; v: DataView } {
  const out = new Uint8Array(5 + bodyLength);
  const v = new DataView(out.buffer);
  v.setUint32(0, 1 + bodyLength);
  out[4] = type;
  return { out, v };
}

function jsonFrame(type: number, prefix: number | undefined, json: unknown): Uint8Array {
  const text = enc.encode(JSON.stringify(json));
  const p = prefix === undefined ? 0 : 4;
  const { out, v } = frame(type, p + text.length);
  if (prefix !== undefined) v.setUint32(5, prefix >>> 0);
  out.set(text, 5 + p);
  return out;
}

/** Encode one message as a frame. Throws RangeError when it would exceed API_MAX_FRAME. */
export function encodeApiMessage(m: ApiMessage): Uint8Array {
  let out: Uint8Array;
  switch (m.type) {
    case API_TYPE.HELLO:
    case API_TYPE.STREAMS:
    case API_TYPE.WELCOME:
      out = jsonFrame(m.type, undefined, m.json);
      break;
    case API_TYPE.ERROR:
    case API_TYPE.STATUS_REPLY:
      out = jsonFrame(m.type, m.reqId, m.json);
      break;
    case API_TYPE.STATUS:
    case API_TYPE.SHUTDOWN:
    case API_TYPE.OK: {
      const f = frame(m.type, 4);
      f.v.setUint32(5, m.reqId >>> 0);
      out = f.out;
      break;
    }
    case API_TYPE.BIND: {
      const f = frame(m.type, 9 + SID_BYTES);
      f.v.setUint32(5, m.reqId >>> 0);
      f.v.setUint32(9, m.port >>> 0);
      f.out[13] = m.reuse ? 1 : 0;
      f.out.set(m.sid, 14);
      out = f.out;
      break;
    }
    case API_TYPE.BOUND: {
      const f = frame(m.type, 8 + SID_BYTES);
      f.v.setUint32(5, m.reqId >>> 0);
      f.v.setUint32(9, m.port >>> 0);
      f.out.set(m.sid, 13);
      out = f.out;
      break;
    }
    case API_TYPE.UNBIND: {
      const f = frame(m.type, SID_BYTES + 4);
      f.out.set(m.sid, 5);
      f.v.setUint32(5 + SID_BYTES, m.port >>> 0);
      out = f.out;
      break;
    }
    case API_TYPE.SEND:
    case API_TYPE.DELIVER: {
      const fixed = 2 * SID_BYTES + 8 + (m.type === API_TYPE.DELIVER ? 1 : 0);
      const f = frame(m.type, fixed + m.payload.length);
      f.out.set(m.sid, 5);
      f.v.setUint32(5 + SID_BYTES, m.port >>> 0);
      f.out.set(m.remoteSid, 9 + SID_BYTES);
      f.v.setUint32(9 + 2 * SID_BYTES, m.remotePort >>> 0);
      if (m.type === API_TYPE.DELIVER) f.out[13 + 2 * SID_BYTES] = m.broadcast ? 1 : 0;
      f.out.set(m.payload, 5 + fixed);
      out = f.out;
      break;
    }
    case API_TYPE.PEER: {
      const f = frame(m.type, 1 + SID_BYTES);
      f.out[5] = m.up ? 1 : 0;
      f.out.set(m.sid, 6);
      out = f.out;
      break;
    }
    case API_TYPE.ROUTE: {
      const f = frame(m.type, 6 + SID_BYTES);
      f.out[5] = m.up ? 1 : 0;
      f.out.set(m.sid, 6);
      f.v.setUint32(6 + SID_BYTES, m.mtu >>> 0);
      f.out[10 + SID_BYTES] = m.hops & 0xff;
      out = f.out;
      break;
    }
  }
  if (out.length - 4 > API_MAX_FRAME) throw new RangeError(`local API frame of ${out.length - 4} bytes exceeds ${API_MAX_FRAME}`);
  return out;
}

/**
 * Decode one frame body (type + body, without the length). Returns a reason string when
 * malformed. A SEND/DELIVER payload is a view into `f`: `f` must not be reused afterwards.
 */
export function decodeApiFrame(f: Uint8Array): ApiMessage | string {
  if (f.length < 1) return "empty frame";
  const type = f[0]!;
  const body = f.subarray(1);
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const json = (from: number): { ok: true; value: unknown } | { ok: false } => {
    try {
      return { ok: true, value: JSON.parse(dec.decode(body.subarray(from))) };
    } catch {
      return { ok: false };
    }
  };
  const need = (n: number, exact = true) => (exact ? body.length === n : body.length >= n);
  switch (type) {
    case API_TYPE.HELLO:
    case API_TYPE.STREAMS:
    case API_TYPE.WELCOME: {
      const j = json(0);
      return j.ok ? { type, json: j.value } : `bad JSON in frame type ${type}`;
    }
    case API_TYPE.ERROR:
    case API_TYPE.STATUS_REPLY: {
      if (!need(4, false)) return `short frame type ${type}`;
      const j = json(4);
      return j.ok ? { type, reqId: v.getUint32(0), json: j.value } : `bad JSON in frame type ${type}`;
    }
    case API_TYPE.STATUS:
    case API_TYPE.SHUTDOWN:
    case API_TYPE.OK:
      return need(4) ? { type, reqId: v.getUint32(0) } : `bad length for frame type ${type}`;
    case API_TYPE.BIND:
      if (!need(9 + SID_BYTES)) return "bad BIND length";
      if (body[8]! > 1) return "bad BIND flags";
      return { type, reqId: v.getUint32(0), port: v.getUint32(4), reuse: body[8] === 1, sid: body.slice(9, 9 + SID_BYTES) };
    case API_TYPE.BOUND:
      if (!need(8 + SID_BYTES)) return "bad BOUND length";
      return { type, reqId: v.getUint32(0), port: v.getUint32(4), sid: body.slice(8, 8 + SID_BYTES) };
    case API_TYPE.UNBIND:
      if (!need(SID_BYTES + 4)) return "bad UNBIND length";
      return { type, sid: body.slice(0, SID_BYTES), port: v.getUint32(SID_BYTES) };
    case API_TYPE.SEND:
    case API_TYPE.DELIVER: {
      const fixed = 2 * SID_BYTES + 8 + (type === API_TYPE.DELIVER ? 1 : 0);
      if (!need(fixed, false)) return `short frame type ${type}`;
      // The payload is a view, not a copy: frames from FrameDecoder are private copies already,
      // and the payload is nearly all of one. (SIDs are copied: they may be kept long after.)
      const common = { sid: body.slice(0, SID_BYTES), port: v.getUint32(SID_BYTES), remoteSid: body.slice(SID_BYTES + 4, 2 * SID_BYTES + 4), remotePort: v.getUint32(2 * SID_BYTES + 4), payload: body.subarray(fixed) };
      if (type === API_TYPE.SEND) return { type, ...common };
      if (body[fixed - 1]! > 1) return "bad DELIVER flags";
      return { type, ...common, broadcast: body[fixed - 1] === 1 };
    }
    case API_TYPE.PEER:
      if (!need(1 + SID_BYTES) || body[0]! > 1) return "bad PEER frame";
      return { type, up: body[0] === 1, sid: body.slice(1) };
    case API_TYPE.ROUTE:
      if (!need(6 + SID_BYTES) || body[0]! > 1) return "bad ROUTE frame";
      return { type, up: body[0] === 1, sid: body.slice(1, 1 + SID_BYTES), mtu: v.getUint32(1 + SID_BYTES), hops: body[5 + SID_BYTES]! };
    default:
      return `unknown frame type ${type}`;
  }
}

/**
 * Splits a byte stream into frames. Feed it chunks in any split; it returns complete
 * frame bodies (type + body) and keeps the rest. An announced length of 0 or above the
 * cap is an error (the connection is then unusable). With `limitFor`, a frame's cap also
 * depends on its type, checked as soon as the type byte is in: a frame over its cap is
 * refused before its body is collected.
 */
export class FrameDecoder {
  readonly maxFrame: number;
  readonly #limitFor: ((type: number) => number) | undefined;
  #buf: Uint8Array = new Uint8Array(0);
  #len = 0;

  constructor(maxFrame = API_MAX_FRAME, limitFor?: (type: number) => number) {
    this.maxFrame = maxFrame;
    this.#limitFor = limitFor;
  }

  /** Bytes held waiting for the rest of a frame. */
  get buffered(): number {
    return this.#len;
  }

  push(chunk: Uint8Array): { frames: Uint8Array[]; error?: string } {
    if (this.#len + chunk.length > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#len + chunk.length, this.#buf.length * 2, 4096));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
    const frames: Uint8Array[] = [];
    let off = 0;
    while (this.#len - off >= 4) {
      const b = this.#buf;
      const n = ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
      if (n === 0 || n > this.maxFrame) {
        this.#len = 0;
        return { frames, error: n === 0 ? "zero-length frame" : `frame of ${n} bytes exceeds the ${this.maxFrame}-byte limit` };
      }
      if (this.#limitFor && this.#len - off > 4) {
        const limit = this.#limitFor(b[off + 4]!);
        if (n > limit) {
          this.#len = 0;
          return { frames, error: `frame of type ${b[off + 4]} and ${n} bytes exceeds its ${limit}-byte limit` };
        }
      }
      if (this.#len - off - 4 < n) break;
      frames.push(this.#buf.slice(off + 4, off + 4 + n));
      off += 4 + n;
    }
    if (off > 0) {
      this.#buf.copyWithin(0, off, this.#len);
      this.#len -= off;
    }
    if (this.#buf.length > 65536 && this.#len < this.#buf.length / 4) this.#buf = this.#buf.slice(0, Math.max(this.#len, 4096));
    return { frames };
  }
}
