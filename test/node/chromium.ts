/**
 * Debian's Chromium for the browser tests (test/node/browser-origins.test.ts,
 * test/node/client-reconnect.test.ts, test/node/dashboard.test.ts), driven by playwright-core: a
 * downloaded browser build cannot be fetched here, so the tests use the system's, and skip (loudly)
 * where it is missing. `.ci/run` installs it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";

/** Whether the browser is there; when it is not, says which tests of `file` it skips. */
export function haveChromium(file: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  console.warn(
    `\n!!! ${file}: SKIPPING the browser tests: ${CHROMIUM} is missing. ` +
      "Install Debian's chromium (apt-get install -y chromium; .ci/run does) to run them. !!!\n",
  );
  return false;
}

/**
 * A tiny site on its own port (its own origin): a page titled `title` that loads the built
 * client (dist/client.js, `npm run build` first) as `globalThis.edgepager`.
 */
export async function serveClientPage(title: string): Promise<{ origin: string; server: Server }> {
  const bundle = readFileSync("dist/client.js");
  const html =
    `<!doctype html><meta charset="utf-8"><title>${title}</title>` +
    '<script type="module">import * as edgepager from "/client.js"; ' +
    "globalThis.edgepager = edgepager;</script>";
  const server = createServer((req, res) => {
    if (req.url === "/client.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    } else if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(html);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { origin: `http://127.0.0.1:${port}`, server };
}

/** A headless Chromium in a profile of its own; `close` ends it and removes the profile. */
export async function launchChromium(
  options: { viewport?: { width: number; height: number } } = {},
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), "edgepager-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    ...options,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 30_000,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
