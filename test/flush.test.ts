// A flush of a journal larger than one segment: segments are uploaded several at a time, each
// committed as its own put resolves; one failing segment fails the waiting SYNCHRONOUS request
// but not the others' commits.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { KERN_MEMORY_ERROR } from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { putPages, readPages, stat, synchronize } from "./helpers/http";
import { segments } from "./helpers/inspect";

const MiB = 1024 * 1024;

/** Bytes that differ from page to page (a multiplicative hash of the offset). */
function content(size: number): Uint8Array {
  return new Uint8Array(size).map((_, i) => Math.imul(i + 1, 2654435761) >>> 24);
}

async function segmentsInR2(object: string): Promise<number> {
  return (await env.PAGES.list({ prefix: `${object}/segments/` })).objects.length;
}

describe("flushing several segments", () => {
  it("uploads a 10 MiB journal as several segments and completes after all of them", async () => {
    const object = "flush-many";
    const body = content(10 * MiB);
    expect((await putPages(object, 0, body.subarray(0, 5 * MiB))).status).toBe(200);
    expect((await putPages(object, 5 * MiB, body.subarray(5 * MiB))).status).toBe(200);
    const sync = await synchronize(object, 0, 10 * MiB, 2);
    expect(sync.status).toBe(200);
    // At least 3 segments of at most about 4 MiB (the first PUT may already start a flush).
    expect(await segmentsInR2(object)).toBeGreaterThanOrEqual(3);
    expect((await stat(object)).journal_pages).toBe(0);
    const back = await readPages(object, 0, 10 * MiB);
    expect(Buffer.from(back).equals(Buffer.from(body))).toBe(true);
  });

  it("fails the waiting request when one segment cannot be written, keeping the others", async () => {
    const object = "flush-one-fails";
    const body = content(9 * MiB);
    // Every segment that starts at page 1024 (4 MiB) fails, however the flushes fall.
    const marker = body.slice(4 * MiB, 4 * MiB + 64);
    await wrapObjectBucket(object, {
      putFault: (_key, body) =>
        body.subarray(0, marker.byteLength).every((byte, i) => byte === marker[i]) ? "fail" : null,
    });
    await putPages(object, 0, body.subarray(0, 5 * MiB));
    await putPages(object, 5 * MiB, body.subarray(5 * MiB));
    const sync = await synchronize(object, 0, 9 * MiB, 2);
    expect(sync.status).toBe(500);
    expect(await sync.json()).toMatchObject({
      error: { code: "storage_failed", kern_return: KERN_MEMORY_ERROR },
    });
    // The segment before page 1024 made it and was committed; the failed one's pages (1024 on,
    // at least its 4 MiB) stay in the journal; segments after it may or may not have gone out.
    const status = await stat(object);
    expect(status.journal_pages).toBeGreaterThanOrEqual(1024);
    expect(status.journal_pages).toBeLessThanOrEqual((9 * MiB) / 4096 - 1024);
    expect(await segmentsInR2(object)).toBeGreaterThan(0);
    const back = await readPages(object, 0, 9 * MiB);
    expect(Buffer.from(back).equals(Buffer.from(body))).toBe(true);
  });
});

describe("segment bookkeeping", () => {
  it("counts each segment's live pages: a newer copy elsewhere takes one away", async () => {
    const object = "flush-live";
    await putPages(object, 0, content(3 * 4096));
    expect((await synchronize(object, 0, 3 * 4096, 2)).status).toBe(200);
    // Pages 1 and 2 again: the first segment keeps only page 0.
    await putPages(object, 4096, content(2 * 4096).reverse());
    expect((await synchronize(object, 0, 3 * 4096, 2)).status).toBe(200);
    const rows = (await segments(object))
      .map(({ pages, live }) => ({ pages, live }))
      .sort((a, b) => b.pages - a.pages);
    expect(rows).toEqual([
      { pages: 3, live: 1 },
      { pages: 2, live: 2 },
    ]);
    expect(await stat(object)).toMatchObject({ journal_pages: 0, pages: 3 });
    const back = await readPages(object, 0, 3 * 4096);
    expect(Buffer.from(back.subarray(0, 4096)).equals(Buffer.from(content(4096)))).toBe(true);
    expect(Buffer.from(back.subarray(4096)).equals(Buffer.from(content(2 * 4096).reverse()))).toBe(
      true,
    );
  });
});
