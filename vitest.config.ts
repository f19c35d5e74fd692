import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // Inside workerd: the real Worker, Durable Object and a local R2 bucket. Timings are
        // shortened so retries, idle flushes and lock timeouts happen within a test.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                FLUSH_DELAY_MS: "300",
                FLUSH_RETRY_MS: "5",
                FLUSH_MAX_ATTEMPTS: "3",
                LOCK_TIMEOUT_MS: "400",
                // test/torture.test.ts: `npm run torture -- --ops N --seed S` sets these.
                TORTURE_OPS: process.env.TORTURE_OPS ?? "",
                TORTURE_SEED: process.env.TORTURE_SEED ?? "",
                // test/fuzz.test.ts: `npm run fuzz -- --frames N --seed S [--minutes M]` sets these.
                FUZZ_FRAMES: process.env.FUZZ_FRAMES ?? "",
                FUZZ_SEED: process.env.FUZZ_SEED ?? "",
                FUZZ_MINUTES: process.env.FUZZ_MINUTES ?? "",
              },
            },
          }),
        ],
        test: {
          name: "workerd",
          include: ["test/**/*.test.ts", "worker/**/*.test.ts"],
          exclude: ["test/node/**"],
          // Production limits on every Durable Object's SQL (2 MB values, 100 KB statements,
          // 100 parameters, 32 function arguments): the local runtime is more forgiving.
          setupFiles: ["test/setup/production-sql-guard.ts"],
          testTimeout: 20_000,
        },
      },
      {
        // In Node: checks of the build and, later, end-to-end tests against a local server.
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
        },
      },
    ],
  },
});
