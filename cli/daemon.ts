/**
 * `svp daemon start|stop|run|status`: the embedded mesh node's lifecycle.
 * start: spawn `svp daemon run` in the background, wait until it answers, print its SID.
 * stop: ask it to stop (bounded wait, then SIGKILL). run: foreground, logs on stderr,
 * exit 0 on SIGINT/SIGTERM. status: exit 0 when it runs, 1 when not.
 */

import type { CAC } from "cac";
import type { CommandLine, Flags } from "./command-line.ts";
import { daemonState, DEFAULTS, durationFlagText, MAX_LINK_MTU, MAX_MDP_MTU, MIN_LINK_MTU, OVERLAY_MDP_MTU, parseDuration, parsePort, resolveHome, runDaemon, sidToHex, startDaemon, stopDaemon, UsageError } from "../src/index.ts";
import type { EmbeddedNodeOptions } from "../src/index.ts";
import { createLogger, errColor, parseLogFormat } from "./render.ts";
import { VERSION } from "./version.ts";

/** What `svp daemon <action>` does (the order of its help text). */
export const DAEMON_ACTIONS = ["start", "stop", "run", "status"] as const;

function nodeOptions(flags: Flags): EmbeddedNodeOptions {
  const o: EmbeddedNodeOptions = { version: VERSION };
  const home = flags.one("home");
  if (home !== undefined) o.home = home;
  const port = flags.one("port");
  if (port !== undefined) o.port = parsePort(port, "--port");
  const peers = flags.all("peer");
  if (peers.length) o.peers = peers;
  const bind = flags.all("bind");
  if (bind.length) o.bind = bind;
  if (flags.has("lan")) o.lan = true;
  if (flags.has("no-discovery")) o.discovery = false;
  const hello = flags.one("hello-interval");
  if (hello !== undefined) o.helloIntervalMs = parseDuration(hello, "--hello-interval");
  const peerTimeout = flags.one("peer-timeout");
  if (peerTimeout !== undefined) o.peerTimeoutMs = parseDuration(peerTimeout, "--peer-timeout");
  const v = flags.one("link-mtu");
  if (v !== undefined) {
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
    .action(async ({ positionals: [action], flags }: CommandLine) => {
      const home = resolveHome(flags.one("home"));
      switch (action) {
        case "run":
          return run(flags);
        case "start": {
          // Validate flags and svp.conf here, so mistakes are usage errors (exit 2) before spawning.
          const logText = flags.one("log");
          const logFormat = logText === undefined ? undefined : parseLogFormat(logText);
          const info = await startDaemon({ ...nodeOptions(flags), home }, { ...(logFormat ? { logFormat } : {}), ...(flags.has("verbose") ? { verbose: true } : {}) });
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

async function run(flags: Flags): Promise<number> {
  const format = parseLogFormat(flags.one("log"));
  const logger = createLogger("daemon", format);
  const stamp = () => (format === "text" ? new Date().toISOString() + " " : "");
  const options = nodeOptions(flags);
  // The node outlives its log reader (a closed pipe, `| head`, a restarted log collector):
  // a failed write to stderr loses that log line, it does not kill the daemon.
  process.stderr.on("error", () => {});
  options.log = (level, message) => {
    if (level === "warn") logger.warn(stamp() + message);
    else if (level === "info" || flags.has("verbose")) logger.info(stamp() + message);
  };
  return runDaemon(options);
}
