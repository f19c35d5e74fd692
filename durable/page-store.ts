/**
 * The page store of docs/architecture.md §4: returned pages go into the SQLite journal (durable in
 * milliseconds); the flusher packs them into immutable R2 segments and points the page index at
 * them. Reads look in the journal first, then the segment, else the page was never written.
 */
import type { PageSpan } from "../schema";
import type { ByteBudget } from "./byte-budget";
import type { Meta } from "./meta";
import type { SegmentCache } from "./segment-cache";
import { inChunks } from "./sql-lists";
import type { Spools } from "./spools";

/**
 * The synchronize barrier as an SQL condition on a row `s` with `first_page`, `end_page` and
 * `seqno` (a request, or its range and seqno): some page of the range still has a version below
 * that seqno in the journal, not yet in R2 (docs/protocol.md §6.4). One definition, so the tracker can
 * ask it of every outstanding request in one query.
 */
export const JOURNAL_HOLDS_BELOW = `EXISTS (SELECT 1 FROM journal
  WHERE journal.page >= s.first_page AND journal.page < s.end_page AND journal.first_seqno < s.seqno)`;

/**
 * Where one page of a read comes from, decided in seqno order before any I/O: a journal page
 * copied into memory (small reads) or into the read's spool in SQLite (large ones, so a 64 MiB
 * read of unflushed pages never sits in memory), or a slot of an R2 segment.
 */
type PageSource =
  | { page: number; journal: Uint8Array }
  | { page: number; spooled: true }
  | { page: number; segment: string; slot: number };

/** Journal bytes a read keeps in memory; a read over more spools them in SQLite. */
const IN_MEMORY_JOURNAL_BYTES = 1024 * 1024;

/** Ranged R2 reads one read runs at once (and so about that many segments' bytes in memory). */
const PARALLEL_GETS = 4;

/**
 * A read's sources, fixed at its seqno; segments are immutable, so reading later is safe. The
 * segments it names stay in R2 until `finishRead`, even if every page in them is superseded.
 */
export interface ReadPlan {
  span: PageSpan;
  sources: PageSource[];
  /** The segments this plan holds in R2 (emptied by `finishRead`; none for a slice). */
  segments: string[];
  /** The spool holding its journal pages when they were too many for memory, else null. */
  spool: number | null;
}

/** What committing a segment needs of each page in it: which version it holds. */
export type SegmentPage = { page: number; seqno: number };

export type JournalRow = {
  page: number;
  seqno: number;
  data: ArrayBuffer;
};

export class PageStore {
  constructor(
    private readonly sql: SqlStorage,
    private readonly meta: Meta,
    private readonly spools: Spools,
    /** Replaceable so tests can run the same scenarios against a failing or slow bucket. */
    public bucket: R2Bucket,
    /** Segment pages read lately (immutable segments: no invalidation); replaceable in tests. */
    public cache: SegmentCache,
    /** Page bytes the isolate's requests may hold at once (shared by its objects). */
    readonly budget: ByteBudget,
  ) {}

  /** Segments that reads planned and not finished may still read: the sweeper leaves them be. */
  private readonly reading = new Map<string, number>();

  /**
   * Pages in the journal, counted once and then kept up to date, since every message asks
   * (the cap, the flush trigger). `null` means "count again"; the journal is bounded by
   * JOURNAL_MAX_BYTES, so counting it again is bounded too.
   */
  private journalCount: number | null = null;

  /**
   * Journals each page of a dirty data_return; a newer version replaces the older one. One
   * statement per frame: SQLite cuts the pages out of the frame's bytes itself (a recursive
   * series and `substr` on a blob), since a statement per page cost more than the bytes did.
   * A frame is at most MAX_TRANSFER (1 MiB), under the 2 MB per bound value.
   */
  journal(firstPage: number, pageSize: number, data: Uint8Array, seqno: number): void {
    const pages = data.byteLength / pageSize;
    this.countArrivals(firstPage, firstPage + pages);
    // `WHERE true` lets SQLite parse ON CONFLICT after INSERT … SELECT (its documented quirk).
    this.sql.exec(
      `WITH RECURSIVE slot (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slot WHERE i + 1 < ?1)
       INSERT INTO journal (page, seqno, first_seqno, data)
       SELECT ?2 + i, ?3, ?3, substr(?4, i * ?5 + 1, ?5) FROM slot WHERE true
       ON CONFLICT (page) DO UPDATE SET seqno = excluded.seqno, data = excluded.data`,
      pages,
      firstPage,
      seqno,
      data,
      pageSize,
    );
  }

