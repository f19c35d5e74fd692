import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/** Test files that measure isolate-wide state, so must not share an isolate with other files. */
const NEEDS_OWN_ISOLATE = ["test/byte-budget.test.ts", "test/read-cache.test.ts"];

const WORKERD_TEST = {
  // Production limits on every Durable Object's SQL (2 MB values, 100 KB statements,
  // 100 parameters, 32 function arguments): the local runtime is more forgiving.
  setupFiles: ["test/setup/production-sql-guard.ts"],
  testTimeout: 20_000,
};

/**
 * Inside workerd: the real Worker, Durable Object and a local R2 bucket. Timings are shortened so
 * retries, idle flushes and lock timeouts happen within a test.
 */
function workerdPlugin() {
  return cloudflareTest({
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
  });
}

export default defineConfig({
  test: {
    // Three files at a time on two cores: the Node end-to-end tests mostly wait on their servers,
    // so a third worker fills the time; more did not go faster here.
    maxWorkers: 3,
    projects: [
      {
        // Inside workerd, sharing one runtime across test files (isolate: false): every file names
        // its own objects, so files need no fresh runtime each, and starting one per file was a
        // fifth of the run.
        plugins: [workerdPlugin()],
        test: {
          name: "workerd",
          include: ["test/**/*.test.ts", "worker/**/*.test.ts"],
          exclude: ["test/node/**", ...NEEDS_OWN_ISOLATE],
          isolate: false,
          ...WORKERD_TEST,
        },
      },
      {
        // Tests of isolate-wide state (the byte budget, the read cache) get a fresh isolate: what
        // another file's objects left in it would change their figures.
        plugins: [workerdPlugin()],
        test: { name: "workerd-isolated", include: NEEDS_OWN_ISOLATE, ...WORKERD_TEST },
      },
      {
        // In Node: checks of the build and, later, end-to-end tests against a local server.
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          // What a page or a server shows, it shows in time; on a busy machine (three files at
          // once on two cores) not always within vitest's default second.
          expect: { poll: { timeout: 15_000 } },
        },
      },
    ],
  },
});
