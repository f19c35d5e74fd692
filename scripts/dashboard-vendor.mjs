#!/usr/bin/env node
// Copies the dashboard's one library, uPlot (an npm devDependency), from node_modules into the
// static assets (public/dashboard/vendor/, gitignored), so the page loads it from the Worker's
// own origin and the repository holds no copy of it. `npm run dev`, `npm test` and
// `npm run deploy` run this first (their pre-scripts); docs/dashboard.md says so.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const from = join(root, "node_modules", "uplot", "dist");
const to = join(root, "public", "dashboard", "vendor");

mkdirSync(to, { recursive: true });
for (const file of ["uPlot.iife.min.js", "uPlot.min.css"]) {
  const source = join(from, file);
  const target = join(to, file);
  // Written only when it differs: a running `wrangler dev` reloads its Worker (and cuts the
  // requests in flight) whenever a file of the assets changes, even to the same bytes.
  if (existsSync(target) && readFileSync(target).equals(readFileSync(source))) continue;
  copyFileSync(source, target);
}
