// Events: the latest ones (from /pbt/event_history and /pbt/events, merged by peak index), the
// event rate, the samples lost, and the session's pulse-height histogram (amplitude = peak -
// baseline) over every event seen, the late joiner's retained ones included.
import { clock, cssVar, duration, el, fitCanvas, num, onResize, sig, stampSeconds, Stamp } from "./format";

export interface PbtEvent {
  header: { stamp: Stamp };
  peak_index: bigint | number;
  peak: number; baseline: number; amplitude: number; width: number; area: number;
  missing_slots: number; gap_closed: boolean;
}

const LIST = 12; // rows shown
const KEEP = 200_000; // events remembered for the histogram (dedupe of re-sent history)

export class EventsView {
  shown = 0;
  firstShownMs: number | null = null;
  #latest = new Map<string, PbtEvent>();
  #seen = new Set<string>();
  #heights: number[] = [];
  #rate = NaN;
  #rateWindow = NaN;
  #total = NaN;
  #lost: number | null = null;
  #dirtyList = false;
  #dirtyHist = false;

  constructor(
    readonly tbody: HTMLTableSectionElement, readonly stats: HTMLElement,
    readonly hist: HTMLCanvasElement, readonly histInfo: HTMLElement,
  ) {
    onResize(hist, () => { this.#dirtyHist = true; });
    this.#renderList();
  }

  /** /pbt/events: one event (the late joiner gets the retained ones first). */
  add(e: PbtEvent): void {
    const key = String(e.peak_index);
    if (!this.#seen.has(key)) {
      this.#seen.add(key);
      if (this.#seen.size > KEEP) this.#seen.delete(this.#seen.values().next().value as string);
      if (this.#heights.length < KEEP && isFinite(e.amplitude)) this.#heights.push(e.amplitude);
      this.#dirtyHist = true;
    }
    this.#latest.set(key, e);
    this.#dirtyList = true;
  }

  /** /pbt/event_history: the last events newest first, the rate and the total. */
  history(h: { rate: number; rate_window: number; total: bigint | number; events: PbtEvent[] }): void {
    this.#rate = h.rate;
    this.#rateWindow = h.rate_window;
    this.#total = num(h.total);
    for (const e of h.events) this.add(e);
    this.#dirtyList = true;
  }

  /** Samples lost, from the PBT driver's diagnostics. */
  lost(n: number | null): void {
    if (n !== this.#lost) { this.#lost = n; this.#dirtyList = true; }
  }

  /** Something to draw (the pacing of the list counts only real draws). */
  get dirty(): boolean { return this.#dirtyList || this.#dirtyHist; }

  frame(): void {
    if (this.#dirtyList) { this.#dirtyList = false; this.#renderList(); }
    if (this.#dirtyHist) { this.#dirtyHist = false; this.#drawHist(); }
  }

  #renderList(): void {
    const all = [...this.#latest.values()].sort((a, b) => (BigInt(b.peak_index) > BigInt(a.peak_index) ? 1 : -1));
    for (const e of all.slice(LIST * 4)) this.#latest.delete(String(e.peak_index));
    const rows = all.slice(0, LIST);
    this.tbody.replaceChildren(...rows.map((e) => {
      const tr = el("tr");
      const flags = (e.missing_slots ? " *" : "") + (e.gap_closed ? " ⌁" : "");
      tr.append(
        el("td", clock(stampSeconds(e.header.stamp)) + flags),
        el("td", sig(e.peak), "num"), el("td", sig(e.amplitude), "num"),
        el("td", duration(e.width), "num"),
      );
      if (flags) tr.title = "* lost samples bridged inside the event; ⌁ ended by a gap";
      return tr;
    }));
    if (!rows.length) {
      const tr = el("tr", undefined, "empty");
      const td = el("td", "no events yet");
      td.colSpan = 4;
      tr.append(td);
      this.tbody.append(tr);
    }
    this.shown = rows.length;
    if (rows.length && this.firstShownMs === null) this.firstShownMs = performance.now();
    const items: [string, string][] = [
      ["rate", isFinite(this.#rate) ? `${sig(this.#rate)} /s (last ${sig(this.#rateWindow)} s)` : "–"],
      ["total", isFinite(this.#total) ? String(this.#total) : String(this.#seen.size)],
      ["samples lost", this.#lost === null ? "–" : String(this.#lost)],
    ];
    this.stats.replaceChildren(...items.map(([k, v]) => {
      const s = el("span", `${k} `);
      s.append(el("b", v));
      return s;
    }));
  }

  #drawHist(): void {
    const { g, w, h } = fitCanvas(this.hist);
    const hs = this.#heights;
    this.histInfo.textContent = hs.length ? `${hs.length} events seen by this page (sensor units)` : "";
    if (!hs.length) return;
    let lo = Infinity, hi = -Infinity;
    for (const v of hs) { if (v < lo) lo = v; if (v > hi) hi = v; }
    lo = Math.min(0, lo);
    if (hi <= lo) hi = lo + 1;
    const bins = Math.max(10, Math.min(60, Math.floor(w / 8)));
    const counts = new Array(bins).fill(0);
    for (const v of hs) counts[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))]++;
    const max = Math.max(...counts);
    const left = 30, bottom = 16, top = 4, pw = w - left - 4, ph = h - bottom - top;
    g.fillStyle = cssVar("--value");
    const bw = pw / bins;
    counts.forEach((c, i) => {
      const bh = (c / max) * ph;
      g.fillRect(left + i * bw + 0.5, top + ph - bh, Math.max(1, bw - 1), bh);
    });
    g.fillStyle = cssVar("--muted");
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "top";
    g.textAlign = "left";
    g.fillText(sig(lo), left, h - bottom + 3);
    g.textAlign = "right";
    g.fillText(sig(hi), w - 4, h - bottom + 3);
    g.textBaseline = "middle";
    g.fillText(String(max), left - 4, top + 6);
    g.fillText("0", left - 4, top + ph);
  }
}
