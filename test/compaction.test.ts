// Compaction (docs/architecture.md §4): segments that are mostly garbage have their live pages copied into
// a new segment, the index moves there, and the old segments are swept; reads never change. The
// alarm after a flush does it; `maintain` does it at a chosen moment. Every scenario ends by
// checking the index against SQLite's segment rows and R2.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SMALL_SEGMENTS_TO_MERGE } from "../durable/compactor";
import type { MemoryObject } from "../durable/memory-object";
import { VM_SYNC_SYNCHRONOUS as SYNC } from "../schema";
import { maintain, objectStub, wrapObjectBucket } from "./helpers/buckets";
import { putPages, readPages, synchronize } from "./helpers/http";
import { waitFor } from "./helpers/wait";
import { inspect } from "./helpers/inspect";

const PAGE = 4096;

/** Page i of version v is filled with (v * 16 + i) % 251, so a page in the wrong place shows. */
function version(v: number, first: number, count: number): Uint8Array {
  const bytes = new Uint8Array(count * PAGE);
  for (let i = 0; i < count; i++) bytes.fill((v * 16 + first + i) % 251, i * PAGE, (i + 1) * PAGE);
  return bytes;
}

async function writeDurably(object: string, firstPage: number, data: Uint8Array): Promise<void> {
  expect((await putPages(object, firstPage * PAGE, data)).status).toBe(200);
  expect((await synchronize(object, firstPage * PAGE, data.byteLength, SYNC)).status).toBe(200);
}

async function segmentsInR2(object: string): Promise<string[]> {
  const listed = await env.PAGES.list({ prefix: `${object}/segments/` });
  return listed.objects.map((o) => o.key).sort();
}

type Row = { key: string; pages: number; live: number };

/** Lowers the garbage a compaction waits for, in the running instance. */
async function compactAtAnyGarbage(object: string): Promise<void> {
  await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
    instance.pager.testHooks.limits.compactMinGarbageBytes = 1;
  });
}

/**
 * The index and the segments agree: every page points at a known segment that R2 holds, each
 * segment's live count is the number of pages pointing at it, and R2 holds no other segment.
 */
async function checkIndex(object: string): Promise<Row[]> {
  const { pages, segments } = await inspect(object, (view) => ({
    pages: view.pageIndex(),
    segments: view.segments(),
  }));
  for (const row of segments) {
    expect(row.live, row.key).toBe(pages.filter((p) => p.segment === row.key).length);
  }
  expect(await segmentsInR2(object)).toEqual(segments.map((row) => row.key));
  return segments;
}

async function same(object: string, firstPage: number, expected: Uint8Array): Promise<boolean> {
  const bytes = await readPages(object, firstPage * PAGE, expected.byteLength);
  return Buffer.from(bytes).equals(Buffer.from(expected));
}

