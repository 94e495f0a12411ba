/**
 * Proxy credentials (`--auth USER:PASS`, `--auth-file FILE`): one check shared by SOCKS5
 * (RFC 1929) and HTTP (`Proxy-Authorization: Basic`). Credentials are compared as UTF-8
 * bytes in time independent of where they differ.
 */

import { UsageError } from "../errors.ts";

const utf8 = new TextEncoder();

export interface Credential {
  user: string;
  pass: string;
}

/** Parse "user:pass" (split at the first colon). Throws a UsageError mentioning `what`. */
export function parseCredential(text: string, what = "--auth"): Credential {
  const colon = text.indexOf(":");
  if (colon < 0) throw new UsageError(`invalid ${what}: expected USER:PASS`);
  const user = text.slice(0, colon);
  const pass = text.slice(colon + 1);
  if (user.length === 0) throw new UsageError(`invalid ${what}: empty user name`);
  if (pass.length === 0) throw new UsageError(`invalid ${what}: empty password`);
  if (utf8.encode(user).length > 255 || utf8.encode(pass).length > 255) throw new UsageError(`invalid ${what}: user name and password are limited to 255 bytes each (SOCKS5)`);
  if (/[\x00-\x1f\x7f]/.test(text)) throw new UsageError(`invalid ${what}: control characters are not allowed`);
  return { user, pass };
}

/**
 * Parse an auth file: one `user:pass` per line; blank lines and lines starting with `#`
 * are ignored. Throws a UsageError naming the file and line.
 */
export function parseCredentialsFile(text: string, path: string): Credential[] {
  const out: Credential[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;
    out.push(parseCredential(line, `--auth-file ${path} line ${i + 1}`));
  }
  if (out.length === 0) throw new UsageError(`invalid --auth-file ${path}: no user:pass lines`);
  return out;
}

export class Credentials {
  readonly #entries: { user: Uint8Array; pass: Uint8Array; name: string }[];

  constructor(list: Credential[]) {
    this.#entries = list.map((c) => ({ user: utf8.encode(c.user), pass: utf8.encode(c.pass), name: c.user }));
  }

  get size(): number {
    return this.#entries.length;
  }

  /** The user name when `user`/`pass` match an entry, else undefined. */
  check(user: Uint8Array, pass: Uint8Array): string | undefined {
    let found: string | undefined;
    for (const e of this.#entries) {
      // Non-short-circuit: evaluate both comparisons for every entry.
      const ok = sameBytes(e.user, user) & sameBytes(e.pass, pass);
      if (ok && found === undefined) found = e.name;
    }
    return found;
  }
}

/** 1 when equal, else 0; runs over the longer input whatever the contents. */
function sameBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0 ? 1 : 0;
}
