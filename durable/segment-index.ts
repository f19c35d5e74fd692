/**
 * The segment index (docs/architecture.md §4): the one module that writes the `pages` table (where
 * the R2 copy of each page is: segment and slot) and the `segments` table (each segment's key and
 * how many of its pages the index still points at, its live count). A page moves to a newer
 * segment when a flush or a compaction commits one; the segment it leaves loses a live page, and
 * a segment with none is dead, for the sweeper to delete. It also knows which segments reads
 * still hold, so the sweeper never deletes one a planned read may still fetch.
 */
import type { PageSpan } from "../schema";
import type { SegmentPage } from "./journal";
import { inChunks } from "./sql-lists";

/**
 * A page in R2 as a read finds it: the segment's key and the slot, and where a shrink cut it
 * (bytes from `keep` on read as zeros; null: none, docs/protocol.md §13).
 */
export type PageLocation = { page: number; segment: string; slot: number; keep: number | null };

/** A page in R2 as the index has it: which segment (its id), which slot. */
export type LivePage = { page: number; segment: number; slot: number };

/** A segment's row: id, R2 key, pages it holds, pages the index still points at. */
export type SegmentRow = { id: number; key: string; pages: number; live: number };

export class SegmentIndex {
  /** Segments that unfinished reads (or a compaction) may still fetch, with how many hold each. */
  private readonly holds = new Map<string, number>();

  constructor(private readonly sql: SqlStorage) {}

  /** Where each page of the span that is in R2 lives. */
  locate(span: PageSpan): PageLocation[] {
    return this.sql
      .exec<PageLocation>(
        `SELECT pages.page, segments.key AS segment, pages.slot, pages.keep
         FROM pages JOIN segments ON segments.id = pages.segment
         WHERE pages.page >= ? AND pages.page < ?`,
        span.first,
        span.end,
      )
      .toArray();
  }

  /**
   * A flushed segment is in R2 under `key`: page `batch[i]` now lives at slot i, whatever held it
   * before, unless it left the journal while the put ran (a shrink dropped it, see
   * docs/protocol.md §13): that slot is garbage from the start. Set-based, a chunk of
   * SQL_LIST_ITEMS pages per statement; call before the journal drops the flushed rows.
   */
  addFlushed(key: string, batch: SegmentPage[]): void {
    const id = this.addSegment(key, batch.length, batch.length);
    const stillJournaled = `EXISTS (SELECT 1 FROM journal WHERE journal.page = b.value ->> 0)`;
    let live = 0;
    let slot = 0;
    for (const chunk of inChunks(batch)) {
      const pages = JSON.stringify(chunk.map(({ page, seqno }) => [page, seqno]));
      this.unlink(pages, `pages.page = b.value ->> 0 AND ${stillJournaled}`);
      live += this.sql
        .exec(
          `INSERT INTO pages (page, segment, slot, seqno)
           SELECT b.value ->> 0, ?2, ?3 + b.key, b.value ->> 1 FROM json_each(?1) AS b
           WHERE ${stillJournaled}
           ON CONFLICT (page) DO UPDATE SET segment = excluded.segment, slot = excluded.slot,
             seqno = excluded.seqno, keep = NULL
           RETURNING page`,
          pages,
          id,
          slot,
        )
        .toArray().length;
      slot += chunk.length;
    }
    if (live !== batch.length) {
      this.sql.exec(`UPDATE segments SET live = ? WHERE id = ?`, live, id);
    }
  }

  /**
   * A compaction's segment is in R2 under `key`: page `moved[i]` now lives at slot i, if it is
   * still where the compaction read it (a page superseded meanwhile stays where the newer flush
   * put it, and that slot of the new segment is garbage from the start).
   */
  addCompacted(key: string, moved: LivePage[]): void {
    const id = this.addSegment(key, moved.length, 0);
    const stillThere = `pages.page = b.value ->> 0 AND pages.segment = b.value ->> 1
      AND pages.slot = b.value ->> 2`;
    let live = 0;
    let slot = 0;
    for (const chunk of inChunks(moved)) {
      const pages = JSON.stringify(chunk.map(({ page, segment, slot }) => [page, segment, slot]));
      this.unlink(pages, stillThere);
      live += this.sql
        .exec(
          `UPDATE pages SET segment = ?2, slot = ?3 + b.key FROM json_each(?1) AS b
           WHERE ${stillThere} RETURNING pages.page`,
          pages,
          id,
          slot,
        )
        .toArray().length;
      slot += chunk.length;
    }
    this.sql.exec(`UPDATE segments SET live = ? WHERE id = ?`, live, id);
  }

