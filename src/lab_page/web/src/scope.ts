// The PBT scope: the rolling window of /pbt/scope drawn on a canvas, once per animation frame
// and only when a new window arrived. The envelope goes on top of the value in its own colour;
// the y range follows the data (grows at once, shrinks slowly) so no peak is ever clipped.
import { cssVar, fitCanvas, num, onResize, sig } from "./format";

type Arr = ArrayLike<number>;

export interface ScopeMsg {
  t: Arr; value: Arr; envelope: Arr; baseline: Arr; threshold: Arr; events: Arr;
  window: number; sample_rate: number; bucket_samples: number; missing: number; event_count: number;
}

export class ScopeView {
  draws = 0;
  #msg: ScopeMsg | null = null;
  #dirty = false;
  #lo = NaN;
  #hi = NaN;

  constructor(readonly canvas: HTMLCanvasElement, readonly info: HTMLElement) {
    onResize(canvas, () => { this.#dirty = this.#msg !== null; });
  }

  set(m: ScopeMsg): void {
    this.#msg = m;
    this.#dirty = true;
  }

  /** Called every animation frame; draws only when something changed. */
  frame(): void {
    if (!this.#dirty || !this.#msg) return;
    this.#dirty = false;
    this.#draw(this.#msg);
    this.draws += 1;
  }

  #range(m: ScopeMsg): [number, number] {
    let lo = Infinity, hi = -Infinity;
    for (const a of [m.value, m.envelope, m.baseline, m.threshold]) {
      for (let i = 0; i < a.length; i++) {
        const v = a[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v; // NaN compares false: gaps are skipped
      }
    }
    if (!isFinite(lo) || !isFinite(hi)) return [0, 1];
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.06;
    lo -= pad; hi += pad;
    // grow at once, shrink by 10 % of the excess per window
    this.#lo = isNaN(this.#lo) || lo < this.#lo ? lo : this.#lo + (lo - this.#lo) * 0.1;
    this.#hi = isNaN(this.#hi) || hi > this.#hi ? hi : this.#hi + (hi - this.#hi) * 0.1;
    return [this.#lo, this.#hi];
  }

  #draw(m: ScopeMsg): void {
    const { g, w, h } = fitCanvas(this.canvas);
    const left = 44, right = 14, top = 6, bottom = 18;
    const pw = w - left - right, ph = h - top - bottom;
    const win = num(m.window) || 1;
    const [lo, hi] = this.#range(m);
    const X = (t: number) => left + ((t + win) / win) * pw;
    const Y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * ph;
    // grid and axes
    g.strokeStyle = cssVar("--line");
    g.fillStyle = cssVar("--muted");
    g.lineWidth = 1;
    g.font = "11px system-ui, sans-serif";
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (const v of ticks(lo, hi, Math.max(2, Math.floor(ph / 40)))) {
      const y = Math.round(Y(v)) + 0.5;
      g.beginPath(); g.moveTo(left, y); g.lineTo(w - right, y); g.stroke();
      g.fillText(sig(v), left - 4, y);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    for (const t of ticks(-win, 0, Math.max(2, Math.floor(pw / 70)))) {
      g.textAlign = t === 0 ? "right" : "center";
      g.fillText(`${sig(t)} s`, t === 0 ? w - 2 : X(t), h - bottom + 4);
    }
    g.save();
    g.beginPath(); g.rect(left, top, pw, ph); g.clip();
    line(g, m.t, m.baseline, X, Y, cssVar("--baseline"), 1, [4, 3]);
    line(g, m.t, m.threshold, X, Y, cssVar("--threshold"), 1, [6, 3]);
    line(g, m.t, m.value, X, Y, cssVar("--value"), 2, []);
    line(g, m.t, m.envelope, X, Y, cssVar("--envelope"), 1.2, []); // on top: always visible
    g.fillStyle = cssVar("--event");
    for (let i = 0; i < m.events.length; i++) {
      const v = m.events[i];
      if (!isFinite(v)) continue;
      const x = X(m.t[i]), y = Y(v);
      g.beginPath(); g.moveTo(x, y - 2); g.lineTo(x - 5, y - 10); g.lineTo(x + 5, y - 10);
      g.closePath(); g.fill();
    }
    g.restore();
    const info =
      `${sig(win)} s · ${sig(num(m.sample_rate))} Hz · ${num(m.event_count)} events in window` +
      (num(m.missing) ? ` · ${num(m.missing)} slots missing` : "");
    if (this.info.textContent !== info) this.info.textContent = info; // no relayout for nothing
  }
}

function line(
  g: CanvasRenderingContext2D, t: Arr, v: Arr, X: (t: number) => number, Y: (v: number) => number,
  color: string, width: number, dash: number[],
): void {
  g.strokeStyle = color;
  g.lineWidth = width;
  g.setLineDash(dash);
  g.beginPath();
  let pen = false;
  const n = Math.min(t.length, v.length);
  for (let i = 0; i < n; i++) {
    const y = v[i];
    if (!isFinite(y)) { pen = false; continue; } // a gap: the trace breaks
    if (pen) g.lineTo(X(t[i]), Y(y)); else g.moveTo(X(t[i]), Y(y));
    pen = true;
  }
  g.stroke();
  g.setLineDash([]);
}

/** Round tick values (1, 2, 5 x 10^k) covering [lo, hi] with about n steps. */
export function ticks(lo: number, hi: number, n: number): number[] {
  const span = hi - lo;
  if (!(span > 0) || !isFinite(span)) return [];
  const raw = span / n, p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw) || 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}
