/**
 * svp as a library: the public surface of the `svp` package (`import { openMesh } from "svp"`).
 *
 * `openMesh()` connects to a Serval mesh (a running servald, or svp's own embedded node,
 * auto-started like the CLI does) and returns a `Mesh`: `dial()` and `listen()` give
 * node:stream Duplexes (`MeshStream`), `socks()` starts the proxy `svp socks` runs,
 * `status()` is `svp status --json`, `close()` ends it all. Every failure is an `SvpError`
 * with a code from `ERROR_TABLE`. docs/library.md has examples (run as tests).
 *
 * Only what a library user needs is here; the CLI and the tests import the modules
 * themselves, and composition lives in src/platform/ (mesh.ts, open-session.ts,
 * socks-proxy.ts), not in this file.
 */

/** Open the mesh; the façade's options, results and the Mesh itself (src/platform/mesh.ts). */
export { openMesh } from "./platform/mesh.ts";
export type { DialOptions, ListenOptions, Mesh, MeshListener, MeshOptions, MeshProxy, SocksOptions } from "./platform/mesh.ts";

/** The Duplex `dial()` and `listen()` give, with `peer` and `local` (SID and MDP port). */
export { MeshStream } from "./platform/mesh-stream.ts";
export type { MeshPeer } from "./platform/mesh-stream.ts";

/** A Duplex as a WHATWG `{ readable, writable }` pair (half-close and errors kept). */
export { toWebStreams } from "./platform/web-streams.ts";
export type { WebStreamPair } from "./platform/web-streams.ts";

/** `"auto" | "servald" | "embedded"`: the backends `openMesh({ mesh })` chooses from. */
export { MESH_MODES } from "./service/mesh-session.ts";
export type { MeshMode } from "./service/mesh-session.ts";

/**
 * Errors: every rejection and stream error is an `SvpError` whose `code` is a key of
 * `ERROR_TABLE` (which also gives the SOCKS reply, HTTP status and exit code svp uses for
 * it); `UsageError` is the ERR_USAGE kind (bad options). `isSvpError(err, code?)` tests one.
 */
export { ERROR_TABLE, SvpError, UsageError, isSvpError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";

/** What `Mesh.status()` returns (the document `svp status --json` prints; README documents its fields). */
export type { PeerStatus, PortStatus, RouteStatus, ServaldStatus, StatusReport, StreamStatus } from "./status/status-report.ts";

// ---------------------------------------------------------------------------------------
// What the `svp` command is built from. cli/ imports only this file (DESIGN.md section 2),
// and each command is flags → options → one of these calls → render. They are exported
// for that, and for tools built like svp; the library API is the part above
// (docs/library.md). Each is documented where it is defined.
// ---------------------------------------------------------------------------------------

/** The commands as calls: `svp socks`, `connect` (stdio and --forward), `listen`, `discover`, `status`. */
export { startSocksProxy } from "./platform/socks-proxy.ts";
export type { SocksProxy } from "./platform/socks-proxy.ts";
export { runLoopWorker } from "./loops.ts";
export type { SocksLoopSettings } from "./loops.ts";
export { defaultLoopCount } from "./platform/loops.ts";
export { meshNetcat } from "./platform/mesh-netcat.ts";
export { startMeshForward } from "./platform/mesh-forward.ts";
export { startMeshListen } from "./platform/mesh-listen.ts";
export type { ListenTargetSpec } from "./platform/listen-target.ts";
export { meshDiscover } from "./platform/mesh-discover.ts";
export { queryMeshStatus } from "./platform/mesh-status.ts";
export type { MspTelemetry } from "./status/status-report.ts";
/** Per-connection records the commands log. */
export type { StreamRecord } from "./socks/server.ts";
export type { ForwardRecord } from "./service/forward-server.ts";
export type { ListenRecord } from "./service/listen-service.ts";

/** Mesh sessions below the façade: the backend a command's flags select, reopened when lost. */
export { openSession } from "./platform/open-session.ts";
export { MeshConnector, parseMeshMode } from "./service/mesh-session.ts";
export type { OpenMeshOptions } from "./service/mesh-session.ts";
export { createMeshDialer } from "./service/mesh-dialer.ts";
export { connectServald } from "./platform/servald.ts";
export { unixDatagramSupport } from "./platform/unix-dgram.ts";
export { peekNode } from "./platform/peek-node.ts";
export type { NodePeek } from "./platform/peek-node.ts";
export { discoverServices, isValidServiceName } from "./service/discovery.ts";
export type { ServiceAnswer } from "./service/discovery.ts";

/** The embedded node's daemon (`svp daemon`, `svp id`) and its instance directory. */
export { readIdentity, resolveHome, runDaemon, startDaemon } from "./platform/embedded-node.ts";
export type { EmbeddedNodeOptions } from "./platform/embedded-node.ts";
export { daemonState, stopDaemon } from "./platform/daemon-control.ts";
export { CONFIG_FILE, KEYRING_FILE, LOG_FILE, PID_FILE, SOCKET_FILE } from "./platform/instance-files.ts";
export { pinYoungGeneration } from "./platform/young-generation.ts";

/** Parsing and formatting of what users type: SIDs, names, addresses, durations, credentials. */
export { parseSid, sidToBase32, sidToHex, upperSidLabels } from "./mesh/sid.ts";
export type { Sid } from "./mesh/sid.ts";
export { parseMeshName } from "./mesh/names.ts";
export { parseMdpPort, parseMeshTarget } from "./service/mesh-target.ts";
export type { MeshTarget } from "./service/mesh-target.ts";
export { formatDuration, formatListenAddress, isLoopbackAddress, parseDuration, parseHostPort, parseListenAddress, parsePort, parsePositiveInt } from "./options.ts";
export type { ListenAddress } from "./options.ts";
export { parseCredential, parseCredentialsFile } from "./socks/auth.ts";
export type { Credential } from "./socks/auth.ts";
export { formatUpstream, parseUpstream } from "./socks/upstream.ts";
export { readTextFile } from "./platform/files.ts";

/** Defaults and limits (what `--help` shows), exit codes, and the error conversion. */
export { DEFAULTS, durationFlagText } from "./defaults.ts";
export { MSP_DEFAULTS } from "./msp/params.ts";
export { MAX_LINK_MTU, MIN_LINK_MTU } from "./node/node-config.ts";
export { MAX_MDP_MTU, OVERLAY_MDP_MTU } from "./node/overlay-packet.ts";
export { EXIT, toSvpError } from "./errors.ts";
