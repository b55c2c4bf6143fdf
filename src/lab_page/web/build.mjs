// npm run build: bundle src/main.ts and src/app.css with esbuild (minified, for older phones
// too), copy index.html with the bundle's content hash in its URLs (?v=<hash>: the server
// lets browsers cache those for good), and precompress the large files (.gz beside them).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const out = "dist";
// 2019-2021 phones: private class fields (used by the @foxglove libraries) run natively there.
const target = ["chrome74", "edge79", "firefox90", "safari14.1", "ios14.5"];
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/main.ts"], bundle: true, minify: true, format: "iife", target,
  outfile: `${out}/app.js`, legalComments: "none", logLevel: "warning",
});
await build({
  entryPoints: ["src/app.css"], bundle: true, minify: true, target, outfile: `${out}/app.css`,
  logLevel: "warning",
});
const hash = (f) => createHash("sha256").update(readFileSync(`${out}/${f}`)).digest("hex").slice(0, 10);
const html = readFileSync("src/index.html", "utf8")
  .replace('href="app.css"', `href="app.css?v=${hash("app.css")}"`)
  .replace('src="app.js"', `src="app.js?v=${hash("app.js")}"`);
if (!html.includes("app.js?v=") || !html.includes("app.css?v=")) {
  throw new Error("src/index.html must refer to app.js and app.css");
}
writeFileSync(`${out}/index.html`, html);
for (const f of ["app.js", "app.css", "index.html"]) {
  const raw = readFileSync(`${out}/${f}`);
  if (raw.length < 1024) continue;
  const gz = gzipSync(raw, { level: 9 });
  writeFileSync(`${out}/${f}.gz`, gz);
  console.log(`${f}: ${raw.length} B, gzip ${gz.length} B`);
}
