#!/usr/bin/env node
// Copies the dashboard's one library, uPlot (an npm devDependency), from node_modules into the
// static assets (public/dashboard/vendor/, gitignored), so the page loads it from the Worker's
// own origin and the repository holds no copy of it. `npm run dev`, `npm test` and
// `npm run deploy` run this first (their pre-scripts); docs/dashboard.md says so.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const from = join(root, "node_modules", "uplot", "dist");
const to = join(root, "public", "dashboard", "vendor");

mkdirSync(to, { recursive: true });
for (const file of ["uPlot.iife.min.js", "uPlot.min.css"]) {
  copyFileSync(join(from, file), join(to, file));
}
