// The dashboard (docs/dashboard.md) in a real browser: Debian's Chromium, driven by
// playwright-core, opens /dashboard/ on the real Worker (test/node/harness.ts) while kernels in
// Node write, msync and leave. It sees an object a kernel made appear in the list, searched and
// paged; a token kept and sent, with authentication on; an INVALIDATE msync outstanding (it
// waits for another kernel's lock_completed, which this test holds back, docs/protocol.md §6)
// and then complete; a kernel's disconnect, and its stale mark; the event log and the charts;
// the page map of 100,000 pages; and the page kept responsive at 1,000 messages a second. A
// screenshot of each view is kept under test-artifacts/dashboard/ (gitignored).
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HttpClient,
  KernelConnection,
  PageCache,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
  type LockRequestMessage,
} from "../../client";
import { signToken } from "../../schema";
import { FAST_VARS, startAuthHarness, startHarness, within, type Harness } from "./harness";
import { haveChromium, launchChromium } from "./chromium";

const HAVE_CHROMIUM = haveChromium("test/node/dashboard.test.ts");
const ARTIFACTS = "test-artifacts/dashboard";
const PAGE = 4096;

let harness: Harness;
let url: string;

beforeAll(async () => {
  // uPlot into public/dashboard/vendor/, as `npm test` and `npm run dev` do first.
  execFileSync(process.execPath, ["scripts/dashboard-vendor.mjs"]);
  mkdirSync(ARTIFACTS, { recursive: true });
  // A long lock timeout: the INVALIDATE msync completes by the holder's answer, not by expiry.
  // A long flush delay: what is not msynced SYNCHRONOUS stays in the journal, for the page map.
  harness = await startHarness({ ...FAST_VARS, LOCK_TIMEOUT_MS: "60000", FLUSH_DELAY_MS: "60000" });
  url = harness.url.replace(/\/$/, "");
}, 60_000);
afterAll(async () => {
  await harness?.close();
});

