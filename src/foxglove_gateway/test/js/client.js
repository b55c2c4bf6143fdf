#!/usr/bin/env node
// Independent Foxglove WebSocket client for the foxglove_gateway tests and bench.
//
// Written only against the public npm packages Foxglove itself uses (@foxglove/ws-protocol,
// @foxglove/rosmsg, @foxglove/rosmsg2-serialization, ws), so it decodes exactly as the app does
// and shares no code with the gateway it checks. Output: one JSON object per line on stdout.
//
// Modes:
//   decode   subscribe to every advertised topic, print each decoded message
//   count    N connections (--clients), count messages and header stamps per topic, print on exit;
//            with --progress S also every S seconds (count and newest stamp per topic), so a test
//            can wait for a condition instead of sleeping
//   stall    subscribe to everything, then stop reading the socket (a stalled browser tab)
//   publish  advertise a client channel and publish on it every 250 ms (refused by default)
"use strict";

const WebSocket = require("ws");
const { FoxgloveClient } = require("@foxglove/ws-protocol");
const { parse } = require("@foxglove/rosmsg");
const { MessageReader } = require("@foxglove/rosmsg2-serialization");

function parseArgs(argv) {
  const a = {
    url: "ws://127.0.0.1:8765",
    mode: "decode",
    clients: 1,
    duration: 0,
    topics: ".*",
    subprotocols: ["foxglove.sdk.v1", "foxglove.websocket.v1"],
    stallAfter: 1.0,
    progress: 0,
  };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === "--url") a.url = v;
    else if (k === "--mode") a.mode = v;
    else if (k === "--clients") a.clients = parseInt(v, 10);
    else if (k === "--duration") a.duration = parseFloat(v);
    else if (k === "--topics") a.topics = v;
    else if (k === "--subprotocol") a.subprotocols = v.split(",");
    else if (k === "--stall-after") a.stallAfter = parseFloat(v);
    else if (k === "--progress") a.progress = parseFloat(v);
    else throw new Error(`unknown argument ${k}`);
    i++;
  }
  return a;
}

const args = parseArgs(process.argv);
const topicRe = new RegExp(`^(?:${args.topics})$`);

function out(obj) {
  process.stdout.write(JSON.stringify(obj, replacer) + "\n");
}

// JSON has no uint64, typed arrays or non-finite floats: make them lossless strings/arrays.
function replacer(_key, value) {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  if (ArrayBuffer.isView(value)) return Array.from(value);
  return value;
}

// Header stamp straight from the CDR bytes (4-byte encapsulation, then int32 sec, uint32 nsec):
// every type the graph publishes starts with a std_msgs/Header.
function stampOf(data) {
  if (data.byteLength < 12) return null;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const le = dv.getUint8(1) === 1;
  return `${dv.getInt32(4, le)}.${String(dv.getUint32(8, le)).padStart(9, "0")}`;
}

const clients = [];

function startClient(index) {
  const ws = new WebSocket(args.url, args.subprotocols, { rejectUnauthorized: false });
  const client = new FoxgloveClient({ ws });
  const state = { index, channels: new Map(), subs: new Map(), counts: {}, ws, closed: false };
  clients.push(state);

  client.on("open", () => out({ event: "open", client: index, protocol: ws.protocol }));
  client.on("error", (err) => out({ event: "error", client: index, message: String(err) }));
  client.on("close", (ev) => {
    state.closed = true;
    out({ event: "close", client: index, code: ev.code, reason: String(ev.reason || "") });
  });
  client.on("serverInfo", (info) =>
    out({ event: "serverInfo", client: index, name: info.name, capabilities: info.capabilities }),
  );
  client.on("status", (s) =>
    out({ event: "status", client: index, level: s.level, message: s.message }),
  );
  client.on("advertise", (channels) => {
    for (const ch of channels) {
      state.channels.set(ch.id, ch);
      out({
        event: "advertise",
        client: index,
        topic: ch.topic,
        schemaName: ch.schemaName,
        encoding: ch.encoding,
        schemaEncoding: ch.schemaEncoding,
      });
      if (args.mode === "publish" || !topicRe.test(ch.topic)) continue;
      if (args.mode === "decode") {
        try {
          ch.reader = new MessageReader(parse(ch.schema, { ros2: true }));
        } catch (err) {
          out({ event: "schemaError", client: index, topic: ch.topic, message: String(err) });
          continue;
        }
      }
      const subId = client.subscribe(ch.id);
      state.subs.set(subId, ch);
    }
  });
  client.on("unadvertise", (ids) => {
    for (const id of ids) {
      const ch = state.channels.get(id);
      out({ event: "unadvertise", client: index, topic: ch ? ch.topic : null });
      state.channels.delete(id);
    }
  });
  client.on("message", ({ subscriptionId, data }) => {
    const ch = state.subs.get(subscriptionId);
    if (!ch) return;
    if (args.mode === "decode") {
      let msg;
      try {
        msg = ch.reader.readMessage(data);
      } catch (err) {
        out({ event: "decodeError", client: index, topic: ch.topic, message: String(err) });
        return;
      }
      out({ event: "message", client: index, topic: ch.topic, schemaName: ch.schemaName, data: msg });
    } else {
      const c = (state.counts[ch.topic] ||= { n: 0, stamps: [], bytes: 0 });
      c.n++;
      c.bytes += data.byteLength; // CDR payload bytes (the bench's web bandwidth)
      c.stamps.push(stampOf(data));
    }
  });

  if (args.mode === "count" && args.progress > 0) {
    setInterval(() => {
      const topics = {};
      for (const [t, c] of Object.entries(state.counts)) {
        topics[t] = { n: c.n, last: c.stamps[c.stamps.length - 1], bytes: c.bytes };
      }
      out({ event: "progress", client: index, t: Date.now() / 1000, topics });
    }, args.progress * 1000);
  }
  if (args.mode === "stall") {
    setTimeout(() => {
      ws.pause(); // stop reading: the kernel buffers fill and the server must cope
      out({ event: "stalled", client: index, subscriptions: state.subs.size });
    }, args.stallAfter * 1000);
  }
  if (args.mode === "publish") {
    client.on("serverInfo", () => {
      setTimeout(() => {
        try {
          const id = client.advertise({
            topic: "/client_publish_probe",
            encoding: "cdr",
            schemaName: "std_msgs/msg/String",
            schema: "string data\n",
            schemaEncoding: "ros2msg",
          });
          // CDR of std_msgs/String "hello": encapsulation, length 6, "hello\0"
          const data = new Uint8Array([0, 1, 0, 0, 6, 0, 0, 0, 104, 101, 108, 108, 111, 0]);
          client.sendMessage(id, data);
          out({ event: "published", client: index, channel: id });
          // and again every 250 ms: the server's new ROS publisher drops what it publishes
          // before DDS has matched a subscriber (volatile), as a real panel's first click may
          const again = setInterval(() => {
            try {
              client.sendMessage(id, data);
            } catch {
              clearInterval(again);
            }
          }, 250);
        } catch (err) {
          out({ event: "publishError", client: index, message: String(err) });
        }
      }, 200);
    });
  }
  return state;
}

function finish() {
  if (args.mode === "count") {
    for (const s of clients) out({ event: "counts", client: s.index, topics: s.counts });
  }
  out({ event: "exit" });
  process.exit(0);
}

process.on("SIGINT", finish);
process.on("SIGTERM", finish);
// Stagger connections a little so 50 clients do not all handshake in the same millisecond.
for (let i = 0; i < args.clients; i++) setTimeout(() => startClient(i), i * 20);
if (args.duration > 0) setTimeout(finish, args.duration * 1000);
