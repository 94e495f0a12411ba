/**
 * The status data model: what `svp status --json` prints (one document, stable field
 * names; new fields may be added, none renamed or removed within a schema version).
 * Formatting for people lives in cli/; this module only defines and checks the data.
 *
 * Units: durations in milliseconds, sizes in bytes, SIDs as 64 upper-case hex digits,
 * addresses as "host:port" / "[v6]:port", times as ISO 8601 UTC strings.
 */

export const STATUS_SCHEMA = 1;

export interface StatusReport {
  /** Schema version of this document (1). */
  schema: typeof STATUS_SCHEMA;
  /** Which mesh backend answered. */
  backend: "embedded" | "servald";
  identity: {
    /** Primary SID. */
    sid: string;
    /** Primary SID in the 52-character base32 form used in DNS names. */
    base32: string;
    /** Every identity of the node, primary first. */
    sids: string[];
  };
  daemon: {
    pid: number;
    /** svp version of the daemon. */
    version: string;
    /** Instance directory. */
    home: string;
    startedAt: string;
    uptimeMs: number;
    /** Bound UDP addresses of the overlay. */
    udp: string[];
    /** Discovery modes in effect: "static", "local" (same host), "lan". */
    discovery: string[];
    /** Start-up warnings, e.g. why same-host discovery is off (embedded node; absent from older daemons). */
    notes?: string[];
    /** The local API's own accounting (embedded node; absent from older daemons). */
    api?: ApiStatus;
  };
  peers: PeerStatus[];
  ports: PortStatus[];
  streams: StreamStatus[];
  /** Streams left out of `streams` (more than MAX_STATUS_STREAMS); absent when none. */
  streamsOmitted?: number;
  /** Dropped datagrams by reason (see DROP_REASONS in the node). */
  drops: Record<string, number>;
  /** Embedded backend: every reachable node and how it is reached (neighbours have hops 1). */
  routes?: MeshRoute[];
  /** Embedded backend: the routing protocol's own figures. */
  routing?: RoutingStatus;
  /** Embedded backend: the flood guard (crypto for senders that are not live peers at their address). */
  floodGuard?: FloodGuardStatus;
  /** servald backend only: where the daemon is and how svp asked it. */
  servald?: ServaldStatus;
}

/**
 * The servald backend's part of a report. There `daemon.home` is the instance directory,
 * `daemon.pid`/`startedAt` come from servald's pid file (0 / "" when unknown), `udp` and
 * `discovery` are empty, `ports` and `streams` are empty (servald does not say which client
 * bound what), and peers carry `route` instead of packet counters (which stay 0).
 */
export interface ServaldStatus {
  /** Instance (run) directory. */
  instance: string;
  /** Where it came from: `--servald-instance`, SERVALINSTANCE_PATH, or servald's default run directories. */
  instanceSource: "option" | "env" | "default";
  /** "socket": svp's own MDP client; "cli": servald's CLI (svp could not open the socket). */
  via: "socket" | "cli";
  /** The servald binary asked for version and, with via "cli", everything else; null when none was found. */
  cli: string | null;
  /** Network interfaces the daemon routes through (from its own route entry). */
  interfaces: string[];
  /** Anything that limited the report (a CLI that failed, the native addon missing). */
  notes: string[];
}

/** How servald routes to a peer (its route table). */
export interface RouteStatus {
  /** servald's reachability flags: "unicast", "broadcast", "indirect", "assumed", or "unreachable". */
  reachable: string[];
  /** 1: a direct neighbour; more: through `nextHop`; null when unknown. */
  hops: number | null;
  /** Interface of a direct neighbour. */
  interface: string | null;
  nextHop: string | null;
  priorHop: string | null;
}

export interface PeerStatus {
  sid: string;
  /** Our identity this peer session belongs to. */
  localSid: string;
  /** Last address an authentic packet came from. */
  address: string | null;
  /** How the peer was first found: "static", "local", "lan" or "incoming". */
  source: string;
  /** False once it has been silent longer than the peer timeout. */
  live: boolean;
  /** Milliseconds since the last authentic packet. */
  lastSeenMs: number | null;
  /** Last measured round trip, ms. */
  rttMs: number | null;
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Embedded backend: the link's routing cost (256 = perfect; null while not live). */
  linkCost?: number | null;
  /** Embedded backend: largest MDP payload on this link. */
  mtu?: number;
  /** servald backend: the daemon's route to this peer. */
  route?: RouteStatus;
}

