// Hot pages (docs/architecture.md §4 reads): segment pages a kernel read once are served from memory after,
// never above READ_CACHE_BYTES; bulk HTTP reads use the cache without filling it; a page rewritten
// into a new segment is read from that one, since segments are immutable and keys never reused.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { SegmentCache } from "../durable/segment-cache";
import { VM_SYNC_SYNCHRONOUS as SYNC } from "../schema";
import { objectStub, wrapObjectBucket } from "./helpers/buckets";
import { call, readPages } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";

const PAGE = 4096;

function pages(count: number, fill: (page: number) => number): Uint8Array {
  const bytes = new Uint8Array(count * PAGE);
  for (let i = 0; i < count; i++) bytes.fill(fill(i), i * PAGE, (i + 1) * PAGE);
  return bytes;
}

function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return !!a && Buffer.from(a).equals(Buffer.from(b));
}

describe("SegmentCache", () => {
  it("evicts the least recently used runs to stay within its bound", () => {
    const cache = new SegmentCache(3 * PAGE);
    cache.keep(
      "s1",
      0,
      pages(2, (i) => i + 1),
      PAGE,
    ); // a run of slots 0 and 1
    expect(cache.get("s1", 1)?.[0]).toBe(2);
    cache.keep(
      "s2",
      5,
      pages(1, () => 10),
      PAGE,
    );
    expect(cache.size()).toBe(3 * PAGE);
    cache.keep(
      "s3",
      0,
      pages(1, () => 20),
      PAGE,
    ); // over the bound: s1's run is the oldest
    expect(cache.size()).toBe(2 * PAGE);
    expect(cache.get("s1", 0)).toBeUndefined();
    expect(cache.get("s1", 1)).toBeUndefined();
    expect(cache.get("s2", 5)?.[0]).toBe(10); // s2 is now more recent than s3
    cache.keep(
      "s4",
      0,
      pages(2, () => 30),
      PAGE,
    );
    expect(cache.get("s3", 0)).toBeUndefined();
    expect(cache.get("s2", 5)?.[0]).toBe(10);
    expect(cache.get("s4", 1)?.[0]).toBe(30);
    expect(cache.size()).toBe(3 * PAGE);
    cache.clear();
    expect(cache.size()).toBe(0);
    expect(cache.get("s2", 5)).toBeUndefined();
  });

  it("holds each run as read (pages are views, no copies) and never one larger than the bound", () => {
    const cache = new SegmentCache(4 * PAGE);
    const run = pages(2, (i) => i + 7);
    cache.keep("s", 0, run, PAGE);
    expect(cache.get("s", 1)?.buffer).toBe(run.buffer);
    expect(cache.get("s", 1)?.byteLength).toBe(PAGE);
    expect(cache.get("s", 1)?.[0]).toBe(8);
    cache.keep(
      "big",
      0,
      pages(5, () => 1),
      PAGE,
    );
    expect(cache.get("big", 0)).toBeUndefined();
    expect(cache.size()).toBe(2 * PAGE);
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
    expect(same(await readPages(object, 0, 8 * PAGE), v1)).toBe(true); // HTTP reads use it too
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

  it("stays within its bound", async () => {
    const object = "cache-bound";
    const { kernel } = await TestKernel.open(object, "k1");
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.testHooks.useReadCache(new SegmentCache(4 * PAGE));
    });
    const data = pages(16, (i) => i + 1);
    kernel.dataReturn(0, data);
    await kernel.completion(kernel.synchronize(0, 16 * PAGE, SYNC));
    const control = await wrapObjectBucket(object);
    for (let first = 0; first < 16; first += 4) {
      const piece = await kernel.answer(kernel.dataRequest(first * PAGE, 4 * PAGE));
      expect(same(piece.payload, data.subarray(first * PAGE, (first + 4) * PAGE))).toBe(true);
    }
    expect(control.reads).toBe(4);
    const held = () =>
      runInDurableObject(objectStub(object), (instance: MemoryObject) =>
        instance.pager.testHooks.readCache().size(),
      );
    expect(await held()).toBe(4 * PAGE);
    // The last run read is the one kept: reading it again costs nothing, page 0 does.
    expect(same(await readPages(object, 12 * PAGE, 4 * PAGE), data.subarray(12 * PAGE))).toBe(true);
    expect(control.reads).toBe(4);
    expect(same(await readPages(object, 0, PAGE), data.subarray(0, PAGE))).toBe(true);
    expect(control.reads).toBe(5);
    // A bulk HTTP read passes through: it does not push the kernels' pages out.
    expect(same(await readPages(object, 0, 12 * PAGE), data.subarray(0, 12 * PAGE))).toBe(true);
    expect(control.reads).toBe(6);
    expect(same(await readPages(object, 12 * PAGE, 4 * PAGE), data.subarray(12 * PAGE))).toBe(true);
    expect(control.reads).toBe(6);

    kernel.close();
  });

  it("is shared by the objects of an isolate, and never serves one object's pages to another", async () => {
    const shared = await runInDurableObject(objectStub("cache-a"), (a: MemoryObject) =>
      runInDurableObject(
        objectStub("cache-b"),
        (b: MemoryObject) => a.pager.testHooks.readCache() === b.pager.testHooks.readCache(),
      ),
    );
    expect(shared).toBe(true);
    // Same offsets, different bytes, both read through the cache: each object gets its own.
    const objects = [
      { object: "cache-a", bytes: pages(4, () => 1) },
      { object: "cache-b", bytes: pages(4, () => 2) },
    ];
    const readBack = async (object: string, kernelId: string) => {
      const { kernel } = await TestKernel.open(object, kernelId);
      const read = await kernel.answer(kernel.dataRequest(0, 4 * PAGE));
      kernel.close();
      return read.payload;
    };
    for (const { object, bytes } of objects) {
      const { kernel } = await TestKernel.open(object, "k1");
      kernel.dataReturn(0, bytes);
      await kernel.completion(kernel.synchronize(0, 4 * PAGE, SYNC));
      kernel.close();
      expect(same(await readBack(object, "k2"), bytes)).toBe(true); // from R2, then cached
    }
    for (const { object, bytes } of objects) {
      expect(same(await readBack(object, "k3"), bytes)).toBe(true); // from the cache
    }
  });

  it("after a DELETE, the object's new pages are read, not what the cache held", async () => {
    const object = "cache-deleted";
    const first = await TestKernel.open(object, "k1");
    first.kernel.dataReturn(
      0,
      pages(2, () => 5),
    );
    await first.kernel.completion(first.kernel.synchronize(0, 2 * PAGE, SYNC));
    await first.kernel.answer(first.kernel.dataRequest(0, 2 * PAGE)); // now cached
    first.kernel.close();
    expect((await call(`/v1/objects/${object}`, { method: "DELETE" })).status).toBe(200);

    const second = await TestKernel.open(object, "k1");
    const empty = await second.kernel.answer(second.kernel.dataRequest(0, 2 * PAGE));
    expect(empty.type).toBe("memory_object_data_unavailable");
    second.kernel.dataReturn(
      0,
      pages(2, () => 6),
    );
    await second.kernel.completion(second.kernel.synchronize(0, 2 * PAGE, SYNC));
    const read = await second.kernel.answer(second.kernel.dataRequest(0, 2 * PAGE));
    expect(
      same(
        read.payload,
        pages(2, () => 6),
      ),
    ).toBe(true);
    second.kernel.close();
  });
});
