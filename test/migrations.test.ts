/**
 * Schema migrations (durable/migrations.ts): an object made under version 1 (the first release)
 * is upgraded at start-up with every page, sync, kernel and outbox message intact; a fresh object
 * starts at SCHEMA_VERSION; start-up on a current object changes nothing; an object from newer
 * code refuses to start. Version-1 objects are built from the frozen copy of migration 1 in
 * test/fixtures/schema-v1.ts, inside a real Durable Object, then the instance is restarted so
 * its constructor runs the migrations, as after a deploy.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { SCHEMA_VERSION, migrate, schemaVersion } from "../durable/migrations";
import { Pager } from "../durable/pager";
import {
  MEMORY_OBJECT_RETURN_DIRTY,
  VM_PROT_NO_CHANGE,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
} from "../schema";
import { SCHEMA_V1_STATEMENTS } from "./fixtures/schema-v1";
import { maintain, objectStub } from "./helpers/buckets";
import { call, putPages, readPages, stat, synchronize } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";
import { StateView } from "./helpers/inspect";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;

/** Version `v` of page `page`: distinct bytes for every (page, version), so a mix-up shows. */
function pageVersion(page: number, v: number): Uint8Array {
  return new Uint8Array(PAGE).map((_, i) => (i * 7 + page * 13 + v * 101) % 256);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a).equals(Buffer.from(b));
}

/** A segment key as the first release wrote them: `{name}/segments/{seqno:16}-{uuid}`. */
function v1SegmentKey(name: string, seqno: number): string {
  return `${name}/segments/${String(seqno).padStart(16, "0")}-${crypto.randomUUID()}`;
}

/**
 * What a version-1 object held, as a kernel k1 and a kernel k2 left it:
 *
 * - segment C (flushed at seqno 1): page 11 version 0, since superseded by A: dead (live 0);
 * - segment A (seqno 3): pages 10-13 version 1; page 12 since superseded by B (live 3 of 4);
 * - segment B (seqno 9): page 12 version 2, page 20 version 1 (live 2 of 2);
 * - the journal: page 20 version 2 (newer than its copy in B), pages 30 and 31 version 1;
 * - k1 (last_id 8, next_mid 3) has two completions not yet received (mids 1, 2) and an
 *   outstanding SYNCHRONOUS | INVALIDATE synchronize of pages 30-31 (id 8, seqno 16), which
 *   waits for lock request 1 to k2 (k2 was supplied those pages; mid 1 of k2's outbox);
 * - the next seqno is 17.
 *
 * Segment rows go in as B, C, A: neither their order of insertion nor of seqno is relevant to
 * the upgrade, only the keys.
 */
function v1Object(name: string) {
  const segments = {
    C: { key: v1SegmentKey(name, 1), slots: [pageVersion(11, 0)], live: 0 },
    A: {
      key: v1SegmentKey(name, 3),
      slots: [pageVersion(10, 1), pageVersion(11, 1), pageVersion(12, 1), pageVersion(13, 1)],
      live: 3,
    },
    B: { key: v1SegmentKey(name, 9), slots: [pageVersion(12, 2), pageVersion(20, 1)], live: 2 },
  };
  const index = [
    { page: 10, segment: segments.A.key, slot: 0, seqno: 2 },
    { page: 11, segment: segments.A.key, slot: 1, seqno: 2 },
    { page: 12, segment: segments.B.key, slot: 0, seqno: 7 },
    { page: 13, segment: segments.A.key, slot: 3, seqno: 2 },
    { page: 20, segment: segments.B.key, slot: 1, seqno: 8 },
  ];
  const journal = [
    { page: 20, seqno: 14, first_seqno: 14, data: pageVersion(20, 2) },
    { page: 30, seqno: 15, first_seqno: 15, data: pageVersion(30, 1) },
    { page: 31, seqno: 15, first_seqno: 15, data: pageVersion(31, 1) },
  ];
  /** What each page reads as: the newest version, journal first. */
  const current = new Map<number, Uint8Array>([
    [10, pageVersion(10, 1)],
    [11, pageVersion(11, 1)],
    [12, pageVersion(12, 2)],
    [13, pageVersion(13, 1)],
    [20, pageVersion(20, 2)],
    [30, pageVersion(30, 1)],
    [31, pageVersion(31, 1)],
  ]);
  const outbox = [
    {
      kernel: "k1",
      mid: 1,
      message: {
        type: "memory_object_synchronize_completed",
        reply_to: 5,
        seqno: 10,
        offset: 10 * PAGE,
        length: 4 * PAGE,
        mid: 1,
      },
    },
    {
      kernel: "k1",
      mid: 2,
      message: {
        type: "memory_object_synchronize_completed",
        reply_to: 6,
        seqno: 11,
        offset: 12 * PAGE,
        length: PAGE,
        mid: 2,
      },
    },
    {
      kernel: "k2",
      mid: 1,
      message: {
        type: "memory_object_lock_request",
        lock_id: 1,
        offset: 30 * PAGE,
        length: 2 * PAGE,
        should_return: MEMORY_OBJECT_RETURN_DIRTY,
        should_flush: true,
        lock_value: VM_PROT_NO_CHANGE,
        mid: 1,
      },
    },
  ];
  const sync = {
    seqno: 16,
    kernel: "k1",
    id: 8,
    offset: 30 * PAGE,
    length: 2 * PAGE,
    first_page: 30,
    end_page: 32,
    sync_flags: VM_SYNC_SYNCHRONOUS | VM_SYNC_INVALIDATE,
    since: "2026-01-02T03:04:05.000Z",
    active: 1,
  };
  // The highest stored page is 31: its end is the size version 5 gives the object.
  const size = 32 * PAGE;
  return {
    name,
    segments,
    index,
    journal,
    current,
    outbox,
    sync,
    nextSeqno: 17,
    storedPages: 7,
    size,
  };
}