describe("compaction", () => {
  it("moves the live pages of a mostly dead segment, and the old one is deleted", async () => {
    const object = "compact-basic";
    await compactAtAnyGarbage(object);
    await writeDurably(object, 0, version(1, 0, 10)); // A: pages 0-9
    const [a] = await segmentsInR2(object);
    await writeDurably(object, 0, version(2, 0, 8)); // B: 0-7; A keeps 8 and 9 of 10: compacted
    await waitFor(async () => !(await segmentsInR2(object)).includes(a!), "A to be compacted");

    const rows = await checkIndex(object);
    expect(
      rows.map(({ pages, live }) => ({ pages, live })).sort((x, y) => x.pages - y.pages),
    ).toEqual([
      { pages: 2, live: 2 },
      { pages: 8, live: 8 },
    ]);
    expect(await same(object, 0, new Uint8Array([...version(2, 0, 8), ...version(1, 8, 2)]))).toBe(
      true,
    );
  });

  it(`merges ${SMALL_SEGMENTS_TO_MERGE} small segments (one per msync) into one, so a read needs one R2 call`, async () => {
    const object = "compact-small";
    // One page per SYNCHRONOUS msync: a segment each, all live (no garbage at all).
    for (let page = 0; page < SMALL_SEGMENTS_TO_MERGE; page++) {
      await writeDurably(object, page, version(1, page, 1));
    }
    await maintain(object);
    await waitFor(async () => (await segmentsInR2(object)).length === 1, "the merge and sweep");
    expect((await checkIndex(object)).map(({ pages, live }) => ({ pages, live }))).toEqual([
      { pages: SMALL_SEGMENTS_TO_MERGE, live: SMALL_SEGMENTS_TO_MERGE },
    ]);
    const control = await wrapObjectBucket(object);
    expect(await same(object, 0, version(1, 0, SMALL_SEGMENTS_TO_MERGE))).toBe(true);
    expect(control.reads).toBe(1);
  });

  it("leaves fewer small segments than that alone", async () => {
    const object = "compact-few-small";
    for (let page = 0; page < SMALL_SEGMENTS_TO_MERGE - 1; page++) {
      await writeDurably(object, page, version(1, page, 1));
    }
    const control = await wrapObjectBucket(object);
    await maintain(object);
    expect(control.written).toHaveLength(0);
    expect(await segmentsInR2(object)).toHaveLength(SMALL_SEGMENTS_TO_MERGE - 1);
  });

  it("waits for enough garbage: below COMPACT_MIN_GARBAGE_BYTES nothing is rewritten", async () => {
    const object = "compact-threshold";
    const control = await wrapObjectBucket(object);
    await writeDurably(object, 0, version(1, 0, 10));
    await writeDurably(object, 0, version(2, 0, 8)); // 8 pages of garbage, default bound 4 MiB
    await maintain(object);
    expect(control.written).toHaveLength(2);
    const rows = await checkIndex(object);
    expect(rows.map((row) => row.live).sort()).toEqual([2, 8]);
  });

  it("keeps a page superseded while its copy was made where the newer flush put it", async () => {
    const object = "compact-race";
    await compactAtAnyGarbage(object);
    await writeDurably(object, 0, version(1, 0, 10));
    // Slow reads: only the compaction reads R2 here, so its copy commits well after the flush below.
    const control = await wrapObjectBucket(object, { readDelayMs: 150 });
    await writeDurably(object, 0, version(2, 0, 8)); // A mostly dead
    const compacting = maintain(object); // copies pages 8 and 9 of A, slowly ...
    await writeDurably(object, 9, version(3, 9, 1)); // ... while page 9 moves on
    await compacting; // and sweeps A
    expect(control.written).toHaveLength(3);
    const rows = await checkIndex(object);
    // The copy holds pages 8 and 9, but only 8 is live there: 9 stayed where its newer flush put it.
    expect(
      rows.map(({ pages, live }) => ({ pages, live })).sort((x, y) => x.pages - y.pages),
    ).toEqual([
      { pages: 1, live: 1 },
      { pages: 2, live: 1 },
      { pages: 8, live: 8 },
    ]);
    const expected = new Uint8Array([
      ...version(2, 0, 8),
      ...version(1, 8, 1),
      ...version(3, 9, 1),
    ]);
    expect(await same(object, 0, expected)).toBe(true);
  });

  it("a failed copy changes nothing, and a later round does it", async () => {
    const object = "compact-failure";
    await compactAtAnyGarbage(object);
    await writeDurably(object, 0, version(1, 0, 10));
    const control = await wrapObjectBucket(object);
    const [a] = await segmentsInR2(object);
    // The flush of B succeeds, then every put fails: the compaction's copy among them.
    let puts = 0;
    control.putFault = () => (++puts > 1 ? "fail" : null);
    await writeDurably(object, 0, version(2, 0, 8));
    await maintain(object);
    expect(puts).toBeGreaterThanOrEqual(2); // B's flush, then the compaction's copy: failed
    expect(await segmentsInR2(object)).toContain(a);
    await checkIndex(object);

    // Puts work again: the next round compacts A.
    puts = -100;
    await maintain(object);
    expect(await segmentsInR2(object)).not.toContain(a);
    await checkIndex(object);
    const expected = new Uint8Array([...version(2, 0, 8), ...version(1, 8, 2)]);
    expect(await same(object, 0, expected)).toBe(true);
    expect(control.written.length).toBeGreaterThan(0);
  });
});
