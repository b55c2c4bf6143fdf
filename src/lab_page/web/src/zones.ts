// The TiM240 seen from above (REP 103: x forward = up on screen, y left = left): the filtered
// scan as dots, the zone outlines from /tim240/markers coloured by their state from
// /tim240/zones, names at each zone, the nearest return, and a list of the zones below.
import { cssVar, duration, el, fitCanvas, metres, num, onResize, stampSeconds, Stamp } from "./format";

type P = { x: number; y: number };
interface Zone { name: string; occupied: boolean; nearest: number; points: number; since: number }

export class ZonesView {
  /** Zone states known (drawn or not). */
  get zones(): number { return this.#state.length; }
  #outlines: P[][] = []; // by marker id (= zone index)
  #labels: string[] = [];
  #scan: P[] = [];
  #state: Zone[] = [];
  #nearest: P | null = null;
  #stamp = 0;
  #dirtyDraw = false;
  #dirtyList = false;
  #radius = NaN;

  constructor(readonly canvas: HTMLCanvasElement, readonly list: HTMLUListElement, readonly info: HTMLElement) {
    onResize(canvas, () => { this.#dirtyDraw = true; });
    this.#renderList();
  }

  scan(m: { angle_min: number; angle_increment: number; range_min: number; range_max: number; ranges: ArrayLike<number> }): void {
    const pts: P[] = [];
    for (let i = 0; i < m.ranges.length; i++) {
      const r = m.ranges[i];
      if (!isFinite(r) || r < m.range_min || r > m.range_max) continue;
      const a = m.angle_min + i * m.angle_increment;
      pts.push({ x: r * Math.cos(a), y: r * Math.sin(a) });
    }
    this.#scan = pts;
    this.#dirtyDraw = true;
  }

  markers(m: { markers: { ns: string; id: number; action: number; points: P[]; text: string }[] }): void {
    for (const mk of m.markers) {
      if (mk.ns === "zones" && mk.action === 0) this.#outlines[mk.id] = mk.points.map((p) => ({ x: p.x, y: p.y }));
      if (mk.ns === "zone_names") this.#labels[mk.id] = mk.text;
    }
    this.#dirtyDraw = true;
  }

  status(m: {
    header: { stamp: Stamp }; names: string[]; occupied: boolean[]; nearest_range: ArrayLike<number>;
    point_count: ArrayLike<number>; since: Stamp[]; nearest_x: number; nearest_y: number;
  }): void {
    this.#state = m.names.map((name, i) => ({
      name, occupied: !!m.occupied[i], nearest: m.nearest_range[i], points: num(m.point_count[i]),
      since: stampSeconds(m.since[i]),
    }));
    this.#nearest = isFinite(m.nearest_x) && isFinite(m.nearest_y) ? { x: m.nearest_x, y: m.nearest_y } : null;
    this.#stamp = stampSeconds(m.header.stamp);
    this.#dirtyDraw = this.#dirtyList = true;
  }

