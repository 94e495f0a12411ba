/**
 * Finding and connecting to a servald: which instance directories to try, the client
 * socket's name in each (the first free `svp.<n>.socket`), the handshake, and the
 * never-throwing probe that `--mesh auto` and `svp status` use.
 */

import { SvpError } from "../errors.ts";
import type { Sid } from "../mesh/sid.ts";
import type { DatagramSocket } from "./datagram-socket.ts";
import { errnoOf } from "./errno-of.ts";
import type { ServaldInstance } from "./instance.ts";
import { CLIENT_SOCKET_SLOTS, clientSocketName, localSocketAddress, mdpSocketAddress, resolveInstances } from "./instance.ts";
import { ServaldTransport } from "./servald-transport.ts";
import type { ServaldTransportOptions } from "./servald-transport.ts";

/**
 * Connects to servald: `options.instance`, else SERVALINSTANCE_PATH, else servald's default
 * run directories in turn. Rejects with ERR_MESH_DOWN when no daemon answers (or the native
 * addon is missing), ERR_USAGE for a bad instance path, ERR_BAD_ADDRESS for a `sid` the daemon
 * has not unlocked.
 */
export async function connectServald(options: ServaldTransportOptions): Promise<ServaldTransport> {
  const instances = resolveInstances({ instance: options.instance, env: options.env ?? {} });
  const failures: string[] = [];
  for (const instance of instances) {
    let socket: DatagramSocket;
    try {
      socket = openClientSocket(options, instance);
    } catch (err) {
      if (err instanceof SvpError && err.code === "ERR_MESH_DOWN") throw err; // the addon is unavailable
      failures.push(err instanceof Error ? err.message : String(err));
      continue;
    }
    const transport = new ServaldTransport(socket, instance, options);
    try {
      await transport.start(options.connectTimeoutMs ?? 3000);
      return transport;
    } catch (err) {
      if (err instanceof SvpError && err.code === "ERR_BAD_ADDRESS") throw err;
      failures.push(err instanceof Error ? err.message : String(err));
    }
  }
  const where = instances.length === 1 ? `instance ${instances[0]!.path}` : `any of ${instances.map((i) => i.path).join(", ")}`;
  throw new SvpError(
    "ERR_MESH_DOWN",
    `no servald answers at ${where} (${failures.join("; ")}); start it with \`servald start\`, or point --servald-instance or SERVALINSTANCE_PATH at its instance directory`,
  );
}

/** Binds the first free `svp.<n>.socket` (autobind when all are taken) and connects to the daemon. */
function openClientSocket(options: ServaldTransportOptions, instance: ServaldInstance): DatagramSocket {
  const abstract = options.abstract ?? true;
  const connect = mdpSocketAddress(instance, abstract);
  for (let slot = 0; slot < CLIENT_SOCKET_SLOTS; slot++) {
    try {
      return options.openSocket({ bind: localSocketAddress(instance.path, clientSocketName(slot), abstract), connect });
    } catch (err) {
      if (errnoOf(err) !== "EADDRINUSE") throw err;
    }
  }
  return options.openSocket({ bind: new Uint8Array(0), connect });
}

export type ServaldProbe =
  | { running: true; instance: ServaldInstance; primarySid: Sid; identities: Sid[]; peers: Sid[] }
  | { running: false; reason: string };

/** Whether a servald answers (for `--mesh auto` and `svp status`). Never throws. */
export async function probeServald(options: ServaldTransportOptions): Promise<ServaldProbe> {
  try {
    const t = await connectServald({ connectTimeoutMs: 1000, ...options });
    const result: ServaldProbe = { running: true, instance: t.instance, primarySid: t.primarySid, identities: t.identities, peers: t.peers() };
    t.close();
    return result;
  } catch (err) {
    return { running: false, reason: err instanceof Error ? err.message : String(err) };
  }
}
