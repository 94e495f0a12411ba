/**
 * Sealing of the overlay's datagrams (bytes in overlay-packet.ts): a sealed packet to a
 * neighbour, the hop layer of a FORWARD, and an end-to-end frame sealed straight into a
 * FORWARD datagram. It owns this boot's packet counters: keys are per (pair, boot), so one
 * node-wide counter per kind can never repeat a nonce under a key, however sessions come
 * and go (throwaway sessions for probe replies, evictions). Also opens, with the same
 * nonce scratch: the AEAD consumes it at once.
 */

import type { Sid } from "../mesh/sid.ts";
import type { Identity } from "./keyring.ts";
import type { NodeCrypto } from "./node-io.ts";
import {
  BOOT_BYTES,
  DATA_PLAIN_HEADER_BYTES,
  type DataBody,
  E2E_OVERHEAD,
  encodeData,
  encodeSealedHeader,
  MAX_MDP_MTU,
  NONCE_BYTES,
  nonceFor,
  PACKET_TYPE,
  SEALED_HEADER_BYTES,
  type SealedHeader,
  TAG_BYTES,
} from "./overlay-packet.ts";

const ZERO_BOOT = new Uint8Array(BOOT_BYTES);
const EMPTY = new Uint8Array(0);

/** What sealing to a neighbour needs of its session. */
export interface SealTo {
  local: Identity;
  remote: Sid;
  sendKey: Uint8Array;
  /** The neighbour's current boot (all-zero while unknown). */
  peerBoot: Uint8Array | undefined;
}

export class FrameSealer {
  readonly #crypto: NodeCrypto;
  readonly #boot: Uint8Array;
  /** Scratch for the DATA plaintext and the nonce: both are consumed by the AEAD at once. */
  #plain = new Uint8Array(DATA_PLAIN_HEADER_BYTES + MAX_MDP_MTU);
  #nonce = new Uint8Array(NONCE_BYTES);
  /** One packet counter for everything this boot sends to neighbours (hop layer included). */
  #txCounter = 0;
  /** One counter for every end-to-end frame this boot seals. */
  #e2eCounter = 0;

  constructor(crypto: NodeCrypto, boot: Uint8Array) {
    this.#crypto = crypto;
    this.#boot = boot;
  }

  /** A DATA plaintext in the scratch buffer: valid until the next call, for one `sealed()`. */
  data(body: DataBody): Uint8Array {
    return encodeData(body, this.#plain);
  }

  /**
   * A sealed packet of `type` from `s.local` to `s.remote`, addressed to `receiverBoot`
   * (default the peer's current boot). One allocation: header and body are written in place.
   */
  sealed(s: SealTo, type: SealedHeader["type"], plain: Uint8Array, receiverBoot?: Uint8Array): Uint8Array {
    const counter = ++this.#txCounter;
    const datagram = new Uint8Array(SEALED_HEADER_BYTES + plain.length + TAG_BYTES);
    const header = encodeSealedHeader({ type, sender: s.local.sid, receiver: s.remote, senderBoot: this.#boot, receiverBoot: receiverBoot ?? s.peerBoot ?? ZERO_BOOT, counter }, datagram);
    this.#crypto.seal(s.sendKey, nonceFor(counter, this.#nonce), header, plain, datagram.subarray(SEALED_HEADER_BYTES));
    return datagram;
  }

  /** A FORWARD datagram with room for `inner` (copied in) and the hop layer not filled in yet (see `hop`). */
  forwardOf(inner: Uint8Array): Uint8Array {
    const datagram = new Uint8Array(SEALED_HEADER_BYTES + 1 + inner.length + TAG_BYTES);
    datagram.set(inner, SEALED_HEADER_BYTES + 1);
    return datagram;
  }

  /**
   * A FORWARD datagram carrying a DATA frame from `local` to `dst` (in its run `dstBoot`),
   * sealed end to end with `key` straight into place; the hop layer is not filled in yet.
   */
  e2eForward(local: Identity, dst: Sid, dstBoot: Uint8Array, key: Uint8Array, body: DataBody): Uint8Array {
    const innerLen = E2E_OVERHEAD + body.payload.length;
    const datagram = new Uint8Array(SEALED_HEADER_BYTES + 1 + innerLen + TAG_BYTES);
    const inner = datagram.subarray(SEALED_HEADER_BYTES + 1, SEALED_HEADER_BYTES + 1 + innerLen);
    const counter = ++this.#e2eCounter;
    const header = encodeSealedHeader({ type: PACKET_TYPE.DATA, sender: local.sid, receiver: dst, senderBoot: this.#boot, receiverBoot: dstBoot, counter }, inner);
    this.#crypto.seal(key, nonceFor(counter, this.#nonce), header, encodeData(body, this.#plain), inner.subarray(SEALED_HEADER_BYTES));
    return datagram;
  }

  /** Fill in the hop header, TTL and hop tag of a FORWARD to neighbour `s` whose inner frame is in place. */
  hop(s: SealTo, ttl: number, datagram: Uint8Array): void {
    const counter = ++this.#txCounter;
    encodeSealedHeader({ type: PACKET_TYPE.FORWARD, sender: s.local.sid, receiver: s.remote, senderBoot: this.#boot, receiverBoot: s.peerBoot ?? ZERO_BOOT, counter }, datagram);
    datagram[SEALED_HEADER_BYTES] = ttl;
    const tagAt = datagram.length - TAG_BYTES;
    this.#crypto.seal(s.sendKey, nonceFor(counter, this.#nonce), datagram.subarray(0, tagAt), EMPTY, datagram.subarray(tagAt));
  }

  /** Verify and decrypt a sealed body; undefined when it does not authenticate. */
  open(key: Uint8Array, counter: number, aad: Uint8Array, sealed: Uint8Array): Uint8Array | undefined {
    return this.#crypto.open(key, nonceFor(counter, this.#nonce), aad, sealed);
  }
}