/**
 * The daemon's local API, by its own accounting (bytes it holds for clients; clients it
 * disconnected). See ApiLimits in src/node/mesh-node.ts.
 */
export interface ApiStatus {
  /** Connected clients, and how many may be. */
  clients: number;
  maxClients: number;
  /** Bytes written to clients that they have not read yet (all clients). */
  queuedBytes: number;
  /** Bytes of unfinished frames held from clients (all clients). */
  partialBytes: number;
  /** MDP ports bound by clients. */
  ports: number;
  /** Remote ends of MSP streams remembered (to stop a dead client's streams), all ports; at most 1,024 per port, forgotten after 30 s of silence. */
  mspRemotes: number;
  /** Clients refused or cut off since start, by reason: "too-many-clients", "hello-timeout", "slow-reader", … */
  disconnected: Record<string, number>;
}

/** A reachable node in the embedded node's route table. */
export interface MeshRoute {
  sid: string;
  /** The neighbour frames to it go through (itself for a neighbour). */
  nextHop: string;
  hops: number;
  /** Sum of the link costs along the path: 256 per perfect hop, more for loss and delay. */
  metric: number;
  /** Largest MDP payload the path carries, bytes. */
  mtu: number;
}

export interface RoutingStatus {
  /** This node's current routing sequence number. */
  seqno: number;
  /** Period of full routing dumps, ms. */
  updateIntervalMs: number;
  /** Route packets and their plaintext bytes sent and received. */
  packetsOut: number;
  bytesOut: number;
  packetsIn: number;
  bytesIn: number;
  /** Seqno requests sent (a route was lost and only unfeasible ones were left). */
  seqnoRequestsOut: number;
  /** Frames forwarded for other nodes, and their bytes. */
  forwardedPackets: number;
  forwardedBytes: number;
}

export interface FloodGuardStatus {
  /** Unknown senders must return a cookie before the node works for them (a flood is being refused). */
  underLoad: boolean;
  /**
   * The overlay socket carries a kernel filter: live peers pass, addresses that flooded are
   * refused, one datagram in 8 of the rest passes (Linux with the native addon; what it drops
   * shows only in the kernel's socket drops, /proc/net/udp).
   */
  kernelFilter: boolean;
  /** Datagrams from senders that are not live peers at their address: paid from the shared budget, refused, or paid by their address's cookie. */
  admitted: number;
  refused: number;
  cookieAdmitted: number;
  /** Cookies sent to refused senders, and cookies returned that were not valid. */
  cookiesSent: number;
  badCookies: number;
}

export interface PortStatus {
  sid: string;
  port: number;
  /**
   * Process id of the local client that bound it (null when unknown): from the kernel (the
   * API socket's peer credentials, SO_PEERCRED) where the platform tells, else as the client
   * claims it (then listed in `clientReported`).
   */
  pid: number | null;
  /** User id of that client, from the kernel (null when the platform cannot tell). */
  uid?: number | null;
  /** Client name as it introduced itself, e.g. "svp socks": always the client's own word. */
  client: string;
  /** The fields of this entry that are the client's own, unverified word: "client", and "pid" when claimed. */
  clientReported?: string[];
}

/**
 * One live MSP stream, as reported by the client process that runs it: the daemon checks
 * that the client bound its local port and caps the byte counts at what the client's
 * datagrams carried, but the rest is the client's word.
 */
export interface StreamStat {
  localSid: string;
  localPort: number;
  remoteSid: string;
  remotePort: number;
  /** Connection state, e.g. "connecting", "open", "half-closed", "closing". */
  state: string;
  bytesIn: number;
  bytesOut: number;
  ageMs: number;
  /** MSP transport telemetry of the stream (absent from clients that do not report it). */
  msp?: MspTelemetry;
}

/** Per-stream MSP telemetry: what the sending side of one stream is doing now. */
export interface MspTelemetry {
  /** svp's MSP extension: "on", "off" (classic, servald's behaviour) or "offered" (not known yet). */
  extension: string;
  /** Data bytes per message. */
  messageSize: number;
  /** Packets sent and not yet acknowledged (the window in use). */
  packetsInFlight: number;
  bytesInFlight: number;
  /** Congestion window, bytes (null in classic mode: the window is fixed). */
  cwnd: number | null;
  /** Smoothed round trip and its variation, ms (null before a sample). */
  srttMs: number | null;
  rttvarMs: number | null;
  /** Packets sent again; packets found lost (extended mode); probe timeouts. */
  retransmissions: number;
  losses: number;
  probes: number;
}

