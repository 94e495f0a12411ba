/** `svp id`: print this instance's primary SID (creating the identity on first use). */

import type { CAC } from "cac";
import { readIdentity, resolveHome, sidToBase32, sidToHex } from "../src/index.ts";

export function register(cli: CAC): void {
  cli
    .command("id", "Print this node's primary SID (64 hex digits)")
    .option("--home <dir>", "Instance directory (default: $SVP_HOME, else $XDG_STATE_HOME/svp or ~/.local/state/svp)")
    .option("--base32", "Print the 52-character base32 form used in DNS names")
    .action((flags: { home?: string; base32?: boolean }) => {
      const home = resolveHome(flags.home);
      const id = readIdentity(home);
      if (id.created) process.stderr.write(`svp id: created a new identity in ${home}\n`);
      process.stdout.write((flags.base32 ? sidToBase32(id.sid) : sidToHex(id.sid)) + "\n");
      return 0;
    });
}