  frame(): void {
    if (this.#dirtyDraw) { this.#dirtyDraw = false; this.#draw(); }
    if (this.#dirtyList) { this.#dirtyList = false; this.#renderList(); }
  }

  #view(): number {
    let r = 1;
    for (const o of this.#outlines) for (const p of o || []) r = Math.max(r, Math.abs(p.x), Math.abs(p.y));
    const d = this.#scan.map((p) => Math.hypot(p.x, p.y)).sort((a, b) => a - b);
    if (d.length) r = Math.max(r, Math.min(d[Math.floor(d.length * 0.9)], 3 * r));
    r *= 1.1;
    this.#radius = isNaN(this.#radius) || r > this.#radius ? r : this.#radius + (r - this.#radius) * 0.05;
    return this.#radius;
  }

  #draw(): void {
    const { g, w, h } = fitCanvas(this.canvas);
    const R = this.#view();
    const s = Math.min(w / 2, h / 1.6) / R; // px per metre; room ahead, less behind
    const cx = w / 2, cy = h * 0.62;
    const S = (p: P) => [cx - p.y * s, cy - p.x * s]; // x forward = up, y left = left
    // range rings
    g.strokeStyle = cssVar("--line");
    g.fillStyle = cssVar("--muted");
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "left";
    g.textBaseline = "alphabetic";
    const step = [0.5, 1, 2, 5, 10, 20].find((k) => R / k <= 4) || 50;
    for (let r = step; r <= R * 1.5; r += step) {
      g.beginPath(); g.arc(cx, cy, r * s, 0, 2 * Math.PI); g.stroke();
      const label = metres(r), lw = g.measureText(label).width;
      const lx = cx + r * s * 0.71 + 2, ly = cy + r * s * 0.71 + 12; // lower right: behind the sensor
      g.fillStyle = "rgba(0,0,0,0.45)";
      g.fillRect(lx - 2, ly - 10, lw + 4, 13);
      g.fillStyle = "#fff";
      g.fillText(label, lx, ly);
    }
    g.beginPath(); g.moveTo(cx, 0); g.lineTo(cx, h); g.moveTo(0, cy); g.lineTo(w, cy); g.stroke();
    // scan points
    g.fillStyle = cssVar("--value");
    for (const p of this.#scan) { const [x, y] = S(p); g.fillRect(x - 1, y - 1, 2, 2); }
    // zones
    g.font = "bold 12px system-ui, sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    this.#outlines.forEach((o, i) => {
      if (!o || o.length < 2) return;
      const st = this.#state[i];
      const c = st ? cssVar(st.occupied ? "--err" : "--ok") : cssVar("--stale");
      g.strokeStyle = c;
      g.lineWidth = 2;
      g.beginPath();
      o.forEach((p, k) => { const [x, y] = S(p); if (k) g.lineTo(x, y); else g.moveTo(x, y); });
      g.stroke();
      g.globalAlpha = st && st.occupied ? 0.18 : 0.07;
      g.fillStyle = c;
      g.fill();
      g.globalAlpha = 1;
      const name = st ? st.name : (this.#labels[i] || `zone ${i}`).split(":")[0];
      const [lx, ly] = S(centroid(o));
      const tw = g.measureText(name).width;
      g.fillStyle = "rgba(0,0,0,0.6)";
      g.fillRect(lx - tw / 2 - 3, ly - 8, tw + 6, 16);
      g.fillStyle = "#fff";
      g.fillText(name, lx, ly);
    });
    g.lineWidth = 1;
    // the sensor and the nearest return
    g.fillStyle = cssVar("--fg");
    g.beginPath(); g.moveTo(cx, cy - 8); g.lineTo(cx - 6, cy + 6); g.lineTo(cx + 6, cy + 6); g.closePath(); g.fill();
    if (this.#nearest) {
      const [x, y] = S(this.#nearest);
      g.fillStyle = cssVar("--event");
      g.beginPath(); g.arc(x, y, 5, 0, 2 * Math.PI); g.fill();
    }
  }

  #listKey = "";

  #renderList(): void {
    const now = Date.now() / 1000;
    // whole seconds, and the DOM only touched when the text changes: a zone list redrawn at the
    // scan rate would relayout the page every 70 ms for nothing
    const age = (z: Zone) => (isFinite(z.since) && z.since > 0 ? Math.floor(Math.max(0, now - z.since)) : -1);
    const key = this.#state.map((z) => `${z.name}|${z.occupied}|${metres(z.nearest)}|${z.points}|${age(z)}`).join("\n");
    const info = this.#stamp ? `${this.#scan.length} points` : "";
    if (this.info.textContent !== info) this.info.textContent = info;
    if (key === this.#listKey && this.list.childElementCount) return;
    this.#listKey = key;
    this.list.replaceChildren(...this.#state.map((z) => {
      const li = el("li", undefined, z.occupied ? "occupied" : "free");
      li.append(el("span", `${z.name} `), el("span", z.occupied ? "occupied" : "free", "st"));
      const sub = [z.occupied ? `nearest ${metres(z.nearest)}` : "", `${z.points} pts`,
        age(z) >= 0 ? `for ${duration(age(z))}` : ""];
      li.append(el("div", sub.filter(Boolean).join(" · "), "muted"));
      return li;
    }));
    if (!this.#state.length) this.list.append(el("li", "no zone states yet", "muted"));
  }
}

function centroid(o: P[]): P {
  const pts = o.length > 2 && o[0].x === o[o.length - 1].x && o[0].y === o[o.length - 1].y ? o.slice(1) : o;
  let x = 0, y = 0;
  for (const p of pts) { x += p.x; y += p.y; }
  return { x: x / pts.length, y: y / pts.length };
}
