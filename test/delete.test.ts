/**
 * DELETE (docs/protocol.md §9) by the platform's `deleteAll`: after it, an object that had pages in
 * the journal and in R2, outstanding synchronize and lock requests, kernels with outbox rows,
 * and a PUT spooling its body, has every table empty but a fresh `meta`, a database back to a
 * fresh object's size, no alarm and no segment in R2; and it works again at once, in the same
 * instance. Tables are found with `PRAGMA table_list`, so one added later is checked too.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { SCHEMA_VERSION } from "../durable/migrations";
import { KERN_ABORTED, VM_SYNC_INVALIDATE, VM_SYNC_SYNCHRONOUS } from "../schema";
import { objectStub } from "./helpers/buckets";
import { call, readPages, stat, synchronize } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";
import { inspect } from "./helpers/inspect";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;
const MIB = 1024 * 1024;

function filled(bytes: number, seed: number): Uint8Array {
  return new Uint8Array(bytes).map((_, i) => (i * 31 + seed) % 251);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a).equals(Buffer.from(b));
}

/**
 * A PUT whose body stops after a MiB and a page until `finish()`: its first MiB sits in a spool
 * (a slice is spooled once more bytes than it holds arrive).
 */
function stalledPut(name: string, offset: number) {
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let sentFirst = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sentFirst) {
        sentFirst = true;
        controller.enqueue(filled(MIB + PAGE, 9));
        return;
      }
      await finished;
      controller.enqueue(filled(PAGE, 10));
      controller.close();
    },
  });
  const response = call(`/v1/objects/${name}/pages?offset=${offset}`, { method: "PUT", body });
  return { response, finish };
}

/** The tables only a coherent object fills (docs/protocol.md §10). */
const COHERENT_TABLES = new Set(["holders", "grants"]);

/** What the object's storage looks like: rows per table, meta, alarm, database size. */
async function storage(name: string) {
  return inspect(name, async (view, _instance, state) => ({
    rows: view.rowCounts(),
    meta: view.meta(),
    alarm: await state.storage.getAlarm(),
    bytes: state.storage.sql.databaseSize,
  }));
}

async function segmentsInR2(name: string): Promise<string[]> {
  return (await env.PAGES.list({ prefix: `${name}/segments/` })).objects.map((o) => o.key);
}

