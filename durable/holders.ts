/**
 * Who holds which pages of a coherent object (docs/protocol.md §10.2): per kernel, runs of pages
 * it holds as a reader or as the one writer. Kept as runs, split and rejoined as holds change,
 * so a kernel that holds a large range costs a row, not a row per page. A kernel's runs never
 * overlap; the single-writer rule across kernels is the grants' to keep (durable/coherence.ts).
 */
import type { PageSpan } from "../schema";

/** A run of pages one kernel holds. */
export type HeldRun = {
  kernel: string;
  first_page: number;
  end_page: number;
  /** 1: the writer; 0: a reader. */
  writer: number;
};

export class Holders {
  constructor(private readonly sql: SqlStorage) {}

  /** The kernel now holds `span` as `writer` or reader, whatever it held of it before. */
  hold(kernel: string, span: PageSpan, writer: boolean): void {
    if (span.end <= span.first) return;
    this.drop(kernel, span);
    const flag = writer ? 1 : 0;
    // Rejoined with the runs it touches that hold the same way: page-at-a-time faults of a long
    // range stay one row.
    const joined = this.sql
      .exec<{ first_page: number; end_page: number }>(
        `DELETE FROM holders WHERE kernel = ?1 AND writer = ?4 AND (end_page = ?2 OR first_page = ?3)
         RETURNING first_page, end_page`,
        kernel,
        span.first,
        span.end,
        flag,
      )
      .toArray();
    const first = Math.min(span.first, ...joined.map((run) => run.first_page));
    const end = Math.max(span.end, ...joined.map((run) => run.end_page));
    this.insert(kernel, first, end, flag);
  }

  /**
   * The kernel now reads `span`: a reader of its pages, but still the writer of those it wrote
   * (docs/protocol.md §10.3: a read request from the page's own writer leaves it the writer).
   */
  holdReading(kernel: string, span: PageSpan): void {
    const writing = this.sql
      .exec<{ first_page: number; end_page: number }>(
        `SELECT max(first_page, ?2) AS first_page, min(end_page, ?3) AS end_page FROM holders
         WHERE kernel = ?1 AND writer = 1 AND first_page < ?3 AND end_page > ?2`,
        kernel,
        span.first,
        span.end,
      )
      .toArray();
    this.hold(kernel, span, false);
    for (const run of writing) {
      this.hold(kernel, { first: run.first_page, end: run.end_page }, true);
    }
  }

  /** The kernel no longer holds any page of `span`; it keeps what lies outside. */
  drop(kernel: string, span: PageSpan): void {
    this.cut(kernel, span, null);
  }

  /** The kernel's writer pages in `span` become reader pages. */
  demote(kernel: string, span: PageSpan): void {
    this.cut(kernel, span, 0, 1);
  }

  /** Every page goes: the kernel holds nothing now. */
  dropAll(kernel: string): void {
    this.sql.exec(`DELETE FROM holders WHERE kernel = ?`, kernel);
  }

  /** Runs of kernels other than `except` that hold a page of `span`, clipped to it. */
  othersIn(span: PageSpan, except: string): HeldRun[] {
    return this.sql
      .exec<HeldRun>(
        `SELECT kernel, max(first_page, ?1) AS first_page, min(end_page, ?2) AS end_page, writer
         FROM holders WHERE first_page < ?2 AND end_page > ?1 AND kernel != ?3
         ORDER BY kernel, first_page`,
        span.first,
        span.end,
        except,
      )
      .toArray();
  }

  /** The kernel is the writer of every page of `span` (an empty span: trivially). */
  writesAll(kernel: string, span: PageSpan): boolean {
    if (span.end <= span.first) return true;
    const { pages } = this.sql
      .exec<{ pages: number }>(
        `SELECT coalesce(sum(min(end_page, ?2) - max(first_page, ?1)), 0) AS pages
         FROM holders WHERE kernel = ?3 AND writer = 1 AND first_page < ?2 AND end_page > ?1`,
        span.first,
        span.end,
        kernel,
      )
      .one();
    return pages === span.end - span.first;
  }

  /** Whether the kernel holds any page at all. */
  holdsAny(kernel: string): boolean {
    return (
      this.sql.exec(`SELECT 1 FROM holders WHERE kernel = ? LIMIT 1`, kernel).toArray().length > 0
    );
  }

  /** Every run, by kernel and page (for status and tests). */
  list(): HeldRun[] {
    return this.sql.exec<HeldRun>(`SELECT * FROM holders ORDER BY kernel, first_page`).toArray();
  }

  /**
   * Takes the kernel's runs overlapping `span` (those of writer `only`, when given) and puts back
   * what lies outside the span as it was, and what lies inside as `inside` (null: nothing).
   */
  private cut(kernel: string, span: PageSpan, inside: number | null, only?: number): void {
    if (span.end <= span.first) return;
    const runs = this.sql
      .exec<HeldRun>(
        `DELETE FROM holders WHERE kernel = ?1 AND first_page < ?3 AND end_page > ?2
           AND (?4 IS NULL OR writer = ?4)
         RETURNING kernel, first_page, end_page, writer`,
        kernel,
        span.first,
        span.end,
        only ?? null,
      )
      .toArray();
    for (const run of runs) {
      if (run.first_page < span.first) {
        this.insert(kernel, run.first_page, span.first, run.writer);
      }
      if (run.end_page > span.end) this.insert(kernel, span.end, run.end_page, run.writer);
      if (inside !== null) {
        const first = Math.max(run.first_page, span.first);
        const end = Math.min(run.end_page, span.end);
        this.insert(kernel, first, end, inside);
      }
    }
  }

  private insert(kernel: string, first: number, end: number, writer: number): void {
    this.sql.exec(
      `INSERT INTO holders (kernel, first_page, end_page, writer) VALUES (?, ?, ?, ?)`,
      kernel,
      first,
      end,
      writer,
    );
  }
}
