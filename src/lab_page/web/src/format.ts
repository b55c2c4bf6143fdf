// Human units for everything the page shows: rounded, never 15 digits.

export type Stamp = { sec: number; nanosec: number };

export function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : typeof v === "number" ? v : Number(v);
}

export function stampSeconds(s: Stamp | undefined): number {
  return s ? num(s.sec) + num(s.nanosec) * 1e-9 : NaN;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** Wall-clock time of a stamp as "12:03:04.512" (local time of the viewing device). */
export function clock(seconds: number): string {
  if (!isFinite(seconds) || seconds <= 0) return "–";
  const d = new Date(seconds * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Date and time, for files: "2026-12-07 12:03:04". */
export function dateTime(seconds: number): string {
  if (!isFinite(seconds) || seconds <= 0) return "–";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A value with about 3 significant digits and no exponent for everyday magnitudes. */
export function sig(v: number, digits = 3): string {
  if (v === null || v === undefined || isNaN(v)) return "–";
  if (!isFinite(v)) return v > 0 ? "∞" : "−∞";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 10 ** digits) return Math.round(v).toLocaleString("en-US");
  if (a < 1e-3) return v.toExponential(digits - 1);
  const decimals = Math.max(0, digits - 1 - Math.floor(Math.log10(a)));
  return v.toFixed(Math.min(decimals, 6));
}

/** Seconds as "1.23 ms", "850 µs", "2.50 s", "3 min 20 s". */
export function duration(s: number): string {
  if (s === null || s === undefined || isNaN(s)) return "–";
  const a = Math.abs(s);
  if (a === 0) return "0 s";
  if (a < 1e-3) return `${sig(s * 1e6)} µs`;
  if (a < 1) return `${sig(s * 1e3)} ms`;
  if (a < 120) return `${sig(s)} s`;
  if (a < 7200) return `${Math.floor(a / 60)} min ${Math.round(a % 60)} s`;
  return `${Math.floor(a / 3600)} h ${Math.round((a % 3600) / 60)} min`;
}

/** Bytes in kB/MB/GB (powers of 1000, as file managers show them). */
export function bytes(n: number): string {
  if (!isFinite(n) || n < 0) return "–";
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${sig(n / 1e3)} kB`;
  if (n < 1e9) return `${sig(n / 1e6)} MB`;
  return `${sig(n / 1e9)} GB`;
}

/** Metres as "1.23 m" / "45 cm"; +inf (empty zone) as "–". */
export function metres(m: number): string {
  if (!isFinite(m)) return "–";
  return Math.abs(m) < 1 ? `${Math.round(m * 100)} cm` : `${sig(m)} m`;
}

export function basename(path: string): string {
  const i = path.lastIndexOf("/");
  return i >= 0 ? path.slice(i + 1) : path;
}

/** Create an element with text (never HTML) and an optional class. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K, text?: string, cls?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

/** A canvas sized to its CSS box at the device's pixel ratio; returns its context and CSS size. */
export function fitCanvas(c: HTMLCanvasElement): { g: CanvasRenderingContext2D; w: number; h: number } {
  const r = window.devicePixelRatio || 1;
  const w = Math.max(1, c.clientWidth), h = Math.max(1, c.clientHeight);
  if (c.width !== Math.round(w * r) || c.height !== Math.round(h * r)) {
    c.width = Math.round(w * r);
    c.height = Math.round(h * r);
  }
  const g = c.getContext("2d") as CanvasRenderingContext2D;
  g.setTransform(r, 0, 0, r, 0, 0);
  g.clearRect(0, 0, w, h);
  return { g, w, h };
}

const cssCache = new Map<string, string>();
if (typeof matchMedia !== "undefined") {
  matchMedia("(prefers-color-scheme: dark)").addEventListener?.("change", () => cssCache.clear());
}

/** A colour of the stylesheet (cached: every draw asks for several). */
export function cssVar(name: string): string {
  let v = cssCache.get(name);
  if (v === undefined) {
    v = getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
    cssCache.set(name, v);
  }
  return v;
}

/** Call fn when the element's size changes (ResizeObserver where there is one, else resize). */
export function onResize(e: Element, fn: () => void): void {
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(fn).observe(e);
  else window.addEventListener("resize", fn);
}
