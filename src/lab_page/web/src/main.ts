// The lab page: wires the connection to the views and exposes window.labPage (read-only state
// for tests and the curious).
import { Connection, findUrl } from "./conn";
import { EventsView } from "./events";
import { FilesView } from "./files";
import { HealthView } from "./health";
import { ScopeView } from "./scope";
import { ZonesView } from "./zones";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

// Each view reads the first topic the server advertises: the page-rate ones (pbt_scope's
// preview, lab_feed's /lab/...) first, the originals when the graph runs no feed.
export const TOPICS = {
  scope: ["/pbt/scope_preview", "/pbt/scope"],
  history: ["/lab/pbt/event_history", "/pbt/event_history"],
  events: ["/pbt/events"],
  zones: ["/lab/tim240/zones", "/tim240/zones"],
  markers: ["/lab/tim240/markers", "/tim240/markers"],
  scan: ["/lab/tim240/scan_filtered", "/tim240/scan_filtered"],
  files: ["/sec110/files"],
  health: ["/lab/diagnostics_agg", "/diagnostics_agg"],
};

interface LabPage {
  status: string; subprotocol: string | null; url: string; connects: number;
  frames: Record<string, number>; reading: Record<string, string>; scopeFrames: number;
  scopeDraws: number; events: number; files: number;
  zones: number; errors: string[]; firstHistoryMs: number | null; bytes: number;
}

async function main(): Promise<void> {
  const lab: LabPage = {
    status: "connecting", subprotocol: null, url: "", connects: 0, frames: {}, reading: {},
    scopeFrames: 0, scopeDraws: 0,
    events: 0, files: 0, zones: 0, errors: [], firstHistoryMs: null, bytes: 0,
  };
  (window as any).labPage = lab;
  const banner = $("conn-banner");
  const scope = new ScopeView($<HTMLCanvasElement>("scope"), $("scope-info"));
  const events = new EventsView(
    $<HTMLTableElement>("events").tBodies[0], $("event-stats"), $<HTMLCanvasElement>("hist"), $("hist-info"),
  );
  const zones = new ZonesView($<HTMLCanvasElement>("zones-canvas"), $<HTMLUListElement>("zone-list"), $("zones-info"));
  const files = new FilesView($<HTMLTableElement>("files").tBodies[0]);
  const health = new HealthView($("health"), $("health-info"));

  const url = await findUrl();
  lab.url = url;
  const conn = new Connection(url);
  lab.errors = conn.errors;
  lab.frames = conn.frames;
  lab.reading = conn.reading;
  conn.prefer([...TOPICS.history, ...TOPICS.files, ...TOPICS.events, ...TOPICS.zones]);
  // Draw in the animation frame after new data only: an idle page asks the browser for no
  // frames at all (a phone's battery, and 50 pages on one laptop in the bench).
  let pending = false;
  const schedule = () => {
    if (!pending) { pending = true; requestAnimationFrame(frame); }
  };
  // Views whose DOM changes with every message redraw at most every `ms`: the event list at
  // 7 events/s would otherwise relayout the page 7 times a second on every phone.
  const paced = (ms: number, dirty: () => boolean, urgent: () => boolean, draw: () => void) => {
    let last = -Infinity;
    let waiting = false;
    return (now: number) => {
      if (!dirty()) return; // the first data after a quiet spell is drawn at once
      const wait = urgent() ? 0 : last + ms - now; // and a list still empty fills at once
      if (wait <= 0) { last = now; draw(); return; }
      if (!waiting) {
        waiting = true;
        setTimeout(() => { waiting = false; schedule(); }, wait);
      }
    };
  };
  const eventsFrame = paced(500, () => events.dirty, () => events.shown === 0, () => events.frame());
  // The scan below the fold of a phone is not drawn until it is scrolled into view.
  const onScreen = new Set<Element>();
  const zonesCard = $("zones");
  if (typeof IntersectionObserver !== "undefined") {
    new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting) onScreen.add(e.target); else onScreen.delete(e.target);
      schedule();
    }).observe(zonesCard);
  } else {
    onScreen.add(zonesCard);
  }
  const show = (topics: string[], fn: (m: any) => void) =>
    conn.on(topics, (m) => { fn(m); lab.bytes = conn.bytes; schedule(); });
  show(TOPICS.scope, (m) => { lab.scopeFrames += 1; scope.set(m); });
  show(TOPICS.history, (m) => events.history(m));
  show(TOPICS.events, (m) => events.add(m));
  show(TOPICS.zones, (m) => zones.status(m));
  show(TOPICS.markers, (m) => zones.markers(m));
  show(TOPICS.scan, (m) => zones.scan(m));
  show(TOPICS.files, (m) => files.add(m));
  show(TOPICS.health, (m) => { health.set(m); events.lost(health.lost); });

  const showBanner = () => {
    const s = conn.state;
    let text = s.detail;
    if (s.status === "lost" || s.status === "full") {
      const left = Math.max(0, (s.retryAt - performance.now()) / 1000);
      text += `; retrying in ${left.toFixed(1)} s`;
    }
    const cls = `banner ${s.status}`;
    if (banner.className !== cls) banner.className = cls;
    if (banner.textContent !== text) banner.textContent = text;
    lab.status = s.status;
    lab.subprotocol = s.subprotocol;
  };
  conn.onState = showBanner;
  setInterval(showBanner, 200);
  $("foot").textContent = `WebSocket ${url} · read-only · sensorhub lab page`;

  function frame(): void {
    pending = false;
    if (document.hidden) return; // a background tab draws nothing; visibilitychange redraws
    scope.frame();
    eventsFrame(performance.now());
    if (onScreen.has(zonesCard)) zones.frame();
    files.frame();
    health.frame();
    lab.scopeDraws = scope.draws;
    lab.events = events.shown;
    lab.files = files.shown;
    lab.zones = zones.zones;
    lab.connects = conn.connects;
    lab.bytes = conn.bytes;
    if (lab.firstHistoryMs === null && events.firstShownMs !== null && files.firstShownMs !== null) {
      lab.firstHistoryMs = Math.round(Math.max(events.firstShownMs, files.firstShownMs));
    }
  }
  schedule();
  setInterval(schedule, 1000); // ages, sizes after a resize, counters without new data
  window.addEventListener("resize", schedule);
  document.addEventListener("visibilitychange", schedule);
  conn.start();
  if (new URLSearchParams(location.search).has("debug")) {
    const pre = document.createElement("pre");
    pre.id = "debug";
    pre.style.whiteSpace = "pre-wrap";
    document.body.append(pre);
    setInterval(() => { pre.textContent = JSON.stringify(lab, null, 1); }, 500);
  }
}

main().catch((e) => {
  const b = document.getElementById("conn-banner");
  if (b) { b.className = "banner lost"; b.textContent = `The page failed to start: ${e && e.message}`; }
});
