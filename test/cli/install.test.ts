/**
 * `make install PREFIX=<tmp>` / `make uninstall PREFIX=<tmp>`: the binary runs, man reads the
 * installed page, the completions are where each shell looks and load, the systemd unit runs
 * the installed binary; uninstall removes exactly what install created (files and the
 * directories it made), leaving what was there before. Builds dist/svp first when it is not
 * up to date (as `make install` does; offline it uses the system Node, see scripts/sea.mjs).
 */

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "svp-install-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** Every path under `dir`, relative, sorted (directories with a trailing slash). */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        out.push(relative(dir, p) + "/");
        walk(p);
      } else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

test("make install PREFIX=<tmp>, then make uninstall removes exactly what it installed", { timeout: 600_000 }, () => {
  // PREFIX exists with something of the user's in share/man (which must survive uninstall).
  const prefix = join(work, "prefix");
  mkdirSync(join(prefix, "share", "man"), { recursive: true });
  writeFileSync(join(prefix, "share", "man", "mine"), "not svp's\n");
  const before = tree(work);

  const install = spawnSync("make", ["--no-print-directory", "install", `PREFIX=${prefix}`], { cwd: ROOT, encoding: "utf8", timeout: 580_000 });
  assert.equal(install.status, 0, install.stdout + install.stderr);
  assert.match(install.stdout, new RegExp(`svp install: svp \\S+ into ${prefix}: bin/svp \\(\\d+\\.\\d MB\\)`));

  const bin = join(prefix, "bin", "svp");
  const version = spawnSync(bin, ["--version"], { encoding: "utf8" });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^svp \d+\.\d+\.\d+\S*\n$/);

  const page = join(prefix, "share", "man", "man1", "svp.1");
  if (has("man")) {
    const man = spawnSync("man", ["--warnings", "-l", page], { encoding: "utf8", env: { ...process.env, MANWIDTH: "80", MANPAGER: "cat", PAGER: "cat" } });
    assert.equal(man.status, 0, man.stderr);
    assert.equal(man.stderr, "");
    assert.match(man.stdout, /^SVP\(1\)[\s\S]*svp completion <bash\|zsh\|fish>/);
  } else {
    assert.match(readFileSync(page, "utf8"), /^\.TH SVP 1 /m);
  }

  // Where each shell looks, and they load.
  const bashFile = join(prefix, "share", "bash-completion", "completions", "svp");
  const bash = spawnSync("bash", ["--norc", "--noprofile", "-c", `source ${bashFile} && complete -p svp`], { encoding: "utf8" });
  assert.equal(bash.stdout.trim(), "complete -F _svp svp", bash.stderr);
  assert.match(readFileSync(join(prefix, "share", "zsh", "site-functions", "_svp"), "utf8"), /^#compdef svp\n/);
  assert.match(readFileSync(join(prefix, "share", "fish", "vendor_completions.d", "svp.fish"), "utf8"), /^complete -c svp -n __svp_needs_command -a connect /m);

  // The unit runs the installed binary.
  const unit = readFileSync(join(prefix, "share", "systemd", "user", "svp.service"), "utf8");
  assert.match(unit, new RegExp(`^ExecStart=${bin} daemon run$`, "m"));
  assert.doesNotMatch(unit, /%h\/\.local\/bin/);

  const installed = tree(work).filter((p) => !before.includes(p));
  for (const p of ["prefix/bin/svp", "prefix/share/man/man1/svp.1", "prefix/share/bash-completion/completions/svp", "prefix/share/zsh/site-functions/_svp", "prefix/share/fish/vendor_completions.d/svp.fish", "prefix/share/systemd/user/svp.service"]) {
    assert.ok(installed.includes(p), `${p} not installed`);
  }

  const uninstall = spawnSync("make", ["--no-print-directory", "uninstall", `PREFIX=${prefix}`], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  assert.equal(uninstall.status, 0, uninstall.stdout + uninstall.stderr);
  assert.deepEqual(tree(work), before);
  assert.ok(existsSync(join(prefix, "share", "man", "mine")));
});
