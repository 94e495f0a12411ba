/**
 * `svp status`: the running node's identity, backend, daemon, peers, ports and live
 * streams; `--json` prints the StatusReport document (src/status) unchanged.
 * Exit 1 (saying so) when no daemon runs; never starts one.
 */

import type { CAC } from "cac";
import type { CommandLine } from "./command-line.ts";
import { backendFlags } from "./mesh-flags.ts";
import { EXIT, queryMeshStatus } from "../src/index.ts";
import type { StatusReport } from "../src/index.ts";
import { formatBytes, formatDuration, reportError, stdoutColor } from "./render.ts";

// Plain SGR codes: kleur's on/off switch is global and follows stderr (see render.ts).
const c = {
  bold: (s: string) => (stdoutColor ? `\x1b[1m${s}\x1b[22m` : s),
  dim: (s: string) => (stdoutColor ? `\x1b[2m${s}\x1b[22m` : s),
};

export function register(cli: CAC): void {
  cli
    .command("status", "Show identity, mesh backend, peers, bound ports and live streams")
    .usage("status [options]")
    .option("--home <dir>", "Instance directory (default: $SVP_HOME, else $XDG_STATE_HOME/svp or ~/.local/state/svp)")
    .option("--json", "Print one JSON document (fields documented in README)")
    .option("--mesh <backend>", "Which backend to show: auto (servald when it answers, else the embedded node), servald or embedded (default: $SVP_MESH, else auto)")
    .option("--servald-instance <dir>", "servald instance directory (default: $SERVALINSTANCE_PATH, else servald's default run directories)")
    .action(async ({ flags }: CommandLine) => {
      const { mesh: mode, servaldInstance: instance, home } = backendFlags(flags);
      const r = await queryMeshStatus({ mesh: mode, servaldInstance: instance, home });
      if (r.stage === "servald") return reportError("status", "reach servald", r.error);
      if (r.stage === "daemon") return reportError("status", "query the daemon", r.error);
      if (r.stage === "down") {
        for (const reason of r.reasons) process.stderr.write(`svp status: ${reason}\n`);
        return EXIT.FAILURE;
      }
      const report = r.report;
      if (flags.has("json")) process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      else process.stdout.write(report.servald ? formatServaldStatus(report) : formatStatus(report));
      return EXIT.OK;
    });
}

/** Columns padded to the widest cell; `head` styled only when colour is on. */
function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => "  " + cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd();
  const head = line(headers);
  return [c.dim(head), ...rows.map(line)].join("\n") + "\n";
}

function short(sid: string): string {
  return sid.slice(0, 8) + "…";
}