  /**
   * Journals a spooled body (an HTTP `PUT`): part `i` of the spool is page `firstPage + i`. One
   * statement, row to row inside SQLite, whatever the body's size.
   */
  journalSpool(spool: number, firstPage: number, pages: number, seqno: number): void {
    this.countArrivals(firstPage, firstPage + pages);
    this.sql.exec(
      `INSERT INTO journal (page, seqno, first_seqno, data)
       SELECT ?2 + part, ?3, ?3, data FROM spools WHERE spool = ?1 AND part < ?4
       ON CONFLICT (page) DO UPDATE SET seqno = excluded.seqno, data = excluded.data`,
      spool,
      firstPage,
      seqno,
      pages,
    );
  }

  /**
   * Before pages [first, end) are journaled: keeps the journal's page count and the object's
   * stored-page count (`stored_pages`, so status never counts rows) up to date. One query for
   * the range: how many of its pages are journaled already, how many are stored at all.
   */
  private countArrivals(first: number, end: number): void {
    const { journaled, stored } = this.sql
      .exec<{ journaled: number; stored: number }>(
        `SELECT (SELECT count(*) FROM journal WHERE page >= ?1 AND page < ?2) AS journaled,
                (SELECT count(*) FROM (SELECT page FROM journal WHERE page >= ?1 AND page < ?2
                   UNION SELECT page FROM pages WHERE page >= ?1 AND page < ?2)) AS stored`,
        first,
        end,
      )
      .one();
    if (this.journalCount !== null) this.journalCount += end - first - journaled;
    if (stored < end - first) {
      this.meta.set("stored_pages", this.storedPages() + (end - first - stored));
    }
  }

