/**
 * Upkeep in bounded batches (durable/r2-bounds.ts): a backlog of dead segments, a long orphan
 * listing or a compaction of many small pages never binds one SQL list past the 2 MB per value
 * (the production SQL guard of test/setup refuses it) nor makes more R2 calls in one round than
 * its bound; what is left waits for the next round.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { KEYS_PER_DELETE, SWEEP_DELETE_CALLS } from "../durable/r2-bounds";
import { VM_SYNC_SYNCHRONOUS } from "../schema";
import { maintain, objectStub, wrapObjectBucket } from "./helpers/buckets";
import { countRows, segments } from "./helpers/inspect";
import { putPages, readPages, synchronize } from "./helpers/http";

/** Adds `count` dead segment rows, as a long-lived object accumulates them, with real R2 objects. */
async function addDeadSegments(object: string, count: number, withObjects = 0): Promise<string[]> {
  const keys = Array.from(
    { length: count },
    (_, i) => `${object}/segments/${String(i).padStart(16, "0")}-dead-${"x".repeat(60)}`,
  );
  for (const key of keys.slice(0, withObjects)) await env.PAGES.put(key, new Uint8Array(16));
  await runInDurableObject(objectStub(object), (_instance: MemoryObject, state) => {
    for (let i = 0; i < keys.length; i += 500) {
      state.storage.sql.exec(
        `INSERT INTO segments (key, pages, live) SELECT value, 1, 0 FROM json_each(?)`,
        JSON.stringify(keys.slice(i, i + 500)),
      );
    }
  });
  return keys;
}

/** Segment rows no page points at (the idle flush may add a live one meanwhile). */
async function deadRows(object: string): Promise<number> {
  return (await segments(object)).filter((row) => row.live <= 0).length;
}

describe("the sweeper", () => {
  it("deletes a backlog of 12,000 dead segments in rounds of bounded R2 calls", async () => {
    const object = "sweep-backlog";
    expect((await putPages(object, 0, new Uint8Array(4096).fill(1))).status).toBe(200);
    const keys = await addDeadSegments(object, 12_000, 20);
    // As one JSON list these keys pass 1 MB; the sweep would have bound them at once.
    expect(JSON.stringify(keys).length).toBeGreaterThan(1_000_000);
    const control = await wrapObjectBucket(object);

    await maintain(object);
    expect(control.deleteAttempts).toBe(SWEEP_DELETE_CALLS);
    expect(await deadRows(object)).toBe(12_000 - SWEEP_DELETE_CALLS * KEYS_PER_DELETE);
    // Those with R2 objects came first (lowest keys): gone from R2 too.
    expect(await env.PAGES.head(keys[0]!)).toBeNull();

    await maintain(object);
    expect(control.deleteAttempts).toBe(12);
    expect(await deadRows(object)).toBe(0);
  });

  it("leaves the rest to the next alarm: a backlog is cleared without anyone asking", async () => {
    const object = "sweep-alarm";
    expect((await putPages(object, 0, new Uint8Array(4096).fill(1))).status).toBe(200);
    await addDeadSegments(object, 30);
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      Object.assign(instance.pager.testHooks.sweepBounds, { keysPerDelete: 4, deleteCalls: 2 });
    });
    const control = await wrapObjectBucket(object);
    await maintain(object); // 8 of 30, and the alarm is asked to come back
    expect(control.deleteAttempts).toBe(2);
    const deadline = Date.now() + 10_000;
    while ((await deadRows(object)) > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await deadRows(object)).toBe(0);
    // Never more than two calls a round: 30 keys in rounds of 8 (4 rounds, the last partial).
    expect(control.deleteAttempts).toBeLessThanOrEqual(8);
  });

  it("scans for orphans a bounded number of listings a round, resuming where it stopped", async () => {
    const object = "orphans-bounded";
    expect((await putPages(object, 0, new Uint8Array(4096).fill(2))).status).toBe(200);
    expect((await synchronize(object, 0, 4096, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    const orphans = Array.from({ length: 9 }, (_, i) => `${object}/segments/orphan-${i}`);
    for (const key of orphans) await env.PAGES.put(key, new Uint8Array(8));
    const control = await wrapObjectBucket(object);
    await runInDurableObject(objectStub(object), async (instance: MemoryObject) => {
      Object.assign(instance.pager.testHooks.sweepBounds, { keysPerDelete: 2, listCalls: 2 });
      await instance.pager.testHooks.sweepOrphans(0);
      // Two listings of two keys: it stopped with a cursor, the scan is not finished.
      expect(instance.pager.testHooks.orphanScanUnfinished()).toBe(true);
    });
    expect(control.lists).toBe(2);
    await runInDurableObject(objectStub(object), async (instance: MemoryObject) => {
      while (instance.pager.testHooks.orphanScanUnfinished()) {
        await instance.pager.testHooks.sweepOrphans(0);
      }
    });
    // 10 keys (9 orphans and the live segment) in listings of 2.
    expect(control.lists).toBe(5);
    for (const key of orphans) expect(await env.PAGES.head(key)).toBeNull();
    expect((await readPages(object, 0, 4096)).every((b) => b === 2)).toBe(true);
  });
});

describe("compaction at 512-byte pages", () => {
  it("moves thousands of live pages in chunked statements, and reads them back", async () => {
    const object = "compact-512";
    const pages = 16384; // two 4 MiB segments of 512-byte pages
    const first = new Uint8Array(pages * 512);
    for (let page = 0; page < pages; page++) first.fill(page % 251, page * 512, (page + 1) * 512);
    expect((await putPages(object, 0, first, "&page_size=512")).status).toBe(200);
    expect((await synchronize(object, 0, first.byteLength, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    expect(await countRows(object, "segments")).toBe(2);
    // Five eighths of each rewritten: each keeps 3,072 live pages (under half), and together
    // they hold 5 MiB of garbage, past COMPACT_MIN_GARBAGE_BYTES.
    const rewritten = new Uint8Array(5120 * 512).fill(255);
    const expected = first.slice();
    for (const page of [0, 8192]) {
      expected.set(rewritten, page * 512);
      expect((await putPages(object, page * 512, rewritten)).status).toBe(200);
    }
    expect((await synchronize(object, 0, first.byteLength, VM_SYNC_SYNCHRONOUS)).status).toBe(200);

    const control = await wrapObjectBucket(object);
    await maintain(object);
    // One ranged get per old segment for its live pages, one put for the new segment: 6,144
    // pages moved, more than one JSON list's worth (SQL_LIST_ITEMS).
    expect(control.reads).toBe(2);
    expect(control.written).toHaveLength(1);
    const bytes = await readPages(object, 0, first.byteLength);
    expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
    expect(await countRows(object, "pages")).toBe(pages);
  });
});
