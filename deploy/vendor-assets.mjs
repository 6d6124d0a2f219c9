// Copies the locked npm packages' browser builds into saas/static/vendor/ (git-ignored).
// Run by `make install` (after `npm ci`) and by the Dockerfile's asset stage; nothing else
// writes there, so the served files are always exactly the ones package-lock.json pins.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "saas", "static", "vendor");
const files = [
  ["node_modules/chart.js/dist/chart.umd.min.js", "chart.umd.min.js"],
  // The map is referenced by the minified file; collectstatic's manifest storage needs it.
  ["node_modules/chart.js/dist/chart.umd.min.js.map", "chart.umd.min.js.map"],
  ["node_modules/chart.js/LICENSE.md", "chart.js.LICENSE.md"],
];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [from, to] of files) {
  copyFileSync(join(root, from), join(out, to));
}
console.log(`copied ${files.length} files to ${out}`);
