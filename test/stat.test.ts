/**
 * `GET /v1/objects/{name}` reports `pages` and `bytes` from a kept count (`stored_pages` in
 * `meta`), not by counting rows: (a) the count stays exact, against a brute-force count of
 * journal ∪ index, through new writes, overwrites in the journal and in R2, partial overlaps,
 * flushes, a compaction, a restart and a DELETE; (b) what one stat reads from SQLite is the same
 * small number for an object of 100 pages and one of 20,480.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { VM_SYNC_SYNCHRONOUS } from "../schema";
import { maintain, objectStub } from "./helpers/buckets";
import { call, stat } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";
import { meterObjectSql } from "./helpers/sql-meter";
import { countPagesByBruteForce, segments } from "./helpers/inspect";

const MIB = 1024 * 1024;

function filled(bytes: number, seed: number): Uint8Array {
  return new Uint8Array(bytes).map((_, i) => (i * 31 + seed) % 251);
}

/** PUT over HTTP, body read to the end (an unread response would hold the instance busy). */
async function put(name: string, offset: number, body: Uint8Array, query = "") {
  const response = await call(`/v1/objects/${name}/pages?offset=${offset}${query}`, {
    method: "PUT",
    body,
  });
  return { status: response.status, body: await response.json<Record<string, any>>() };
}

async function flush(name: string, length: number): Promise<void> {
  const response = await call(`/v1/objects/${name}/synchronize`, {
    method: "POST",
    body: JSON.stringify({ offset: 0, length, sync_flags: VM_SYNC_SYNCHRONOUS }),
  });
  expect(await response.json()).toMatchObject({ type: "memory_object_synchronize_completed" });
}

async function segmentKeys(name: string): Promise<string[]> {
  return (await segments(name)).map((row) => row.key);
}

describe("stat's page count is kept exact", () => {
  it("through writes, overwrites, overlaps, flushes, compaction, a restart and DELETE", async () => {
    const name = "stat-kept";
    const PAGE = 4096;
    /** The pages ever written since the object began (or was deleted). */
    const written = new Set<number>();
    let pageSize: number | null = null;

    /** stat agrees with the model and with a brute-force count of journal ∪ index. */
    async function check(what: string) {
      const status = await stat(name);
      const brute = await countPagesByBruteForce(name);
      expect(brute.stored, `${what}: brute force vs model`).toBe(written.size);
      expect(status.pages, `${what}: pages`).toBe(brute.stored);
      expect(status.bytes, `${what}: bytes`).toBe(brute.stored * (pageSize ?? 0));
      expect(status.journal_pages, `${what}: journal_pages`).toBe(brute.journal);
      return { status, brute };
    }
    async function httpWrite(first: number, count: number, seed: number) {
      const result = await put(name, first * PAGE, filled(count * PAGE, seed));
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      pageSize = PAGE;
      for (let page = first; page < first + count; page++) written.add(page);
    }

    await check("fresh");
    await httpWrite(0, 10, 1);
    expect((await check("new pages")).brute.journal).toBe(10);
    await httpWrite(5, 10, 2); // 5-9 journaled already, 10-14 new
    await check("a partial overlap in the journal");
    await httpWrite(0, 15, 3);
    await check("the same pages again");

    // A kernel's data_return counts the same way (one statement per frame, not a spool).
    const { kernel } = await TestKernel.open(name, "k1");
    await kernel.ack(kernel.dataReturn(3 * PAGE, filled(2 * PAGE, 4)));
    await kernel.ack(kernel.dataReturn(40 * PAGE, filled(PAGE, 5)));
    written.add(40);
    await check("kernel returns");

    await flush(name, 64 * PAGE);
    expect((await check("after a flush")).brute.journal).toBe(0);
    await httpWrite(12, 8, 6); // 12-14 only in R2, 15-19 new
    await check("an overlap of R2 pages and new ones");
    await kernel.ack(kernel.dataReturn(0, filled(2 * PAGE, 7))); // R2 only
    await check("R2 pages returned again");
    await httpWrite(18, 3, 8); // 18-19 in the journal and R2, 20 new
    await check("journal and R2 pages and a new one");
    await httpWrite(16, 10, 9); // 16-17 R2, 18-19 both, 20 journal, 21-25 new
    await check("every kind at once");
    await flush(name, 64 * PAGE);
    await check("after the second flush");

    // A rejected write changes nothing.
    const refused = await put(name, 0, filled(8192, 1), "&page_size=8192");
    expect(refused.status).toBe(409);
    await check("a refused write");

    // Overwrite most pages, so the old segments are mostly garbage, and compact them.
    await httpWrite(0, 24, 10);
    await flush(name, 64 * PAGE);
    const beforeCompaction = await segmentKeys(name);
    await runInDurableObject(objectStub(name), (instance: MemoryObject) => {
      instance.pager.testHooks.limits.compactMinGarbageBytes = 1;
    });
    await maintain(name);
    const afterCompaction = await segmentKeys(name);
    expect(afterCompaction.some((key) => !beforeCompaction.includes(key))).toBe(true);
    await check("after a compaction and sweep");

    kernel.close();
    await evictDurableObject(objectStub(name));
    await check("after a restart");
    await httpWrite(24, 6, 11); // 24-25 in R2, 26-29 new
    const { kernel: again } = await TestKernel.open(name, "k1", { id: 100 });
    await again.ack(again.dataReturn(29 * PAGE, filled(3 * PAGE, 12), 101)); // 29 journaled, 30-31 new
    for (let page = 29; page < 32; page++) written.add(page);
    await check("writes after the restart");
    again.close();

    const deleted = await call(`/v1/objects/${name}`, { method: "DELETE" });
    expect(await deleted.json()).toMatchObject({ deleted: true });
    written.clear();
    pageSize = null;
    await check("after DELETE");
    await httpWrite(7, 1, 13);
    await check("the first write after DELETE");
  });
});

