/**
 * The page store of design.md §4: returned pages go into the SQLite journal (durable in
 * milliseconds); the flusher packs them into immutable R2 segments and points the page index at
 * them. Reads look in the journal first, then the segment, else the page was never written.
 */
import type { PageSpan } from "../schema";
import type { SegmentCache } from "./segment-cache";

/**
 * The synchronize barrier as an SQL condition on a row `s` with `first_page`, `end_page` and
 * `seqno` (a request, or its range and seqno): some page of the range still has a version below
 * that seqno in the journal, not yet in R2 (protocol.md §6.4). One definition, so the tracker can
 * ask it of every outstanding request in one query.
 */
export const JOURNAL_HOLDS_BELOW = `EXISTS (SELECT 1 FROM journal
  WHERE journal.page >= s.first_page AND journal.page < s.end_page AND journal.first_seqno < s.seqno)`;

/** Where one page of a read comes from, decided in seqno order before any I/O. */
type PageSource =
  { page: number; journal: Uint8Array } | { page: number; segment: string; slot: number };

/**
 * A read's sources, fixed at its seqno; segments are immutable, so reading later is safe. The
 * segments it names stay in R2 until `finishRead`, even if every page in them is superseded.
 */
export interface ReadPlan {
  span: PageSpan;
  sources: PageSource[];
  /** The segments this plan holds in R2 (emptied by `finishRead`; none for a slice). */
  segments: string[];
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
    /** Replaceable so tests can run the same scenarios against a failing or slow bucket. */
    public bucket: R2Bucket,
    /** Segment pages read lately (immutable segments: no invalidation); replaceable in tests. */
    public cache: SegmentCache,
  ) {}

  /** Segments that reads planned and not finished may still read: the sweeper leaves them be. */
  private readonly reading = new Map<string, number>();

  /**
   * Pages in the journal, counted once and then kept up to date, since every message asks
   * (the cap, the flush trigger). `null` means "count again".
   */
  private journalCount: number | null = null;

  /**
   * Journals each page of a dirty data_return; a newer version replaces the older one. One
   * statement per frame: SQLite cuts the pages out of the frame's bytes itself (a recursive
   * series and `substr` on a blob), since a statement per page cost more than the bytes did.
   */
  journal(firstPage: number, pageSize: number, data: Uint8Array, seqno: number): void {
    const pages = data.byteLength / pageSize;
    if (this.journalCount !== null) {
      // One count for the frame (pages already journaled are replaced, not added).
      const present = this.sql
        .exec<{ n: number }>(
          `SELECT count(*) AS n FROM journal WHERE page >= ? AND page < ?`,
          firstPage,
          firstPage + pages,
        )
        .one().n;
      this.journalCount += pages - present;
    }
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

  journalPages(): number {
    this.journalCount ??= this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM journal`).one().n;
    return this.journalCount;
  }

  /** A transaction rolled back, or the tables were cleared: count the journal again. */
  forgetCounts(): void {
    this.journalCount = null;
  }

  /** Pages ever written and kept: in the journal, in R2, or both. */
  storedPages(): number {
    return this.sql
      .exec<{ n: number }>(
        `SELECT count(*) AS n FROM (SELECT page FROM journal UNION SELECT page FROM pages)`,
      )
      .one().n;
  }

  /**
   * True when no page of the span has a version below `seqno` still outside R2: the barrier a
   * SYNCHRONOUS synchronize waits on (protocol.md §6.4).
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

  /** Fixes where each written page of the span is, as of now (the read's seqno). */
  planRead(span: PageSpan): ReadPlan {
    const sources = new Map<number, PageSource>();
    for (const row of this.sql.exec<{ page: number; segment: string; slot: number }>(
      `SELECT page, segment, slot FROM pages WHERE page >= ? AND page < ?`,
      span.first,
      span.end,
    )) {
      sources.set(row.page, row);
    }
    for (const row of this.sql.exec<{ page: number; data: ArrayBuffer }>(
      `SELECT page, data FROM journal WHERE page >= ? AND page < ?`,
      span.first,
      span.end,
    )) {
      sources.set(row.page, { page: row.page, journal: new Uint8Array(row.data) });
    }
    const segments = new Set<string>();
    for (const source of sources.values()) if ("segment" in source) segments.add(source.segment);
    this.hold([...segments]);
    return {
      span,
      sources: [...sources.values()].sort((a, b) => a.page - b.page),
      segments: [...segments],
    };
  }

  /** The read of `plan` is over (done, failed or abandoned): its segments may go. Idempotent. */
  finishRead(plan: ReadPlan): void {
    this.release(plan.segments);
    plan.segments = [];
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
    };
  }

  /**
   * Reads a planned range: journal pages from memory, segment pages from the cache or with one
   * ranged R2 read per run of consecutive slots not cached; never-written pages stay zero. What
   * R2 returned is cached unless `fillCache` is false (a bulk read passing through).
   */
  async read(plan: ReadPlan, pageSize: number, { fillCache = true } = {}): Promise<Uint8Array> {
    const out = new Uint8Array((plan.span.end - plan.span.first) * pageSize);
    const runs: { segment: string; slot: number; page: number; count: number }[] = [];
    for (const source of plan.sources) {
      const at = (source.page - plan.span.first) * pageSize;
      if ("journal" in source) {
        out.set(source.journal, at);
        continue;
      }
      const cached = this.cache.get(source.segment, source.slot);
      if (cached) {
        out.set(cached, at);
        continue;
      }
      const last = runs[runs.length - 1];
      if (
        last &&
        last.segment === source.segment &&
        last.slot + last.count === source.slot &&
        last.page + last.count === source.page
      ) {
        last.count++;
      } else {
        runs.push({ segment: source.segment, slot: source.slot, page: source.page, count: 1 });
      }
    }
    await Promise.all(
      runs.map(async (run) => {
        const bytes = await this.readSlots(run.segment, run.slot, run.count, pageSize);
        out.set(bytes, (run.page - plan.span.first) * pageSize);
        if (fillCache) this.cache.keep(run.segment, run.slot, bytes, pageSize);
      }),
    );
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
   * Set-based (the batch goes in once as JSON, slot = array index): a few statements per segment
   * instead of four per page.
   */
  commitSegment(key: string, batch: SegmentPage[], readSeqno: number): void {
    const pages = JSON.stringify(batch.map(({ page, seqno }) => [page, seqno]));
    this.sql.exec(
      `INSERT INTO segments (key, pages, live) VALUES (?, ?, ?)`,
      key,
      batch.length,
      batch.length,
    );
    // The segments that held the previous copies lose those pages (before the index moves).
    this.sql.exec(
      `UPDATE segments SET live = live - moved.n
       FROM (SELECT pages.segment, count(*) AS n FROM json_each(?1) AS b
             JOIN pages ON pages.page = b.value ->> 0 GROUP BY pages.segment) AS moved
       WHERE segments.key = moved.segment`,
      pages,
    );
    this.sql.exec(
      `INSERT INTO pages (page, segment, slot, seqno)
       SELECT b.value ->> 0, ?2, b.key, b.value ->> 1 FROM json_each(?1) AS b WHERE true
       ON CONFLICT (page) DO UPDATE SET segment = excluded.segment, slot = excluded.slot,
         seqno = excluded.seqno`,
      pages,
      key,
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
       FROM json_each(?1) AS b WHERE journal.page = b.value ->> 0 AND journal.seqno <> b.value ->> 1`,
      pages,
      readSeqno,
    );
  }

  /**
   * Segments no page points at any more (every page has a newer copy elsewhere) and no unfinished
   * read may still read. A dead segment never comes back: segments are immutable and pages only
   * ever move to newer ones.
   */
  deadSegments(): string[] {
    return this.sql
      .exec<{ key: string }>(`SELECT key FROM segments WHERE live <= 0`)
      .toArray()
      .map((row) => row.key)
      .filter((key) => !this.reading.has(key));
  }

  /** The R2 objects of these dead segments are deleted: forget them. */
  forgetSegments(keys: string[]): void {
    this.sql.exec(
      `DELETE FROM segments WHERE live <= 0 AND key IN (SELECT value FROM json_each(?))`,
      JSON.stringify(keys),
    );
  }

  segmentKeys(): string[] {
    return this.sql
      .exec<{ key: string }>(`SELECT key FROM segments`)
      .toArray()
      .map((row) => row.key);
  }
}
