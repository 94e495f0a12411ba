/**
 * svp's public library API and composition root: the one module `cli/` imports, and the
 * only place (besides `src/platform/` itself) that picks platform adapters.
 */

export { ERROR_TABLE, EXIT, SvpError, UsageError, describe, isSvpError, toSvpError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export { ManualClock, systemClock } from "./clock.ts";
export type { Clock, Timer } from "./clock.ts";
export { Emitter } from "./emitter.ts";
export type { ByteStream, ByteStreamEvents } from "./stream/byte-stream.ts";
export { memoryPair } from "./stream/memory-pair.ts";
export { Relay, relay } from "./relay/relay.ts";
export type { RelayOptions, RelayStats } from "./relay/relay.ts";
export {
  formatListenAddress,
  isLoopbackAddress,
  parseDuration,
  parseHostPort,
  parseListenAddress,
  parsePort,
  parsePositiveInt,
} from "./options.ts";
export type { ListenAddress } from "./options.ts";
export { SocketStream } from "./platform/socket-stream.ts";
export { connectTcp, connectUnix, listen } from "./platform/net.ts";
export type { Listener } from "./platform/net.ts";