export function formatStatus(r: StatusReport): string {
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`${c.bold(k.padEnd(10))} ${v}\n`);
  kv("identity", r.identity.sid);
  if (r.identity.sids.length > 1) kv("others", r.identity.sids.slice(1).join(" "));
  kv("backend", r.backend);
  kv("daemon", `pid ${r.daemon.pid}, up ${formatDuration(r.daemon.uptimeMs)}, version ${r.daemon.version}`);
  kv("home", r.daemon.home);
  kv("udp", r.daemon.udp.join("  ") || "(none)");
  kv("discovery", r.daemon.discovery.join(", ") || "static peers only, none configured");
  for (const n of r.daemon.notes ?? []) kv("note", n);
  const api = r.daemon.api;
  if (api) {
    const cut = Object.entries(api.disconnected).filter(([, n]) => n > 0);
    kv("local api", `${api.clients} client${api.clients === 1 ? "" : "s"} (limit ${api.maxClients}), ${formatBytes(api.queuedBytes)} unread by them, ${formatBytes(api.partialBytes)} of unfinished frames${cut.length ? `; disconnected: ${cut.map(([k, n]) => `${k} ${n}`).join(", ")}` : ""}`);
  }
  const live = r.peers.filter((p) => p.live);
  out.push(`\n${c.bold("peers")} (${live.length} live${r.peers.length > live.length ? `, ${r.peers.length - live.length} expired` : ""})\n`);
  if (r.peers.length) {
    out.push(
      table(
        ["SID", "ADDRESS", "SOURCE", "STATE", "LAST SEEN", "RTT", "PACKETS IN/OUT", "BYTES IN/OUT"],
        r.peers.map((p) => [
          p.sid,
          p.address ?? "-",
          p.source,
          p.live ? "live" : "expired",
          p.lastSeenMs === null ? "-" : formatDuration(p.lastSeenMs) + " ago",
          p.rttMs === null ? "-" : `${p.rttMs} ms`,
          `${p.packetsIn}/${p.packetsOut}`,
          `${formatBytes(p.bytesIn)}/${formatBytes(p.bytesOut)}`,
        ]),
      ),
    );
  }
  // What only the clients say is marked: their names always, a pid the kernel could not confirm, and every stream figure.
  const pidText = (pid: number | null, reported: string[] | undefined) => (pid === null ? "-" : `${pid}${!reported || reported.includes("pid") ? " (claimed)" : ""}`);
  if (r.routes) {
    // Every reachable node, neighbours first; a neighbour's next hop is itself.
    const routes = [...r.routes].sort((a, b) => a.hops - b.hops || a.sid.localeCompare(b.sid));
    out.push(`\n${c.bold("routes")} (${routes.length} reachable node${routes.length === 1 ? "" : "s"}${r.routing ? `, ${r.routing.forwardedPackets} frames forwarded for others` : ""})\n`);
    if (routes.length) out.push(table(["SID", "HOPS", "NEXT HOP", "METRIC", "MTU"], routes.map((x) => [x.sid, String(x.hops), x.nextHop === x.sid ? "direct" : `via ${short(x.nextHop)}`, String(x.metric), String(x.mtu)])));
  }
  out.push(`\n${c.bold("ports")} (${r.ports.length})\n`);
  if (r.ports.length) {
    out.push(table(["SID", "PORT", "PID", "CLIENT (as it names itself)"], r.ports.map((p) => [short(p.sid), String(p.port), pidText(p.pid, p.clientReported), p.client])));
  }
  out.push(`\n${c.bold("streams")} (${r.streams.length}${r.streamsOmitted ? ` shown, ${r.streamsOmitted} more` : ""}${r.streams.length ? "; as reported by their clients" : ""})\n`);
  if (r.streams.length) {
    out.push(
      table(
        ["LOCAL", "REMOTE", "STATE", "IN", "OUT", "AGE", "MSP", "WINDOW", "RTT", "RETX/LOSS", "CLIENT"],
        r.streams.map((s) => [
          `${short(s.localSid)}:${s.localPort}`,
          `${short(s.remoteSid)}:${s.remotePort}`,
          s.state,
          formatBytes(s.bytesIn),
          formatBytes(s.bytesOut),
          formatDuration(s.ageMs),
          s.msp ? (s.msp.extension === "on" ? "ext" : s.msp.extension) : "-",
          s.msp ? `${s.msp.packetsInFlight}${s.msp.cwnd === null ? "" : `/${formatBytes(s.msp.cwnd)}`}` : "-",
          s.msp?.srttMs != null ? `${s.msp.srttMs.toFixed(1)} ms` : "-",
          s.msp ? `${s.msp.retransmissions}/${s.msp.losses}` : "-",
          `${s.client}${s.pid === null ? "" : ` (pid ${s.pid}${!s.clientReported || s.clientReported.includes("pid") ? ", claimed" : ""})`}`,
        ]),
      ),
    );
  }
  const drops = Object.entries(r.drops).filter(([, n]) => n > 0);
  if (drops.length) out.push(`\n${c.bold("dropped")}  ${drops.map(([k, n]) => `${k} ${n}`).join(", ")}\n`);
  const g = r.floodGuard;
  if (g && (g.underLoad || g.kernelFilter || g.refused > 0)) {
    const state = [g.underLoad ? c.bold("under load: unknown senders must return a cookie") : "not under load", ...(g.kernelFilter ? [c.bold("kernel filter on")] : [])].join(", ");
    out.push(`\n${c.bold("flood guard")}  ${state}; refused ${g.refused}, cookies sent ${g.cookiesSent}, admitted by cookie ${g.cookieAdmitted}\n`);
  }
  return out.join("");
}

const SOURCE_NAMES = { option: "--servald-instance", env: "SERVALINSTANCE_PATH", default: "servald's default run directory" } as const;

/** The servald backend: the daemon's identity and route table (servald reports no ports or streams of its clients). */
export function formatServaldStatus(r: StatusReport): string {
  const sd = r.servald!;
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`${c.bold(k.padEnd(10))} ${v}\n`);
  kv("identity", r.identity.sid || "(none unlocked)");
  if (r.identity.sids.length > 1) kv("others", r.identity.sids.slice(1).join(" "));
  kv("backend", "servald");
  kv("instance", `${sd.instance} (${SOURCE_NAMES[sd.instanceSource]})`);
  const daemon = [r.daemon.pid ? `pid ${r.daemon.pid}` : "pid unknown", r.daemon.startedAt ? `up ${formatDuration(r.daemon.uptimeMs)}` : "", r.daemon.version].filter(Boolean);
  kv("daemon", daemon.join(", "));
  kv("interfaces", sd.interfaces.join(", ") || "(none)");
  if (sd.via === "cli") kv("asked", `servald's CLI (${sd.cli})`);
  for (const n of sd.notes) kv("note", n);
  const live = r.peers.filter((p) => p.live);
  out.push(`\n${c.bold("peers")} (${live.length} reachable${r.peers.length > live.length ? `, ${r.peers.length - live.length} known but unreachable` : ""})\n`);
  if (r.peers.length) {
    out.push(
      table(
        ["SID", "REACH", "HOPS", "VIA"],
        r.peers.map((p) => [
          p.sid,
          p.route?.reachable.join(",") ?? (p.live ? "reachable" : "unreachable"),
          p.route?.hops === null || p.route?.hops === undefined ? "-" : String(p.route.hops),
          p.route?.nextHop ? `next hop ${short(p.route.nextHop)}` : (p.route?.interface ?? "-"),
        ]),
      ),
    );
  }
  return out.join("");
}
