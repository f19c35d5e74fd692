/**
 * Requests as large as the platform allows, under its limits (docs/limits.md): HTTP bodies up to
 * MAX_BODY_BYTES (64 MiB) are spooled in slices, never bound as one SQL value (the production SQL
 * guard of test/setup would refuse a value over 2 MB); reads make one ranged R2 get per segment
 * per piece, however the pages are laid out, and refuse up front past R2_READS_PER_REQUEST.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { R2_READS_PER_REQUEST } from "../durable/r2-bounds";
import { KERN_RESOURCE_SHORTAGE, VM_SYNC_SYNCHRONOUS } from "../schema";
import { objectStub, wrapObjectBucket } from "./helpers/buckets";
import { countRows } from "./helpers/inspect";
import { call, putPages, readPages, stat, synchronize } from "./helpers/http";

const MiB = 1024 * 1024;

/** `length` bytes where every 4-byte word holds its own offset/4 plus `salt`: no two pages alike. */
function patterned(length: number, salt = 0): Uint8Array {
  const bytes = new Uint8Array(length);
  const words = new DataView(bytes.buffer);
  for (let at = 0; at < length; at += 4) words.setUint32(at, at / 4 + salt);
  return bytes;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a).equals(Buffer.from(b));
}

/** A body of unknown length (chunked), sent in 64 KiB chunks. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(at, at + 64 * 1024));
      at += 64 * 1024;
    },
  });
}

describe("HTTP bodies up to 64 MiB", () => {
  it("a 64 MiB PUT and GET at 4 KiB pages work, read back exactly, in few R2 calls", async () => {
    const object = "large-64mib";
    const body = patterned(64 * MiB);
    const writes = await wrapObjectBucket(object);
    const put = await putPages(object, 0, body);
    expect(put.status, await put.clone().text()).toBe(200);
    expect(await put.json()).toMatchObject({ offset: 0, length: 64 * MiB });
    // Read back while the pages are still (mostly) in the journal: spooled, not held in memory.
    expect(same(await readPages(object, 0, 64 * MiB), body)).toBe(true);

    const sync = await synchronize(object, 0, 64 * MiB, VM_SYNC_SYNCHRONOUS);
    expect(sync.status).toBe(200);
    expect(await stat(object)).toMatchObject({ pages: 16384, bytes: 64 * MiB, journal_pages: 0 });
    // 16 segments of 4 MiB (an idle flush starting mid-way may split one).
    console.log(`[large] 64 MiB PUT and flush: ${writes.attempts} R2 puts`);
    expect(writes.attempts).toBeLessThanOrEqual(17);

    // From R2: 16 segments of 4 MiB read in 64 pieces of 1 MiB, one ranged get per piece.
    const control = await wrapObjectBucket(object);
    expect(same(await readPages(object, 0, 64 * MiB), body)).toBe(true);
    console.log(`[large] 64 MiB GET from R2: ${control.reads} ranged gets`);
    expect(control.reads).toBeLessThanOrEqual(64);
    // The spools of both requests are gone.
    expect(await countRows(object, "spools")).toBe(0);
  });

  it("a chunked body of unknown length is spooled, and refused past MAX_BODY_BYTES", async () => {
    const object = "large-chunked";
    const body = patterned(3 * MiB + 8192, 7);
    const put = await call(`/v1/objects/${object}/pages?offset=8192`, {
      method: "PUT",
      body: streamOf(body),
    });
    expect(put.status, await put.clone().text()).toBe(200);
    expect(same(await readPages(object, 8192, body.byteLength), body)).toBe(true);

    const before = await stat(object);
    const tooLarge = await call(`/v1/objects/${object}/pages?offset=0`, {
      method: "PUT",
      body: streamOf(new Uint8Array(64 * MiB + 4096)),
    });
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toMatchObject({ error: { code: "too_large" } });
    const after = await stat(object);
    // Refused in order (it consumed its seqno), and changed nothing else.
    expect(after).toMatchObject({ pages: before.pages, journal_pages: before.journal_pages });
    expect(after.seqno).toBe(before.seqno + 2); // the refused PUT and the first stat
    expect(await countRows(object, "spools")).toBe(0);
  });

  it("a body whose length is not a page multiple is refused, and leaves no spool", async () => {
    const object = "large-ragged";
    const put = await putPages(object, 0, new Uint8Array(2 * MiB + 100));
    expect(put.status).toBe(400);
    expect(await put.json()).toMatchObject({ error: { code: "bad_field" } });
    expect(await countRows(object, "spools")).toBe(0);
    expect(await countRows(object, "journal")).toBe(0);
  });
});

describe("R2 calls per read", () => {
  it("reads two interleaved segments with one get each, not one per page", async () => {
    const object = "fragmented-512";
    const pages = 2048; // 1 MiB of 512-byte pages: one piece
    const first = patterned(pages * 512, 1);
    expect((await putPages(object, 0, first, "&page_size=512")).status).toBe(200);
    expect((await synchronize(object, 0, pages * 512, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    // Every odd page rewritten: a second segment holds them, the first keeps the even ones.
    const expected = first.slice();
    for (let page = 1; page < pages; page += 2) {
      const version = patterned(512, 1_000_000 + page);
      expected.set(version, page * 512);
      expect((await putPages(object, page * 512, version)).status).toBe(200);
    }
    expect((await synchronize(object, 0, pages * 512, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    expect(await countRows(object, "segments")).toBe(2);

    const control = await wrapObjectBucket(object);
    expect(same(await readPages(object, 0, pages * 512), expected)).toBe(true);
    expect(control.reads).toBe(2);
  });

  it(`refuses up front a read that would need more than ${R2_READS_PER_REQUEST} gets`, async () => {
    const object = "fragmented-many";
    const PAGE = 4096;
    const segments = R2_READS_PER_REQUEST + 4;
    // Small segments are merged by compaction (test/compaction.test.ts); kept apart here.
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.testHooks.stopCompaction();
    });
    // One SYNCHRONOUS synchronize per page: a segment of one page each.
    for (let page = 0; page < segments; page++) {
      expect((await putPages(object, page * PAGE, patterned(PAGE, page))).status).toBe(200);
      expect((await synchronize(object, page * PAGE, PAGE, VM_SYNC_SYNCHRONOUS)).status).toBe(200);
    }
    expect(await countRows(object, "segments")).toBe(segments);

    const control = await wrapObjectBucket(object);
    const refused = await call(`/v1/objects/${object}/pages?offset=0&length=${segments * PAGE}`);
    expect(refused.status).toBe(422);
    const { error } = (await refused.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("too_fragmented");
    expect(error.message).toContain(`${segments} segment reads`);
    expect(control.reads).toBe(0);

    const allowed = R2_READS_PER_REQUEST;
    const bytes = await readPages(object, 0, allowed * PAGE);
    expect(same(bytes.subarray(0, PAGE), patterned(PAGE, 0))).toBe(true);
    expect(control.reads).toBe(allowed);
  });
});

describe("the object's database size", () => {
  it("refuses writes past its safe share of 10 GB, changing nothing, and accepts them again after", async () => {
    const object = "storage-full";
    expect((await putPages(object, 0, patterned(MiB))).status).toBe(200);
    const journalRows = await countRows(object, "journal");
    await runInDurableObject(objectStub(object), (instance: MemoryObject, state) => {
      instance.pager.testHooks.limits.maxDatabaseBytes = state.storage.sql.databaseSize + 64 * 1024;
    });
    const refused = await putPages(object, MiB, patterned(MiB));
    expect(refused.status).toBe(507);
    expect(await refused.json()).toMatchObject({
      error: { code: "storage_full", kern_return: KERN_RESOURCE_SHORTAGE },
    });
    expect(await countRows(object, "journal")).toBe(journalRows);
    expect(await countRows(object, "spools")).toBe(0);
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.testHooks.limits.maxDatabaseBytes = 8_000_000_000;
    });
    expect((await putPages(object, MiB, patterned(MiB))).status).toBe(200);
  });
});

it("a large read of unflushed pages spools them in SQLite while it streams; a small one does not", async () => {
  const object = "read-spool";
  // 3 MiB: under the segment target, so the journal keeps them until the idle flush.
  const body = patterned(3 * MiB, 3);
  expect((await putPages(object, 0, body)).status).toBe(200);

  const large = await call(`/v1/objects/${object}/pages?offset=0&length=${3 * MiB}`);
  expect(await countRows(object, "spools")).toBe(768);
  expect(same(new Uint8Array(await large.arrayBuffer()), body)).toBe(true);
  expect(await countRows(object, "spools")).toBe(0);

  const small = await call(`/v1/objects/${object}/pages?offset=0&length=${64 * 1024}`);
  expect(await countRows(object, "spools")).toBe(0);
  expect(same(new Uint8Array(await small.arrayBuffer()), body.subarray(0, 64 * 1024))).toBe(true);
});
