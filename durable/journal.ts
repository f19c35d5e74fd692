/**
 * The journal and the durability barrier (docs/architecture.md §4): the one module that writes the
 * `journal` table and the `stored_pages` count. Returned pages land here first, durable in
 * milliseconds; the flusher takes them out in page order, and once a segment holding them is in
 * R2 they leave, unless a newer version arrived meanwhile. A page is "durable below seqno s" when
 * no version of it older than s is still only here: the barrier a SYNCHRONOUS synchronize waits
 * on (docs/protocol.md §6.4).
 */
import type { PageSpan } from "../schema";
import type { Meta } from "./meta";
import { inChunks } from "./sql-lists";

/** A journaled page as the flusher packs it. */
export type JournalRow = {
  page: number;
  seqno: number;
  data: ArrayBuffer;
};

/** Which version of a page a segment holds. */
export type SegmentPage = { page: number; seqno: number };

/**
 * The barrier as an SQL condition on a row `s` with `first_page`, `end_page` and `seqno` (a
 * request, or its range and seqno): some page of the range still has a version of that seqno or
 * below in the journal, not yet in R2. "Or below", not "below": an atomic group commits its pages
 * at its synchronize's own seqno (docs/protocol.md §12), and that synchronize waits for them. One
 * definition, so the synchronize tracker can ask it of every outstanding request in one query (a
 * read of this table; only this module writes it).
 */
export const JOURNAL_HOLDS_UP_TO = `EXISTS (SELECT 1 FROM journal
  WHERE journal.page >= s.first_page AND journal.page < s.end_page AND journal.first_seqno <= s.seqno)`;

export class Journal {
  /**
   * Pages in the journal, counted once and then kept up to date, since every message asks
   * (the cap, the flush trigger). `null` means "count again"; the journal is bounded by
   * JOURNAL_MAX_BYTES, so counting it again is bounded too.
   */
  private count: number | null = null;

  constructor(
    private readonly sql: SqlStorage,
    private readonly meta: Meta,
  ) {}

  /**
   * Journals each page of a dirty data_return; a newer version replaces the older one. One
   * statement per frame: SQLite cuts the pages out of the frame's bytes itself (a recursive
   * series and `substr` on a blob), since a statement per page cost more than the bytes did.
   * A frame is at most MAX_TRANSFER (1 MiB), under the 2 MB per bound value.
   */
  write(firstPage: number, pageSize: number, data: Uint8Array, seqno: number): void {
    const pages = data.byteLength / pageSize;
    // `WHERE true` lets SQLite parse ON CONFLICT after INSERT … SELECT (its documented quirk).
    // Each page says whether it is new to the journal (a replaced version keeps its older
    // first_seqno) and whether the segment index has it, which keeps both counts without a
    // query of their own: a return of one page is one statement, and one more if it is new.
    const arrivals = this.sql
      .exec<{ fresh: number; indexed: number }>(
        `WITH RECURSIVE slot (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slot WHERE i + 1 < ?1)
         INSERT INTO journal (page, seqno, first_seqno, data)
         SELECT ?2 + i, ?3, ?3, substr(?4, i * ?5 + 1, ?5) FROM slot WHERE true
         ON CONFLICT (page) DO UPDATE SET seqno = excluded.seqno, data = excluded.data
         RETURNING first_seqno = ?3 AS fresh,
                   EXISTS (SELECT 1 FROM pages WHERE pages.page = journal.page) AS indexed`,
        pages,
        firstPage,
        seqno,
        data,
        pageSize,
      )
      .toArray();
    this.countFresh(arrivals);
  }

  /**
   * Applies staged pages of an atomic group (durable/groups.ts), those with rowids in
   * (after, through], as versions of `seqno`, the last staged version of each page winning: the
   * commit of docs/protocol.md §12. Returns the end of the highest page applied.
   */
  writeStaged(
    kernel: string,
    group: number,
    after: number,
    through: number,
    seqno: number,
  ): number {
    const run = `SELECT max(rowid) FROM staged WHERE kernel = ?1 AND grp = ?2 AND rowid > ?3
      AND rowid <= ?4 AND page IS NOT NULL GROUP BY page`;
    // Counted before: a page may come twice in one commit (before and after a set_size), both
    // versions of the same seqno, which `RETURNING` could not tell from a fresh one.
    const { pages, journaled, stored, end } = this.sql
      .exec<{ pages: number; journaled: number; stored: number; end: number }>(
        `SELECT count(*) AS pages, coalesce(max(page) + 1, 0) AS end,
           coalesce(sum(EXISTS (SELECT 1 FROM journal WHERE journal.page = s.page)), 0) AS journaled,
           coalesce(sum(EXISTS (SELECT 1 FROM journal WHERE journal.page = s.page)
             OR EXISTS (SELECT 1 FROM pages WHERE pages.page = s.page)), 0) AS stored
         FROM staged AS s WHERE s.rowid IN (${run})`,
        kernel,
        group,
        after,
        through,
      )
      .one();
    this.sql.exec(
      `INSERT INTO journal (page, seqno, first_seqno, data)
       SELECT page, ?5, ?5, data FROM staged WHERE rowid IN (${run})
       ON CONFLICT (page) DO UPDATE SET seqno = excluded.seqno, data = excluded.data`,
      kernel,
      group,
      after,
      through,
      seqno,
    );
    if (this.count !== null) this.count += pages - journaled;
    if (stored < pages) this.meta.add("stored_pages", pages - stored);
    return end;
  }

