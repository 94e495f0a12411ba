/**
 * Same-host discovery directory: every running daemon of this user writes a file
 * `<pid>-<port>.port` there; daemons send hellos to 127.0.0.1:<port> of the others.
 * Only loopback traffic, no broadcast. Entries of processes that are gone are removed.
 *
 * Location: $SVP_DISCOVERY_DIR, else $XDG_RUNTIME_DIR/svp-discovery, else
 * <tmpdir>/svp-discovery-<uid>. It must be owned by this user and not accessible to others.
 */

import { lstatSync, mkdirSync, readdirSync, unlinkSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SvpError } from "../errors.ts";
import type { RendezvousEntry, RendezvousRegistry } from "../node/node-io.ts";
import { isProcessAlive } from "./instance-files.ts";

const MAX_ENTRIES = 256;

export function rendezvousDirPath(): string {
  const env = process.env;
  if (env.SVP_DISCOVERY_DIR) return resolve(env.SVP_DISCOVERY_DIR);
  if (env.XDG_RUNTIME_DIR && env.XDG_RUNTIME_DIR.startsWith("/")) return join(env.XDG_RUNTIME_DIR, "svp-discovery");
  const uid = typeof process.getuid === "function" ? process.getuid() : "user";
  return join(tmpdir(), `svp-discovery-${uid}`);
}

/** Open (creating it 0700) the rendezvous directory; throws when it is unsafe. */
export function openRendezvousDir(dir = rendezvousDirPath()): RendezvousRegistry {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined;
  if (!st.isDirectory()) throw new SvpError("ERR_NOT_ALLOWED", `discovery directory ${dir} is not a directory`);
  if (uid !== undefined && st.uid !== uid) throw new SvpError("ERR_NOT_ALLOWED", `discovery directory ${dir} belongs to another user; same-host discovery is off (set SVP_DISCOVERY_DIR)`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  let own: string | undefined;
  return {
    register(entry: RendezvousEntry) {
      own = join(dir, `${process.pid}-${entry.port}.port`);
      writeFileSync(own, `${entry.port}\n`, { mode: 0o600 });
    },
    list() {
      const out: RendezvousEntry[] = [];
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return out;
      }
      for (const name of names) {
        const m = /^(\d{1,10})-(\d{1,5})\.port$/.exec(name);
        if (!m) continue;
        const pid = Number(m[1]);
        const port = Number(m[2]);
        if (port < 1 || port > 65535) continue;
        if (!isProcessAlive(pid)) {
          try {
            unlinkSync(join(dir, name));
          } catch {
            // someone else cleaned it
          }
          continue;
        }
        out.push({ port });
        if (out.length >= MAX_ENTRIES) break;
      }
      return out;
    },
    unregister() {
      if (!own) return;
      try {
        unlinkSync(own);
      } catch {
        // gone
      }
      own = undefined;
    },
  };
}
