/**
 * A naive SOCKS5 relay, the baseline svp is compared with in `npm run bench`: what one
 * writes in an afternoon with `node:net` and `stream.pipeline`, default options everywhere.
 * SOCKS5 without authentication, CONNECT only (IPv4, IPv6, domain names).
 *
 *   node naive-relay.js [PORT]     listens on 127.0.0.1:PORT (default 0) and prints
 *                                  "naive-relay: listening on 127.0.0.1:<port>" on stderr
 */

import * as net from "node:net";
import { pipeline } from "node:stream";

function reply(code: number): Uint8Array {
  return Uint8Array.of(5, code, 0, 1, 0, 0, 0, 0, 0, 0);
}

/** Parse the CONNECT request at the start of `buf`; undefined while incomplete. */
function parseRequest(buf: Buffer): { host: string; port: number; length: number; cmd: number; atyp: number } | undefined {
  if (buf.length < 5) return undefined;
  const cmd = buf[1] ?? 0;
  const atyp = buf[3] ?? 0;
  let host: string;
  let offset: number;
  if (atyp === 1) {
    if (buf.length < 10) return undefined;
    host = `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`;
    offset = 8;
  } else if (atyp === 3) {
    const n = buf[4] ?? 0;
    if (buf.length < 5 + n + 2) return undefined;
    host = buf.subarray(5, 5 + n).toString("latin1");
    offset = 5 + n;
  } else if (atyp === 4) {
    if (buf.length < 22) return undefined;
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) parts.push(buf.readUInt16BE(4 + 2 * i).toString(16));
    host = parts.join(":");
    offset = 20;
  } else {
    return { host: "", port: 0, length: buf.length, cmd, atyp };
  }
  return { host, port: buf.readUInt16BE(offset), length: offset + 2, cmd, atyp };
}

const server = net.createServer((client) => {
  let buf = Buffer.alloc(0);
  let stage: "greeting" | "request" = "greeting";
  client.on("error", () => client.destroy());

  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (stage === "greeting") {
      if (buf.length < 2 || buf.length < 2 + (buf[1] ?? 0)) return;
      const methods = buf.subarray(2, 2 + (buf[1] ?? 0));
      buf = buf.subarray(2 + methods.length);
      if (!methods.includes(0)) {
        client.end(Uint8Array.of(5, 0xff));
        return;
      }
      client.write(Uint8Array.of(5, 0));
      stage = "request";
    }
    const req = parseRequest(buf);
    if (!req) return;
    client.off("data", onData);
    client.pause();
    if (req.cmd !== 1) return void client.end(reply(7));
    if (req.atyp !== 1 && req.atyp !== 3 && req.atyp !== 4) return void client.end(reply(8));
    const early = buf.subarray(req.length);
    let connected = false;
    const upstream = net.connect(req.port, req.host, () => {
      connected = true;
      client.write(reply(0));
      if (early.length > 0) upstream.write(early);
      pipeline(client, upstream, () => {});
      pipeline(upstream, client, () => {});
    });
    upstream.once("error", (err: NodeJS.ErrnoException) => {
      if (!connected) client.end(reply(err.code === "ECONNREFUSED" ? 5 : 4));
    });
  };
  client.on("data", onData);
});

const port = Number(process.argv[2] ?? 0);
server.listen(port, "127.0.0.1", () => {
  const a = server.address() as net.AddressInfo;
  process.stderr.write(`naive-relay: listening on 127.0.0.1:${a.port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
