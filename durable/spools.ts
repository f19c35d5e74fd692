/**
 * Spools: the bytes of one HTTP request kept in SQLite, a page a row, instead of in memory. A
 * `PUT` body is spooled as it arrives (then journaled in one ordered step); a large `GET` spools
 * the journal pages it must return as of its seqno (then streams them a piece at a time). So a
 * 64 MiB request holds about one slice in memory, and no SQL value passes the platform's 2 MB
 * (docs/limits.md). A spool belongs to one request of one instance: the rows of requests that
 * died with an earlier instance are dropped at start-up. This module alone writes the `spools`
 * table.
 */
import type { PageSpan } from "../schema";

/** Bytes of a body bound to one SQL statement while spooling: well under the 2 MB per value. */
export const SPOOL_SLICE_BYTES = 1024 * 1024;

export class Spools {
  private nextSpool = 1;

  constructor(private readonly sql: SqlStorage) {}

  /** Drops every spool: at start-up, none belongs to a live request. */
  clear(): void {
    this.sql.exec(`DELETE FROM spools`);
  }

  open(): number {
    return this.nextSpool++;
  }

  /**
   * Adds `bytes` (whole pages, at most SPOOL_SLICE_BYTES) as pages `firstPart`, `firstPart + 1`, …
   * of the spool, in one statement: SQLite cuts the pages out of the slice itself.
   */
  appendSlice(spool: number, firstPart: number, bytes: Uint8Array, pageSize: number): void {
    this.sql.exec(
      `WITH RECURSIVE slot (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slot WHERE i + 1 < ?1)
       INSERT INTO spools (spool, part, data)
       SELECT ?2, ?3 + i, substr(?4, i * ?5 + 1, ?5) FROM slot`,
      bytes.byteLength / pageSize,
      spool,
      firstPart,
      bytes,
      pageSize,
    );
  }

  /**
   * Copies the journaled pages of the span into the spool, part = page, inside SQLite (a large
   * read fixes its journal pages as of its seqno without holding them in memory). Returns the
   * pages copied.
   */
  copyJournal(spool: number, span: PageSpan): number[] {
    return this.sql
      .exec<{ page: number }>(
        `INSERT INTO spools (spool, part, data)
         SELECT ?1, page, data FROM journal WHERE page >= ?2 AND page < ?3 RETURNING part AS page`,
        spool,
        span.first,
        span.end,
      )
      .toArray()
      .map((row) => row.page);
  }

  /** Parts [first, end) of the spool that exist, in order. */
  read(spool: number, first: number, end: number): { part: number; data: ArrayBuffer }[] {
    return this.sql
      .exec<{ part: number; data: ArrayBuffer }>(
        `SELECT part, data FROM spools WHERE spool = ? AND part >= ? AND part < ? ORDER BY part`,
        spool,
        first,
        end,
      )
      .toArray();
  }

  drop(spool: number): void {
    this.sql.exec(`DELETE FROM spools WHERE spool = ?`, spool);
  }
}
