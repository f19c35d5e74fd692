/**
 * The figures of the bench that do not depend on speed (bench/README.md), asserted here so
 * they hold on any machine: R2 puts per synchronized MiB, SQLite rows written per returned page,
 * and SQLite bytes per stored page once the journal is flushed (page data lives in R2).
 * `npm run bench` measures the times; this file only counts.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SQLITE_BYTES_PER_PAGE } from "../durable/limits";
import { VM_SYNC_SYNCHRONOUS } from "../schema";
import { objectStub, wrapObjectBucket } from "./helpers/buckets";
import { countRows } from "./helpers/inspect";
import { stat } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";
import { meterObjectSql } from "./helpers/sql-meter";

const PAGE = 4096;
const MiB = 1 << 20;
const FRAME = MiB; // max_transfer: the client coalesces dirty runs into frames this large
const BATCH_MIB = 8;
const PAGES_PER_BATCH = (BATCH_MIB * MiB) / PAGE;

/** The object's SQLite file, in bytes (what Durable Object storage bills). */
function databaseSize(object: string): Promise<number> {
  return runInDurableObject(
    objectStub(object),
    (_instance, state) => state.storage.sql.databaseSize,
  );
}

describe(`bulk writes: ${BATCH_MIB} MiB in 1 MiB frames, then one SYNCHRONOUS synchronize`, () => {
  it("cost at most one R2 put per MiB, 1 SQLite row per page plus 4 per frame to return, and at most SQLITE_BYTES_PER_PAGE SQLite bytes per stored page", async () => {
    // A name of typical length: each page's index row holds its segment key, which starts with it.
    const object = "bench-counts-bulk";
    const { kernel } = await TestKernel.open(object, "k1");
    const puts = await wrapObjectBucket(object);
    const meter = await meterObjectSql(object);
    const emptySize = await databaseSize(object);

    const figures: string[] = [];
    const sizes: number[] = [];
    for (let batch = 0; batch < 2; batch++) {
      const first = batch * BATCH_MIB * MiB;
      const attemptsBefore = puts.attempts;
      meter.reset();
      const ids: number[] = [];
      for (let offset = 0; offset < BATCH_MIB * MiB; offset += FRAME) {
        ids.push(kernel.dataReturn(first + offset, new Uint8Array(FRAME).fill(batch * 16 + 1)));
      }
      for (const id of ids) await kernel.ack(id);
      const returnRows = meter.rowsWritten();
      meter.reset();
      const sync = kernel.synchronize(first, BATCH_MIB * MiB, VM_SYNC_SYNCHRONOUS);
      expect(await kernel.completion(sync)).toMatchObject({
        type: "memory_object_synchronize_completed",
        offset: first,
        length: BATCH_MIB * MiB,
      });
      const flushRows = meter.rowsWritten();
      const batchPuts = puts.attempts - attemptsBefore;
      sizes.push(await databaseSize(object));

      // R2: segments of about 4 MiB; an idle flush starting mid-stream may split one, never more
      // than one put per MiB.
      expect(batchPuts / BATCH_MIB).toBeLessThanOrEqual(1);
      // SQLite while returning: one journal row per page, and per frame the seqno (meta), the
      // kernel's last applied id, the kept count of stored pages and the object's size, which
      // each of these frames raises (docs/protocol.md §13); once more for the size's first row,
      // whose insert writes its key's index entry too.
      expect(returnRows).toBeLessThanOrEqual(PAGES_PER_BATCH + 4 * ids.length + 1);
      // The flush: per page one index row, its entry in the index by segment and one journal
      // delete; per segment its row and its two index entries; a few for the synchronize itself
      // (its row, the outbox, the kernel's counters).
      expect(flushRows).toBeLessThanOrEqual(3 * PAGES_PER_BATCH + 3 * batchPuts + 16);
      figures.push(
        `batch ${batch + 1}: ${batchPuts} R2 put(s) = ${(batchPuts / BATCH_MIB).toFixed(3)}/MiB; ` +
          `SQLite rows ${(returnRows / PAGES_PER_BATCH).toFixed(4)}/page returning, ` +
          `${(flushRows / PAGES_PER_BATCH).toFixed(4)}/page flushing`,
      );
    }
    await meter.stop();

    const pages = 2 * PAGES_PER_BATCH;
    expect(await stat(object)).toMatchObject({ pages, journal_pages: 0 });
    expect(await countRows(object, "journal")).toBe(0);
    // Page bytes are in R2: SQLite keeps an index row per page (page, segment id, slot, seqno)
    // and its entry in the index by segment. SQLITE_BYTES_PER_PAGE, which sets the announced
    // max_size, must stay an upper bound of what this measures.
    const perPage = (sizes[1]! - emptySize) / pages;
    const growthPerPage = (sizes[1]! - sizes[0]!) / PAGES_PER_BATCH;
    expect(perPage).toBeLessThanOrEqual(SQLITE_BYTES_PER_PAGE);
    expect(growthPerPage).toBeLessThanOrEqual(SQLITE_BYTES_PER_PAGE);
    console.log(
      `[bench-counts] ${figures.join("; ")}. SQLite after the flush: ${emptySize} B empty, ` +
        `${sizes[0]} B after ${PAGES_PER_BATCH} pages, ${sizes[1]} B after ${pages} pages: ` +
        `${perPage.toFixed(1)} B per stored page (second batch ${growthPerPage.toFixed(1)} B/page)`,
    );
    kernel.close();
  });
});
