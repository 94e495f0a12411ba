/**
 * Service discovery on MDP port 11, as servald's `msp listen --service NAME` does it.
 *
 * - Responder: binds port 11 with REUSE (several services on one node share it) and
 *   answers **any** datagram there with the text `NAME.msp.port=PORT` (servald's code sends
 *   `.msp.port`; its documentation says `.mdp.port`). It ignores datagrams from port 11
 *   (two responders must never answer each other forever) and answers at most
 *   `maxAnswersPerSecond`.
 * - Query: sends the pattern plus a NUL byte (as the Java client does) to port 11 of one
 *   node, or of every node (the broadcast SID: on the embedded node each known peer; sent
 *   NO_CRYPT as the Java client does; on servald also to each reachable peer directly)
 *   and of this node itself, repeats it while waiting
 *   (datagrams may be lost), and collects answers for a bounded time. The responder does
 *   not look at the pattern, so answers are filtered here.
 * - Answers are parsed leniently (Java properties style: one `key=value` or `key: value`
 *   per line, comments and other keys ignored) but never trusted: names and ports are
 *   checked, the payload size is capped.
 */

import type { Clock, Timer } from "../clock.ts";
import { systemClock } from "../clock.ts";
import { SvpError } from "../errors.ts";
import type { MdpAddress, MdpSocket, MdpTransport } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_BROADCAST, isSidBroadcast, sidEquals, sidToHex } from "../mesh/sid.ts";
import { DEFAULTS } from "../defaults.ts";

/** servald's MDP_PORT_SERVICE_DISCOVERY. */
export const SERVICE_DISCOVERY_PORT = 11;

/** One service one node offers. */
export interface ServiceAnswer {
  sid: Sid;
  /** Service name as the node sent it. */
  service: string;
  /** MDP port of the service. */
  port: number;
  /** True when the answer came from this node's own identity. */
  self: boolean;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,62}$/;
const MAX_ANSWER_BYTES = 2048;
const MAX_ANSWERS_PER_DATAGRAM = 32;

/**
 * Service names svp offers: letters, digits, `_`, `-`, `.`, `+`, at most 63 characters,
 * starting with a letter, digit or `_` (so `<service>.svc.serval` stays a DNS name).
 */
export function isValidServiceName(name: string): boolean {
  return NAME.test(name) && !name.includes("..") && !name.endsWith(".");
}

/** The answer servald's responder sends: `NAME.msp.port=PORT` (no newline, no NUL). */
export function formatServiceAnswer(service: string, port: number): Uint8Array {
  return new TextEncoder().encode(`${service}.msp.port=${port}`);
}

/** The services in one answer datagram; anything malformed is skipped. */
export function parseServiceAnswer(payload: Uint8Array): { service: string; port: number }[] {
  if (payload.length === 0 || payload.length > MAX_ANSWER_BYTES) return [];
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    return [];
  }
  const out: { service: string; port: number }[] = [];
  for (const raw of text.split(/\r\n|\r|\n|\0/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("!")) continue;
    const m = /^([^\s=:]+)\s*[=:]\s*(\d{1,10})$/.exec(line);
    if (!m) continue;
    const key = m[1]!;
    const suffix = ".msp.port";
    if (!key.toLowerCase().endsWith(suffix)) continue;
    const service = key.slice(0, -suffix.length);
    const port = Number(m[2]);
    if (!isValidServiceName(service) || port < 1 || port > 0xffffffff) continue;
    if (out.some((x) => x.service === service && x.port === port)) continue;
    out.push({ service, port });
    if (out.length >= MAX_ANSWERS_PER_DATAGRAM) break;
  }
  return out;
}

/**
 * A matcher for `svp discover [pattern]`: no pattern (or `*`) matches everything; `*` and
 * `?` are wildcards; otherwise the whole name must match. Case-insensitive.
 */
export function servicePatternMatcher(pattern: string | undefined): (service: string) => boolean {
  if (pattern === undefined || pattern === "" || pattern === "*") return () => true;
  const re = new RegExp(
    "^" +
      [...pattern]
        .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\-]/g, "\\$&")))
        .join("") +
      "$",
    "i",
  );
  return (service) => re.test(service);
}

export interface ServiceResponderOptions {
  /** Service name (checked with `isValidServiceName`). */
  service: string;
  /** MDP port the service listens on. */
  port: number;
  /** Bind on this identity instead of the primary one. */
  sid?: Sid | undefined;
  clock?: Clock;
  /** Answers per second at most (a flood of queries must not become a flood of answers). Default 100. */
  maxAnswersPerSecond?: number;
}

export interface ServiceResponder {
  /** Queries answered so far. */
  readonly answered: number;
  /** Queries ignored (from port 11, or over the rate limit). */
  readonly ignored: number;
  /** Release port 11 (idempotent). */
  close(): void;
}

