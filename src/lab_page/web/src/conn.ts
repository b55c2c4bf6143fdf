// The Foxglove WebSocket connection: find the URL, connect with either subprotocol, subscribe to
// the wanted topics as they are advertised, decode ROS 2 CDR from the advertised ros2msg schema,
// and reconnect with backoff (0.5 s .. 5 s) when the connection ends.
import { FoxgloveClient } from "@foxglove/ws-protocol";
import { parse as parseMsgDef } from "@foxglove/rosmsg";
import { MessageReader } from "@foxglove/rosmsg2-serialization";

export const SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"];
export const BACKOFF_MIN_S = 0.5;
export const BACKOFF_MAX_S = 5.0;
const STALE_RECONNECT_S = 20; // live but silent this long after data flowed: the link is dead
const CONFIG_TIMEOUT_MS = 2500;

export type Status = "connecting" | "live" | "lost" | "full";

export interface ConnState {
  status: Status;
  url: string;
  subprotocol: string | null;
  detail: string; // the banner text
  retryAt: number; // performance.now() of the next attempt (lost/full)
}

type Handler = (msg: any, topic: string) => void;
type Decoder = (data: Uint8Array) => unknown;

interface Channel {
  id: number;
  topic: string;
  encoding: string;
  schemaName: string;
  schema: string;
  schemaEncoding?: string;
}

/** Where the page's WebSocket is: ?ws=, else /config.json's port on this host, else this host. */
export async function findUrl(loc: Location = window.location): Promise<string> {
  const q = new URLSearchParams(loc.search).get("ws");
  if (q) return q;
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  try {
    const ctl = typeof AbortController !== "undefined" ? new AbortController() : null;
    const timer = setTimeout(() => ctl && ctl.abort(), CONFIG_TIMEOUT_MS);
    const r = await fetch("config.json", { cache: "no-store", signal: ctl ? ctl.signal : undefined });
    clearTimeout(timer);
    if (r.ok) {
      const cfg = await r.json();
      const port = Number(cfg.ws_port);
      if (Number.isInteger(port) && port > 0 && port < 65536) {
        let path = typeof cfg.ws_path === "string" && cfg.ws_path ? cfg.ws_path : "/";
        if (!path.startsWith("/")) path = "/" + path;
        const host = loc.hostname.includes(":") ? `[${loc.hostname}]` : loc.hostname;
        return `${scheme}//${host}:${port}${path}`;
      }
    }
  } catch (_e) {
    // no config.json (served by the gateway itself): same host and port
  }
  return `${scheme}//${loc.host}/`;
}

/** "server full: 50/50 lab pages" -> "50 viewers already connected" (or the reason itself). */
export function fullText(reason: string): string {
  const m = /(\d+)\s*\/\s*(\d+)/.exec(reason);
  return m ? `${m[1]} viewers already connected` : reason.replace(/^server full:?\s*/, "") || "no room";
}

export class Connection {
  readonly state: ConnState = { status: "connecting", url: "", subprotocol: null, detail: "", retryAt: 0 };
  connects = 0;
  bytes = 0;
  frames: Record<string, number> = {};
  errors: string[] = [];
  onState: (s: ConnState) => void = () => {};

  /** What the page shows, each from the first of its topics the server advertises. */
  #wants: { topics: string[]; h: Handler }[] = [];
  #channels = new Map<number, Channel>(); // advertised by the current server
  /** logical topic (the last, original one of a want) -> the topic it is read from now */
  readonly reading: Record<string, string> = {};
  #decoders = new Map<string, Decoder>(); // by encoding + schema text
  #subs = new Map<number, { topic: string; decode: Decoder; channel: number; want: number }>();
  #client: FoxgloveClient | null = null;
  #ws: WebSocket | null = null;
  #attempt = 0;
  #lastData = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;

  constructor(readonly url: string) {
    this.state.url = url;
    setInterval(() => this.#checkStale(), 2000);
  }

  #first: string[] = [];

  /** Topics subscribed before the others when advertised together (retained history). */
  prefer(topics: string[]): void {
    this.#first = topics;
  }

  /** Show `topics[0]` with `h`, else the next one advertised (a page-rate feed first, the
   * original topic last): the page works against any server, with or without the feed. */
  on(topics: string | string[], h: Handler): void {
    this.#wants.push({ topics: typeof topics === "string" ? [topics] : topics, h });
  }

  start(): void {
    this.#open();
  }

  #error(text: string): void {
    if (this.errors.length < 50) this.errors.push(text);
    console.warn(text);
  }

