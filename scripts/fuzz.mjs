#!/usr/bin/env node
// `npm run fuzz -- --frames N --seed S`: runs the fuzz command's test (test/fuzz.test.ts, "fuzz
// command") inside workerd: N frames from seed S against one live object, every answer checked
// against the reference model (vitest.config.ts passes FUZZ_FRAMES and FUZZ_SEED into the
// Worker's bindings). Prints progress, then the figures.
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

const USAGE =
  "usage: npm run fuzz -- --frames N --seed S [--minutes M]\n" +
  "  N: 1 to 100000000 frames; S: 0 to 4294967295; M: stop drawing frames after M minutes (1 to 1440)";

function fail(message) {
  console.error(`fuzz: ${message}\n${USAGE}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      frames: { type: "string", default: "100000" },
      seed: { type: "string", default: String(Date.now() % 1_000_000_000) },
      minutes: { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  fail(error.message);
}

/** A whole number written in decimal (underscores allowed: 1_000_000) or hex (0x…). */
function whole(name, text, min, max) {
  const clean = text.replaceAll("_", "");
  if (!/^(\d+|0x[0-9a-f]+)$/i.test(clean)) fail(`--${name} must be a whole number, got "${text}"`);
  const value = Number(clean);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    fail(`--${name} must be from ${min} to ${max}, got ${text}`);
  }
  return value;
}

const frames = whole("frames", values.frames, 1, 100_000_000);
const seed = whole("seed", values.seed, 0, 0xffffffff);
const minutes = values.minutes === undefined ? 0 : whole("minutes", values.minutes, 1, 1440);
console.log(`fuzz: ${frames} frames, seed ${seed}${minutes ? `, at most ${minutes} minutes` : ""}`);
const result = spawnSync(
  "npx",
  ["vitest", "run", "--project", "workerd", "test/fuzz.test.ts", "-t", "fuzz command"],
  {
    stdio: "inherit",
    env: {
      ...process.env,
      FUZZ_FRAMES: String(frames),
      FUZZ_SEED: String(seed),
      FUZZ_MINUTES: minutes ? String(minutes) : "",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
    },
  },
);
process.exit(result.status ?? 1);
