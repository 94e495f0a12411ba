/**
 * `svp __complete <source> <word> [command line words…]`: the hidden helper the completion
 * scripts call for values only the running node knows (see DYNAMIC_SOURCES in
 * command-spec.ts). Prints one candidate per line, `value<TAB>description`, those that start
 * with <word> (case-insensitively: hex SIDs print in upper case, as everywhere in svp).
 *
 * It asks the node that already runs (the embedded daemon or servald, chosen as the command
 * being completed would: its --mesh, --home and --servald-instance, else SVP_MESH) and never
 * starts one. Everything, process start included, fits in COMPLETION_DEADLINE_MS: what is
 * known by then is printed, and with no node, nothing; it always exits 0 and never writes
 * to stderr, so a completion never disturbs the command line.
 */

import { DEFAULTS, discoverServices, MESH_MODES, parseMeshName, parseSid, peekNode, sidToBase32, sidToHex } from "../src/index.ts";
import type { MeshMode, NodePeek, ServiceAnswer, Sid } from "../src/index.ts";
import { readCommandLine } from "./command-line.ts";
import { DYNAMIC_SOURCES, type CliSpec, type DynamicSource } from "./command-spec.ts";

export const COMPLETE_COMMAND = "__complete";

/**
 * Answer within this long after the process started, ms (a completion must answer within
 * 300 ms). SVP_COMPLETE_TIMEOUT_MS changes it (a slow machine; the tests).
 */
export const COMPLETION_DEADLINE_MS = 280;

/** Discovery ends this long after the last answer, at least (answers over loopback take a few ms). */
const DISCOVERY_QUIET_MS = 60;

function deadlineMs(): number {
  const text = process.env.SVP_COMPLETE_TIMEOUT_MS;
  const n = text === undefined || text === "" ? NaN : Number(text);
  return Number.isFinite(n) && n > 0 ? n : COMPLETION_DEADLINE_MS;
}

/** A candidate and what it is. */
interface Candidate {
  value: string;
  description: string;
}

export async function runComplete(spec: CliSpec, args: readonly string[]): Promise<number> {
  const [source, word = "", ...words] = args;
  // performance.now() counts from the process's start: start-up time is part of the budget.
  const remaining = deadlineMs() - performance.now();
  if (!(DYNAMIC_SOURCES as readonly string[]).includes(source ?? "") || remaining < 10) return 0;
  const found: Candidate[] = [];
  const work = collect(spec, source as DynamicSource, words, remaining, found).catch(() => undefined);
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([work, new Promise<void>((r) => (timer = setTimeout(r, remaining)))]);
  clearTimeout(timer);
  const lower = word.toLowerCase();
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const c of found) {
    if (seen.has(c.value) || !c.value.toLowerCase().startsWith(lower)) continue;
    seen.add(c.value);
    lines.push(`${c.value}\t${c.description.replace(/[\t\n]/g, " ")}\n`);
  }
  // Sockets still open (a backend that is slow to answer) must not hold the shell up.
  await new Promise<void>((r) => process.stdout.write(lines.join(""), () => r()));
  process.exit(0);
}

/** What the command line being completed says about the mesh backend, and its positionals. */
function context(spec: CliSpec, words: readonly string[]) {
  // words[0] is the program's name; the line may be half typed, so read it leniently.
  const line = readCommandLine(spec, words.slice(1), "lenient");
  const flag = (name: string): string | undefined => line.flags.all(name).at(-1);
  const meshText = flag("mesh") ?? process.env.SVP_MESH;
  const mesh = (MESH_MODES as readonly string[]).includes(meshText ?? "") ? (meshText as MeshMode) : DEFAULTS.meshMode;
  return { mesh, home: flag("home"), servaldInstance: flag("servald-instance"), command: line.command?.name, positionals: line.command ? line.positionals : [] };
}

async function collect(spec: CliSpec, source: DynamicSource, words: readonly string[], budgetMs: number, out: Candidate[]): Promise<void> {
  const ctx = context(spec, words);
  const node = await peekNode({ mesh: ctx.mesh, home: ctx.home, servaldInstance: ctx.servaldInstance, timeoutMs: budgetMs, addresses: source === "peer" });
  if (!node) return;
  try {
    const peerLabel = (p: NodePeek["peers"][number]) => (p.address ? `peer at ${p.address}` : "reachable peer");
    const addSid = (sid: Sid, description: string) => {
      out.push({ value: sidToHex(sid), description });
      out.push({ value: sidToBase32(sid), description: `${description} (base32)` });
    };
    switch (source) {
      case "identity":
        node.sids.forEach((sid, i) => out.push({ value: sidToHex(sid), description: i === 0 ? "this node (primary)" : "this node" }));
        return;
      case "sid":
        for (const p of node.peers) addSid(p.sid, peerLabel(p));
        return;
      case "peer":
        for (const p of node.peers) if (p.address) out.push({ value: p.address, description: `peer ${sidToHex(p.sid).slice(0, 8)}…` });
        return;
      case "node": {
        for (const p of node.peers) addSid(p.sid, peerLabel(p));
        if (node.sids[0]) addSid(node.sids[0], "this node");
        // `<service>.svc.serval`: whichever node offers it.
        await discover(node, undefined, budgetMs, (a) => out.push({ value: `${a.service}.svc.serval`, description: `service on ${sidToHex(a.sid).slice(0, 8)}…, port ${a.port}` }));
        return;
      }
      case "service": {
        // `svp connect <dest> <TAB>`: the services of that node only.
        const dest = ctx.command === "connect" ? ctx.positionals[0] : undefined;
        const target = dest === undefined ? undefined : nodeOf(dest);
        await discover(node, target, budgetMs, (a) => out.push({ value: a.service, description: `${a.self ? "this node" : sidToHex(a.sid).slice(0, 8) + "…"}, port ${a.port}` }));
        return;
      }
    }
  } finally {
    node.transport.close();
  }
}

/** The node a destination names (SID, base32, `[…].<SID>.serval`), if it names one. */
function nodeOf(dest: string): Sid | undefined {
  const sid = parseSid(dest);
  if (sid) return sid;
  try {
    const name = parseMeshName(dest);
    return name?.kind === "node" ? name.sid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Service discovery until answers stop coming or the budget ends: half the budget for the
 * first answer, then a tenth of it (at least DISCOVERY_QUIET_MS) after each, so that a node
 * that offers nothing does not cost the whole budget and a slow one still gets its say.
 */
async function discover(node: NodePeek, target: Sid | undefined, budgetMs: number, onAnswer: (a: ServiceAnswer) => void): Promise<void> {
  const ac = new AbortController();
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const hush = (ms: number) => {
    clearTimeout(quiet);
    quiet = setTimeout(() => ac.abort(), ms);
  };
  hush(Math.max(DISCOVERY_QUIET_MS, budgetMs / 2));
  try {
    await discoverServices(node.transport, {
      timeoutMs: Math.max(1, budgetMs),
      resendMs: 100,
      signal: ac.signal,
      ...(target ? { target } : {}),
      onAnswer: (a) => {
        onAnswer(a);
        hush(Math.max(DISCOVERY_QUIET_MS, budgetMs / 10));
      },
    });
  } finally {
    clearTimeout(quiet);
  }
}