  journalPages(): number {
    this.journalCount ??= this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM journal`).one().n;
    return this.journalCount;
  }

  /** A transaction rolled back, or the tables were cleared: count the journal again. */
  forgetCounts(): void {
    this.journalCount = null;
  }

  /** Pages ever written and kept: in the journal, in R2, or both. Kept, not counted: O(1). */
  storedPages(): number {
    return this.meta.get<number>("stored_pages") ?? 0;
  }

  /**
   * True when no page of the span has a version below `seqno` still outside R2: the barrier a
   * SYNCHRONOUS synchronize waits on (docs/protocol.md §6.4).
   */
  isDurableBelow(span: PageSpan, seqno: number): boolean {
    const row = this.sql
      .exec<{ waits: number }>(
        `SELECT ${JOURNAL_HOLDS_BELOW} AS waits
         FROM (SELECT ? AS first_page, ? AS end_page, ? AS seqno) AS s`,
        span.first,
        span.end,
        seqno,
      )
      .one();
    return row.waits === 0;
  }

  /** The durable watermark: every page returned with a lower seqno is in R2. */
  watermark(nextSeqno: number): number {
    const row = this.sql
      .exec<{ low: number | null }>(`SELECT min(first_seqno) AS low FROM journal`)
      .one();
    return row.low ?? nextSeqno;
  }

  /**
   * Fixes where each written page of the span is, as of now (the read's seqno). Journal pages
   * are copied: into memory when they are few, else into a spool in SQLite.
   */
  planRead(span: PageSpan, pageSize: number): ReadPlan {
    const sources = new Map<number, PageSource>();
    for (const row of this.sql.exec<{ page: number; segment: string; slot: number }>(
      `SELECT pages.page, segments.key AS segment, pages.slot
       FROM pages JOIN segments ON segments.id = pages.segment
       WHERE pages.page >= ? AND pages.page < ?`,
      span.first,
      span.end,
    )) {
      sources.set(row.page, row);
    }
    const journaled = this.sql
      .exec<{ n: number }>(
        `SELECT count(*) AS n FROM journal WHERE page >= ? AND page < ?`,
        span.first,
        span.end,
      )
      .one().n;
    let spool: number | null = null;
    if (journaled * pageSize <= IN_MEMORY_JOURNAL_BYTES) {
      for (const row of this.sql.exec<{ page: number; data: ArrayBuffer }>(
        `SELECT page, data FROM journal WHERE page >= ? AND page < ?`,
        span.first,
        span.end,
      )) {
        sources.set(row.page, { page: row.page, journal: new Uint8Array(row.data) });
      }
    } else if (journaled > 0) {
      spool = this.spools.open();
      for (const row of this.sql.exec<{ page: number }>(
        `INSERT INTO spools (spool, part, data)
         SELECT ?1, page, data FROM journal WHERE page >= ?2 AND page < ?3 RETURNING part AS page`,
        spool,
        span.first,
        span.end,
      )) {
        sources.set(row.page, { page: row.page, spooled: true });
      }
    }
    const segments = new Set<string>();
    for (const source of sources.values()) if ("segment" in source) segments.add(source.segment);
    this.hold([...segments]);
    return {
      span,
      sources: [...sources.values()].sort((a, b) => a.page - b.page),
      segments: [...segments],
      spool,
    };
  }

  /** The read of `plan` is over (done, failed or abandoned): its segments may go. Idempotent. */
  finishRead(plan: ReadPlan): void {
    this.release(plan.segments);
    plan.segments = [];
    if (plan.spool !== null) this.spools.drop(plan.spool);
    plan.spool = null;
  }

  /** Keeps these segments in R2 while something reads them (a read plan, a compaction). */
  hold(keys: string[]): void {
    for (const key of keys) this.reading.set(key, (this.reading.get(key) ?? 0) + 1);
  }

  release(keys: string[]): void {
    for (const key of keys) {
      const readers = (this.reading.get(key) ?? 1) - 1;
      if (readers > 0) this.reading.set(key, readers);
      else this.reading.delete(key);
    }
  }

  /** The part of a plan that covers pages [first, end), for reading a long range in pieces. */
  slicePlan(plan: ReadPlan, first: number, end: number): ReadPlan {
    return {
      span: { first, end },
      sources: plan.sources.filter((source) => source.page >= first && source.page < end),
      segments: [],
      spool: plan.spool,
    };
  }

  /**
   * The ranged R2 reads that reading `plan` in pieces of `piecePages` pages makes at most: one
   * per segment per piece (the cache can only make it fewer).
   */
  r2ReadsFor(plan: ReadPlan, piecePages: number): number {
    const seen = new Set<string>();
    for (const source of plan.sources) {
      if ("segment" in source) {
        seen.add(`${Math.floor((source.page - plan.span.first) / piecePages)} ${source.segment}`);
      }
    }
    return seen.size;
  }

  /**
   * Reads a planned range: journal pages from memory or the spool, segment pages from the cache
   * or from R2 with one ranged read per segment (covering the slots needed, whatever their
   * order, so a fragmented range costs a read per segment, not per page); never-written pages
   * stay zero. What R2 returned is cached unless `fillCache` is false (a bulk read passing
   * through).
   */
  async read(plan: ReadPlan, pageSize: number, { fillCache = true } = {}): Promise<Uint8Array> {
    const out = new Uint8Array((plan.span.end - plan.span.first) * pageSize);
    const at = (page: number) => (page - plan.span.first) * pageSize;
    const wanted = new Map<string, { page: number; slot: number }[]>();
    let spooled = 0;
    for (const source of plan.sources) {
      if ("journal" in source) {
        out.set(source.journal, at(source.page));
      } else if ("spooled" in source) {
        spooled++;
      } else {
        const cached = this.cache.get(source.segment, source.slot);
        if (cached) out.set(cached, at(source.page));
        else {
          const pages = wanted.get(source.segment);
          if (pages) pages.push(source);
          else wanted.set(source.segment, [source]);
        }
      }
    }
    if (spooled > 0) {
      const rows =
        plan.spool === null ? [] : this.spools.read(plan.spool, plan.span.first, plan.span.end);
      // Only a DELETE while the read streamed takes a spool away: fail rather than send zeros.
      if (rows.length !== spooled)
        throw new Error("the read's spooled pages are gone (object deleted)");
      for (const row of rows) out.set(new Uint8Array(row.data), at(row.part));
    }
    const segments = [...wanted.entries()];
    const readOne = async ([segment, pages]: [string, { page: number; slot: number }[]]) => {
      let first = Infinity;
      let end = 0;
      for (const { slot } of pages) {
        first = Math.min(first, slot);
        end = Math.max(end, slot + 1);
      }
      const release = await this.budget.take((end - first) * pageSize);
      try {
        const bytes = await this.readSlots(segment, first, end - first, pageSize);
        for (const { page, slot } of pages) {
          const from = (slot - first) * pageSize;
          out.set(bytes.subarray(from, from + pageSize), at(page));
        }
        if (fillCache) this.cache.keep(segment, first, bytes, pageSize);
      } finally {
        release();
      }
    };
    const workers = Array.from({ length: Math.min(PARALLEL_GETS, segments.length) }, async () => {
      for (let next = segments.shift(); next; next = segments.shift()) await readOne(next);
    });
    await Promise.all(workers);
    return out;
  }

  /** Pages [slot, slot + count) of a segment, in one ranged R2 read. */
  async readSlots(
    segment: string,
    slot: number,
    count: number,
    pageSize: number,
  ): Promise<Uint8Array> {
    const object = await this.bucket.get(segment, {
      range: { offset: slot * pageSize, length: count * pageSize },
    });
    if (!object) throw new Error(`segment ${segment} is missing from R2`);
    return new Uint8Array(await object.arrayBuffer());
  }

  /**
   * Puts a segment under a key never used before. If the put fails, the key is deleted, best
   * effort: a put that failed after writing would leave an object nothing points at.
   */
  async putSegment(key: string, body: Uint8Array): Promise<void> {
    try {
      await this.bucket.put(key, body);
    } catch (error) {
      void this.bucket.delete(key).catch(() => {});
      throw error;
    }
  }

  /** Deletes segment objects from R2, at most 1,000 keys per call (R2's limit). */
  async deleteSegments(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      await this.bucket.delete(keys.slice(i, i + 1000));
    }
  }

  /**
   * The next journal rows to pack into a segment: pages after `afterPage`, in page order, up to
   * about `targetBytes`.
   */
  takeBatch(afterPage: number, targetBytes: number): JournalRow[] {
    const batch: JournalRow[] = [];
    let bytes = 0;
    for (const row of this.sql.exec<JournalRow>(
      `SELECT page, seqno, data FROM journal WHERE page > ? ORDER BY page`,
      afterPage,
    )) {
      batch.push(row);
      bytes += row.data.byteLength;
      if (bytes >= targetBytes) break;
    }
    return batch;
  }

  /**
   * After a segment's put resolved: point the index at it, drop the journal rows it holds unless a
   * newer version arrived meanwhile, and note that such newer versions start at `readSeqno`.
   * Set-based (the batch goes in as JSON lists, slot = position in the batch): a few statements
   * per chunk of SQL_LIST_ITEMS pages instead of four per page.
   */
  commitSegment(key: string, batch: SegmentPage[], readSeqno: number): void {
    const id = this.sql
      .exec<{ id: number }>(
        `INSERT INTO segments (key, pages, live) VALUES (?, ?, ?) RETURNING id`,
        key,
        batch.length,
        batch.length,
      )
      .one().id;
    let slot = 0;
    for (const chunk of inChunks(batch)) {
      const pages = JSON.stringify(chunk.map(({ page, seqno }) => [page, seqno]));
      // The segments that held the previous copies lose those pages (before the index moves).
      this.sql.exec(
        `UPDATE segments SET live = live - moved.n
         FROM (SELECT pages.segment, count(*) AS n FROM json_each(?1) AS b
               JOIN pages ON pages.page = b.value ->> 0 GROUP BY pages.segment) AS moved
         WHERE segments.id = moved.segment`,
        pages,
      );
      this.sql.exec(
        `INSERT INTO pages (page, segment, slot, seqno)
         SELECT b.value ->> 0, ?2, ?3 + b.key, b.value ->> 1 FROM json_each(?1) AS b WHERE true
         ON CONFLICT (page) DO UPDATE SET segment = excluded.segment, slot = excluded.slot,
           seqno = excluded.seqno`,
        pages,
        id,
        slot,
      );
      const dropped = this.sql
        .exec(
          `DELETE FROM journal WHERE (page, seqno) IN
             (SELECT value ->> 0, value ->> 1 FROM json_each(?)) RETURNING page`,
          pages,
        )
        .toArray().length;
      if (this.journalCount !== null) this.journalCount -= dropped;
      this.sql.exec(
        `UPDATE journal SET first_seqno = max(journal.first_seqno, ?2)
         FROM json_each(?1) AS b
         WHERE journal.page = b.value ->> 0 AND journal.seqno <> b.value ->> 1`,
        pages,
        readSeqno,
      );
      slot += chunk.length;
    }
  }

  /**
   * Up to `limit` segments no page points at any more (every page has a newer copy elsewhere)
   * and no unfinished read may still read. A dead segment never comes back: segments are
   * immutable and pages only ever move to newer ones.
   */
  deadSegments(limit: number): string[] {
    return this.sql
      .exec<{ key: string }>(
        `SELECT key FROM segments WHERE live <= 0 LIMIT ?`,
        limit + this.reading.size,
      )
      .toArray()
      .map((row) => row.key)
      .filter((key) => !this.reading.has(key))
      .slice(0, limit);
  }

  /** The R2 objects of these dead segments are deleted: forget them. */
  forgetSegments(keys: string[]): void {
    for (const chunk of inChunks(keys)) {
      this.sql.exec(
        `DELETE FROM segments WHERE live <= 0 AND key IN (SELECT value FROM json_each(?))`,
        JSON.stringify(chunk),
      );
    }
  }

  /** Every segment's key (for deleting them all when the object is destroyed). */
  segmentKeys(): string[] {
    return this.sql
      .exec<{ key: string }>(`SELECT key FROM segments`)
      .toArray()
      .map((row) => row.key);
  }

  /** Which of these keys name a segment row (the orphan scan asks a listed page at a time). */
  namedSegments(keys: string[]): Set<string> {
    const named = new Set<string>();
    for (const chunk of inChunks(keys)) {
      for (const row of this.sql.exec<{ key: string }>(
        `SELECT key FROM segments WHERE key IN (SELECT value FROM json_each(?))`,
        JSON.stringify(chunk),
      )) {
        named.add(row.key);
      }
    }
    return named;
  }
}
