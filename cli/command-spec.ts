/**
 * The command definitions as data: read from the cac instance that `--help` prints, so the
 * man page (man-page.ts) and the completion scripts (completion-*.ts) say what `--help`
 * says. Nothing here is a copy of a flag list: names, value placeholders, descriptions,
 * defaults and examples all come from the `register(cli)` calls of the command files.
 *
 * What cac does not know is what a value *is* (a directory, one of a few words, a SID of
 * a reachable node). That comes from the value placeholder (`<dir>`, `<text|json>`) and,
 * where the placeholder is not enough, the two small tables below.
 */

import type { CAC, Command } from "cac";
import { MESH_MODES } from "../src/index.ts";
import { DAEMON_ACTIONS } from "./daemon.ts";
import { TAGLINE, VERSION } from "./version.ts";

/** The shells `svp completion` writes scripts for. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/**
 * Values only the running node knows; the completion scripts ask `svp __complete <source>`.
 * node: SIDs, base32 names and `<service>.svc.serval` names (connect's destination);
 * sid: SIDs and base32 names of this node and its reachable peers; identity: this node's
 * own SIDs; service: service names seen by discovery; peer: UDP addresses of live peers.
 */
export const DYNAMIC_SOURCES = ["node", "sid", "identity", "service", "peer"] as const;
export type DynamicSource = (typeof DYNAMIC_SOURCES)[number];

/** What a flag's value or a positional argument is, for completion. */
export type ValueKind =
  | { type: "none" }
  | { type: "choices"; values: readonly string[] }
  | { type: "file" }
  | { type: "dir" }
  | { type: "command" }
  | { type: "dynamic"; source: DynamicSource };

export interface OptionSpec {
  /** Long name without dashes ("wait", "no-shutdown"). */
  long: string;
  /** One-letter alias without the dash ("w"), if any. */
  short?: string;
  /** As written in the definition and shown by --help ("-w, --wait <duration>"). */
  flags: string;
  /** The value placeholder ("<duration>"); absent for switches. */
  placeholder?: string;
  description: string;
  /** cac's `default`, shown by --help as "(default: …)". */
  default?: string;
  /** May be given more than once (its description says "repeatable"). */
  repeatable: boolean;
  /** What the value is; `none` for switches. */
  value: ValueKind;
}

export interface ArgSpec {
  name: string;
  required: boolean;
  value: ValueKind;
}

export interface CommandSpec {
  name: string;
  /** The usage line after "svp " ("connect [options] <SID|name> <mdp-port|service>"). */
  usage: string;
  /** The command column of `svp --help` ("connect <dest> [port]"). */
  rawName: string;
  description: string;
  args: ArgSpec[];
  options: OptionSpec[];
  examples: string[];
}

export interface CliSpec {
  name: string;
  version: string;
  tagline: string;
  commands: CommandSpec[];
  /** --help and --version. */
  globalOptions: OptionSpec[];
}

/** Positional arguments whose values the placeholder alone does not say ("command arg"). */
const ARGUMENT_VALUES: Record<string, ValueKind> = {
  "daemon action": { type: "choices", values: DAEMON_ACTIONS },
  "connect dest": { type: "dynamic", source: "node" },
  "connect port": { type: "dynamic", source: "service" },
  "discover pattern": { type: "dynamic", source: "service" },
  "completion shell": { type: "choices", values: SHELLS },
};

/** Flags whose values the placeholder alone does not say (by long name, any command). */
const OPTION_VALUES: Record<string, ValueKind> = {
  mesh: { type: "choices", values: MESH_MODES },
  allow: { type: "dynamic", source: "sid" },
  sid: { type: "dynamic", source: "identity" },
  peer: { type: "dynamic", source: "peer" },
  exec: { type: "command" },
};

/** The value placeholder at the end of an option's raw name: `<dir>`, `<[addr:]port>`. */
const PLACEHOLDER = /\s(<[^>]*>|\[[^\]]*\])\s*$/;

/** The flag names of an option's raw name, without its placeholder ("-w, --wait"). */
export function flagNames(o: OptionSpec): string {
  return o.flags.replace(PLACEHOLDER, "").trim();
}

/** The value kind a placeholder implies: `<a|b>` choices, `<dir>`, `<file>`; else free text. */
function placeholderKind(placeholder: string): ValueKind {
  const inner = placeholder.slice(1, -1);
  if (/^[a-z0-9-]+(\|[a-z0-9-]+)+$/.test(inner)) return { type: "choices", values: inner.split("|") };
  if (inner === "dir") return { type: "dir" };
  if (inner === "file") return { type: "file" };
  return { type: "none" };
}

function optionSpec(rawName: string, description: string, def: unknown): OptionSpec {
  const parts = rawName.split(",").map((p) => p.trim());
  const names = parts.map((p) => p.split(/\s+/)[0]!);
  const long = names.find((n) => n.startsWith("--"))?.slice(2) ?? names[0]!.replace(/^-+/, "");
  const short = names.find((n) => /^-[^-]$/.test(n))?.slice(1);
  const placeholder = PLACEHOLDER.exec(rawName)?.[1];
  const value = placeholder === undefined ? { type: "none" as const } : (OPTION_VALUES[long] ?? placeholderKind(placeholder));
  return {
    long,
    ...(short !== undefined ? { short } : {}),
    flags: rawName,
    ...(placeholder !== undefined ? { placeholder } : {}),
    description,
    // cac prints "(default: true)" for --no-X switches; that default is implied, not chosen.
    ...(def !== undefined && !(long.startsWith("no-") && def === true) ? { default: String(def) } : {}),
    repeatable: /\brepeatable\b/i.test(description),
    value,
  };
}

function commandOf(c: Command): CommandSpec {
  return {
    name: c.name,
    usage: c.usageText ?? c.rawName,
    rawName: c.rawName,
    description: c.description,
    args: c.args.map((a) => ({ name: a.value, required: a.required, value: ARGUMENT_VALUES[`${c.name} ${a.value}`] ?? { type: "none" } })),
    options: c.options.map((o) => optionSpec(o.rawName, o.description, o.config.default)),
    examples: c.examples.map((e) => (typeof e === "function" ? e("svp") : e).replace(/^\s*\$\s+/, "")),
  };
}

/** The definitions of every command registered on `cli` (see main.ts `buildCli`). */
export function commandSpec(cli: CAC): CliSpec {
  return {
    name: cli.name,
    version: VERSION,
    tagline: TAGLINE,
    commands: cli.commands.map(commandOf),
    globalOptions: cli.globalCommand.options.map((o) => optionSpec(o.rawName, o.description, o.config.default)),
  };
}

/** The flags of `cmd` that take a value, as typed ("--forward", "-w"), for skipping their values. */
export function valueFlags(cmd: CommandSpec): string[] {
  return cmd.options.filter((o) => o.placeholder !== undefined).flatMap((o) => [`--${o.long}`, ...(o.short !== undefined ? [`-${o.short}`] : [])]);
}
