/**
 * MSP tuning parameters with servald's values as defaults. Window and message size are
 * parameters so that two svp peers can later agree on larger ones; against servald they
 * must stay at the defaults.
 */

import { SvpError } from "../errors.ts";
import { MSP_MAX_PACKET_BYTES, MSP_PREAMBLE_BYTES } from "./packet.ts";

export interface MspParams {
  /** Unacknowledged packets in flight, at most. Default 4 (servald's MAX_WINDOW_SIZE). */
  window: number;
  /** Largest number of data bytes per packet; larger writes are split. Default 1024 (servald's tools). */
  messageSize: number;
  /** Resend an unacknowledged packet after this long, ms. Default 1500 (RETRANSMIT_TIME). */
  retransmitMs: number;
  /** Send a 3-byte keep-alive after this long without sending anything, ms. Default 1500 (as observed). */
  keepaliveMs: number;
  /** Give up after this long without receiving any packet, connect attempts included, ms. Default 10000 (MSP_TIMEOUT). */
  timeoutMs: number;
  /**
   * After a connection finished, keep answering the peer's late packets (re-ack after a
   * clean close, STOP after an abort) until it has been silent this long, ms; 0 = forget at
   * once. Protects a peer whose last ack was lost from timing out. Default 3000.
   */
  lingerMs: number;
  /** `write()` returns false once this many bytes wait locally beyond the window. Default 16 KiB. */
  highWaterMark: number;
  /**
   * Packets buffered on receive, at most, counted from the next expected one. Default
   * 2 × window: servald's sender can run one packet over its window and add a bare SHUTDOWN.
   */
  receiveWindow: number;
  /** Largest MSP packet accepted, bytes. Default the transport's MTU (1160 for servald). */
  maxPacketBytes: number;
}

export type MspOptions = Partial<MspParams>;

export const MSP_DEFAULTS = {
  window: 4,
  messageSize: 1024,
  retransmitMs: 1500,
  keepaliveMs: 1500,
  timeoutMs: 10_000,
  lingerMs: 3000,
  highWaterMark: 16 * 1024,
  maxPacketBytes: MSP_MAX_PACKET_BYTES,
} as const;

/** Fill in defaults and validate; throws SvpError("ERR_USAGE") naming the bad value. */
export function resolveMspParams(o: MspOptions = {}, mtu: number = MSP_MAX_PACKET_BYTES): MspParams {
  const int = (name: keyof MspParams, v: number, min: number, max: number): number => {
    if (!Number.isInteger(v) || v < min || v > max) throw new SvpError("ERR_USAGE", `MSP ${name} must be an integer ${min}-${max}, got ${v}`);
    return v;
  };
  const ms = (name: keyof MspParams, v: number, min: number): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < min) throw new SvpError("ERR_USAGE", `MSP ${name} must be at least ${min} ms, got ${v}`);
    return v;
  };
  const window = int("window", o.window ?? MSP_DEFAULTS.window, 1, 4096);
  const messageSize = int("messageSize", o.messageSize ?? MSP_DEFAULTS.messageSize, 1, Math.max(1, mtu - MSP_PREAMBLE_BYTES));
  return {
    window,
    messageSize,
    retransmitMs: ms("retransmitMs", o.retransmitMs ?? MSP_DEFAULTS.retransmitMs, 1),
    keepaliveMs: ms("keepaliveMs", o.keepaliveMs ?? MSP_DEFAULTS.keepaliveMs, 1),
    timeoutMs: ms("timeoutMs", o.timeoutMs ?? MSP_DEFAULTS.timeoutMs, 1),
    lingerMs: ms("lingerMs", o.lingerMs ?? MSP_DEFAULTS.lingerMs, 0),
    highWaterMark: int("highWaterMark", o.highWaterMark ?? MSP_DEFAULTS.highWaterMark, 1, 1 << 30),
    receiveWindow: int("receiveWindow", o.receiveWindow ?? 2 * window, window, 8192),
    maxPacketBytes: int("maxPacketBytes", o.maxPacketBytes ?? mtu, MSP_PREAMBLE_BYTES + 1, 1 << 20),
  };
}
