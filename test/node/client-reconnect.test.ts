// A KernelConnection's events across an outage, in Node and in a real browser (Debian's
// Chromium, driven by playwright-core, running the built client dist/client.js): the real Worker
// sits behind a TCP gate that the test shuts (every socket cut, every new connection refused) and
// opens again. Several reconnect attempts fail while it is shut; what a listener must see is ONE
// `disconnected`, then one `reconnecting` per attempt numbered 1, 2, … with the jittered backoff
// delay before it, then ONE `connected`. A browser ends each failed attempt with an error and a
// close event of its own, which used to be reported as one more `disconnected` each. `close()`
// by the user ends it all: no `reconnecting` follows.
import type { Server as HttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelConnection, VM_SYNC_SYNCHRONOUS } from "../../client";
import { waitFor } from "../helpers/wait";
import { FAST_VARS, startHarness, within, type Harness } from "./harness";
import { haveChromium, launchChromium, serveClientPage } from "./chromium";

const HAVE_CHROMIUM = haveChromium("test/node/client-reconnect.test.ts");

/** Short backoff, so an outage of a second or two sees several attempts. */
const BACKOFF = { initialMs: 40, maxMs: 320 };
/** How long the gate stays shut: long enough for at least four failed attempts. */
const OUTAGE_MS = 1500;

/** One event as a listener saw it, in order. */
type Seen =
  | { event: "disconnected"; code: number }
  | { event: "reconnecting"; attempt: number; delayMs: number }
  | { event: "connected" };

/** The connection's outage events, in order, as they come (`reasons`: a close's reason too). */
function recordEvents(
  kernel: KernelConnection,
  { reasons = false } = {},
): (Seen & { reason?: string })[] {
  const seen: (Seen & { reason?: string })[] = [];
  kernel.on("disconnected", ({ code, reason }) =>
    seen.push(reasons ? { event: "disconnected", code, reason } : { event: "disconnected", code }),
  );
  kernel.on("reconnecting", ({ attempt, delayMs }) =>
    seen.push({ event: "reconnecting", attempt, delayMs }),
  );
  kernel.on("connected", () => seen.push({ event: "connected" }));
  return seen;
}

/**
 * A TCP proxy on a fixed port in front of the Worker. `shut()` cuts every connection through it
 * and stops listening (connections are refused, as from a server that is down); `open()` listens
 * on the same port again.
 */
class Gate {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => {});
      }
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async shut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}

/**
 * What the events must be: one `disconnected`, `reconnecting` attempts 1..n (n ≥ 3, each delay
 * the jittered backoff: between half and all of min(maxMs, initialMs·2^(attempt−1))), then one
 * `connected`.
 */
function expectOneOutage(seen: Seen[]): void {
  expect(seen[0]).toMatchObject({ event: "disconnected" });
  expect(seen.at(-1)).toEqual({ event: "connected" });
  const attempts = seen.slice(1, -1);
  expect(attempts.length).toBeGreaterThanOrEqual(3);
  attempts.forEach((seenAttempt, index) => {
    expect(seenAttempt).toMatchObject({ event: "reconnecting", attempt: index + 1 });
    const cap = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** index);
    const { delayMs } = seenAttempt as { delayMs: number };
    expect(delayMs).toBeGreaterThanOrEqual(cap / 2);
    expect(delayMs).toBeLessThanOrEqual(cap);
  });
}

let harness: Harness;
let gate: Gate;
let page: { origin: string; server: HttpServer } | null = null;

beforeAll(async () => {
  page = HAVE_CHROMIUM ? await serveClientPage("edgepager reconnecting") : null;
  harness = await startHarness({
    ...FAST_VARS,
    ...(page && { ALLOWED_ORIGINS: page.origin }),
  });
  const target = new URL(harness.url);
  gate = new Gate({ host: target.hostname, port: Number(target.port) });
  await gate.open();
}, 60_000);
afterAll(async () => {
  await gate?.shut();
  await harness?.close();
  page?.server.close();
});