export interface StreamStatus extends StreamStat {
  pid: number | null;
  client: string;
  /**
   * The fields of this entry that are the client's own, unverified word: everything but
   * localSid/localPort (a port the daemon knows that client bound) and, when it comes from
   * the kernel, pid; byte counts are capped at what that client's datagrams carried.
   */
  clientReported?: string[];
}

/** `clientReported` of a stream whose pid the kernel gave (see StreamStatus). */
export const STREAM_CLIENT_FIELDS = ["remoteSid", "remotePort", "state", "bytesIn", "bytesOut", "ageMs", "msp", "client"] as const;

/** Most streams a client may report at once; more are dropped. */
export const MAX_REPORTED_STREAMS = 10_000;
/** Most streams in one status document (all clients); the rest are counted in `streamsOmitted`. */
export const MAX_STATUS_STREAMS = 10_000;
/** Largest byte count a stream report may carry (2^53 - 1: beyond, numbers lose precision). */
const MAX_COUNT = Number.MAX_SAFE_INTEGER;

/**
 * Check stream stats that arrived from a client process: wrong entries are dropped (a
 * buggy client must not break `svp status`): SIDs must be 64 hex digits, ports 32-bit
 * unsigned integers, byte counts and ages non-negative safe integers; states are capped
 * at 32 printable characters. (The daemon then holds what is left to what it knows
 * itself: see MeshNode.)
 */
export function sanitizeStreamStats(input: unknown): StreamStat[] {
  if (!Array.isArray(input)) return [];
  const out: StreamStat[] = [];
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= MAX_COUNT;
  const port = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;
  const sid = (v: unknown) => typeof v === "string" && /^[0-9A-Fa-f]{64}$/.test(v);
  for (const raw of input.slice(0, MAX_REPORTED_STREAMS)) {
    if (typeof raw !== "object" || raw === null) continue;
    const r = raw as Record<string, unknown>;
    if (!sid(r.localSid) || !sid(r.remoteSid) || !port(r.localPort) || !port(r.remotePort) || !count(r.bytesIn) || !count(r.bytesOut) || !count(r.ageMs)) continue;
    out.push({
      localSid: (r.localSid as string).toUpperCase(),
      localPort: r.localPort as number,
      remoteSid: (r.remoteSid as string).toUpperCase(),
      remotePort: r.remotePort as number,
      state: typeof r.state === "string" ? r.state.replace(/[^\x20-\x7e]/g, "?").slice(0, 32) : "unknown",
      bytesIn: r.bytesIn as number,
      bytesOut: r.bytesOut as number,
      ageMs: r.ageMs as number,
      ...(r.msp !== undefined ? sanitizeTelemetry(r.msp) : {}),
    });
  }
  return out;
}

/** A client's MSP telemetry, or nothing when any field is off (numbers finite, non-negative, below 2^53). */
function sanitizeTelemetry(v: unknown): { msp: MspTelemetry } | Record<string, never> {
  if (typeof v !== "object" || v === null) return {};
  const t = v as Record<string, unknown>;
  const n = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x >= 0 && x <= Number.MAX_SAFE_INTEGER;
  const nn = (x: unknown): x is number | null => x === null || n(x);
  if (!["on", "off", "offered"].includes(t.extension as string)) return {};
  if (!n(t.messageSize) || !n(t.packetsInFlight) || !n(t.bytesInFlight) || !nn(t.cwnd) || !nn(t.srttMs) || !nn(t.rttvarMs) || !n(t.retransmissions) || !n(t.losses) || !n(t.probes)) return {};
  return {
    msp: {
      extension: t.extension as string,
      messageSize: t.messageSize,
      packetsInFlight: t.packetsInFlight,
      bytesInFlight: t.bytesInFlight,
      cwnd: t.cwnd,
      srttMs: t.srttMs,
      rttvarMs: t.rttvarMs,
      retransmissions: t.retransmissions,
      losses: t.losses,
      probes: t.probes,
    },
  };
}

/** Check that a document has the shape of a StatusReport (used by clients reading it back). */
export function isStatusReport(v: unknown): v is StatusReport {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  return r.schema === STATUS_SCHEMA && typeof r.identity === "object" && typeof r.daemon === "object" && Array.isArray(r.peers) && Array.isArray(r.ports) && Array.isArray(r.streams) && typeof r.drops === "object";
}
