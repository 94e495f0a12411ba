/** `svp id`: print this instance's primary SID (creating the identity on first use). */

import type { CAC } from "cac";
import type { CommandLine } from "./command-line.ts";
import { backendFlags } from "./mesh-flags.ts";
import { connectServald, isSvpError, readIdentity, resolveHome, sidToBase32, sidToHex, unixDatagramSupport } from "../src/index.ts";
import type { Sid } from "../src/index.ts";
import { reportError } from "./render.ts";

export function register(cli: CAC): void {
  cli
    .command("id", "Print this node's primary SID (64 hex digits)")
    .usage("id [options]")
    .option("--home <dir>", "Instance directory (default: $SVP_HOME, else $XDG_STATE_HOME/svp or ~/.local/state/svp)")
    .option("--base32", "Print the 52-character base32 form used in DNS names")
    .option("--mesh <backend>", "auto (servald's identity when it answers, else the embedded node's), servald or embedded (default: $SVP_MESH, else auto)")
    .option("--servald-instance <dir>", "servald instance directory (default: $SERVALINSTANCE_PATH, else servald's default run directories)")
    .action(async ({ flags }: CommandLine) => {
      const format = (sid: Sid) => (flags.has("base32") ? sidToBase32(sid) : sidToHex(sid)) + "\n";
      const { mesh: mode, servaldInstance: instance, home: homeFlag } = backendFlags(flags);
      // The identity the other commands would use: servald's primary one when it answers.
      if (mode === "servald" || instance !== undefined || (mode === "auto" && unixDatagramSupport().available)) {
        try {
          const t = await connectServald({ instance, connectTimeoutMs: 2000 });
          const sid = t.primarySid;
          t.close();
          process.stdout.write(format(sid));
          return 0;
        } catch (err) {
          if (mode === "servald" || instance !== undefined || !isSvpError(err, "ERR_MESH_DOWN")) return reportError("id", "reach servald", err);
        }
      }
      const home = resolveHome(homeFlag);
      const id = readIdentity(home);
      if (id.created) process.stderr.write(`svp id: created a new identity in ${home}\n`);
      process.stdout.write(format(id.sid));
      return 0;
    });
}
