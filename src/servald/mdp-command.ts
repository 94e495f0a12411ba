/**
 * servald's daemon-side addresses on the local MDP socket: the command ports a client talks
 * to (remote SID "any") and the internal SID of its route-change subscription, plus the shape
 * of a control header (no payload, no qos, no ttl).
 */

import type { MdpHeader } from "../mdp/header.ts";
import type { MdpAddress } from "../mdp/transport.ts";
import type { Sid } from "../mesh/sid.ts";
import { SID_ANY, SID_BYTES } from "../mesh/sid.ts";

/** servald's special SID for daemon-internal bindings (31 zero bytes, then 1). */
export const SID_INTERNAL: Sid = (() => {
  const s = new Uint8Array(SID_BYTES);
  s[SID_BYTES - 1] = 1;
  return s;
})();

/** Command ports on the daemon itself (remote SID "any"), mdp_client.h. */
export const MDP_COMMAND = { LISTEN: 0, IDENTITY: 1, SEARCH_IDS: 2, SYNC_CONFIG: 3, INTERFACE: 4, ROUTE_TABLE: 5 } as const;

/** "any" SID, port 0: the client itself (a CLOSE there drops every binding of the client). */
export const MDP_NO_ADDRESS: MdpAddress = { sid: SID_ANY, port: 0 };

/** A request or binding change to the daemon: header only, qos and ttl 0. */
export function controlHeader(local: MdpAddress, remote: MdpAddress, flags = 0): MdpHeader {
  return { local, remote, flags, qos: 0, ttl: 0 };
}