describe("served by the Worker", () => {
  it("the page and uPlot are static assets under /dashboard/; every other path still reaches the Worker", async () => {
    const page = await fetch(`${url}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain("edgepager dashboard");
    const chart = await fetch(`${url}/dashboard/vendor/uPlot.iife.min.js`);
    expect(chart.status).toBe(200);
    expect(await chart.text()).toContain("uPlot");
    // The API is not shadowed: its description, its OpenAPI document, an object's status.
    expect(await (await fetch(`${url}/`)).json()).toMatchObject({ service: "edgepager" });
    expect(await (await fetch(`${url}/openapi.json`)).json()).toMatchObject({ openapi: "3.1.0" });
    const status = await fetch(`${url}/v1/objects/dash-served`);
    expect(await status.json()).toMatchObject({ object: "dash-served" });
    // A path under /dashboard/ that is no file is the Worker's JSON 404, not a page.
    const missing = await fetch(`${url}/dashboard/missing.js`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
  });
});

describe.skipIf(!HAVE_CHROMIUM)("in Chromium", () => {
  let context: BrowserContext;
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;

  beforeAll(async () => {
    browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
    context = browser.context;
  }, 60_000);
  afterAll(() => browser?.close());

  /**
   * The scene of the live views: a writer that wrote `pages` pages of `fill` and made them
   * durable, and a holder that caches page 0 and keeps the lock requests it gets, to answer them
   * when the test says.
   */
  async function holderAndWriter(object: string, pages: number, fill: number) {
    const holder = await KernelConnection.connect({
      url,
      object,
      kernel: "holder",
      pageSize: PAGE,
    });
    const locks: LockRequestMessage[] = [];
    holder.on("lock_request", (lock) => locks.push(lock));
    const writerKernel = await KernelConnection.connect({
      url,
      object,
      kernel: "writer",
      pageSize: PAGE,
    });
    const writer = new PageCache(writerKernel);
    await writer.write(0, new Uint8Array(pages * PAGE).fill(fill));
    await writer.msync(0, pages * PAGE, VM_SYNC_SYNCHRONOUS);
    await holder.dataRequest(0, PAGE);
    return { holder, locks, writerKernel, writer };
  }

  /** Opens the dashboard at `fragment`; the page's errors fail the test at its end. */
  async function open(fragment: string): Promise<{ page: Page; errors: string[] }> {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${url}/dashboard/${fragment}`);
    return { page, errors };
  }

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  it("the object list shows an object a kernel created and wrote, searches by prefix, pages, and drops a deleted one", async () => {
    // Opened first: the objects appear in it as it refreshes, without a reload.
    const { page, errors } = await open("#/?prefix=dash-listed&limit=2");
    await page.locator("#list-page").filter({ hasText: "no objects" }).waitFor();

    const kernel = await KernelConnection.connect({
      url,
      object: "dash-listed-1",
      kernel: "k1",
      pageSize: PAGE,
    });
    const cache = new PageCache(kernel);
    await cache.write(0, new Uint8Array(4 * PAGE).fill(3));
    await cache.msync(0, 4 * PAGE, VM_SYNC_SYNCHRONOUS);
    const http = new HttpClient(url);
    await http.write("dash-listed-2", 0, new Uint8Array(8192).fill(4), 8192);
    // A coherent object (HttpClient has no option for the mode: the query says it).
    const coherent = await fetch(`${url}/v1/objects/dash-listed-3/pages?offset=0&coherent=1`, {
      method: "PUT",
      body: new Uint8Array(PAGE).fill(5),
    });
    expect(coherent.status).toBe(200);
    await http.write("other-listed", 0, new Uint8Array(PAGE).fill(6));

    const row = (name: string) => page.locator(`#objects tbody tr[data-object="${name}"]`);
    await row("dash-listed-1").waitFor({ timeout: 15_000 });
    // Polled: the list refreshes itself every 5 s, and the directory has the pages shortly after
    // their flush.
    await expect
      .poll(() => row("dash-listed-1").locator("td").allTextContents(), {
        timeout: 15_000,
      })
      .toEqual([
        "dash-listed-1",
        "4096",
        "plain",
        "4", // its first pages are listed at once (later ones at most once a minute)
        "16.0 KiB",
        expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
        expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/),
      ]);
    // Two a page: the first two by name, then the third.
    const names = () =>
      page
        .locator("#objects tbody tr")
        .evaluateAll((rows) => rows.map((tr) => (tr as HTMLElement).dataset.object));
    expect(await names()).toEqual(["dash-listed-1", "dash-listed-2"]);
    expect(await row("dash-listed-2").locator("td").nth(1).textContent()).toBe("8192");
    await page.click("#list-next");
    await expect.poll(names).toEqual(["dash-listed-3"]);
    expect(await row("dash-listed-3").locator("td").nth(2).textContent()).toBe("coherent");
    expect(await page.locator("#list-next").isDisabled()).toBe(true);
    await page.click("#list-previous");
    await expect.poll(names).toEqual(["dash-listed-1", "dash-listed-2"]);

    // Another prefix, typed into the search: the other object only; a prefix nobody has: none.
    await page.fill("#prefix", "other-");
    await expect.poll(names).toEqual(["other-listed"]);
    expect(page.url()).toMatch(/#\/\?prefix=other-&limit=2$/);
    await page.fill("#prefix", "nothing-");
    await expect.poll(names).toEqual([]);
    await page.fill("#prefix", "");
    await expect.poll(names).toEqual(expect.arrayContaining(["dash-listed-1", "dash-listed-2"]));
    await page.fill("#prefix", "dash-listed");
    await expect.poll(names).toEqual(["dash-listed-1", "dash-listed-2"]);
    await page.evaluate(() => history.replaceState(null, "", "#/?prefix=dash-"));
    await page.reload();
    await row("dash-listed-1").waitFor();
    await shot(page, "list");

    // A deleted object leaves the list at once (here refreshed by hand, not waited for).
    await http.remove("dash-listed-2");
    await page.click("#list-refresh");
    await row("dash-listed-2").waitFor({ state: "detached", timeout: 5000 });

    // Its name opens the object's view.
    await row("dash-listed-1").locator("a").click();
    await expect.poll(() => page.locator("#object-name").textContent()).toBe("dash-listed-1");
    await expect.poll(() => page.locator('#status dd[data-field="pages"]').textContent()).toBe("4");
    kernel.close();
    expect(errors).toEqual([]);
    await page.close();
  });

  it("with authentication on: nothing without a token; a pasted token is kept and sent, and lists only the names it covers", async () => {
    const secret = "dashboard-secret";
    const { server, url: authUrl } = await startAuthHarness(secret);
    try {
      const exp = Math.floor(Date.now() / 1000) + 600;
      const admin = await signToken(secret, { object: "*", rights: ["read", "write"], exp });
      const http = new HttpClient(authUrl, admin);
      for (const name of ["tenant-a.one", "tenant-a.two", "tenant-b.one"]) {
        await http.write(name, 0, new Uint8Array(PAGE).fill(1));
      }
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(error.message));
      // The page itself is a static asset: served with no token.
      await page.goto(`${authUrl}/dashboard/#/`);
      await page
        .locator("#list-error")
        .filter({ hasText: /unauthorized/ })
        .waitFor({ timeout: 10_000 });

      const tenantA = await signToken(secret, { object: "tenant-a.*", rights: ["read"], exp });
      await page.fill("#token", tenantA);
      await page.click('#token-form button[type="submit"]');
      const names = () =>
        page
          .locator("#objects tbody tr")
          .evaluateAll((rows) => rows.map((tr) => (tr as HTMLElement).dataset.object));
      await expect.poll(names, { timeout: 10_000 }).toEqual(["tenant-a.one", "tenant-a.two"]);
      expect(await page.locator("#list-error").isHidden()).toBe(true);
      expect(await page.evaluate(() => localStorage.getItem("edgepager.token"))).toBe(tenantA);
      expect(await page.inputValue("#token")).toBe(""); // not left on screen

      // Kept across a reload; one of its objects opens with its status.
      await page.reload();
      await expect.poll(names, { timeout: 10_000 }).toEqual(["tenant-a.one", "tenant-a.two"]);
      await page.goto(`${authUrl}/dashboard/#/objects/tenant-a.one`);
      await expect
        .poll(() => page.locator('#status dd[data-field="pages"]').textContent())
        .toBe("1");
      await shot(page, "object-with-token");
      // A name the token does not cover: the API's refusal, shown.
      await page.goto(`${authUrl}/dashboard/#/objects/tenant-b.one`);
      await page
        .locator("#object-error")
        .filter({ hasText: /forbidden/ })
        .waitFor({ timeout: 10_000 });

      // Forgotten: refused again.
      await page.goto(`${authUrl}/dashboard/#/`);
      await page.click("#token-clear");
      await page
        .locator("#list-error")
        .filter({ hasText: /unauthorized/ })
        .waitFor({ timeout: 10_000 });
      expect(await page.evaluate(() => localStorage.getItem("edgepager.token"))).toBeNull();
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await server.close();
    }
  });

  it("one object, live: an INVALIDATE msync outstanding, then completed; a kernel's disconnect", async () => {
    const object = "dash-live";
    // The holder caches page 0 (a data_request) and answers lock requests only when told.
    const { holder, locks, writerKernel, writer } = await holderAndWriter(object, 4, 7);

    const { page, errors } = await open(`#/objects/${object}`);
    await page.locator('#kernels tr[data-kernel="holder"][data-state="connected"]').waitFor();
    await page.locator('#kernels tr[data-kernel="writer"][data-state="connected"]').waitFor();
    await expect.poll(() => page.locator('#status dd[data-field="pages"]').textContent()).toBe("4");

    // The writer changes page 0 and msyncs it INVALIDATE: it waits for the holder's answer.
    await writer.write(0, new Uint8Array(PAGE).fill(8));
    const invalidated = writer.msync(0, PAGE, VM_SYNC_INVALIDATE);
    await within(
      expect.poll(() => locks.length, { timeout: 10_000 }).toBe(1),
      15_000,
      "the lock request to reach the holder",
    );
    const outstanding = page.locator('#syncs tbody tr[data-sync^="writer#"]');
    await outstanding.waitFor({ timeout: 10_000 });
    expect(await outstanding.locator("td").nth(2).textContent()).toBe(`[0, +${PAGE})`);
    // The flags come from the list of outstanding syncs (the event stream does not carry them).
    await expect
      .poll(() => outstanding.locator("td").nth(3).textContent(), { timeout: 5000 })
      .toBe("INVALIDATE");
    // Its age grows while it waits.
    await expect
      .poll(async () => parseFloat((await outstanding.locator("td").nth(4).textContent()) ?? ""), {
        timeout: 5000,
      })
      .toBeGreaterThanOrEqual(1);
    await shot(page, "object-msync-outstanding");

    // The holder answers; the msync completes, and the dashboard no longer lists it.
    const lock = locks[0]!;
    await holder.lockCompleted(lock.lock_id, lock.offset, lock.length);
    expect(await within(invalidated, 10_000, "the INVALIDATE msync")).toMatchObject({
      type: "memory_object_synchronize_completed",
      offset: 0,
      length: PAGE,
    });
    await expect.poll(() => page.locator("#syncs tbody tr").count(), { timeout: 10_000 }).toBe(0);

    // The holder leaves: the dashboard shows it disconnected, the writer still connected.
    holder.close();
    await page
      .locator('#kernels tr[data-kernel="holder"][data-state="disconnected"]')
      .waitFor({ timeout: 15_000 });
    expect(await page.locator('#kernels tr[data-kernel="writer"]').getAttribute("data-state")).toBe(
      "connected",
    );
    await shot(page, "object-kernel-disconnected");
    writerKernel.close();
    expect(errors).toEqual([]);
    await page.close();
  });

  it("the event log and the charts follow the object's events", async () => {
    const object = "dash-events";
    const { page, errors } = await open(`#/objects/${object}`);
    await page.locator("#stream-state").filter({ hasText: "live" }).waitFor({ timeout: 10_000 });
    const { holder, locks, writerKernel, writer } = await holderAndWriter(object, 8, 1);

    // An INVALIDATE msync the holder holds back for 1.5 s: its latency is at least that.
    await writer.write(0, new Uint8Array(PAGE).fill(2));
    const invalidated = writer.msync(0, PAGE, VM_SYNC_INVALIDATE);
    await expect.poll(() => locks.length, { timeout: 10_000 }).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await holder.lockCompleted(locks[0]!.lock_id, locks[0]!.offset, locks[0]!.length);
    await within(invalidated, 10_000, "the INVALIDATE msync");

    const log = async () => (await page.locator("#log").textContent()) ?? "";
    await expect.poll(log, { timeout: 5000 }).toMatch(/completion: writer id \d+ \[0, \+4096\)/);
    const text = await log();
    expect(text).toMatch(/kernel writer connected/);
    expect(text).toMatch(/#\d+ writer id \d+ memory_object_data_return \[0, \+32768\)/);
    expect(text).toMatch(/flush: segment \S+, 8 pages, 32768 bytes/);
    expect(text).toMatch(/#\d+ writer id \d+ memory_object_synchronize \[0, \+4096\)/);
    expect(text).toMatch(/lock_request \d+ to holder \(invalidate\) \[0, \+4096\)/);
    // Newest first, in seqno order.
    const seqnos = [...text.matchAll(/^\S+ {2}#(\d+) /gm)].map((match) => Number(match[1]));
    expect(seqnos.length).toBeGreaterThanOrEqual(4);
    expect(seqnos).toEqual([...seqnos].sort((a, b) => b - a));

    // The charts' figures for the last minute: 9 pages returned, 2 msyncs, the slow one ≥ 1.5 s.
    await expect
      .poll(() => page.locator("#throughput-summary").textContent(), { timeout: 3000 })
      .toBe("last minute: 36.0 KiB returned");
    const latency = page.locator("#latency-summary");
    await expect
      .poll(() => latency.textContent(), { timeout: 3000 })
      .toMatch(/^last minute: 2 msyncs completed, mean \d+ ms, max \d+ ms$/);
    const max = Number(/max (\d+) ms/.exec((await latency.textContent())!)![1]);
    expect(max).toBeGreaterThanOrEqual(1400);
    await shot(page, "object-events");

    // The holder reads page 0 again (its lock_completed dropped it), then leaves: its `kernel`
    // event shows it disconnected before the next status poll.
    await holder.dataRequest(0, PAGE);
    holder.close();
    await page
      .locator('#kernels tr[data-kernel="holder"][data-state="disconnected"]')
      .waitFor({ timeout: 2000 });
    await expect.poll(log).toMatch(/kernel holder disconnected/);
    // An INVALIDATE while it is away: it still may cache page 0, so it is marked stale
    // (docs/protocol.md §6.6), and the msync completes without waiting for it.
    await writer.write(0, new Uint8Array(PAGE).fill(3));
    await within(writer.msync(0, PAGE, VM_SYNC_INVALIDATE), 10_000, "the second INVALIDATE");
    const holderRow = page.locator('#kernels tr[data-kernel="holder"]');
    await expect.poll(() => holderRow.locator("td").nth(3).textContent()).toBe("stale");
    expect(await holderRow.getAttribute("data-state")).toBe("disconnected");
    // It completed at once: counted, and not left behind as outstanding.
    await expect.poll(() => latency.textContent()).toMatch(/^last minute: 3 msyncs completed/);
    expect(await page.locator("#syncs tbody tr").count()).toBe(0);
    await shot(page, "object-kernel-stale");
    writerKernel.close();
    expect(errors).toEqual([]);
    await page.close();
  });

  it("the page map of 100,000 pages: cells by where their pages live, segments by live share", async () => {
    const object = "dash-map";
    const kernel = await KernelConnection.connect({ url, object, kernel: "k", pageSize: PAGE });
    const cache = new PageCache(kernel);
    // Pages 0-9 into one segment, then 0-4 again into another: the first is half live.
    await cache.write(0, new Uint8Array(10 * PAGE).fill(1));
    await cache.msync(0, 10 * PAGE, VM_SYNC_SYNCHRONOUS);
    await cache.write(0, new Uint8Array(5 * PAGE).fill(2));
    await cache.msync(0, 5 * PAGE, VM_SYNC_SYNCHRONOUS);
    kernel.close();
    // The last 10 of 100,000 pages, over HTTP: in the journal (the harness flushes after a minute).
    await new HttpClient(url).write(object, 99_990 * PAGE, new Uint8Array(10 * PAGE).fill(3));

    const { page, errors } = await open(`#/objects/${object}`);
    const summary = page.locator("#map-summary");
    await expect
      .poll(() => summary.textContent(), { timeout: 10_000 })
      .toBe(
        // 98 pages a cell (100,000 / 1,024, rounded up), so 1,021 cells.
        "100,000 pages in 1,021 cells (up to 98 pages each): " +
          "10 in R2, 10 in the journal, 99,980 never written",
      );
    const shares = await page.locator("#segments tbody tr td:nth-child(5)").allTextContents();
    expect(shares.sort()).toEqual(["100.0 %", "50.0 %"]);
    // The canvas: the first cell shows R2 pages in a segment's colour, the last the journal's
    // amber, one in between nothing (64 cells a row, 16 pixels each).
    const pixels = await page.evaluate(() => {
      const canvas = document.getElementById("map") as HTMLCanvasElement;
      const context = canvas.getContext("2d")!;
      const at = (cell: number) => {
        const x = (cell % 64) * 16 + 7;
        const y = Math.floor(cell / 64) * 16 + 14;
        return Array.from(context.getImageData(x, y, 1, 1).data.slice(0, 3));
      };
      return { first: at(0), middle: at(500), last: at(1020) };
    });
    expect(pixels.middle).toEqual([0xee, 0xf1, 0xf4]);
    expect(pixels.last).toEqual([0xe3, 0xa0, 0x08]);
    expect(pixels.first).not.toEqual(pixels.middle);
    expect(pixels.first).not.toEqual(pixels.last);
    await page.locator('#status dd[data-field="pages"]').waitFor();
    await page.locator("#log").filter({ hasText: "hello" }).waitFor();
    await shot(page, "map");
    expect(errors).toEqual([]);
    await page.close();
  });

  it("stays responsive while an object takes about 1,000 messages a second", async () => {
    const object = "dash-load";
    const { page, errors } = await open(`#/objects/${object}`);
    await page.locator("#stream-state").filter({ hasText: "live" }).waitFor({ timeout: 10_000 });
    // A heartbeat every 20 ms on the page's main thread: the longest gap between two beats is
    // the longest the page could not answer a click.
    await page.evaluate(() => {
      const heart = { last: performance.now(), worst: 0 };
      (globalThis as any).heart = heart;
      setInterval(() => {
        const now = performance.now();
        heart.worst = Math.max(heart.worst, now - heart.last);
        heart.last = now;
      }, 20);
    });
    // It works: a task of the test's own, 150 ms long, is seen.
    await page.evaluate(() => {
      const until = performance.now() + 150;
      while (performance.now() < until);
    });
    await expect
      .poll(() => page.evaluate(() => (globalThis as any).heart.worst))
      .toBeGreaterThanOrEqual(150);
    await page.evaluate(() => ((globalThis as any).heart.worst = 0));

    // A kernel returns small pages, 100 every 100 ms for 5 seconds: each is one message event.
    const kernel = await KernelConnection.connect({ url, object, kernel: "loader", pageSize: 512 });
    const bytes = new Uint8Array(512).fill(9);
    const began = Date.now();
    let sent = 0;
    for (let tick = 1; tick <= 50; tick++) {
      const batch: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) batch.push(kernel.dataReturn((sent++ % 2000) * 512, bytes));
      await Promise.all(batch);
      await new Promise((resolve) => setTimeout(resolve, began + tick * 100 - Date.now()));
    }
    const rate = sent / ((Date.now() - began) / 1000);

    // The page heard of every message, or was told how many it lost.
    const counted = async () => {
      const text = (await page.locator("#log-counts").textContent()) ?? "";
      const received = Number(/(\d+) received/.exec(text)?.[1] ?? 0);
      const lost = Number(/(\d+) lost/.exec(text)?.[1] ?? 0);
      return received + lost;
    };
    await expect.poll(counted, { timeout: 15_000 }).toBeGreaterThanOrEqual(sent);
    const worst: number = await page.evaluate(() => (globalThis as any).heart.worst);
    console.log(
      `dashboard under load: ${sent} messages at ${rate.toFixed(0)} a second; ` +
        `the page's main thread was held at most ${worst.toFixed(0)} ms at a time`,
    );
    await expect
      .poll(() => page.locator("#throughput-summary").textContent())
      .toMatch(/^last minute: [\d.]+ [KM]iB returned$/);
    await shot(page, "object-under-load");
    expect(worst).toBeLessThan(250);
    kernel.close();
    expect(errors).toEqual([]);
    await page.close();
  });

  it("the page's bookkeeping keeps up with 1,000 events a second: a minute of them takes well under a minute", async () => {
    const { page, errors } = await open("#/");
    // The object view's parts on their own (the state, the charts' per-second buckets, the
    // bounded log), handed to the evaluated function by a module script: a string, so that the
    // test's own bundler does not try to resolve its imports.
    await page.addScriptTag({
      type: "module",
      content:
        'import { ObjectState } from "/dashboard/object-state.js";\n' +
        'import { EventLog } from "/dashboard/event-log.js";\n' +
        'import { Charts } from "/dashboard/charts.js";\n' +
        "globalThis.dashboardModules = { ObjectState, EventLog, Charts };",
    });
    await page.waitForFunction(() => (globalThis as any).dashboardModules !== undefined);
    const figures = await page.evaluate(() => {
      const { ObjectState, EventLog, Charts } = (globalThis as any).dashboardModules;
      const element = () => document.createElement("div");
      const pre = document.createElement("pre");
      const counts = document.createElement("span");
      const state = new ObjectState();
      const log = new EventLog(pre, counts);
      const charts = new Charts(element(), element(), element(), element());
      const start = Date.now() - 60_000;
      state.apply({
        type: "hello",
        at: start,
        status: { seqno: 0, kernels: [{ kernel: "k1", connected: true, last_id: 0 }] },
      });
      // A minute at 1,000 a second: a page returned, its synchronize, its completion, and again.
      const began = performance.now();
      for (let i = 0; i < 60_000; i++) {
        const at = start + i;
        const step = i % 3;
        const event =
          step === 2
            ? {
                type: "completion",
                at,
                kernel: "k1",
                id: i - 1,
                seqno: i - 1,
                offset: 0,
                length: 4096,
              }
            : {
                type: "message",
                at,
                seqno: i,
                kernel: "k1",
                message: step === 0 ? "memory_object_data_return" : "memory_object_synchronize",
                id: i,
                offset: 0,
                length: 4096,
                outcome: "ok",
              };
        log.add(event);
        const effect = state.apply(event);
        if (effect.bytes) charts.addBytes(at, effect.bytes);
        if (effect.latencyMs !== undefined) charts.addLatency(at, effect.latencyMs);
      }
      log.render();
      charts.draw(start + 60_000);
      const ms = performance.now() - began;
      log.destroy();
      charts.destroy();
      return {
        ms,
        lines: pre.textContent!.split("\n").length,
        counts: counts.textContent,
        outstanding: state.syncs.size,
      };
    });
    console.log(
      `dashboard: 60,000 events applied, the log and charts drawn, in ${figures.ms.toFixed(0)} ms`,
    );
    expect(figures.lines).toBe(500);
    expect(figures.counts).toContain("60000 received");
    expect(figures.outstanding).toBe(0);
    // A minute of events costs the page a small fraction of that minute.
    expect(figures.ms).toBeLessThan(6000);
    expect(errors).toEqual([]);
    await page.close();
  });
});
