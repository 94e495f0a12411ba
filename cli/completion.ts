/**
 * `svp completion bash|zsh|fish`: print the shell's completion script, generated from the
 * same command definitions as `--help` (command-spec.ts).
 */

import type { CAC } from "cac";
import type { CommandLine } from "./command-line.ts";
import { UsageError } from "../src/index.ts";
import { SHELLS, type CliSpec, type Shell, commandSpec } from "./command-spec.ts";
import { bashScript } from "./completion-bash.ts";
import { fishScript } from "./completion-fish.ts";
import { zshScript } from "./completion-zsh.ts";

export function completionScript(shell: Shell, spec: CliSpec): string {
  return shell === "bash" ? bashScript(spec) : shell === "zsh" ? zshScript(spec) : fishScript(spec);
}

export function register(cli: CAC): void {
  cli
    .command("completion <shell>", `Print the shell completion script: ${SHELLS.join(", ")} (make install installs all three)`)
    .usage(`completion <${SHELLS.join("|")}>`)
    .example("  $ source <(svp completion bash)          # this bash session only")
    .example("  $ svp completion fish > ~/.config/fish/completions/svp.fish")
    .action(({ positionals: [name = ""] }: CommandLine) => {
      if (!(SHELLS as readonly string[]).includes(name)) throw new UsageError(`unknown shell "${name}": expected ${SHELLS.join(", ")}`);
      process.stdout.write(completionScript(name as Shell, commandSpec(cli)));
      return 0;
    });
}
