/** The servald backend wired to the platform: its MDP socket through the native addon, its environment. */

import { connectServald as connectServaldWith, probeServald as probeServaldWith } from "../servald/connect-servald.ts";
import type { ServaldProbe } from "../servald/connect-servald.ts";
import type { ServaldTransport, ServaldTransportOptions } from "../servald/servald-transport.ts";
import { openUnixDatagram, servaldEnvironment } from "./unix-dgram.ts";

/** `--servald-instance`, `--sid` and timing; the socket and environment come from the platform. */
export type ServaldOptions = Omit<ServaldTransportOptions, "openSocket" | "env">;

/**
 * Connect to servald (`instance`, else SERVALINSTANCE_PATH, else servald's default run
 * directories). Rejects ERR_MESH_DOWN when no daemon answers or the native addon is missing.
 */
export function connectServald(options: ServaldOptions = {}): Promise<ServaldTransport> {
  return connectServaldWith({ ...options, openSocket: openUnixDatagram, env: servaldEnvironment() });
}

/** Whether a servald answers (for `--mesh auto` and `svp status`); never throws. */
export function probeServald(options: ServaldOptions = {}): Promise<ServaldProbe> {
  return probeServaldWith({ ...options, openSocket: openUnixDatagram, env: servaldEnvironment() });
}
