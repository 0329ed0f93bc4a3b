// Preload (`node --require ./loopback.cjs server.js`) for servers that listen on every
// interface: binds every TCP listener to 127.0.0.1 instead, and reports the bound port on
// stderr as `loopback listening on 127.0.0.1:PORT` so a test can start the server on port 0.
"use strict";
const net = require("node:net");

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb]): force the host.
    const rest = args.slice(1);
    if (typeof rest[0] === "string") rest.shift();
    args = [Number(first), "127.0.0.1", ...rest];
  } else if (first && typeof first === "object" && !Array.isArray(first) && first.path === undefined) {
    args = [{ ...first, host: "127.0.0.1" }, ...args.slice(1)];
  } else if (first === undefined || typeof first === "function") {
    args = [0, "127.0.0.1", ...args];
  }
  this.once("listening", () => {
    const addr = this.address();
    if (addr && typeof addr === "object") {
      process.stderr.write(`loopback listening on ${addr.address}:${addr.port}\n`);
    }
  });
  return listen.apply(this, args);
};
