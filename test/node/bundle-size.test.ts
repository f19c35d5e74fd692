// The Worker bundle stays small (style.md §8): wrangler builds it exactly as a deploy would.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

const MAX_BUNDLE_BYTES = 100 * 1024;

it(`builds a Worker bundle under ${MAX_BUNDLE_BYTES / 1024} KiB`, () => {
  const outdir = mkdtempSync(join(tmpdir(), "edgepager-bundle-"));
  try {
    execFileSync("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], {
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
      stdio: "pipe",
    });
    const bytes = readdirSync(outdir)
      .filter((file) => file.endsWith(".js"))
      .reduce((sum, file) => sum + statSync(join(outdir, file)).size, 0);
    console.log(`Worker bundle: ${bytes} bytes`);
    expect(bytes).toBeGreaterThan(1000);
    expect(bytes).toBeLessThan(MAX_BUNDLE_BYTES);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
});
