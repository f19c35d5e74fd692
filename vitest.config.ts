import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Tests run inside workerd with the real Durable Object and a local R2 bucket. Timings are
// shortened so retries, idle flushes and lock timeouts happen within a test.
export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          FLUSH_DELAY_MS: "300",
          FLUSH_RETRY_MS: "5",
          FLUSH_MAX_ATTEMPTS: "3",
          LOCK_TIMEOUT_MS: "400",
        },
      },
    }),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
  },
});
