/**
 * Raw flag values. cac (through mri) turns anything numeric-looking into a number
 * ("0x10" → 16, "1e3" → 1000, "010" → 10), which would let bad values pass silently, so
 * commands read the values of their value flags from the original argv here and
 * validate them with the parsers in src/options.ts. cac still rejects unknown flags and
 * missing values.
 */

/** Every value given for `--name` (as `--name V`, `--name=V` or `-s V` for a `short` alias), in order; stops at `--`. */
export function rawValues(argv: readonly string[], name: string, short?: string): string[] {
  const flag = `--${name}`;
  const alias = short === undefined ? undefined : `-${short}`;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a === flag || (alias !== undefined && a === alias)) {
      const v = argv[i + 1];
      if (v !== undefined) out.push(v);
      i++;
    } else if (a.startsWith(flag + "=")) {
      out.push(a.slice(flag.length + 1));
    }
  }
  return out;
}

/** The single value of `--name`, or undefined; a repeated flag is a usage error via `onRepeat`. */
export function rawValue(argv: readonly string[], name: string, onRepeat: (msg: string) => Error, short?: string): string | undefined {
  const all = rawValues(argv, name, short);
  if (all.length > 1) throw onRepeat(`--${name} given ${all.length} times; it takes one value`);
  return all[0];
}

/**
 * The command's own arguments: argv without the command name, wherever it stands
 * (`svp --home DIR listen 80` is `svp listen --home DIR 80`; cac matches both).
 */
export function commandArgs(argv: readonly string[], command: string): string[] {
  const i = argv.indexOf(command);
  return i < 0 ? [...argv] : [...argv.slice(0, i), ...argv.slice(i + 1)];
}

export function hasFlag(argv: readonly string[], name: string): boolean {
  const i = argv.indexOf("--");
  return (i < 0 ? argv : argv.slice(0, i)).includes(`--${name}`);
}

/**
 * The positional arguments in argv, as typed (cac would turn an all-digit SID or port
 * like "010" into a number). `valueFlags` names the flags that take a value ("forward",
 * or "w" for `-w`), so their values are skipped; everything after `--` is positional.
 */
export function rawPositionals(argv: readonly string[], valueFlags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      out.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a.length > 1) {
      const name = a.replace(/^--?/, "");
      if (!a.includes("=") && valueFlags.includes(name)) i++;
      continue;
    }
    out.push(a);
  }
  return out;
}