  /**
   * Keeps the counts from what a journal INSERT's `RETURNING` said of each page: whether it is
   * new to the journal (a replaced version keeps its older first_seqno), and whether the segment
   * index has it.
   */
  private countFresh(arrivals: { fresh: number; indexed: number }[]): void {
    let journaled = 0;
    let stored = 0;
    for (const { fresh, indexed } of arrivals) {
      if (!fresh) continue;
      journaled++;
      if (!indexed) stored++;
    }
    if (this.count !== null) this.count += journaled;
    if (stored > 0) this.meta.add("stored_pages", stored);
  }

  /**
   * A shrink (docs/protocol.md §13): pages from `firstPage` on are as if never written. Drops
   * their journal rows and takes them out of the stored-page count, whether they are here or in
   * R2 (the segment index drops its entries itself).
   */
  dropFrom(firstPage: number): void {
    const { stored } = this.sql
      .exec<{ stored: number }>(
        `SELECT count(*) AS stored FROM (SELECT page FROM journal WHERE page >= ?1
           UNION SELECT page FROM pages WHERE page >= ?1)`,
        firstPage,
      )
      .one();
    const dropped = this.sql
      .exec(`DELETE FROM journal WHERE page >= ? RETURNING page`, firstPage)
      .toArray().length;
    if (this.count !== null) this.count -= dropped;
    if (stored > 0) this.meta.add("stored_pages", -stored);
  }

  /**
   * A shrink cut page `page` at byte `keep`: if the journal holds it, its bytes from `keep` on
   * become zeros, as a version of `seqno`. Returns false when the journal does not hold it.
   */
  zeroTail(page: number, keep: number, seqno: number): boolean {
    const row = this.sql
      .exec<{ data: ArrayBuffer }>(`SELECT data FROM journal WHERE page = ?`, page)
      .toArray()[0];
    if (!row) return false;
    const data = new Uint8Array(row.data);
    data.fill(0, keep);
    this.sql.exec(`UPDATE journal SET data = ?, seqno = ? WHERE page = ?`, data, seqno, page);
    return true;
  }

  /**
   * Journals a spooled body (an HTTP `PUT`): part `i` of the spool is page `firstPage + i`. One
   * statement, row to row inside SQLite, whatever the body's size.
   */
  writeSpool(spool: number, firstPage: number, pages: number, seqno: number): void {
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
   * the range: how many of its pages are journaled already, how many are stored at all (here or
   * in the segment index, which it reads).
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
    if (this.count !== null) this.count += end - first - journaled;
    if (stored < end - first) this.meta.add("stored_pages", end - first - stored);
  }

  /** Pages in the journal now. */
  pages(): number {
    this.count ??= this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM journal`).one().n;
    return this.count;
  }

  /** A transaction rolled back, or the tables were cleared: count the journal again. */
  forgetCounts(): void {
    this.count = null;
  }

  /** Pages ever written and kept: in the journal, in R2, or both. Kept, not counted: O(1). */
  storedPages(): number {
    return this.meta.get<number>("stored_pages") ?? 0;
  }

  /** True when no page of the span has a version of `seqno` or below still outside R2. */
  isDurableUpTo(span: PageSpan, seqno: number): boolean {
    const row = this.sql
      .exec<{ waits: number }>(
        `SELECT ${JOURNAL_HOLDS_UP_TO} AS waits
         FROM (SELECT ? AS first_page, ? AS end_page, ? AS seqno) AS s`,
        span.first,
        span.end,
        seqno,
      )
      .one();
    return row.waits === 0;
  }

  /** How many pages of the span are journaled. */
  pagesIn(span: PageSpan): number {
    return this.sql
      .exec<{ n: number }>(
        `SELECT count(*) AS n FROM journal WHERE page >= ? AND page < ?`,
        span.first,
        span.end,
      )
      .one().n;
  }

  /** The journaled pages of the span, with their bytes. */
  rowsIn(span: PageSpan): { page: number; data: ArrayBuffer }[] {
    return this.sql
      .exec<{ page: number; data: ArrayBuffer }>(
        `SELECT page, data FROM journal WHERE page >= ? AND page < ?`,
        span.first,
        span.end,
      )
      .toArray();
  }

  /**
   * The next rows to pack into a segment: pages after `afterPage`, in page order, up to about
   * `targetBytes`.
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
   * A segment holding these versions is in R2 and indexed: drop their rows, unless a newer
   * version arrived meanwhile; such a newer version's oldest unflushed one is now the one read
   * at `readSeqno` or later. Set-based, a chunk of SQL_LIST_ITEMS pages per statement.
   */
  dropFlushed(batch: SegmentPage[], readSeqno: number): void {
    for (const chunk of inChunks(batch)) {
      const pages = JSON.stringify(chunk.map(({ page, seqno }) => [page, seqno]));
      const dropped = this.sql
        .exec(
          `DELETE FROM journal WHERE (page, seqno) IN
             (SELECT value ->> 0, value ->> 1 FROM json_each(?)) RETURNING page`,
          pages,
        )
        .toArray().length;
      if (this.count !== null) this.count -= dropped;
      this.sql.exec(
        `UPDATE journal SET first_seqno = max(journal.first_seqno, ?2)
         FROM json_each(?1) AS b
         WHERE journal.page = b.value ->> 0 AND journal.seqno <> b.value ->> 1`,
        pages,
        readSeqno,
      );
    }
  }
}
