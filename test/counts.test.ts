/**
 * Costs of the write path (docs/architecture.md §4): how many R2 puts and SQLite rows returned pages cost.
 * The figures are printed so they can be quoted; the assertions bound them.
 */
import { describe, expect, it } from "vitest";
import { VM_SYNC_SYNCHRONOUS } from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { countRows } from "./helpers/inspect";
import { stat } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";
import { meterObjectSql } from "./helpers/sql-meter";

const PAGE = 4096;
const PAGES = 1024;
const FRAME = 1 << 20; // max_transfer

/** Page i is filled with i % 251, so a misplaced page shows. */
function pages(first: number, count: number): Uint8Array {
  const bytes = new Uint8Array(count * PAGE);
  for (let i = 0; i < count; i++) bytes.fill((first + i) % 251, i * PAGE, (i + 1) * PAGE);
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

/** Returns `PAGES` pages in frames of `frameBytes`, waits for every ack, then one SYNCHRONOUS sync. */
async function returnAndSync(object: string, frameBytes: number) {
  const { kernel } = await TestKernel.open(object, "k1");
  const puts = await wrapObjectBucket(object);
  const meter = await meterObjectSql(object);
  const ids: number[] = [];
  for (let offset = 0; offset < PAGES * PAGE; offset += frameBytes) {
    ids.push(kernel.dataReturn(offset, pages(offset / PAGE, frameBytes / PAGE)));
  }
  for (const id of ids) await kernel.ack(id);
  const returnRows = meter.rowsWritten();
  const returnStatements = meter.byStatement();
  const returnCalls = meter.statements();
  meter.reset();
  const sync = kernel.synchronize(0, PAGES * PAGE, VM_SYNC_SYNCHRONOUS);
  const done = await kernel.completion(sync);
  expect(done).toMatchObject({
    type: "memory_object_synchronize_completed",
    offset: 0,
    length: PAGES * PAGE,
  });
  const flushRows = meter.rowsWritten();
  const flushStatements = meter.byStatement();
  const flushCalls = meter.statements();
  await meter.stop();
  return {
    kernel,
    puts,
    returnRows,
    flushRows,
    returnStatements,
    flushStatements,
    returnCalls,
    flushCalls,
    frames: ids.length,
  };
}

describe("returning 1,024 pages of 4 KiB, then one SYNCHRONOUS synchronize", () => {
  it("costs at most 2 R2 puts, empties the journal, and about 4 SQLite rows per page", async () => {
    const object = "counts-1mib-frames";
    const r = await returnAndSync(object, FRAME);
    expect(r.frames).toBe(4);

    expect(r.puts.attempts).toBeLessThanOrEqual(2);
    expect(r.puts.written.length).toBe(r.puts.attempts);
    expect(r.puts.written.every((key) => key.startsWith(`${object}/segments/`))).toBe(true);

    expect(await stat(object)).toMatchObject({
      pages: PAGES,
      bytes: PAGES * PAGE,
      journal_pages: 0,
      syncs: 0,
    });
    expect(await countRows(object, "pages")).toBe(PAGES);
    expect(await countRows(object, "journal")).toBe(0);
    expect(await countRows(object, "segments")).toBe(r.puts.written.length);

    // The pages read back from R2, each in its place.
    for (let offset = 0; offset < PAGES * PAGE; offset += FRAME) {
      const supply = await r.kernel.answer(r.kernel.dataRequest(offset, FRAME));
      expect(supply.type).toBe("memory_object_data_supply");
      expect(sameBytes(supply.payload!, pages(offset / PAGE, FRAME / PAGE))).toBe(true);
    }

    const total = r.returnRows + r.flushRows;
    console.log(
      `[counts] 1,024 x 4 KiB pages in ${r.frames} frames of 1 MiB + 1 SYNCHRONOUS synchronize: ` +
        `${r.puts.attempts} R2 put(s); SQLite rows written: ${r.returnRows} while returning ` +
        `(${(r.returnRows / PAGES).toFixed(3)}/page), ${r.flushRows} for the synchronize and ` +
        `flush (${(r.flushRows / PAGES).toFixed(3)}/page), ${total} in all ` +
        `(${(total / PAGES).toFixed(3)}/page)`,
    );
    console.log("[counts] rows by statement while returning:", r.returnStatements);
    console.log("[counts] rows by statement for synchronize and flush:", r.flushStatements);
    // Per page: a journal row, an index row and its entry in the index by segment, a journal
    // delete; the rest is per frame and per segment.
    expect(total / PAGES).toBeLessThanOrEqual(4.05);
    // Statements (calls into SQLite) do not grow with the pages: a frame is journaled in one, a
    // segment committed in a few (a statement per page cost more than the bytes did).
    console.log(
      `[counts] SQLite statements: ${r.returnCalls} for ${r.frames} frames ` +
        `(${(r.returnCalls / r.frames).toFixed(1)}/frame), ${r.flushCalls} for the synchronize ` +
        `and flush of ${r.puts.attempts} segment(s)`,
    );
    expect(r.returnCalls / r.frames).toBeLessThanOrEqual(12);
    expect(r.flushCalls).toBeLessThanOrEqual(40);
    r.kernel.close();
  });

  it("one page per frame costs more rows per page (per-message bookkeeping)", async () => {
    const object = "counts-page-frames";
    const r = await returnAndSync(object, PAGE);
    expect(r.frames).toBe(PAGES);
    // Not bounded here: with 1,024 frames the idle flush may start mid-stream and split the pages.
    expect(r.puts.attempts).toBeGreaterThanOrEqual(1);
    expect(await countRows(object, "pages")).toBe(PAGES);
    expect(await countRows(object, "journal")).toBe(0);
    const total = r.returnRows + r.flushRows;
    console.log(
      `[counts] 1,024 x 4 KiB pages in 1,024 single-page frames + 1 SYNCHRONOUS synchronize: ` +
        `${r.puts.attempts} R2 put(s); SQLite rows written: ${r.returnRows} while returning ` +
        `(${(r.returnRows / PAGES).toFixed(3)}/page), ${r.flushRows} for the synchronize and ` +
        `flush, ${total} in all (${(total / PAGES).toFixed(3)}/page)`,
    );
    console.log("[counts] rows by statement while returning:", r.returnStatements);
    // Per frame too: the object's size, which each of these frames raises (docs/protocol.md §13).
    expect(total / PAGES).toBeLessThanOrEqual(9);
    r.kernel.close();
  });
});