describe("stat's cost does not grow with the object", () => {
  /** Writes `pages` pages of 512 bytes in bodies of up to 1 MiB, then flushes them to R2. */
  async function fill(name: string, pages: number): Promise<void> {
    const PAGE = 512;
    for (let first = 0; first < pages; first += MIB / PAGE) {
      const count = Math.min(MIB / PAGE, pages - first);
      const result = await put(name, first * PAGE, filled(count * PAGE, first), "&page_size=512");
      expect(result.status, JSON.stringify(result.body)).toBe(200);
    }
    await flush(name, pages * PAGE);
  }

  /** What one stat reads, on a warm instance (the object answered a message already). */
  async function meteredStat(name: string) {
    await stat(name);
    const meter = await meterObjectSql(name);
    const status = await stat(name);
    const cost = {
      rowsRead: meter.rowsRead(),
      statements: meter.statements(),
      reads: meter.readsByStatement(),
    };
    await meter.stop();
    return { status, cost };
  }

  it("reads the same few rows for 100 pages as for 20,480", async () => {
    const small = "stat-cost-small";
    const large = "stat-cost-large";
    await fill(small, 100);
    await fill(large, 20 * 1024);
    expect(await countPagesByBruteForce(small)).toEqual({ stored: 100, journal: 0 });
    expect(await countPagesByBruteForce(large)).toEqual({ stored: 20 * 1024, journal: 0 });

    const a = await meteredStat(small);
    const b = await meteredStat(large);
    expect(a.status).toMatchObject({ pages: 100, bytes: 100 * 512 });
    expect(b.status).toMatchObject({ pages: 20 * 1024, bytes: 20 * 1024 * 512 });
    expect(b.cost.rowsRead, JSON.stringify(b.cost.reads)).toBe(a.cost.rowsRead);
    expect(b.cost.statements).toBe(a.cost.statements);
    expect(b.cost.rowsRead, JSON.stringify(b.cost.reads)).toBeLessThan(20);
    console.log(
      `one stat: ${a.cost.statements} statements, ${a.cost.rowsRead} rows read ` +
        `(100 pages) vs ${b.cost.statements}, ${b.cost.rowsRead} (20,480 pages)`,
    );

    // The same as the first message of a new instance: the count is kept in SQLite, not memory.
    await evictDurableObject(objectStub(large));
    const meter = await meterObjectSql(large);
    const cold = await stat(large);
    const coldReads = { rowsRead: meter.rowsRead(), reads: meter.readsByStatement() };
    await meter.stop();
    expect(cold.pages).toBe(20 * 1024);
    // One row more: the object's size, which a running instance keeps in memory (its mode is
    // read at start-up, which looks for coherent holders that departed, durable/pager.ts).
    expect(coldReads.rowsRead, JSON.stringify(coldReads.reads)).toBe(a.cost.rowsRead + 1);
  });
});
