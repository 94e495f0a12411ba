/**
 * The one reading of a command line. node:util's `parseArgs` splits argv, configured from
 * the same definitions that `--help` prints (command-spec.ts), and every value stays as
 * typed. cac defines the commands and prints their help, but it does not parse: mri, under
 * it, turns "010", "0x10" and "1e3" into numbers (an all-digit SID loses digits), reads
 * `-N` as its negation's default and keeps only one of `-w 5 --wait 6`. Each command's
 * config builder validates the strings with the parsers in src/options.ts.
 */

import { parseArgs } from "node:util";
import { UsageError } from "../src/index.ts";
import type { CliSpec, CommandSpec, OptionSpec } from "./command-spec.ts";

/** The flags of one command line, by long name ("wait", "no-shutdown"), values as typed. */
export class Flags {
  readonly #values: ReadonlyMap<string, readonly string[]>;
  readonly #switches: ReadonlySet<string>;

  constructor(values: ReadonlyMap<string, readonly string[]>, switches: ReadonlySet<string>) {
    this.#values = values;
    this.#switches = switches;
  }

  /** Every value given for `--name` (or its short alias), in order. */
  all(name: string): string[] {
    return [...(this.#values.get(name) ?? [])];
  }

  /** The value of `--name`, or undefined; given more than once is a usage error. */
  one(name: string): string | undefined {
    const all = this.#values.get(name) ?? [];
    if (all.length > 1) throw new UsageError(`--${name} given ${all.length} times; it takes one value`);
    return all[0];
  }

  /** Whether the switch `--name` (or its short alias) was given. */
  has(name: string): boolean {
    return this.#switches.has(name);
  }
}

export interface CommandLine {
  /** The command named on the line (the first positional argument), if it is one. */
  command: CommandSpec | undefined;
  /** The positional arguments after the command name, as typed (everything after `--` too). */
  positionals: string[];
  flags: Flags;
}

type ParseArgsOptions = Record<string, { type: "string" | "boolean"; short?: string; multiple: true }>;

function parseArgsOptions(options: readonly OptionSpec[]): ParseArgsOptions {
  const out: ParseArgsOptions = {};
  for (const o of options) out[o.long] = { type: o.placeholder === undefined ? "boolean" : "string", ...(o.short !== undefined ? { short: o.short } : {}), multiple: true };
  return out;
}

/** A value that looks like the next flag rather than this one's value (`--listen --quiet`); "-5" and "-" are values. */
const FLAG_LIKE = /^-(-|[A-Za-z])/;

/**
 * Read `argv` (the words after `svp`) against `spec`: options may stand before the command
 * name (`svp --home DIR listen 80`). Strict (the default): an unknown option, a missing or
 * flag-like value, a value given to a switch, a missing or extra positional argument are
 * each a UsageError naming it. Lenient (shell completion, a line still being typed):
 * whatever does not fit is skipped.
 */
export function readCommandLine(spec: CliSpec, argv: readonly string[], mode: "strict" | "lenient" = "strict"): CommandLine {
  const strict = mode === "strict";
  // Pass 1 finds the command name, knowing every command's flags (so a flag's value is not taken for it).
  const everyOption = new Map<string, OptionSpec>();
  for (const o of [...spec.globalOptions, ...spec.commands.flatMap((c) => c.options)]) if (!everyOption.has(o.long)) everyOption.set(o.long, o);
  const first = parseArgs({ args: [...argv], options: parseArgsOptions([...everyOption.values()]), strict: false, allowPositionals: true, tokens: true });
  const name = first.tokens.find((t) => t.kind === "positional");
  const command = name === undefined ? undefined : spec.commands.find((c) => c.name === name.value);
  const args = command === undefined || name === undefined ? [...argv] : argv.filter((_, i) => i !== name.index);

  // Pass 2 reads the line against that command's own flags (or only --help and --version).
  const known = [...(command?.options ?? []), ...spec.globalOptions];
  const byLong = new Map(known.map((o) => [o.long, o]));
  const { tokens } = parseArgs({ args, options: parseArgsOptions(known), strict: false, allowPositionals: true, tokens: true });
  const values = new Map<string, string[]>();
  const switches = new Set<string>();
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === "positional") positionals.push(t.value);
    if (t.kind !== "option") continue;
    const o = byLong.get(t.name);
    if (o === undefined) {
      if (strict) throw new UsageError(`unknown option ${t.rawName}`);
      continue;
    }
    if (o.placeholder === undefined) {
      if (t.value !== undefined && strict) throw new UsageError(`--${o.long} takes no value (given "${t.value}")`);
      switches.add(o.long);
      continue;
    }
    if (t.value === undefined || (!t.inlineValue && FLAG_LIKE.test(t.value))) {
      if (strict) throw new UsageError(`missing value for --${o.long}${t.value === undefined ? "" : ` (to give it a value starting with "-", write --${o.long}=${t.value})`}`);
      continue;
    }
    values.set(o.long, [...(values.get(o.long) ?? []), t.value]);
  }
  // `svp connect --help` asks for the help, not for the arguments it lacks.
  if (strict && command !== undefined && !switches.has("help")) {
    const required = command.args.filter((a) => a.required);
    if (positionals.length < required.length) throw new UsageError(`missing argument <${required[positionals.length]!.name}>`);
    if (positionals.length > command.args.length) throw new UsageError(`unexpected argument "${positionals[command.args.length]}"`);
  }
  return { command, positionals, flags: new Flags(values, switches) };
}
