// The Worker bundle stays small (a small upload starts fast): wrangler builds it exactly as a
// deploy would, for the top level and for [env.production], which `npm run deploy` ships. wrangler only
// warns about a key it does not know (a misspelt observability setting, say) and deploys
// anyway, so any warning fails here instead.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

// About 150 KiB of our code and Hono, and about 500 KiB of zod with @hono/zod-openapi, which check
// requests against the API's one definition (schema/http-api.ts) and write its OpenAPI document.
// zod's error messages in every language are half of that: @hono/zod-openapi imports zod's `z`
// namespace whole, so no bundler can leave them out. 155 KiB gzipped, far within the 3 MiB a
// Worker may upload on the free plan; the bound still catches a dependency that grows it further.
// (Raised from 640 KiB when coherent objects, the directory and the event stream came in.)
const MAX_BUNDLE_BYTES = 704 * 1024;

it.each([
  // `--env=` names the top level: without it wrangler warns that environments exist.
  ["the top level", ["--env="]],
  ["--env production", ["--env", "production"]],
])(`builds %s into a Worker bundle under ${MAX_BUNDLE_BYTES / 1024} KiB`, (name, flags) => {
  const outdir = mkdtempSync(join(tmpdir(), "edgepager-bundle-"));
  try {
    const build = spawnSync(
      "npx",
      ["wrangler", "deploy", "--dry-run", ...flags, "--outdir", outdir],
      {
        env: {
          ...process.env,
          CLOUDFLARE_CF_FETCH_ENABLED: "false",
          WRANGLER_SEND_METRICS: "false",
        },
        encoding: "utf8",
      },
    );
    const output = `${build.stdout}${build.stderr}`;
    expect(build.status, output).toBe(0);
    expect(output).not.toMatch(/WARNING/);
    const bytes = readdirSync(outdir)
      .filter((file) => file.endsWith(".js"))
      .reduce((sum, file) => sum + statSync(join(outdir, file)).size, 0);
    console.log(`Worker bundle (${name}): ${bytes} bytes`);
    expect(bytes).toBeGreaterThan(1000);
    expect(bytes).toBeLessThan(MAX_BUNDLE_BYTES);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
