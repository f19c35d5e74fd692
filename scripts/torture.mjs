#!/usr/bin/env node
// `npm run torture -- --ops N --seed S`: runs test/torture.test.ts and test/coherent-torture.test.ts inside workerd with N operations
// from seed S (vitest.config.ts passes TORTURE_OPS and TORTURE_SEED into the Worker's bindings).
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    ops: { type: "string", default: "1000" },
    seed: { type: "string", default: String(Date.now() % 1_000_000_000) },
  },
});
for (const [name, value] of Object.entries(values)) {
  if (!/^\d+$/.test(value)) {
    console.error(`--${name} must be a non-negative integer, got ${value}`);
    process.exit(2);
  }
}
console.log(`torture: ${values.ops} operations, seed ${values.seed}`);
const result = spawnSync(
  "npx",
  [
    "vitest",
    "run",
    "--project",
    "workerd",
    "test/torture.test.ts",
    "test/coherent-torture.test.ts",
  ],
  {
    stdio: "inherit",
    env: {
      ...process.env,
      TORTURE_OPS: values.ops,
      TORTURE_SEED: values.seed,
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
    },
  },
);
process.exit(result.status ?? 1);