describe("in Node", () => {
  it("an outage: one disconnected, reconnecting attempts 1..n with their delays, one connected", async () => {
    const kernel = await KernelConnection.connect({
      url: gate.url,
      object: "reconnect-node",
      kernel: "k1",
      backoff: BACKOFF,
    });
    const seen = recordEvents(kernel);

    await gate.shut();
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    await gate.open();
    await within(
      waitFor(() => kernel.connected, "the reconnect"),
      10_000,
      "the reconnect",
    );
    expectOneOutage(seen);
    expect(seen[0]).toEqual({ event: "disconnected", code: 1006 });

    // Back for real: a return and its msync go through.
    await kernel.dataReturn(0, new Uint8Array(4096).fill(7));
    expect(await kernel.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS)).toMatchObject({
      type: "memory_object_synchronize_completed",
    });

    // close() by the user: nothing more, and never a reconnect.
    const before = seen.length;
    kernel.close();
    await new Promise((resolve) => setTimeout(resolve, 4 * BACKOFF.maxMs));
    expect(seen.slice(before)).toEqual([]);
  });

  it("a reconnect of its own (abandoned groups to discard) is announced the same way, with no delay", async () => {
    const kernel = await KernelConnection.connect({
      url: gate.url,
      object: "reconnect-node",
      kernel: "k3",
      backoff: BACKOFF,
    });
    const seen = recordEvents(kernel, { reasons: true });
    // MAX_OPEN_GROUPS (64) groups given up: the next group makes the connection cycle its socket.
    const page = new Uint8Array(4096);
    for (let i = 0; i <= 64; i++) {
      const group = kernel.newGroup();
      kernel.dataReturn(0, page, { group }).catch(() => {});
      if (i < 64) kernel.abandonGroup(group);
    }
    await within(
      waitFor(() => seen.length >= 3 && kernel.connected, "the cycle"),
      10_000,
      "the cycle",
    );
    expect(seen).toEqual([
      { event: "disconnected", code: 1000, reason: "discarding abandoned atomic groups" },
      { event: "reconnecting", attempt: 1, delayMs: 0 },
      { event: "connected" },
    ]);
    kernel.close();
  });

  it("close() during an outage stops the reconnecting", async () => {
    const kernel = await KernelConnection.connect({
      url: gate.url,
      object: "reconnect-node",
      kernel: "k2",
      backoff: BACKOFF,
    });
    const seen = recordEvents(kernel);
    await gate.shut();
    try {
      await waitFor(() => seen.length >= 3, "two reconnect attempts");
      kernel.close();
      const before = seen.length;
      await new Promise((resolve) => setTimeout(resolve, 4 * BACKOFF.maxMs));
      expect(seen.slice(before)).toEqual([]);
      expect(seen.filter((s) => s.event === "disconnected")).toHaveLength(1);
      expect(kernel.connected).toBe(false);
    } finally {
      await gate.open();
    }
  });
});

describe.skipIf(!HAVE_CHROMIUM)("in Chromium", () => {
  let context: BrowserContext;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

  beforeAll(async () => {
    browser = await launchChromium();
    context = browser.context;
  }, 60_000);
  afterAll(() => browser?.close());

  it("an outage: one disconnected, reconnecting attempts 1..n with their delays, one connected", async () => {
    const tab = await context.newPage();
    await tab.goto(`${page!.origin}/`);
    await tab.waitForFunction(() => (globalThis as any).edgepager !== undefined, null, {
      timeout: 10_000,
    });
    // The page connects and records every event; the test reads `seen` back after the outage.
    await tab.evaluate(
      async ({ url, backoff }) => {
        const ep = (globalThis as any).edgepager;
        const seen: unknown[] = [];
        const kernel = await ep.KernelConnection.connect({
          url,
          object: "reconnect-browser",
          kernel: "browser",
          backoff,
          connectTimeoutMs: 10_000,
        });
        kernel.on("disconnected", ({ code }: any) => seen.push({ event: "disconnected", code }));
        kernel.on("reconnecting", ({ attempt, delayMs }: any) =>
          seen.push({ event: "reconnecting", attempt, delayMs }),
        );
        kernel.on("connected", () => seen.push({ event: "connected" }));
        Object.assign(globalThis, { kernel, seen });
      },
      { url: gate.url, backoff: BACKOFF },
    );

    await gate.shut();
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS));
    await gate.open();
    await tab.waitForFunction(() => (globalThis as any).kernel.connected, null, {
      timeout: 10_000,
    });
    const seen = (await tab.evaluate(() => (globalThis as any).seen)) as Seen[];
    expectOneOutage(seen);
    expect(seen[0]).toEqual({ event: "disconnected", code: 1006 });

    // Back for real, then closed by the user: nothing more, and never a reconnect.
    const after = (await tab.evaluate(async (waitMs) => {
      const ep = (globalThis as any).edgepager;
      const { kernel, seen } = globalThis as any;
      await kernel.dataReturn(0, new Uint8Array(4096).fill(9));
      await kernel.synchronize(0, 4096, ep.VM_SYNC_SYNCHRONOUS);
      const before = seen.length;
      kernel.close();
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      return seen.slice(before);
    }, 4 * BACKOFF.maxMs)) as Seen[];
    expect(after).toEqual([]);
    await tab.close();
  });
});
