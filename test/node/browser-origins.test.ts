// Browser origins in a real browser: Debian's Chromium, driven by playwright-core, loads the
// built client (dist/client.js) into pages served from two other local ports and uses it against
// the real Worker, whose ALLOWED_ORIGINS lists the first. From the allowed origin HttpClient
// (write, synchronize, read, stat) and KernelConnection with a PageCache (connect, init, a
// data_return and its msync, a fault) all work. From the other one every HTTP call fails as the
// browser enforces CORS (TypeError: Failed to fetch), the socket upgrade is refused (403), and a
// form-like POST that the browser sends without a preflight does not reach the object. A client
// that sends no Origin (Node here) is unaffected. worker/allow-origins.test.ts checks the headers.
import { request as httpRequest, type Server } from "node:http";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient, KernelConnection, VM_SYNC_SYNCHRONOUS } from "../../client";
import { FAST_VARS, startHarness, within, type Harness } from "./harness";
import { haveChromium, launchChromium, serveClientPage } from "./chromium";

const HAVE_CHROMIUM = haveChromium("test/node/browser-origins.test.ts");

/** The result of each step a page ran: its value, or the error it threw as `Name: message`. */
type Steps = Record<string, { ok: true; value: any } | { ok: false; error: string }>;

/**
 * In the page: the HTTP API through HttpClient, then a kernel (KernelConnection + PageCache) that
 * returns a dirty page and msyncs it, then a bare WebSocket to see how its upgrade ends.
 */
function runClient(
  page: Page,
  url: string,
  object: string,
  connectTimeoutMs: number,
): Promise<Steps> {
  return page.evaluate(
    async ({ url, object, connectTimeoutMs }) => {
      const ep = (globalThis as any).edgepager;
      const steps: Record<string, unknown> = {};
      async function step(name: string, run: () => Promise<unknown>) {
        try {
          steps[name] = { ok: true, value: await run() };
        } catch (error) {
          const { name: kind, message } = error as Error;
          steps[name] = { ok: false, error: `${kind}: ${message}` };
        }
      }
      const bytes = new Uint8Array(8192).map((_, i) => (i * 7) % 251);
      const http = new ep.HttpClient(url);
      await step("write", () => http.write(object, 0, bytes));
      await step("synchronize", () => http.synchronize(object, 0, 8192, ep.VM_SYNC_SYNCHRONOUS));
      await step("read", async () => {
        const got: Uint8Array = await http.read(object, 0, 8192);
        return got.length === bytes.length && got.every((b, i) => b === bytes[i]);
      });
      await step("stat", () => http.stat(object));
      let kernel: any = null;
      await step("connect", async () => {
        kernel = await ep.KernelConnection.connect({
          url,
          object,
          kernel: "browser",
          connectTimeoutMs,
        });
        return kernel.ready;
      });
      if (kernel) {
        const cache = new ep.PageCache(kernel);
        await step("msync", async () => {
          await cache.write(8192, new Uint8Array(4096).fill(42));
          return cache.msync(8192, 4096, ep.VM_SYNC_SYNCHRONOUS);
        });
        await step("fault", async () => Array.from((await cache.read(0, 8)) as Uint8Array));
        kernel.close();
      }
      await step(
        "socket",
        () =>
          new Promise((resolve) => {
            const socket = new WebSocket(ep.controlUrl({ url, object, kernel: "bare" }));
            socket.onopen = () => {
              socket.close();
              resolve("open");
            };
            socket.onclose = (event) => resolve(`closed ${event.code}`);
          }),
      );
      return steps as any;
    },
    { url, object, connectTimeoutMs },
  );
}