describe("DELETE by deleteAll", () => {
  it("leaves every table empty but a fresh meta, no alarm, no segment; the object works again", async () => {
    const name = "del-everything";
    // A fresh object that has answered a message, for its size.
    await stat("del-everything-fresh");
    const fresh = await storage("del-everything-fresh");

    // Nothing flushes or times out on its own while the scene is built: the test decides.
    await runInDurableObject(objectStub(name), (instance: MemoryObject) => {
      instance.pager.testHooks.limits.flushDelayMs = 60_000;
      instance.pager.testHooks.limits.lockTimeoutMs = 60_000;
    });
    // k1 returns 2 MiB and synchronizes it: in R2, its completion unreceived in k1's outbox.
    const { kernel: k1 } = await TestKernel.open(name, "k1");
    const inR2 = filled(2 * MIB, 1);
    for (let at = 0; at < inR2.byteLength; at += MIB) {
      await k1.ack(k1.dataReturn(at, inR2.subarray(at, at + MIB)));
    }
    await k1.completion(k1.synchronize(0, inR2.byteLength, VM_SYNC_SYNCHRONOUS));
    // 3 MiB more over HTTP, left in the journal (under the 4 MiB that starts a flush).
    for (let mib = 0; mib < 3; mib++) {
      const journaled = await call(`/v1/objects/${name}/pages?offset=${(4 + mib) * MIB}`, {
        method: "PUT",
        body: filled(MIB, 2 + mib),
      });
      expect(journaled.status, await journaled.text()).toBe(200);
    }
    // k2 was supplied pages 0-3, so k1's INVALIDATE waits for k2's lock_completed: a sync, a
    // lock, residency, a lock request in k2's outbox, and an alarm at the lock's deadline.
    const { kernel: k2 } = await TestKernel.open(name, "k2");
    await k2.answer(k2.dataRequest(0, 4 * PAGE));
    const invalidate = k1.synchronize(0, 4 * PAGE, VM_SYNC_SYNCHRONOUS | VM_SYNC_INVALIDATE);
    await k1.ack(invalidate);
    await k2.next((m) => m.type === "memory_object_lock_request");
    // k1 holds an open atomic group (docs/protocol.md §12): a staged page, not yet committed.
    const staged = k1.takeId();
    k1.sendBinary(
      { ...k1.returnOf(8 * MIB, filled(PAGE, 11), staged), group: 1 },
      filled(PAGE, 11),
    );
    await k1.ack(staged);
    // A PUT under way, its first MiB spooled.
    const put = stalledPut(name, 16 * MIB);
    await waitFor(async () => (await storage(name)).rows.spools! > 0, "the PUT to spool");

    const before = await storage(name);
    // Coherent objects' tables stay empty here; test/coherence.test.ts deletes one in use.
    for (const table of Object.keys(before.rows).filter((t) => !COHERENT_TABLES.has(t))) {
      expect(before.rows[table], `${table} before DELETE`).toBeGreaterThan(0);
    }
    expect(before.alarm).not.toBeNull();
    expect(before.bytes).toBeGreaterThan(fresh.bytes + 4 * MIB);
    expect(await segmentsInR2(name)).not.toEqual([]);
    expect((await stat(name)).syncs).toBe(1);

    const response = await call(`/v1/objects/${name}`, { method: "DELETE" });
    expect(await response.json()).toEqual({ object: name, deleted: true });

    const after = await storage(name);
    // Every table of the schema exists and is empty, but meta: the version and the name.
    expect(Object.keys(after.rows)).toEqual(Object.keys(before.rows));
    for (const [table, rows] of Object.entries(after.rows)) {
      expect(rows, `${table} after DELETE`).toBe(table === "meta" ? 3 : 0);
    }
    expect(after.meta).toEqual({ schema_version: SCHEMA_VERSION, object: name, stored_pages: 0 });
    expect(after.alarm).toBeNull();
    // The database is back to about a fresh object's size (a page or so more), not 5 MiB.
    expect(after.bytes).toBeLessThanOrEqual(fresh.bytes + 4 * PAGE);
    expect(await segmentsInR2(name)).toEqual([]);
    for (const kernel of [k1, k2]) {
      await kernel.next((m) => m.type === "memory_object_destroy");
      await waitFor(() => kernel.closed !== null, "the socket to close");
    }

    // The PUT that was under way is refused, and leaves nothing in the fresh object: no spool,
    // no page, not even the page size its admission would have fixed.
    put.finish();
    const refused = await put.response;
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      error: { code: "object_deleted", kern_return: KERN_ABORTED },
    });
    const settled = await storage(name);
    expect(settled.rows).toMatchObject({ spools: 0, journal: 0, pages: 0 });
    expect(settled.meta.page_size).toBeUndefined();
    expect(await stat(name)).toMatchObject({ page_size: null, pages: 0, bytes: 0, syncs: 0 });

    // It works again, with another page size: write, synchronize, read.
    const data = filled(4 * 8192, 7);
    const written = await call(`/v1/objects/${name}/pages?offset=${8192}&page_size=8192`, {
      method: "PUT",
      body: data,
    });
    expect(await written.json()).toMatchObject({ offset: 8192, length: data.byteLength });
    expect(await (await synchronize(name, 0, 8 * 8192, VM_SYNC_SYNCHRONOUS)).json()).toMatchObject({
      type: "memory_object_synchronize_completed",
    });
    expect(sameBytes(await readPages(name, 8192, data.byteLength), data)).toBe(true);
    expect((await readPages(name, 0, 8192)).every((b) => b === 0)).toBe(true);
    expect(await stat(name)).toMatchObject({
      page_size: 8192,
      pages: 4,
      bytes: data.byteLength,
      journal_pages: 0,
      syncs: 0,
      kernels: [],
    });
    expect(await segmentsInR2(name)).toHaveLength(1);
    const counted = await inspect(name, (view) => view.storedPagesByBruteForce());
    expect(counted).toBe(4);
    const { kernel: again, ready } = await TestKernel.open(name, "k1", { pageSize: 8192 });
    expect(ready).toMatchObject({ last_id: 0, flush: false, page_size: 8192 });
    again.close();
  });

  it("a DELETE of an object that never existed leaves it as a fresh one", async () => {
    const name = "del-never";
    const response = await call(`/v1/objects/${name}`, { method: "DELETE" });
    expect(await response.json()).toEqual({ object: name, deleted: true });
    const after = await storage(name);
    expect(after.meta).toEqual({ schema_version: SCHEMA_VERSION, object: name, stored_pages: 0 });
    expect(Object.entries(after.rows).filter(([table, n]) => table !== "meta" && n > 0)).toEqual(
      [],
    );
    expect(after.alarm).toBeNull();
  });
});
