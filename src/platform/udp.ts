/** `UdpBinder` on node:dgram (Node and Deno). */

import * as dgram from "node:dgram";
import type { UdpBinder, UdpSocket } from "../node/node-io.ts";
import { compileSocketFilter } from "../node/socket-filter.ts";
import { setSocketFilter } from "./unix-dgram.ts";

export const bindUdp: UdpBinder = (req) =>
  new Promise((resolve, reject) => {
    const sock = dgram.createSocket({ type: req.family === "IPv6" ? "udp6" : "udp4", ipv6Only: req.family === "IPv6", reuseAddr: false });
    let bound = false;
    sock.on("error", (err) => {
      if (!bound) {
        sock.close();
        reject(err);
      } else req.onError(err);
    });
    sock.on("message", (msg, rinfo) => {
      req.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), { host: rinfo.address, port: rinfo.port });
    });
    sock.bind({ port: req.port, address: req.host, exclusive: true }, () => {
      bound = true;
      if (req.broadcast) sock.setBroadcast(true);
      let receiveBufferBytes: number | undefined;
      try {
        if (req.receiveBufferBytes) sock.setRecvBufferSize(req.receiveBufferBytes);
        receiveBufferBytes = sock.getRecvBufferSize();
      } catch {
        // The runtime cannot set or tell it: the default buffer stays.
      }
      const a = sock.address();
      let closed = false;
      let inFlight = 0;
      let closeTimer: ReturnType<typeof setTimeout> | undefined;
      const reallyClose = () => {
        if (closeTimer) clearTimeout(closeTimer);
        try {
          sock.close();
        } catch {
          // already closed
        }
      };
      const socket: UdpSocket = {
        local: { host: a.address, port: a.port },
        family: req.family,
        receiveBufferBytes,
        send(data, to) {
          if (closed) return;
          inFlight++;
          sock.send(data, to.port, to.host, (err) => {
            if (err) req.onError(err);
            if (--inFlight === 0 && closed) reallyClose();
          });
        },
        setFilter(spec) {
          // Linux socket filters, through the native addon, on the descriptor under node:dgram (Node only).
          if (req.family !== "IPv4") return false;
          const fd = descriptorOf(sock);
          if (fd === undefined) return false;
          return setSocketFilter(fd, spec ? compileSocketFilter(spec) : null);
        },
        close() {
          if (closed) return;
          closed = true;
          // Datagrams handed over just before (a goodbye to every neighbour) still go out;
          // node:dgram would drop them if the socket closed under them. Bounded wait.
          if (inFlight === 0) reallyClose();
          else closeTimer = setTimeout(reallyClose, 250);
        },
      };
      resolve(socket);
    });
  });

/** The OS descriptor of a bound node:dgram socket, where the runtime exposes it (Node does, internally; Deno does not). */
function descriptorOf(sock: dgram.Socket): number | undefined {
  const state = Object.getOwnPropertySymbols(sock).find((x) => x.description === "state symbol");
  const fd = state ? (sock as unknown as Record<symbol, { handle?: { fd?: unknown } }>)[state]?.handle?.fd : undefined;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}
