// Hot pages (design.md §4 reads; issue: "cache hot segments within a memory bound"): segment pages
// read once are served from memory after, never above READ_CACHE_BYTES; a page rewritten into a
// new segment is read from that one, since segments are immutable and keys never reused.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { SegmentCache } from "../durable/segment-cache";
import { objectStub, wrapObjectBucket } from "./helpers/buckets";
import { call, readPages } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";

const PAGE = 4096;
const SYNC = 2;

function pages(count: number, fill: (page: number) => number): Uint8Array {
  const bytes = new Uint8Array(count * PAGE);
  for (let i = 0; i < count; i++) bytes.fill(fill(i), i * PAGE, (i + 1) * PAGE);
  return bytes;
}

function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return !!a && Buffer.from(a).equals(Buffer.from(b));
}

describe("SegmentCache", () => {
  it("evicts the least recently used pages to stay within its bound", () => {
    const cache = new SegmentCache(3 * PAGE);
    cache.keep(
      "s1",
      0,
      pages(2, (i) => i + 1),
      PAGE,
    ); // slots 0, 1
    expect(cache.get("s1", 0)?.[0]).toBe(1); // slot 0 is now the most recent
    cache.keep(
      "s2",
      5,
      pages(2, (i) => i + 10),
      PAGE,
    ); // two more: one must go
    expect(cache.size()).toBe(3 * PAGE);
    expect(cache.get("s1", 1)).toBeUndefined(); // the least recently used
    expect(cache.get("s1", 0)?.[0]).toBe(1);
    expect(cache.get("s2", 5)?.[0]).toBe(10);
    expect(cache.get("s2", 6)?.[0]).toBe(11);
    cache.clear();
    expect(cache.size()).toBe(0);
    expect(cache.get("s1", 0)).toBeUndefined();
  });

  it("keeps copies, not views of the buffer a run was read into", () => {
    const cache = new SegmentCache(4 * PAGE);
    const run = pages(2, () => 7);
    cache.keep("s", 0, run, PAGE);
    run.fill(0);
    expect(cache.get("s", 1)?.[0]).toBe(7);
    expect(cache.get("s", 1)?.buffer.byteLength).toBe(PAGE);
  });

  it("keeps nothing when a page is larger than the bound", () => {
    const cache = new SegmentCache(PAGE - 1);
    cache.keep(
      "s",
      0,
      pages(1, () => 1),
      PAGE,
    );
    expect(cache.size()).toBe(0);
  });
});

describe("reads of segment pages", () => {
  it("read again cost no R2 read; a rewritten page comes from its new segment", async () => {
    const object = "cache-hot";
    const { kernel } = await TestKernel.open(object, "k1");
    const v1 = pages(8, (i) => i + 1);
    kernel.dataReturn(0, v1);
    await kernel.completion(kernel.synchronize(0, 8 * PAGE, SYNC));
    const control = await wrapObjectBucket(object);

    const first = await kernel.answer(kernel.dataRequest(0, 8 * PAGE));
    expect(same(first.payload, v1)).toBe(true);
    expect(control.reads).toBe(1); // one ranged read for the run of 8 pages
    const again = await kernel.answer(kernel.dataRequest(2 * PAGE, 4 * PAGE));
    expect(same(again.payload, v1.subarray(2 * PAGE, 6 * PAGE))).toBe(true);
    expect(same(await readPages(object, 0, 8 * PAGE), v1)).toBe(true); // HTTP reads share it
    expect(control.reads).toBe(1);

    // Page 3 rewritten and flushed: its new segment is read, the others still come from memory.
    const v2 = pages(1, () => 99);
    kernel.dataReturn(3 * PAGE, v2);
    await kernel.completion(kernel.synchronize(3 * PAGE, PAGE, SYNC));
    const after = await kernel.answer(kernel.dataRequest(0, 8 * PAGE));
    const expected = v1.slice();
    expected.set(v2, 3 * PAGE);
    expect(same(after.payload, expected)).toBe(true);
    expect(control.reads).toBe(2);
    kernel.close();
  });

  it("stays within its bound, and a deleted object's pages are gone from it", async () => {
    const object = "cache-bound";
    const { kernel } = await TestKernel.open(object, "k1");
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.store.cache = new SegmentCache(4 * PAGE);
    });
    const data = pages(16, (i) => i + 1);
    kernel.dataReturn(0, data);
    await kernel.completion(kernel.synchronize(0, 16 * PAGE, SYNC));
    const control = await wrapObjectBucket(object);
    expect(same(await readPages(object, 0, 16 * PAGE), data)).toBe(true);
    const held = () =>
      runInDurableObject(objectStub(object), (instance: MemoryObject) =>
        instance.pager.store.cache.size(),
      );
    expect(await held()).toBe(4 * PAGE);
    // The last 4 pages read are the ones kept: reading them again costs nothing, page 0 does.
    expect(same(await readPages(object, 12 * PAGE, 4 * PAGE), data.subarray(12 * PAGE))).toBe(true);
    expect(control.reads).toBe(1);
    expect(same(await readPages(object, 0, PAGE), data.subarray(0, PAGE))).toBe(true);
    expect(control.reads).toBe(2);

    kernel.close();
    expect((await call(`/v1/objects/${object}`, { method: "DELETE" })).status).toBe(200);
    expect(await held()).toBe(0);
  });
});