/** Answer service discovery for one service, like `servald msp listen --service NAME`. */
export async function startServiceResponder(transport: MdpTransport, options: ServiceResponderOptions): Promise<ServiceResponder> {
  if (!isValidServiceName(options.service)) throw new SvpError("ERR_USAGE", `invalid service name "${options.service}": letters, digits, _ - . + only, at most 63 characters`);
  const clock = options.clock ?? systemClock;
  const limit = options.maxAnswersPerSecond ?? 100;
  const answer = formatServiceAnswer(options.service, options.port);
  const socket = await transport.bind(SERVICE_DISCOVERY_PORT, { reuse: true, ...(options.sid ? { sid: options.sid } : {}) });
  let answered = 0;
  let ignored = 0;
  let windowStart = clock.now();
  let inWindow = 0;
  socket.on("message", (_payload, from) => {
    if (from.port === SERVICE_DISCOVERY_PORT || isSidBroadcast(from.sid)) {
      ignored++;
      return;
    }
    const now = clock.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      inWindow = 0;
    }
    if (inWindow >= limit) {
      ignored++;
      return;
    }
    inWindow++;
    answered++;
    socket.send(from, answer);
  });
  return {
    get answered() {
      return answered;
    },
    get ignored() {
      return ignored;
    },
    close: () => socket.close(),
  };
}

export interface DiscoverOptions {
  /** Service name pattern (see `servicePatternMatcher`); sent to the nodes as well. */
  pattern?: string | undefined;
  /** Ask only this node; default every node (broadcast) and this node itself. */
  target?: Sid | undefined;
  /** Collect answers for this long, ms. Default 2000. */
  timeoutMs?: number;
  /** Repeat the query this often while waiting, ms. Default 500. */
  resendMs?: number;
  /** Resolve at the first matching answer. */
  first?: boolean;
  /** Send from this identity instead of the primary one. */
  sid?: Sid | undefined;
  clock?: Clock;
  /** Stop early (resolves with what was collected so far). */
  signal?: AbortSignal | undefined;
  /** Called for each new matching answer as it arrives. */
  onAnswer?: (answer: ServiceAnswer) => void;
}

/** Ask for services; resolves with the distinct matching answers in arrival order. */
export async function discoverServices(transport: MdpTransport, options: DiscoverOptions = {}): Promise<ServiceAnswer[]> {
  const clock = options.clock ?? systemClock;
  const timeoutMs = options.timeoutMs ?? DEFAULTS.discoverTimeoutMs;
  const resendMs = options.resendMs ?? 500;
  if (!(timeoutMs > 0)) throw new SvpError("ERR_USAGE", `discovery timeout must be more than 0 ms, got ${timeoutMs}`);
  const matches = servicePatternMatcher(options.pattern);
  const query = new TextEncoder().encode((options.pattern ?? "*") + "\0");
  const signal = options.signal;
  if (signal?.aborted) return [];
  const socket: MdpSocket = await transport.bind(0, options.sid ? { sid: options.sid } : {});
  const self = options.sid ?? transport.localSid;
  const found: ServiceAnswer[] = [];
  const seen = new Set<string>();
  return new Promise<ServiceAnswer[]>((resolve) => {
    let done = false;
    let resendTimer: Timer | undefined;
    const finish = () => {
      if (done) return;
      done = true;
      endTimer.cancel();
      resendTimer?.cancel();
      signal?.removeEventListener("abort", finish);
      socket.close();
      resolve(found);
    };
    const endTimer = clock.setTimeout(finish, timeoutMs);
    signal?.addEventListener("abort", finish, { once: true });
    socket.on("close", finish);
    socket.on("message", (payload, from: MdpAddress) => {
      if (done || from.port !== SERVICE_DISCOVERY_PORT || isSidBroadcast(from.sid)) return;
      if (options.target && !sidEquals(from.sid, options.target)) return;
      for (const { service, port } of parseServiceAnswer(payload)) {
        if (!matches(service)) continue;
        const key = `${sidToHex(from.sid)}/${service}/${port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const answer: ServiceAnswer = { sid: from.sid.slice(), service, port, self: sidEquals(from.sid, self) || sidEquals(from.sid, transport.localSid) };
        found.push(answer);
        options.onAnswer?.(answer);
        if (options.first) return finish();
      }
    });
    let round = 0;
    const send = () => {
      if (done) return;
      if (options.target) socket.send({ sid: options.target, port: SERVICE_DISCOVERY_PORT }, query);
      else {
        socket.send({ sid: SID_BROADCAST, port: SERVICE_DISCOVERY_PORT }, query, { noCrypt: true });
        socket.send({ sid: self, port: SERVICE_DISCOVERY_PORT }, query);
        // The embedded node floods a broadcast to every node it can reach (once each). servald's
        // can go missing for a while (a peer's link drops them after this node restarted,
        // while unicast gets through), so there every reachable peer is asked directly too:
        // in the first round and every 4th after (a big mesh is not flooded every 500 ms).
        if (transport.kind !== "embedded" && round % 4 === 0) {
          for (const peer of transport.peers()) socket.send({ sid: peer, port: SERVICE_DISCOVERY_PORT }, query);
        }
      }
      round++;
      if (resendMs > 0) resendTimer = clock.setTimeout(send, resendMs);
    };
    send();
  });
}
