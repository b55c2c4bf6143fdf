#!/usr/bin/env node
// Drives Debian's chromium (puppeteer-core, which never downloads a browser) against the lab page
// for its tests, the bench and the README's screenshots. It only looks: everything it reports
// comes from the page's read-only `window.labPage` hooks, the DOM and the browser's own events.
//
// Options: --url URL (required) --chromium PATH --pages N (one browser context each)
//   --duration S (0: until SIGINT/SIGTERM) --progress S --viewport WxH --scale F --hash-scope
//   (sha1 of a #scope screenshot in each state) --screenshot FILE --shot-after S --full-page
//   --parallel N (pages opened at once) --stagger MS (between batches) --open-timeout S (per
//   page load, default 60; a page that cannot load is an "open" error) --shared-context
//   --renderer-limit N (pages share one context and N renderer processes, cache off: a class
//   on one small machine). --duration and
//   --shot-after count from when every page has opened; states are reported meanwhile.
// Output: one JSON object per line on stdout.
//   {"event":"launched", "browser":..., "pages":N}
//   {"event":"opened", "page":i, "gotoMs":...}                 navigation finished (load event)
//   {"event":"state", "page":i, "t":..., "wall":..., "lab":{...}, "probe":{...}, "layout":{...}}
//                                                              every --progress seconds
//   {"event":"error", "page":i, "kind":"console"|"pageerror"|"requestfailed"|"http"|"open", ...}
//   {"event":"screenshot", "page":i, "path":..., "bytes":...}
//   {"event":"done"}                                           after --duration, or on SIGINT/TERM
//
// `probe` is measured inside the page by a poller installed before any page script runs, in ms
// since navigation start (performance.now()): firstLiveMs, firstScopeFrameMs, firstScopeDrawMs,
// firstEventsMs, firstFilesMs, historyMs (events and files both listed), and `seen` - every
// distinct (status, banner text) in the order they appeared, so a test can tell the banner said
// "lost" between two connects.
"use strict";

const crypto = require("crypto");
const puppeteer = require("puppeteer-core");

