/**
 * `svp daemon start|stop|run|status`: the embedded mesh node's lifecycle.
 * start: spawn `svp daemon run` in the background, wait until it answers, print its SID.
 * stop: ask it to stop (bounded wait, then SIGKILL). run: foreground, logs on stderr,
 * exit 0 on SIGINT/SIGTERM. status: exit 0 when it runs, 1 when not.
 */

import type { CAC } from "cac";
import { UsageError } from "../src/errors.ts";
import { sidToHex } from "../src/mesh/sid.ts";
import { parseDuration, parsePort } from "../src/options.ts";
import { daemonState, stopDaemon } from "../src/platform/daemon-control.ts";
import { resolveHome, runDaemon, startDaemon } from "../src/platform/embedded-node.ts";
import type { EmbeddedNodeOptions } from "../src/platform/embedded-node.ts";
import { createLogger, errColor, parseLogFormat } from "./render.ts";
import { VERSION } from "./version.ts";
import { DEFAULTS, durationFlagText } from "../src/defaults.ts";
import { MAX_LINK_MTU, MIN_LINK_MTU } from "../src/node/node-config.ts";
import { MAX_MDP_MTU, OVERLAY_MDP_MTU } from "../src/node/overlay-packet.ts";

interface DaemonFlags {
  home?: string;
  port?: string | number;
  peer?: string | string[];
  bind?: string | string[];
  lan?: boolean;
  discovery?: boolean;
  helloInterval?: string;
  peerTimeout?: string;
  linkMtu?: string | number;
  log?: string;
  verbose?: boolean;
}

/** What `svp daemon <action>` does (the order of its help text). */
export const DAEMON_ACTIONS = ["start", "stop", "run", "status"] as const;

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

function nodeOptions(flags: DaemonFlags): EmbeddedNodeOptions {
  const o: EmbeddedNodeOptions = { version: VERSION };
  if (flags.home !== undefined) o.home = String(flags.home);
  if (flags.port !== undefined) o.port = parsePort(String(flags.port), "--port");
  const peers = list(flags.peer);
  if (peers.length) o.peers = peers;
  const bind = list(flags.bind);
  if (bind.length) o.bind = bind;
  if (flags.lan) o.lan = true;
  if (flags.discovery === false) o.discovery = false;
  if (flags.helloInterval !== undefined) o.helloIntervalMs = parseDuration(String(flags.helloInterval), "--hello-interval");
  if (flags.peerTimeout !== undefined) o.peerTimeoutMs = parseDuration(String(flags.peerTimeout), "--peer-timeout");
  if (flags.linkMtu !== undefined) {
    const v = String(flags.linkMtu);
    if (!/^\d+$/.test(v)) throw new UsageError(`invalid --link-mtu "${v}": expected a number of bytes`);
    o.linkMtu = Number(v);
  }
  return o;
}

export function register(cli: CAC): void {
  cli
    .command("daemon <action>", `Run the embedded mesh node: ${DAEMON_ACTIONS.join(" | ")}`)
    .usage(`daemon [options] <${DAEMON_ACTIONS.join("|")}>`)
    .option("--home <dir>", "Instance directory (default: $SVP_HOME, else $XDG_STATE_HOME/svp or ~/.local/state/svp)")
    .option("--port <port>", `Overlay UDP port (default ${DEFAULTS.overlayPort}, or any free port when ${DEFAULTS.overlayPort} is taken)`)
    .option("--peer <host:port>", "Static peer (repeatable)")
    .option("--bind <addr>", "Bind the overlay on this address (repeatable; default loopback)")
    .option("--lan", "Discover peers on the LAN by broadcast (off by default)")
    .option("--no-discovery", "No same-host discovery: static peers only")
    .option("--hello-interval <duration>", `Keep-alive period (default ${durationFlagText(DEFAULTS.helloIntervalMs)})`)
    .option("--peer-timeout <duration>", `Silence after which a peer expires (default ${DEFAULTS.peerTimeoutHellos} hello intervals)`)
    .option("--link-mtu <bytes>", `Largest MDP payload on links that are not loopback (${MIN_LINK_MTU}-${MAX_LINK_MTU}; default ${OVERLAY_MDP_MTU}; loopback links carry ${MAX_MDP_MTU})`)
    .option("--log <text|json>", "Log format of the daemon (run: stderr; start: daemon.log)", { default: DEFAULTS.logFormat })
    .option("--verbose", "Log debug messages too")
    .example("  $ svp daemon start")
    .example("  $ svp daemon run --peer 192.0.2.7:4111 --no-discovery")
    .action(async (action: string, flags: DaemonFlags) => {
      const home = resolveHome(flags.home);
      switch (action) {
        case "run":
          return run(flags);
        case "start": {
          // Validate flags and svp.conf here, so mistakes are usage errors (exit 2) before spawning.
          const logFormat = flags.log === undefined ? undefined : parseLogFormat(String(flags.log));
          const info = await startDaemon({ ...nodeOptions(flags), home }, { ...(logFormat ? { logFormat } : {}), ...(flags.verbose ? { verbose: true } : {}) });
          process.stderr.write(`svp daemon: started (pid ${info.pid}) for ${home}\n`);
          // Start-up warnings the daemon logged (e.g. an unusable discovery directory) are said here too, not only in daemon.log.
          for (const note of info.notes) process.stderr.write(`${errColor.yellow("warning")}: svp daemon: ${note}\n`);
          process.stdout.write(sidToHex(info.sid) + "\n");
          return 0;
        }
        case "stop": {
          const r = await stopDaemon(home);
          if (!r.wasRunning) {
            process.stderr.write(`svp daemon: not running for ${home}${r.cleaned.length ? ` (removed stale ${r.cleaned.join(", ")})` : ""}\n`);
            return 0;
          }
          process.stderr.write(`svp daemon: stopped (pid ${r.pid})${r.forced ? ` ${errColor.yellow("with SIGKILL")}: it did not stop in time` : ""}\n`);
          return 0;
        }
        case "status": {
          const s = await daemonState(home);
          if (s.running) {
            process.stdout.write(`running (pid ${s.pid}, SID ${sidToHex(s.sid)}, home ${home})\n`);
            return 0;
          }
          if (s.stalePid !== undefined || s.cleaned.length) process.stderr.write(`svp daemon: removed stale files of a daemon that is gone${s.stalePid ? ` (pid ${s.stalePid})` : ""}\n`);
          process.stdout.write(`not running (home ${home})\n`);
          return 1;
        }
        default:
          throw new UsageError(`unknown daemon action "${action}": expected ${DAEMON_ACTIONS.slice(0, -1).join(", ")} or ${DAEMON_ACTIONS.at(-1)}`);
      }
    });
}

async function run(flags: DaemonFlags): Promise<number> {
  const format = parseLogFormat(flags.log === undefined ? undefined : String(flags.log));
  const logger = createLogger("daemon", format);
  const stamp = () => (format === "text" ? new Date().toISOString() + " " : "");
  const options = nodeOptions(flags);
  // The node outlives its log reader (a closed pipe, `| head`, a restarted log collector):
  // a failed write to stderr loses that log line, it does not kill the daemon.
  process.stderr.on("error", () => {});
  options.log = (level, message) => {
    if (level === "warn") logger.warn(stamp() + message);
    else if (level === "info" || flags.verbose) logger.info(stamp() + message);
  };
  return runDaemon(options);
}
