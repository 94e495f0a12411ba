/**
 * MSP tuning parameters with servald's values as defaults. The classic ones (window,
 * message size, retransmit time) are what servald's tools use and must stay so against
 * them; the `ext*` ones apply only once both ends agreed on svp's extension
 * (docs/msp-extension.md), which `extension` allows.
 */

import { SvpError } from "../errors.ts";
import type { MdpTransport } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { EXT_MAX_HEADER_BYTES } from "./ext-packet.ts";
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
  /**
   * Offer (connector) or accept (listener) svp's extension: large windows, congestion
   * control, selective acks. A peer that does not speak it gets servald's exact behaviour.
   * Default false here; the embedded and servald transports turn it on (`mspExtension`).
   */
  extension: boolean;
  /** With the extension: the largest packet this side sends and accepts, bytes (the path MTU). Default `maxPacketBytes`. */
  extMaxPacketBytes: number;
  /** With the extension: receive buffer, bytes (the flow-control window offered to the peer). Default 2 MiB. */
  extReceiveBytes: number;
  /** With the extension: packets in flight at most, whatever the peer allows. Default 2048 (< half the 16-bit sequence space). */
  extMaxWindow: number;
  /** With the extension: longest wait before acknowledging a packet, ms. Default 5. */
  extMaxAckDelayMs: number;
  /** With the extension: the probe timeout never goes below this, ms (event loops stall). Default 20. */
  extMinPtoMs: number;
  /** With the extension: `write()` returns false once this many bytes wait. Default 128 KiB. */
  extHighWaterMark: number;
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
  extension: false,
  extReceiveBytes: 2 * 1024 * 1024,
  extMaxWindow: 2048,
  extMaxAckDelayMs: 5,
  extMinPtoMs: 20,
  extHighWaterMark: 128 * 1024,
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
  const maxPacketBytes = int("maxPacketBytes", o.maxPacketBytes ?? mtu, MSP_PREAMBLE_BYTES + 1, 1 << 20);
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
    maxPacketBytes,
    extension: o.extension ?? MSP_DEFAULTS.extension,
    extMaxPacketBytes: int("extMaxPacketBytes", o.extMaxPacketBytes ?? maxPacketBytes, EXT_MAX_HEADER_BYTES + 64, 1 << 20),
    extReceiveBytes: int("extReceiveBytes", o.extReceiveBytes ?? MSP_DEFAULTS.extReceiveBytes, 16 * 1024, 1 << 30),
    extMaxWindow: int("extMaxWindow", o.extMaxWindow ?? MSP_DEFAULTS.extMaxWindow, 4, 8192),
    extMaxAckDelayMs: ms("extMaxAckDelayMs", o.extMaxAckDelayMs ?? MSP_DEFAULTS.extMaxAckDelayMs, 0),
    extMinPtoMs: ms("extMinPtoMs", o.extMinPtoMs ?? MSP_DEFAULTS.extMinPtoMs, 1),
    extHighWaterMark: int("extHighWaterMark", o.extHighWaterMark ?? MSP_DEFAULTS.extHighWaterMark, 1, 1 << 30),
  };
}

/**
 * Parameters for MSP over `transport`: its window and extension defaults (servald's tools
 * run 5 packets; the embedded and servald backends offer the extension), then `o`.
 */
export function resolveTransportParams(transport: MdpTransport, o: MspOptions = {}): MspParams {
  const window = o.window ?? transport.mspWindow;
  return resolveMspParams({ ...o, ...(window !== undefined ? { window } : {}), extension: o.extension ?? transport.mspExtension ?? false }, transport.mtu);
}

/**
 * The packet size limit of extended streams to each peer: the transport's path MTU, unless
 * the options fixed one. Undefined when there is nothing to look up.
 */
export function pathMtuLookup(transport: MdpTransport, o: MspOptions): ((sid: Sid) => number) | undefined {
  if (o.extMaxPacketBytes !== undefined || !transport.pathMtu) return undefined;
  const lookup = transport.pathMtu.bind(transport);
  return (sid) => Math.min(1 << 16, Math.max(EXT_MAX_HEADER_BYTES + 64, lookup(sid)));
}
