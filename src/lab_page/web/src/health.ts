// Health: /diagnostics_agg as one tile per top-level group ("/PBT", "/Host", ...), coloured by
// its level; tapping a tile opens its statuses with their key/values. Open tiles stay open
// across updates.
import { el } from "./format";

interface KV { key: string; value: string }
interface DStatus { level: number; name: string; message: string; hardware_id: string; values: KV[] }

const LEVELS = ["OK", "WARN", "ERROR", "STALE"];

export class HealthView {
  #open = new Set<string>();
  #msg: DStatus[] | null = null;
  #dirty = false;
  lost: number | null = null; // "lost samples total" of the PBT driver, if reported

  constructor(readonly root: HTMLElement, readonly info: HTMLElement) {
    this.root.append(el("div", "waiting for /diagnostics_agg…", "muted"));
  }

  set(m: { status: DStatus[] }): void {
    this.#msg = m.status;
    this.#dirty = true;
    let lost: number | null = null;
    for (const s of m.status) {
      for (const kv of s.values) if (kv.key === "lost samples total") lost = Math.max(lost || 0, Number(kv.value));
    }
    this.lost = lost;
  }

  frame(): void {
    if (!this.#dirty || !this.#msg) return;
    this.#dirty = false;
    this.#render(this.#msg);
  }

  #render(statuses: DStatus[]): void {
    const groups = new Map<string, { top: DStatus | null; children: DStatus[] }>();
    for (const s of statuses) {
      const parts = s.name.replace(/^\/+/, "").split("/");
      const g = parts[0] || s.name;
      if (!groups.has(g)) groups.set(g, { top: null, children: [] });
      const e = groups.get(g)!;
      if (parts.length === 1) e.top = s; else e.children.push(s);
    }
    const counts = [0, 0, 0, 0];
    const tiles = [...groups.entries()].map(([name, { top, children }]) => {
      const level = top ? top.level : Math.max(...children.map((c) => c.level));
      counts[Math.min(3, level)]++;
      const d = el("details", undefined, `l${level}`);
      d.open = this.#open.has(name);
      d.addEventListener("toggle", () => { if (d.open) this.#open.add(name); else this.#open.delete(name); });
      const sum = el("summary");
      sum.append(el("span", LEVELS[level] || String(level), `lvl l${level}`), el("b", name));
      if (top && top.message) sum.append(el("span", top.message, "msg"));
      d.append(sum);
      for (const c of top && !children.length ? [top] : children) d.append(child(c, name));
      return d;
    });
    this.root.replaceChildren(...tiles);
    this.info.textContent = LEVELS.map((l, i) => (counts[i] ? `${counts[i]} ${l}` : "")).filter(Boolean).join(" · ");
  }
}

function child(s: DStatus, group: string): HTMLElement {
  const div = el("div", undefined, "child");
  const short = s.name.replace(/^\/+/, "").replace(new RegExp(`^${escapeRe(group)}/`), "");
  const head = el("div");
  head.append(el("span", LEVELS[s.level] || String(s.level), `lvl l${s.level}`), el("span", short, "name"));
  div.append(head);
  if (s.message) div.append(el("div", s.message, "muted"));
  if (s.values.length) {
    const dl = el("dl");
    for (const kv of s.values) dl.append(el("dt", kv.key), el("dd", kv.value));
    div.append(dl);
  }
  return div;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
