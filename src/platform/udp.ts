/** `UdpBinder` on node:dgram (Node and Deno). */

import * as dgram from "node:dgram";
import type { UdpBinder, UdpSocket } from "../node/node-io.ts";

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
