/**
 * The one reading of argv (cli/command-line.ts): values and positionals exactly as typed,
 * options before the command name, repeats kept, and every malformed line a usage error
 * that names what is wrong.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSvp } from "./entry.ts";
import { readCommandLine } from "../../cli/command-line.ts";
import type { CommandLine } from "../../cli/command-line.ts";
import { commandSpec } from "../../cli/command-spec.ts";
import { connectConfig } from "../../cli/connect.ts";
import { listenConfig } from "../../cli/listen.ts";
import { socksConfig } from "../../cli/socks.ts";
import { buildCli } from "../../cli/main.ts";
import { UsageError } from "../../src/errors.ts";
import { sidToHex } from "../../src/mesh/sid.ts";

const SPEC = commandSpec(buildCli());
const line = (argv: string[], mode?: "strict" | "lenient"): CommandLine => readCommandLine(SPEC, argv, mode);
const usage = (argv: string[], message: RegExp) =>
  assert.throws(() => line(argv), (e: unknown) => e instanceof UsageError && message.test(e.message), `${argv.join(" ")} → ${message}`);

const SID = "AB" + "0".repeat(61) + "1";
let root: string;
let env: Record<string, string>;

before(() => {
  root = mkdtempSync(join(tmpdir(), "svp-cli-flags-"));
  env = { SVP_DISCOVERY_DIR: join(root, "discovery"), SVP_MESH: "embedded", SVP_HOME: join(root, "default-home") };
});

after(() => rmSync(root, { recursive: true, force: true }));

describe("readCommandLine", () => {
  test("finds the command wherever it stands, and flags before it belong to it", () => {
    const l = line(["--home", "/h", "listen", "--once", "80"]);
    assert.equal(l.command?.name, "listen");
    assert.deepEqual(l.positionals, ["80"]);
    assert.equal(l.flags.one("home"), "/h");
    assert.equal(l.flags.has("once"), true);
    // A flag's value is never taken for the command name.
    assert.equal(line(["--home", "socks", "socks"]).flags.one("home"), "socks");
  });

  test("a flag takes a value in every command or in none (finding the command name relies on it)", () => {
    const kinds = new Map<string, Set<string>>();
    for (const o of [...SPEC.globalOptions, ...SPEC.commands.flatMap((c) => c.options)]) {
      kinds.set(o.long, (kinds.get(o.long) ?? new Set()).add(`${o.placeholder === undefined ? "switch" : "value"} -${o.short ?? ""}`));
    }
    assert.ok(kinds.size > 30, "the definitions were read");
    for (const [name, k] of kinds) assert.equal(k.size, 1, `--${name}: ${[...k].join(", ")}`);
  });

  test("values and positionals stay as typed: no number coercion", () => {
    const l = line(["connect", "-w", "010", "--idle=0x10", "--workers", "1e3", "--forward", "0", "0".repeat(64), "080"]);
    assert.equal(l.flags.one("wait"), "010");
    assert.equal(l.flags.one("idle"), "0x10");
    assert.equal(l.flags.one("workers"), "1e3");
    assert.deepEqual(l.positionals, ["0".repeat(64), "080"]);
  });

  test("short aliases, groups and --name=value all land on the long name; repeats are kept", () => {
    const l = line(["connect", "-Nw", "5", "--wait=6", SID, "80"]);
    assert.equal(l.flags.has("no-shutdown"), true);
    assert.deepEqual(l.flags.all("wait"), ["5", "6"]);
    assert.throws(() => l.flags.one("wait"), (e: unknown) => e instanceof UsageError && e.message === "--wait given 2 times; it takes one value");
    assert.equal(line(["connect", "-N", SID, "80"]).flags.has("no-shutdown"), true);
    assert.equal(line(["connect", SID, "80"]).flags.has("no-shutdown"), false);
    assert.deepEqual(line(["socks", "--listen", ":0", "--listen=unix:/tmp/s"]).flags.all("listen"), [":0", "unix:/tmp/s"]);
    // A kebab-case switch takes no value: the port after it stays the port.
    const listen = line(["listen", "--forward", "8000", "--proxy-protocol", "80"]);
    assert.equal(listen.flags.has("proxy-protocol"), true);
    assert.deepEqual(listen.positionals, ["80"]);
  });

  test("a negative value is the flag's value (its own check says what is wrong with it)", () => {
    assert.equal(line(["socks", "--max-conns", "-1"]).flags.one("max-conns"), "-1");
    assert.equal(line(["connect", "-w", "-5", SID, "80"]).flags.one("wait"), "-5");
    assert.equal(line(["listen", "--allow-file", "-", "80"]).flags.one("allow-file"), "-");
  });

  test("everything after -- is positional", () => {
    assert.deepEqual(line(["connect", "--", SID, "-7"]).positionals, [SID, "-7"]);
  });

  test("each malformed line is a usage error naming what is wrong", () => {
    usage(["socks", "--bogus"], /^unknown option --bogus$/);
    usage(["connect", "-x", SID, "80"], /^unknown option -x$/);
    usage(["socks", "--bind", "x"], /^unknown option --bind$/); // daemon's flag, not socks'
    usage(["socks", "--listen"], /^missing value for --listen$/);
    usage(["socks", "--listen", "--quiet"], /^missing value for --listen \(to give it a value starting with "-", write --listen=--quiet\)$/);
    usage(["connect", "--once=yes", SID, "80"], /^--once takes no value \(given "yes"\)$/);
    usage(["connect"], /^missing argument <dest>$/);
    usage(["daemon"], /^missing argument <action>$/);
    usage(["connect", SID, "80", "extra"], /^unexpected argument "extra"$/);
    usage(["status", "extra"], /^unexpected argument "extra"$/);
    // --help asks for the help, not for the arguments the command would need.
    assert.equal(line(["connect", "--help"]).flags.has("help"), true);
    assert.equal(line(["-h", "daemon"]).command?.name, "daemon");
  });

  test("no command: only --help and --version are known, and the first word is kept", () => {
    const l = line(["--version"]);
    assert.equal(l.command, undefined);
    assert.equal(l.flags.has("version"), true);
    assert.deepEqual(line(["frobnicate"]).positionals, ["frobnicate"]);
    usage(["--quiet"], /^unknown option --quiet$/);
  });

  test("lenient (a half-typed line for completion): skips what does not fit, keeps the rest", () => {
    const l = line(["connect", "--bogus", "--mesh", "embedded", SID, "--wait"], "lenient");
    assert.equal(l.command?.name, "connect");
    assert.equal(l.flags.one("mesh"), "embedded");
    assert.deepEqual(l.positionals, [SID]);
  });

  test("config builders read the parsed line: socks flags validated from the typed strings", () => {
    const cfg = socksConfig(line(["socks", "--listen", ":0", "--max-conns", "010", "--workers", "2", "--quiet"]));
    assert.equal(cfg.maxConns, 10);
    assert.equal(cfg.workers, 2);
    assert.equal(cfg.quiet, true);
    assert.throws(() => socksConfig(line(["socks", "--max-conns", "0x10"])), (e: unknown) => e instanceof UsageError && /^invalid --max-conns "0x10"/.test(e.message));
  });
});

describe("options before the command name", () => {
  for (const args of [
    (h: string) => ["--home", h, "listen", "--no-autostart", "80"],
    (h: string) => ["--home", h, "connect", "--no-autostart", SID, "80"],
    (h: string) => ["--home", h, "discover", "--no-autostart"],
  ]) {
    const shown = args("DIR").join(" ");
    test(`svp ${shown} uses DIR`, async () => {
      const h = join(root, "h-" + shown.split(" ")[2]);
      const r = await runSvp(args(h), { env, timeoutMs: 20_000 });
      assert.equal(r.code, 6, `exit 6 (no daemon for --home), got ${r.code}: ${r.stderr}`);
      assert.ok(r.stderr.includes(`no svp daemon is running for ${h}`), `the error names the --home directory: ${r.stderr}`);
    });
  }
});

describe("positional arguments as typed", () => {
  const DIGITS = "0".repeat(63) + "1";
  test("svp connect --sid X X PORT: the destination is not confused with the --sid value", async () => {
    const h = join(root, "h-sid");
    const r = await runSvp(["connect", "--home", h, "--no-autostart", "--sid", SID, SID, "7000"], { env, timeoutMs: 20_000 });
    assert.equal(r.code, 6, `gets as far as opening the mesh (exit 6, no daemon), got ${r.code}: ${r.stderr}`);
  });

  test("a negative value is that flag's bad value, not an unknown option", async () => {
    const [socks, wait] = await Promise.all([
      runSvp(["socks", "--max-conns", "-1"], { env, timeoutMs: 20_000 }),
      runSvp(["connect", "-w", "-5", SID, "80"], { env, timeoutMs: 20_000 }),
    ]);
    assert.equal(socks.code, 2, socks.stderr);
    assert.match(socks.stderr, /^svp socks: invalid --max-conns "-1": /);
    assert.equal(wait.code, 2, wait.stderr);
    assert.match(wait.stderr, /^svp connect: invalid --wait "-5": /);
  });

  test("an all-digit SID stays 64 digits, and a port like 080 is read as typed", () => {
    const cfg = connectConfig(line(["connect", "--forward", "0", "--once", DIGITS, "80"]));
    assert.equal(cfg.target.name.kind === "node" && sidToHex(cfg.target.name.sid), DIGITS);
    assert.equal(cfg.target.port, 80);
    assert.equal(listenConfig(line(["listen", "--forward", "8000", "080"])).port, 80);
  });
});
