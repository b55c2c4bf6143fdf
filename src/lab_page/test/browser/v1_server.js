#!/usr/bin/env node
// A Foxglove WebSocket server that speaks only the older `foxglove.websocket.v1` subprotocol:
// @foxglove/ws-protocol's FoxgloveServer, the protocol's reference implementation, on `ws`.
// The lab page must work against it unchanged (foxglove_bridge of older distributions speaks
// just this). It replays messages made by the test (real CDR from rclpy's serialize_message and
// real ros2msg schemas from sensorhub_msgs), each channel at its rate, to whoever subscribes.
//
//   node v1_server.js --fixture F.json --host ADDR --port 0 --port-file P
// F.json: {"channels": [{"topic", "schemaName", "schema", "rateHz", "messages": [base64 CDR]}]}
// Every message's header stamp (bytes 4..11 after the CDR encapsulation) is rewritten to the
// send time, so the replay looks live. Prints JSON lines: listening, connect, subscribe, close.
"use strict";

const fs = require("fs");
const { WebSocketServer } = require("ws");
const { FoxgloveServer } = require("@foxglove/ws-protocol");

function parseArgs(argv) {
  const a = { fixture: null, host: "127.0.0.1", port: 0, portFile: null };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === "--fixture") a.fixture = v;
    else if (k === "--host") a.host = v;
    else if (k === "--port") a.port = Number(v);
    else if (k === "--port-file") a.portFile = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.fixture) throw new Error("--fixture is required");
  return a;
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function restamp(buf, nowMs) {
  const copy = Buffer.from(buf);
  const le = copy.readUInt8(1) === 1; // CDR encapsulation: 0x0001 = little endian
  const sec = Math.floor(nowMs / 1000);
  const nsec = Math.round((nowMs % 1000) * 1e6);
  if (le) {
    copy.writeInt32LE(sec, 4);
    copy.writeUInt32LE(nsec, 8);
  } else {
    copy.writeInt32BE(sec, 4);
    copy.writeUInt32BE(nsec, 8);
  }
  return copy;
}

function main() {
  const args = parseArgs(process.argv);
  const fixture = JSON.parse(fs.readFileSync(args.fixture, "utf8"));
  const server = new FoxgloveServer({ name: "sensorhub-test-v1" });
  const players = new Map(); // channel id -> {spec, timer, next}
  for (const spec of fixture.channels) {
    const id = server.addChannel({
      topic: spec.topic,
      encoding: "cdr",
      schemaName: spec.schemaName,
      schema: spec.schema,
      schemaEncoding: "ros2msg",
    });
    const messages = spec.messages.map((m) => Buffer.from(m, "base64"));
    players.set(id, { spec, messages, timer: null, next: 0 });
  }
  server.on("subscribe", (id) => {
    const p = players.get(id);
    out({ event: "subscribe", topic: p.spec.topic });
    if (p.timer) return;
    p.timer = setInterval(() => {
      const now = Date.now();
      const payload = restamp(p.messages[p.next % p.messages.length], now);
      p.next += 1;
      server.sendMessage(id, BigInt(now) * 1000000n, payload);
    }, 1000 / p.spec.rateHz);
  });
  server.on("unsubscribe", (id) => {
    const p = players.get(id);
    clearInterval(p.timer);
    p.timer = null;
  });
  server.on("error", (err) => out({ event: "error", text: String(err && err.message) }));

  const wss = new WebSocketServer({
    host: args.host,
    port: args.port,
    handleProtocols: (protocols) => server.handleProtocols(protocols),
  });
  wss.on("listening", () => {
    const { port } = wss.address();
    if (args.portFile) fs.writeFileSync(args.portFile, String(port));
    out({ event: "listening", host: args.host, port });
  });
  wss.on("connection", (conn, req) => {
    out({ event: "connect", protocol: conn.protocol, from: req.socket.remoteAddress });
    conn.on("close", () => out({ event: "close" }));
    server.handleConnection(conn, `${req.socket.remoteAddress}:${req.socket.remotePort}`);
  });
  const stop = () => {
    wss.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main();