type V1Object = ReturnType<typeof v1Object>;

/**
 * Makes `name` a version-1 object: its segments put in R2, its tables created by the frozen
 * version-1 statements and filled, in the running instance's storage (a fresh object, so the
 * instance has nothing under way). The caller restarts the instance to upgrade it.
 */
async function buildV1(name: string): Promise<V1Object> {
  const v1 = v1Object(name);
  for (const segment of [v1.segments.B, v1.segments.C, v1.segments.A]) {
    await env.PAGES.put(segment.key, concat(segment.slots));
  }
  await runInDurableObject(objectStub(name), async (_instance: MemoryObject, state) => {
    await state.storage.deleteAll();
    const sql = state.storage.sql;
    for (const statement of SCHEMA_V1_STATEMENTS) sql.exec(statement);
    const meta: [string, string | number][] = [
      ["seqno", v1.nextSeqno],
      ["page_size", PAGE],
      ["object", name],
      ["next_lock_id", 2],
    ];
    for (const [key, value] of meta) {
      sql.exec(`INSERT INTO meta (key, value) VALUES (?, ?)`, key, value);
    }
    sql.exec(
      `INSERT INTO kernels (kernel, last_id, last_seqno, next_mid, stale)
       VALUES ('k1', 8, 16, 3, 0), ('k2', 4, 13, 2, 0)`,
    );
    for (const row of v1.outbox) {
      sql.exec(
        `INSERT INTO outbox (kernel, mid, message) VALUES (?, ?, ?)`,
        row.kernel,
        row.mid,
        JSON.stringify(row.message),
      );
    }
    for (const row of v1.journal) {
      sql.exec(
        `INSERT INTO journal (page, seqno, first_seqno, data) VALUES (?, ?, ?, ?)`,
        row.page,
        row.seqno,
        row.first_seqno,
        row.data,
      );
    }
    for (const segment of [v1.segments.B, v1.segments.C, v1.segments.A]) {
      sql.exec(
        `INSERT INTO segments (key, pages, live) VALUES (?, ?, ?)`,
        segment.key,
        segment.slots.length,
        segment.live,
      );
    }
    for (const row of v1.index) {
      sql.exec(
        `INSERT INTO pages (page, segment, slot, seqno) VALUES (?, ?, ?, ?)`,
        row.page,
        row.segment,
        row.slot,
        row.seqno,
      );
    }
    const s = v1.sync;
    sql.exec(
      `INSERT INTO syncs (seqno, kernel, id, offset, length, first_page, end_page, sync_flags,
         since, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      s.seqno,
      s.kernel,
      s.id,
      s.offset,
      s.length,
      s.first_page,
      s.end_page,
      s.sync_flags,
      s.since,
      s.active,
    );
    sql.exec(
      `INSERT INTO locks (lock_id, sync_seqno, kernel, first_page, end_page, deadline)
       VALUES (1, 16, 'k2', 30, 32, ?)`,
      Date.now() + 10 * 60_000,
    );
    sql.exec(`INSERT INTO residency (kernel, first_page, end_page) VALUES ('k2', 30, 32)`);
    sql.exec(`INSERT INTO residency (kernel, first_page, end_page) VALUES ('k1', 10, 14)`);
    // A version-1 object: no recorded version (and the upgrade has not run).
    expect(schemaVersion(sql)).toBe(1);
  });
  return v1;
}

/** Pages 0-39 as the object must read them. */
function expectedRange(v1: V1Object): Uint8Array {
  return concat(
    Array.from({ length: 40 }, (_, page) => v1.current.get(page) ?? new Uint8Array(PAGE)),
  );
}

/** The page index with each page's segment key, and the segments, as the object has them. */
function indexAndSegments(sql: SqlStorage) {
  return {
    index: sql
      .exec<{ page: number; segment: string; slot: number; seqno: number; id_type: string }>(
        `SELECT pages.page, segments.key AS segment, pages.slot, pages.seqno,
                typeof(pages.segment) AS id_type
         FROM pages LEFT JOIN segments ON segments.id = pages.segment ORDER BY pages.page`,
      )
      .toArray(),
    segments: sql
      .exec<{ id: number; key: string; pages: number; live: number; pointing: number }>(
        `SELECT id, key, pages, live,
                (SELECT count(*) FROM pages WHERE pages.segment = segments.id) AS pointing
         FROM segments ORDER BY key`,
      )
      .toArray(),
  };
}

describe("an object made under version 1", () => {
  it("is upgraded by migrate() with every row intact and segments named by integer id", async () => {
    const name = "mig-v1-rows";
    const v1 = await buildV1(name);
    await runInDurableObject(objectStub(name), (_instance: MemoryObject, state) => {
      const sql = state.storage.sql;
      const before = new StateView(sql).dumpTables();
      migrate(sql, (step) => state.storage.transactionSync(step));
      const after = new StateView(sql).dumpTables();

      expect(schemaVersion(sql)).toBe(SCHEMA_VERSION);
      // Tables the upgrade does not touch keep every row as it was.
      for (const table of ["outbox", "journal", "residency"]) {
        expect(after[table], table).toEqual(before[table]);
      }
      // Lock requests keep theirs; what they ask is an INVALIDATE's flush (version 6).
      expect(after.locks).toEqual(before.locks!.map((row) => ({ ...row, purpose: "invalidate" })));
      // Synchronize requests keep theirs, with version 4's columns: no HTTP caller, the level
      // where any span fits, and waiting for R2 (pages 30-31 are in the journal below seqno 16).
      expect(after.syncs).toEqual(
        before.syncs!.map((row) => ({ ...row, caller: "", level: 62, waiting_r2: 1 })),
      );
      // Counted as the kept counts of version 4 say.
      expect(after.sync_levels).toEqual([{ kernel: "k1", caller: "", level: 62, n: 1 }]);
      expect(after.sync_totals).toEqual([{ kernel: "k1", n: 1 }]);
      // Kernels keep theirs, and count as writers (version 3: they may have been).
      expect(after.kernels).toEqual(before.kernels!.map((row) => ({ ...row, writer: 1 })));
      // meta gains the version, the count of stored pages (journal ∪ index: 7, not 5 + 3) and
      // the size: up to the end of the highest stored page (version 5).
      expect(after.meta).toEqual([
        ...before.meta!,
        { key: "stored_pages", value: v1.storedPages },
        { key: "size", value: v1.size },
        { key: "schema_version", value: SCHEMA_VERSION },
      ]);
      expect(new StateView(sql).storedPagesByBruteForce()).toBe(v1.storedPages);
      // Every page points at the same key and slot as before, now by the segment's integer id.
      const { index, segments } = indexAndSegments(sql);
      expect(index).toEqual(v1.index.map((row) => ({ ...row, id_type: "integer" })));
      expect(segments.map(({ key, pages, live }) => ({ key, pages, live }))).toEqual(
        [v1.segments.C, v1.segments.A, v1.segments.B].map((s) => ({
          key: s.key,
          pages: s.slots.length,
          live: s.live,
        })),
      );
      for (const segment of segments) expect(segment.live, segment.key).toBe(segment.pointing);
      expect(after.spools).toEqual([]);
      // The indexes of version 2 exist.
      const indexes = (table: string) =>
        sql
          .exec<{ name: string }>(`PRAGMA index_list("${table}")`)
          .toArray()
          .map((i) => i.name);
      expect(indexes("pages")).toContain("pages_by_segment");
      expect(indexes("segments")).toContain("segments_by_live");
    });
    // The instance was built on the tables before the upgrade: drop it.
    await evictDurableObject(objectStub(name));
  });

  it("has the same tables and indexes as a fresh object once upgraded", async () => {
    const name = "mig-v1-shape";
    await buildV1(name);
    await evictDurableObject(objectStub(name));
    const upgraded = await runInDurableObject(objectStub(name), (_i: MemoryObject, state) =>
      new StateView(state.storage.sql).tableShapes(),
    );
    const fresh = await runInDurableObject(objectStub("mig-fresh-shape"), (_i, state) =>
      new StateView(state.storage.sql).tableShapes(),
    );
    expect(upgraded).toEqual(fresh);
    expect(Object.keys(upgraded)).toContain("spools");
  });

  it("is upgraded at start-up with everything intact", async () => {
    const name = "mig-v1-restart";
    const v1 = await buildV1(name);
    // As after a deploy: the next event starts a new instance, whose constructor upgrades.
    await evictDurableObject(objectStub(name));

    // Every page reads back: journal ones, R2 ones, the one whose newest copy is in the journal
    // while an older one is in R2, the one a later segment superseded; the rest are zeros.
    const expected = expectedRange(v1);
    expect(sameBytes(await readPages(name, 0, 40 * PAGE), expected)).toBe(true);

    const status = await stat(name);
    expect(status).toMatchObject({
      object: name,
      page_size: PAGE,
      pages: v1.storedPages,
      bytes: v1.storedPages * PAGE,
      // The read above was message 17, the stat 18: the counter went on.
      seqno: v1.nextSeqno + 2,
      syncs: 1,
      kernels: [
        { kernel: "k1", connected: false, last_id: 8, stale: false },
        { kernel: "k2", connected: false, last_id: 4, stale: false },
      ],
    });
    const syncs = await (await call(`/v1/objects/${name}/syncs`)).json();
    expect(syncs).toEqual({
      syncs: [
        {
          kernel: "k1",
          id: 8,
          seqno: 16,
          offset: 30 * PAGE,
          length: 2 * PAGE,
          sync_flags: VM_SYNC_SYNCHRONOUS | VM_SYNC_INVALIDATE,
          since: v1.sync.since,
        },
      ],
    });

    // k1 resumes having received mid 1: it learns its last id and gets mid 2 again, not 1.
    const { kernel: k1, ready: ready1 } = await TestKernel.open(name, "k1", {
      receivedMid: 1,
      id: 9,
    });
    expect(ready1).toMatchObject({ type: "memory_object_ready", last_id: 8, flush: false });
    await k1.next((m) => m.mid === 2);
    expect(k1.received.filter((m) => m.mid !== undefined)).toEqual([
      { ...v1.outbox[1]!.message, payload: undefined },
    ]);

    // k2 resumes and gets the lock request again; answering it completes k1's synchronize, once
    // the journal pages are in R2 too, with k1's next mid (3).
    const { kernel: k2, ready: ready2 } = await TestKernel.open(name, "k2", { id: 5 });
    expect(ready2).toMatchObject({ last_id: 4, flush: false });
    const lockRequest = await k2.next((m) => m.type === "memory_object_lock_request");
    expect(lockRequest).toEqual({ ...v1.outbox[2]!.message, payload: undefined });
    k2.send({
      type: "memory_object_lock_completed",
      id: 6,
      lock_id: 1,
      offset: 30 * PAGE,
      length: 2 * PAGE,
    });
    expect(await k1.completion(v1.sync.id)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: v1.sync.id,
      seqno: v1.sync.seqno,
      offset: 30 * PAGE,
      length: 2 * PAGE,
      mid: 3,
    });
    expect(await (await call(`/v1/objects/${name}/syncs`)).json()).toEqual({ syncs: [] });

    // The journal went to R2 (the synchronize waited for it): every page still reads the same,
    // over HTTP and as a kernel's data_request.
    await waitFor(async () => (await stat(name)).journal_pages === 0, "the journal to flush");
    expect(sameBytes(await readPages(name, 0, 40 * PAGE), expected)).toBe(true);
    const supply = await k1.answer(k1.dataRequest(10 * PAGE, 4 * PAGE, 10));
    expect(sameBytes(supply.payload!, expected.subarray(10 * PAGE, 14 * PAGE))).toBe(true);

    // The upgraded tables: the current version, integer segment ids that all name a segment,
    // live counts equal to the pages pointing at each segment, the count still exact.
    const tables = await runInDurableObject(objectStub(name), (_i: MemoryObject, state) => ({
      version: schemaVersion(state.storage.sql),
      stored: new StateView(state.storage.sql).storedPagesByBruteForce(),
      ...indexAndSegments(state.storage.sql),
    }));
    expect(tables.version).toBe(SCHEMA_VERSION);
    expect(tables.stored).toBe(v1.storedPages);
    expect(tables.index.map((row) => row.page)).toEqual([10, 11, 12, 13, 20, 30, 31]);
    for (const row of tables.index) {
      expect(row.id_type, `page ${row.page}`).toBe("integer");
      expect(row.segment, `page ${row.page}`).toEqual(expect.any(String));
    }
    for (const segment of tables.segments) expect(segment.live, segment.key).toBe(segment.pointing);
    expect((await stat(name)).pages).toBe(v1.storedPages);

    // Sweeping after the upgrade deletes the dead segments (C; B lost page 20 to the flush) and
    // nothing else: R2 holds exactly the segments the index uses, and every page still reads.
    await maintain(name);
    const listed = await env.PAGES.list({ prefix: `${name}/segments/` });
    const used = new Set(tables.index.map((row) => row.segment));
    expect(listed.objects.map((o) => o.key).sort()).toEqual([...used].sort());
    expect(listed.objects.map((o) => o.key)).not.toContain(v1.segments.C.key);
    expect(sameBytes(await readPages(name, 0, 40 * PAGE), expected)).toBe(true);

    // And it goes on working: a write lands, is synchronized and reads back; the count follows.
    expect(await (await putPages(name, 50 * PAGE, pageVersion(50, 1))).json()).toMatchObject({
      offset: 50 * PAGE,
    });
    expect(
      await (await synchronize(name, 50 * PAGE, PAGE, VM_SYNC_SYNCHRONOUS)).json(),
    ).toMatchObject({ type: "memory_object_synchronize_completed" });
    expect(sameBytes(await readPages(name, 50 * PAGE, PAGE), pageVersion(50, 1))).toBe(true);
    expect((await stat(name)).pages).toBe(v1.storedPages + 1);
    k1.close();
    k2.close();
  });

  it("with no pages at all is upgraded to a count of 0", async () => {
    const name = "mig-v1-empty";
    await runInDurableObject(objectStub(name), async (_i: MemoryObject, state) => {
      await state.storage.deleteAll();
      for (const statement of SCHEMA_V1_STATEMENTS) state.storage.sql.exec(statement);
      state.storage.sql.exec(
        `INSERT INTO meta (key, value) VALUES ('seqno', 3), ('object', ?)`,
        name,
      );
    });
    await evictDurableObject(objectStub(name));
    expect(await stat(name)).toMatchObject({ object: name, pages: 0, bytes: 0, seqno: 4 });
    const version = await runInDurableObject(objectStub(name), (_i: MemoryObject, state) =>
      schemaVersion(state.storage.sql),
    );
    expect(version).toBe(SCHEMA_VERSION);
  });
});

describe("an unsound version-1 object", () => {
  it("keeps a page whose segment has no row: the upgrade gives the segment one", async () => {
    const name = "mig-v1-rowless";
    const key = v1SegmentKey(name, 5);
    await env.PAGES.put(key, concat([pageVersion(0, 1), pageVersion(1, 1)]));
    await runInDurableObject(objectStub(name), async (_i: MemoryObject, state) => {
      await state.storage.deleteAll();
      const sql = state.storage.sql;
      for (const statement of SCHEMA_V1_STATEMENTS) sql.exec(statement);
      sql.exec(
        `INSERT INTO meta (key, value) VALUES ('seqno', 9), ('page_size', ?), ('object', ?)`,
        PAGE,
        name,
      );
      sql.exec(
        `INSERT INTO pages (page, segment, slot, seqno) VALUES (0, ?1, 0, 5), (1, ?1, 1, 5)`,
        key,
      );
    });
    await evictDurableObject(objectStub(name));
    expect(await stat(name)).toMatchObject({ pages: 2 });
    const bytes = await readPages(name, 0, 2 * PAGE);
    expect(sameBytes(bytes, concat([pageVersion(0, 1), pageVersion(1, 1)]))).toBe(true);
    const rows = await runInDurableObject(objectStub(name), (_i: MemoryObject, state) =>
      state.storage.sql.exec(`SELECT key, pages, live FROM segments`).toArray(),
    );
    expect(rows).toEqual([{ key, pages: 2, live: 2 }]);
  });
});

describe("schema versions", () => {
  it("a fresh object is at SCHEMA_VERSION", async () => {
    const meta = await runInDurableObject(objectStub("mig-fresh"), (_i: MemoryObject, state) => ({
      version: schemaVersion(state.storage.sql),
      rows: state.storage.sql
        .exec<{ key: string; value: number }>(`SELECT key, value FROM meta ORDER BY key`)
        .toArray(),
    }));
    expect(meta.version).toBe(SCHEMA_VERSION);
    expect(meta.rows).toEqual([
      { key: "schema_version", value: SCHEMA_VERSION },
      { key: "stored_pages", value: 0 },
    ]);
  });

  it("start-up on an object already at SCHEMA_VERSION changes nothing", async () => {
    const name = "mig-current";
    const { kernel } = await TestKernel.open(name, "k1");
    await kernel.ack(kernel.dataReturn(0, concat([pageVersion(0, 1), pageVersion(1, 1)])));
    await kernel.completion(kernel.synchronize(0, 2 * PAGE, VM_SYNC_SYNCHRONOUS));
    // Bodies are read to the end: an unread response keeps its request, and so the instance, busy
    // (an eviction would wait for it).
    expect(await (await putPages(name, 8 * PAGE, pageVersion(8, 1))).json()).toMatchObject({
      length: PAGE,
    });
    expect(
      await (await synchronize(name, 8 * PAGE, PAGE, VM_SYNC_SYNCHRONOUS)).json(),
    ).toMatchObject({ type: "memory_object_synchronize_completed" });
    kernel.close();
    await waitFor(async () => (await stat(name)).kernels[0].connected === false, "k1 to go");
    await maintain(name);

    const { before, after, transacted } = await runInDurableObject(
      objectStub(name),
      (_i: MemoryObject, state) => {
        const before = new StateView(state.storage.sql).dumpTables();
        let transacted = false;
        migrate(state.storage.sql, (step) => {
          transacted = true;
          state.storage.transactionSync(step);
        });
        return { before, after: new StateView(state.storage.sql).dumpTables(), transacted };
      },
    );
    expect(transacted).toBe(false);
    expect(after).toEqual(before);
    expect(before.meta).toContainEqual({ key: "schema_version", value: SCHEMA_VERSION });
    expect(before.outbox).toHaveLength(1);

    // A restart (the constructor migrates) leaves every row as it was, too.
    await evictDurableObject(objectStub(name));
    const restarted = await runInDurableObject(objectStub(name), (_i: MemoryObject, state) =>
      new StateView(state.storage.sql).dumpTables(),
    );
    expect(restarted).toEqual(before);
    expect(
      sameBytes(await readPages(name, 0, 2 * PAGE), concat([pageVersion(0, 1), pageVersion(1, 1)])),
    ).toBe(true);
  });

  it("an object whose schema is newer than this code's refuses to start", async () => {
    const name = "mig-newer";
    await stat(name);
    await runInDurableObject(objectStub(name), (_i: MemoryObject, state) => {
      const sql = state.storage.sql;
      sql.exec(`UPDATE meta SET value = ? WHERE key = 'schema_version'`, SCHEMA_VERSION + 1);
      const before = new StateView(sql).dumpTables();
      let transacted = false;
      const newer = new RegExp(
        `schema is version ${SCHEMA_VERSION + 1}, newer than this code's ${SCHEMA_VERSION}`,
      );
      expect(() =>
        migrate(sql, (step) => {
          transacted = true;
          state.storage.transactionSync(step);
        }),
      ).toThrow(newer);
      expect(transacted).toBe(false);
      expect(new StateView(sql).dumpTables()).toEqual(before);
      // The constructor is where start-up migrates: it throws before touching anything.
      expect(() => new Pager(state, env)).toThrow(newer);
      expect(new StateView(sql).dumpTables()).toEqual(before);
      // Put it back, so the running instance stays consistent with its tables.
      sql.exec(`UPDATE meta SET value = ? WHERE key = 'schema_version'`, SCHEMA_VERSION);
    });
  });
});
