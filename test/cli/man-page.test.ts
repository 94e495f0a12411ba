/**
 * svp(1) against `--help`: every command's usage, description, options (with defaults) and
 * examples are in its section of the man page, as `svp <command> --help` prints them; the
 * exit codes come from the error table; every environment variable src/ and cli/ read is
 * documented; man renders the page without warnings.
 */

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERROR_TABLE } from "../../src/errors.ts";
import { runSvp } from "./entry.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
let roff = "";

/** roff to plain text (the escapes man-page.ts uses). */
function plain(s: string): string {
  return s
    .replace(/\\f[BIR]/g, "")
    .replace(/\\-/g, "-")
    .replace(/\\&/g, "")
    .replace(/\\\(dq/g, '"')
    .replace(/\\e/g, "\\");
}

/** The lines of the section `.SH name` (or `.SS` whose title starts with it), as plain text. */
function section(title: string, level: "SH" | "SS"): string[] {
  const lines = roff.split("\n");
  const start = lines.findIndex((l) => l.startsWith(`.${level} `) && plain(l.slice(4)).replace(/^"|"$/g, "").startsWith(title));
  assert.ok(start >= 0, `no .${level} ${title} in the man page`);
  const end = lines.findIndex((l, i) => i > start && (l.startsWith(".SH ") || l.startsWith(".SS ")));
  return lines.slice(start, end < 0 ? undefined : end).map(plain);
}

/** `.TP` entries of a section: head line → text line. */
function entries(lines: string[]): Map<string, string> {
  const out = new Map<string, string>();
  lines.forEach((l, i) => {
    if (l === ".TP") out.set(lines[i + 1]!, lines[i + 2]!);
  });
  return out;
}

/** The parts of `svp <cmd> --help`. */
function parseHelp(text: string) {
  const block = (name: string) => {
    const m = new RegExp(`^${name}:\\n((?: {2}.*\\n?)*)`, "m").exec(text);
    return (m?.[1] ?? "").split("\n").filter(Boolean);
  };
  return {
    usage: block("Usage")[0]!.replace(/^ {2}\$ /, ""),
    options: block("Options").map((l) => {
      const m = /^ {2}(\S.*?) {2,}(.*)$/.exec(l)!;
      return { flags: m[1]!, description: m[2]! };
    }),
    examples: block("Examples").map((l) => l.replace(/^ {2}\$ /, "")),
  };
}

before(async () => {
  const r = await runSvp(["__man"]);
  assert.equal(r.code, 0, r.stderr);
  roff = r.stdout;
});

describe("svp(1) and --help agree", () => {
  test("every command: usage, description, every option with its default, every example", async () => {
    const top = await runSvp(["--help"]);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z]+)(?: [^ ]+)*? {2,}(.+)$/gm)].map((m) => ({ name: m[1]!, description: m[2]! }));
    assert.ok(commands.length >= 8, top.stdout);
    const helps = await Promise.all(commands.map((c) => runSvp([c.name, "--help"])));
    const synopsis = section("SYNOPSIS", "SH").join("\n");
    for (const [i, c] of commands.entries()) {
      const help = parseHelp(helps[i]!.stdout);
      assert.ok(synopsis.includes(help.usage), `SYNOPSIS lacks "${help.usage}"`);
      const lines = section(help.usage, "SS");
      assert.equal(lines[1], `${c.description}.`, `${c.name}: description`);
      const options = entries(lines);
      for (const o of help.options) assert.equal(options.get(o.flags), o.description, `${c.name} ${o.flags}`);
      assert.equal(options.size, help.options.length, `${c.name}: the man page lists other options than --help: ${[...options.keys()].join(", ")}`);
      for (const e of help.examples) assert.ok(lines.includes(e), `${c.name}: example "${e}" missing`);
    }
    // And the global options.
    const global = entries(section("OPTIONS", "SH"));
    for (const o of parseHelp(top.stdout).options) assert.equal(global.get(o.flags), `${o.description}.`, o.flags);
  });

  test("EXIT STATUS lists every exit code of the error table", () => {
    const codes = entries(section("EXIT STATUS", "SH"));
    for (const code of new Set([0, ...Object.values(ERROR_TABLE).map((e) => e.exit)])) assert.ok(codes.has(String(code)), `exit ${code} missing`);
    assert.match(codes.get("6")!, /mesh backend not available/i);
  });

  test("ENVIRONMENT documents every variable src/ and cli/ read (or set for --exec)", () => {
    const documented = [...entries(section("ENVIRONMENT", "SH")).keys()].join(", ");
    const used = new Set<string>();
    const scan = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) scan(p);
        else if (name.endsWith(".ts")) {
          const text = readFileSync(p, "utf8");
          for (const m of text.matchAll(/\benv\.([A-Z][A-Z0-9_]+)|"([A-Z][A-Z0-9_]+)" in process\.env|\b(SVP_PEER_[A-Z]+):/g)) used.add(m[1] ?? m[2] ?? m[3]!);
        }
      }
    };
    scan(join(ROOT, "src"));
    scan(join(ROOT, "cli"));
    for (const generic of ["PATH", "HOME"]) used.delete(generic);
    assert.ok(used.has("SVP_HOME") && used.has("SVP_MESH") && used.has("NO_COLOR"), [...used].join(" "));
    for (const v of used) assert.ok(new RegExp(`\\b${v}\\b`).test(documented), `ENVIRONMENT lacks ${v}`);
  });

  test("FILES names the instance directory's files", () => {
    const files = section("FILES", "SH").join("\n");
    for (const f of ["keyring.json", "svp.conf", "daemon.pid", "api.sock", "daemon.log"]) assert.ok(files.includes(f), f);
  });

  test("man renders it without warnings", { skip: spawnSync("sh", ["-c", "command -v man"]).status === 0 ? false : "man is not installed" }, () => {
    const dir = mkdtempSync(join(tmpdir(), "svp-man-"));
    try {
      writeFileSync(join(dir, "svp.1"), roff);
      const r = spawnSync("man", ["--warnings", "-l", join(dir, "svp.1")], { encoding: "utf8", env: { ...process.env, MANWIDTH: "80", MANPAGER: "cat", PAGER: "cat" } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, "");
      assert.match(r.stdout, /^SVP\(1\)/);
      assert.match(r.stdout, /svp connect \[options\] <SID\|name> <mdp-port\|service>/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