function parseArgs(argv) {
  const a = {
    chromium: process.env.SENSORHUB_CHROMIUM || "/usr/bin/chromium",
    url: null,
    pages: 1,
    duration: 0,
    progress: 1.0,
    viewport: "390x844",
    scale: 1,
    hashScope: false,
    screenshot: null,
    shotAfter: 0,
    fullPage: false,
    stagger: 0,
    parallel: 1,
    openTimeout: 60,
    sharedContext: false,
    rendererLimit: 0,
  };
  const num = new Set(["pages", "duration", "progress", "scale", "shotAfter", "stagger", "parallel",
    "openTimeout", "rendererLimit"]);
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_m, c) => c.toUpperCase());
    if (key === "hashScope" || key === "fullPage" || key === "sharedContext") {
      a[key] = true;
      i -= 1;
      continue;
    }
    if (!(key in a)) throw new Error(`unknown argument ${argv[i]}`);
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${argv[i]} needs a value`);
    a[key] = num.has(key) ? Number(v) : v;
    if (num.has(key) && !Number.isFinite(a[key])) throw new Error(`${argv[i]}: not a number: ${v}`);
  }
  if (!a.url) throw new Error("--url is required (the lab page's http:// address)");
  const m = /^(\d+)x(\d+)$/.exec(a.viewport);
  if (!m) throw new Error(`--viewport must be WIDTHxHEIGHT, not ${a.viewport}`);
  a.width = Number(m[1]);
  a.height = Number(m[2]);
  return a;
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// Runs in the page before its own scripts: records when things first happened, by polling the
// read-only hooks (the page itself is not changed in any way).
function installProbe() {
  const probe = {
    firstLiveMs: null,
    firstScopeFrameMs: null,
    firstScopeDrawMs: null,
    historyMs: null,
    firstEventsMs: null,
    firstFilesMs: null,
    seen: [],
  };
  window.__labProbe = probe;
  const tick = () => {
    const lab = window.labPage;
    const now = performance.now();
    if (!lab) return;
    if (probe.firstLiveMs === null && lab.status === "live") probe.firstLiveMs = now;
    if (probe.firstScopeFrameMs === null && lab.scopeFrames > 0) {
      probe.firstScopeFrameMs = now;
    }
    if (probe.firstScopeDrawMs === null && lab.scopeDraws > 0) probe.firstScopeDrawMs = now;
    if (probe.firstEventsMs === null && lab.events > 0) probe.firstEventsMs = now;
    if (probe.firstFilesMs === null && lab.files > 0) probe.firstFilesMs = now;
    if (probe.historyMs === null && lab.events > 0 && lab.files > 0) probe.historyMs = now;
    const banner = document.getElementById("conn-banner");
    const text = banner ? banner.textContent.trim().replace(/\s+/g, " ") : "";
    const last = probe.seen[probe.seen.length - 1];
    if (!last || last.status !== lab.status || last.banner !== text) {
      probe.seen.push({ status: lab.status, banner: text, connects: lab.connects, ms: now });
    }
  };
  // every 10 ms until the firsts are known, then every 100 ms (banner changes last >= 0.5 s):
  // 50 pages polling at 100 Hz would cost the bench's browser a good part of a core
  const fast = setInterval(() => {
    tick();
    if (probe.historyMs !== null && probe.firstScopeDrawMs !== null) {
      clearInterval(fast);
      setInterval(tick, 100);
    }
  }, 10);
}

async function snapshot(page) {
  return page.evaluate(() => ({
    lab: window.labPage ? JSON.parse(JSON.stringify(window.labPage)) : null,
    probe: window.__labProbe || null,
    layout: {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      ids: ["conn-banner", "scope", "events", "hist", "zones", "files", "health"].filter(
        (id) => document.getElementById(id) !== null,
      ),
    },
  }));
}

async function scopeHash(page) {
  const el = await page.$("#scope");
  if (!el) return null;
  const png = await el.screenshot({ type: "png" });
  return crypto.createHash("sha1").update(png).digest("hex");
}

function watchErrors(page, index) {
  page.on("console", (msg) => {
    if (msg.type() === "error") out({ event: "error", page: index, kind: "console", text: msg.text() });
  });
  page.on("pageerror", (err) => {
    out({ event: "error", page: index, kind: "pageerror", text: String(err && err.message) });
  });
  page.on("requestfailed", (req) => {
    const why = req.failure() ? req.failure().errorText : "failed";
    out({ event: "error", page: index, kind: "requestfailed", text: `${req.url()}: ${why}` });
  });
  page.on("response", (res) => {
    if (res.status() >= 400) {
      out({ event: "error", page: index, kind: "http", text: `${res.url()}: ${res.status()}` });
    }
  });
}

async function openPage(browser, args, index) {
  // one browser context per page: separate storage, as separate phones would have; or, for a
  // class on one small box, one context whose pages share a few renderer processes (each page
  // still runs its own script, WebSocket and drawing) with the HTTP cache off, so every page
  // loads everything from the server as a phone of its own would
  const context = args.sharedContext ? browser.defaultBrowserContext() : await browser.createBrowserContext();
  const page = await context.newPage();
  if (args.sharedContext) await page.setCacheEnabled(false);
  await page.setViewport({ width: args.width, height: args.height, deviceScaleFactor: args.scale });
  await page.evaluateOnNewDocument(installProbe);
  watchErrors(page, index);
  const t0 = Date.now();
  await page.goto(args.url, { waitUntil: "load", timeout: args.openTimeout * 1000 });
  out({ event: "opened", page: index, gotoMs: Date.now() - t0 });
  return page;
}

async function report(pages, args, t0) {
  for (let i = 0; i < pages.length; i++) {
    if (!pages[i]) continue; // still opening
    try {
      const s = await snapshot(pages[i]);
      if (args.hashScope) s.scopeHash = await scopeHash(pages[i]);
      out({ event: "state", page: i, t: (Date.now() - t0) / 1000, wall: Date.now() / 1000, ...s });
    } catch (e) {
      out({ event: "error", page: i, kind: "driver", text: String(e && e.message) });
    }
  }
}

async function main() {
  const args = parseArgs(process.argv);
  const browser = await puppeteer.launch({
    executablePath: args.chromium,
    headless: true,
    args: [
      "--headless=new",
      "--no-sandbox", // as root (CI), and inside a network namespace
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      // every page is someone's foreground tab on their own phone: no background throttling
      "--disable-background-timer-throttling",
      "--disable-renderer-backgrounding",
      "--disable-backgrounding-occluded-windows",
      ...(args.rendererLimit > 0 ? [`--renderer-process-limit=${args.rendererLimit}`] : []),
    ],
    protocolTimeout: 120000,
  });
  out({ event: "launched", browser: await browser.version(), pages: args.pages });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    out({ event: "done" });
    await browser.close().catch(() => {});
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const t0 = Date.now();
  const pages = []; // in opening order; reported on while the rest still open
  const opening = (async () => {
    for (let i = 0; i < args.pages; i += args.parallel) {
      const batch = [];
      for (let j = i; j < Math.min(args.pages, i + args.parallel); j++) {
        // a page that cannot load (a starved box, a server refusing it) is reported, and the
        // others go on: one slow page must not end the measurement of fifty
        batch.push(openPage(browser, args, j).then((p) => (pages[j] = p), (e) => {
          out({ event: "error", page: j, kind: "open", text: String(e && e.message) });
        }));
      }
      await Promise.all(batch);
      if (args.stagger > 0) await new Promise((r) => setTimeout(r, args.stagger));
    }
  })();
  let opened = false;
  opening.then(() => (opened = true), (e) => {
    out({ event: "fatal", text: String((e && e.stack) || e) });
    process.exit(1);
  });
  let shot = args.screenshot === null;
  let tOpened = null;
  while (!stopping) {
    await report(pages, args, t0);
    if (opened && tOpened === null) tOpened = Date.now();
    const elapsed = tOpened === null ? 0 : (Date.now() - tOpened) / 1000;
    if (opened && !shot && elapsed >= args.shotAfter) {
      await pages[0].screenshot({ path: args.screenshot, type: "png", fullPage: args.fullPage });
      const size = require("fs").statSync(args.screenshot).size;
      out({ event: "screenshot", page: 0, path: args.screenshot, bytes: size });
      shot = true;
    }
    if (opened && args.duration > 0 && elapsed >= args.duration && shot) break;
    await new Promise((r) => setTimeout(r, args.progress * 1000));
  }
  await stop();
}

main().catch((e) => {
  out({ event: "fatal", text: String((e && e.stack) || e) });
  process.exit(1);
});