/** A WebSocket upgrade from Node with this Origin: the status and body of a refusal, or 101. */
function upgradeFrom(url: string, origin: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/v1/objects/origins-node/control?kernel=k1`, {
      headers: {
        origin,
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("upgrade", (response, socket) => {
      socket.destroy();
      resolve({ status: response.statusCode!, body: "" });
    });
    req.on("response", (response) => {
      let body = "";
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode!, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

let harness: Harness;
let url: string;
let allowed: { origin: string; server: Server };
let other: { origin: string; server: Server };

beforeAll(async () => {
  allowed = await serveClientPage("edgepager in a browser");
  other = await serveClientPage("edgepager in a browser");
  harness = await startHarness({ ...FAST_VARS, ALLOWED_ORIGINS: allowed.origin });
  url = harness.url.replace(/\/$/, "");
}, 60_000);
afterAll(async () => {
  await harness?.close();
  allowed?.server.close();
  other?.server.close();
});

describe.skipIf(!HAVE_CHROMIUM)("in Chromium", () => {
  let context: BrowserContext;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

  beforeAll(async () => {
    browser = await launchChromium();
    context = browser.context;
  }, 60_000);
  afterAll(() => browser?.close());

  async function open(origin: string): Promise<{ page: Page; logs: string[] }> {
    const page = await context.newPage();
    const logs: string[] = [];
    page.on("console", (message) => logs.push(message.text()));
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => (globalThis as any).edgepager !== undefined, null, {
      timeout: 10_000,
    });
    return { page, logs };
  }

  it("from an allowed origin, the HTTP API and the control socket both work", async () => {
    const { page, logs } = await open(allowed.origin);
    const steps = await within(runClient(page, url, "browser-allowed", 15_000), 30_000, "the page");
    for (const [name, outcome] of Object.entries(steps)) {
      expect(outcome, name).toMatchObject({ ok: true });
    }
    expect(steps.write).toMatchObject({ value: { offset: 0, length: 8192 } });
    expect(steps.synchronize).toMatchObject({
      value: { type: "memory_object_synchronize_completed", offset: 0, length: 8192 },
    });
    expect(steps.read).toMatchObject({ value: true });
    expect(steps.stat).toMatchObject({ value: { object: "browser-allowed", pages: 2 } });
    expect(steps.connect).toMatchObject({ value: { type: "memory_object_ready" } });
    expect(steps.msync).toMatchObject({
      value: { type: "memory_object_synchronize_completed", offset: 8192, length: 4096 },
    });
    expect(steps.fault).toMatchObject({ value: [0, 7, 14, 21, 28, 35, 42, 49] });
    expect(steps.socket).toMatchObject({ value: "open" });
    expect(logs.join("\n")).not.toMatch(/CORS|WebSocket connection/);
    // What the kernel returned is there for anyone: read from Node, which sends no Origin.
    const stored = await new HttpClient(url).read("browser-allowed", 8192, 4096);
    expect(stored).toEqual(new Uint8Array(4096).fill(42));
    await page.close();
  });

  it("from another origin, every HTTP call fails (no CORS headers), the socket is refused, and nothing reaches the object", async () => {
    const { page, logs } = await open(other.origin);
    const object = "browser-refused";
    const steps = await within(runClient(page, url, object, 2000), 30_000, "the page");
    for (const name of ["write", "synchronize", "read", "stat"]) {
      expect(steps[name], name).toEqual({ ok: false, error: "TypeError: Failed to fetch" });
    }
    expect(steps.connect).toMatchObject({ ok: false, error: /^ConnectionClosedError: / });
    // 1006: the handshake failed; a page is never told why (the 403 is checked from Node below).
    expect(steps.socket).toEqual({ ok: true, value: "closed 1006" });
    // Chromium's own account: CORS blocked the calls, and the handshake was answered 403.
    expect(logs.join("\n")).toMatch(/blocked by CORS policy/);
    expect(logs.join("\n")).toMatch(/WebSocket connection to '[^']*kernel=bare' failed: .*\b403\b/);
    // A form-like POST: a "simple" request, sent without a preflight. The page gets an opaque
    // answer either way; the Worker refused it, so the object never saw it.
    const sent = await page.evaluate(async (target) => {
      const response = await fetch(target, {
        method: "POST",
        mode: "no-cors",
        body: JSON.stringify({ offset: 0, length: 4096, sync_flags: 2 }),
      });
      return response.type;
    }, `${url}/v1/objects/${object}/synchronize`);
    expect(sent).toBe("opaque");
    // Nor do the GETs a page can send with its origin hidden (no-cors, an image).
    const hidden = await page.evaluate(async (target) => {
      const response = await fetch(target, { mode: "no-cors" });
      await new Promise((resolve) => {
        const image = new Image();
        image.onload = image.onerror = resolve;
        image.src = target;
      });
      return response.type;
    }, `${url}/v1/objects/${object}/pages?offset=0&length=4096`);
    expect(hidden).toBe("opaque");
    // This status request is the first message the object numbers: nothing else reached it.
    expect(await new HttpClient(url).stat(object)).toMatchObject({ pages: 0, seqno: 1 });
    await page.close();
  });
});

describe("outside a browser", () => {
  it("a client that sends no Origin is unaffected: HTTP and the control socket", async () => {
    const http = new HttpClient(url);
    await http.write("origins-node", 0, new Uint8Array(4096).fill(5));
    expect(await http.read("origins-node", 0, 4096)).toEqual(new Uint8Array(4096).fill(5));
    const kernel = await KernelConnection.connect({
      url,
      object: "origins-node",
      kernel: "node",
      connectTimeoutMs: 5000,
    });
    await kernel.dataReturn(4096, new Uint8Array(4096).fill(6));
    expect(await kernel.synchronize(0, 8192, VM_SYNC_SYNCHRONOUS)).toMatchObject({
      type: "memory_object_synchronize_completed",
    });
    kernel.close();
    expect(await upgradeFrom(url, allowed.origin)).toMatchObject({ status: 101 });
  });

  it("an upgrade naming another origin gets 403 with a JSON error that says why", async () => {
    const refused = await upgradeFrom(url, other.origin);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({
      error: { code: "origin_not_allowed", kern_return: 2 },
    });
    expect(JSON.parse(refused.body).error.message).toContain("ALLOWED_ORIGINS");
  });
});