  /**
   * A shrink (docs/protocol.md §13): pages from `firstPage` on leave the index; their segments
   * lose them (a segment left with none is dead, for the sweeper).
   */
  dropFrom(firstPage: number): void {
    this.sql.exec(
      `UPDATE segments SET live = live - gone.n
       FROM (SELECT segment, count(*) AS n FROM pages WHERE page >= ? GROUP BY segment) AS gone
       WHERE segments.id = gone.segment`,
      firstPage,
    );
    this.sql.exec(`DELETE FROM pages WHERE page >= ?`, firstPage);
  }

  /** A shrink cut page `page`, held only in R2, at byte `keep`: the rest reads as zeros. */
  cutTail(page: number, keep: number): void {
    this.sql.exec(
      `UPDATE pages SET keep = min(coalesce(keep, ?2), ?2) WHERE page = ?1`,
      page,
      keep,
    );
  }

  private addSegment(key: string, pages: number, live: number): number {
    return this.sql
      .exec<{ id: number }>(
        `INSERT INTO segments (key, pages, live) VALUES (?, ?, ?) RETURNING id`,
        key,
        pages,
        live,
      )
      .one().id;
  }

  /**
   * Before the index moves the pages of a JSON list `b` (entries `[page, …]`): the segments that
   * hold them now, matched by `match`, lose them.
   */
  private unlink(pages: string, match: string): void {
    this.sql.exec(
      `UPDATE segments SET live = live - gone.n
       FROM (SELECT pages.segment, count(*) AS n FROM json_each(?1) AS b
             JOIN pages ON ${match} GROUP BY pages.segment) AS gone
       WHERE segments.id = gone.segment`,
      pages,
    );
  }

  /** Segments under half live with some live page, emptiest first (compaction's candidates). */
  mostlyGarbage(): Iterable<SegmentRow> {
    return this.sql.exec<SegmentRow>(
      `SELECT id, key, pages, live FROM segments WHERE live > 0 AND live * 2 < pages
       ORDER BY CAST(live AS REAL) / pages, id`,
    );
  }

  /**
   * Up to `limit` segments of fewer than `maxPages` pages (not necessarily a whole number) with
   * some live page, oldest first.
   */
  smallSegments(maxPages: number, limit: number): SegmentRow[] {
    return this.sql
      .exec<SegmentRow>(
        `SELECT id, key, pages, live FROM segments WHERE live > 0 AND pages < ? ORDER BY id LIMIT ?`,
        maxPages,
        limit,
      )
      .toArray();
  }

  /** The live pages of these segments (by id), by segment and slot. */
  livePagesOf(segments: number[]): LivePage[] {
    return this.sql
      .exec<LivePage>(
        `SELECT page, segment, slot FROM pages WHERE segment IN (SELECT value FROM json_each(?))
         ORDER BY segment, slot`,
        JSON.stringify(segments),
      )
      .toArray();
  }

  /** Keeps these segments in R2 while something reads them (a read plan, a compaction). */
  hold(keys: string[]): void {
    for (const key of keys) this.holds.set(key, (this.holds.get(key) ?? 0) + 1);
  }

  release(keys: string[]): void {
    for (const key of keys) {
      const readers = (this.holds.get(key) ?? 1) - 1;
      if (readers > 0) this.holds.set(key, readers);
      else this.holds.delete(key);
    }
  }

  /**
   * Up to `limit` segments no page points at any more (every page has a newer copy elsewhere)
   * and nothing holds. A dead segment never comes back: segments are immutable and pages only
   * ever move to newer ones.
   */
  deadSegments(limit: number): string[] {
    return this.sql
      .exec<{ key: string }>(
        `SELECT key FROM segments WHERE live <= 0 LIMIT ?`,
        limit + this.holds.size,
      )
      .toArray()
      .map((row) => row.key)
      .filter((key) => !this.holds.has(key))
      .slice(0, limit);
  }

  /** The R2 objects of these dead segments are deleted: forget them. */
  forgetDead(keys: string[]): void {
    for (const chunk of inChunks(keys)) {
      this.sql.exec(
        `DELETE FROM segments WHERE live <= 0 AND key IN (SELECT value FROM json_each(?))`,
        JSON.stringify(chunk),
      );
    }
  }

  /** Every segment's key (for deleting them all when the object is destroyed). */
  allKeys(): string[] {
    return this.sql
      .exec<{ key: string }>(`SELECT key FROM segments`)
      .toArray()
      .map((row) => row.key);
  }

  /** Which of these keys name a segment row (the orphan scan asks a listed page at a time). */
  named(keys: string[]): Set<string> {
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
