// SEC110: the latest complete files from /sec110/files (transient local: a late joiner gets the
// last 100 at once), newest first.
import { basename, bytes, dateTime, el, num, stampSeconds, Stamp } from "./format";

interface FileMsg { header: { stamp: Stamp }; path: string; size: bigint | number; sha256: string; client_address: string; transfer_seconds: number }

const LIST = 15;

export class FilesView {
  shown = 0;
  firstShownMs: number | null = null;
  #files = new Map<string, FileMsg>();
  #dirty = false;

  constructor(readonly tbody: HTMLTableSectionElement) {
    this.#render();
  }

  add(f: FileMsg): void {
    this.#files.set(`${f.path}\n${f.sha256}`, f);
    this.#dirty = true;
  }

  frame(): void {
    if (this.#dirty) { this.#dirty = false; this.#render(); }
  }

  #render(): void {
    const all = [...this.#files.entries()].sort((a, b) => stampSeconds(b[1].header.stamp) - stampSeconds(a[1].header.stamp));
    for (const [k] of all.slice(100)) this.#files.delete(k);
    const rows = all.slice(0, LIST).map(([, f]) => {
      const tr = el("tr");
      const name = el("td", basename(f.path));
      name.title = `${f.path} from ${f.client_address}`;
      name.append(el("span", dateTime(stampSeconds(f.header.stamp)), "sub"));
      const size = el("td", bytes(num(f.size)), "num");
      const hash = el("span", (f.sha256 || "").slice(0, 8), "sub mono");
      hash.title = f.sha256;
      size.append(hash);
      tr.append(name, size);
      return tr;
    });
    if (!rows.length) {
      const tr = el("tr", undefined, "empty");
      const td = el("td", "no files yet");
      td.colSpan = 2;
      tr.append(td);
      rows.push(tr);
    }
    this.tbody.replaceChildren(...rows);
    this.shown = Math.min(all.length, LIST);
    if (this.shown && this.firstShownMs === null) this.firstShownMs = performance.now();
  }
}