  #set(status: Status, detail: string, retryAt = 0): void {
    Object.assign(this.state, { status, detail, retryAt });
    this.onState(this.state);
  }

  #open(): void {
    this.#timer = null;
    this.#subs.clear();
    this.#channels.clear();
    this.#set("connecting", `connecting to ${this.url}…`);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url, SUBPROTOCOLS);
    } catch (e) {
      this.#error(`cannot open ${this.url}: ${(e as Error).message}`);
      this.#retry("lost", `cannot open ${this.url}`);
      return;
    }
    this.#ws = ws;
    ws.addEventListener("message", (ev: MessageEvent) => {
      const d = ev.data;
      this.bytes += typeof d === "string" ? d.length : (d as ArrayBuffer).byteLength;
    });
    const client = new FoxgloveClient({ ws });
    this.#client = client;
    client.on("open", () => {
      if (this.#ws !== ws) return;
      this.state.subprotocol = ws.protocol || null;
      this.#set("connecting", `connected to ${this.url}, waiting for the server…`);
    });
    // Live only once the server spoke: a full server accepts the handshake, then closes with
    // 1013, and that must neither count as a connection nor reset the backoff.
    client.on("serverInfo", () => {
      if (this.#ws !== ws) return;
      this.connects += 1;
      this.#attempt = 0;
      this.#lastData = performance.now();
      this.#set("live", `live · ${this.url}`);
    });
    client.on("advertise", (chans) => {
      if (this.#client !== client) return;
      for (const ch of chans as unknown as Channel[]) this.#channels.set(ch.id, ch);
      this.#resolve(client);
    });
    client.on("unadvertise", (ids) => {
      if (this.#client !== client) return;
      for (const id of ids) this.#channels.delete(id);
      for (const [sid, s] of this.#subs) if (ids.includes(s.channel)) this.#subs.delete(sid);
      this.#resolve(client);
    });
    client.on("message", (m) => this.#message(m.subscriptionId, m.data));
    client.on("error", (e) => {
      if (this.#ws === ws && this.state.status === "live") this.#error(`protocol: ${e && e.message}`);
    });
    client.on("close", (ev: CloseEvent) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#client = null;
      this.state.subprotocol = null;
      const reason = ev.reason || "";
      if (ev.code === 1013 && /^server full/i.test(reason)) {
        this.#retry("full", `The server is full — ${fullText(reason)}`);
      } else {
        const why = ev.code && ev.code !== 1006 ? ` (code ${ev.code}${reason ? ": " + reason : ""})` : "";
        const what = this.connects ? "Connection lost" : `Cannot connect to ${this.url}`;
        this.#retry("lost", `${what}${why}`);
      }
    });
  }

  #retry(status: Status, text: string): void {
    const delay = Math.min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** this.#attempt);
    this.#attempt += 1;
    this.#set(status, text, performance.now() + delay * 1000);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#open(), delay * 1000);
  }

  #checkStale(): void {
    const ws = this.#ws;
    if (!ws || this.state.status !== "live" || this.#subs.size === 0) return;
    if ((performance.now() - this.#lastData) / 1000 > STALE_RECONNECT_S) {
      this.#error(`no data for ${STALE_RECONNECT_S} s: reconnecting`);
      ws.close();
    }
  }

  #decoder(ch: Channel): Decoder | null {
    const key = `${ch.encoding}\n${ch.schemaEncoding}\n${ch.schemaName}\n${ch.schema}`;
    let d = this.#decoders.get(key);
    if (d) return d;
    if (ch.encoding === "cdr" && (ch.schemaEncoding === "ros2msg" || ch.schemaEncoding === undefined)) {
      const reader = new MessageReader(parseMsgDef(ch.schema, { ros2: true }));
      d = (data) => reader.readMessage(data);
    } else if (ch.encoding === "json") {
      const td = new TextDecoder();
      d = (data) => JSON.parse(td.decode(data));
    } else {
      return null;
    }
    this.#decoders.set(key, d);
    return d;
  }

  /** Subscribe each want to its best advertised topic (switching when a better one appears
   * or the current one goes away). Retained history first: a late joiner's events and files
   * arrive before the live streams. */
  #resolve(client: FoxgloveClient): void {
    const byTopic = new Map<string, Channel>();
    for (const ch of this.#channels.values()) if (!byTopic.has(ch.topic)) byTopic.set(ch.topic, ch);
    const rank = (w: number) => {
      const t = this.#wants[w].topics;
      const i = this.#first.findIndex((f) => t.includes(f));
      return i < 0 ? this.#first.length : i;
    };
    const order = this.#wants.map((_, i) => i).sort((a, b) => rank(a) - rank(b));
    for (const w of order) {
      const want = this.#wants[w];
      const logical = want.topics[want.topics.length - 1];
      const current = [...this.#subs.entries()].find(([, s]) => s.want === w);
      for (const topic of want.topics) {
        const ch = byTopic.get(topic);
        if (!ch) continue;
        if (current && current[1].channel === ch.id) break; // already the best one
        const decode = this.#decodable(ch);
        if (!decode) continue;
        if (current) {
          client.unsubscribe(current[0]);
          this.#subs.delete(current[0]);
        }
        const sid = client.subscribe(ch.id);
        this.#subs.set(sid, { topic: ch.topic, decode, channel: ch.id, want: w });
        this.reading[logical] = ch.topic;
        break;
      }
    }
  }

  #undecodable = new Set<string>(); // told once per channel

  #decodable(ch: Channel): Decoder | null {
    const key = `${ch.id} ${ch.topic}`;
    if (this.#undecodable.has(key)) return null;
    try {
      const d = this.#decoder(ch);
      if (!d) {
        this.#undecodable.add(key);
        console.info(`${ch.topic}: skipped (${ch.encoding}/${ch.schemaEncoding} not decodable)`);
      }
      return d;
    } catch (e) {
      this.#undecodable.add(key);
      this.#error(`${ch.topic}: cannot parse schema ${ch.schemaName}: ${(e as Error).message}`);
      return null;
    }
  }

  #message(sid: number, data: DataView): void {
    const s = this.#subs.get(sid);
    if (!s) return;
    this.#lastData = performance.now();
    this.frames[s.topic] = (this.frames[s.topic] || 0) + 1;
    let msg: unknown;
    try {
      msg = s.decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (e) {
      this.#error(`${s.topic}: cannot decode: ${(e as Error).message}`);
      return;
    }
    try {
      this.#wants[s.want].h(msg, s.topic);
    } catch (e) {
      this.#error(`${s.topic}: cannot show: ${(e as Error).message}`);
    }
  }
}
