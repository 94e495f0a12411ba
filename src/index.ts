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
