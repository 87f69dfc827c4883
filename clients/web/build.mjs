// Builds the page into dist/ (index.html and one bundled app.js) and the tests into
// dist-test/ (node ES modules), with esbuild.
import { build } from "esbuild";
import { copyFile, mkdir, readdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
await rm(`${here}dist`, { recursive: true, force: true });
await rm(`${here}dist-test`, { recursive: true, force: true });
await mkdir(`${here}dist`, { recursive: true });

await build({
  entryPoints: [`${here}src/main.ts`],
  outfile: `${here}dist/app.js`,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});
await copyFile(`${here}index.html`, `${here}dist/index.html`);

const tests = (await readdir(`${here}test`)).filter((f) => f.endsWith(".test.ts"));
await build({
  entryPoints: tests.map((f) => `${here}test/${f}`),
  outdir: `${here}dist-test`,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  logLevel: "warning",
});
