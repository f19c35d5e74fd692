/**
 * Which kernel may cache which pages (docs/protocol.md §6.6): page runs it was supplied (or told were
 * unavailable) and has not flushed since. INVALIDATE asks exactly these kernels to flush.
 */
import type { PageSpan } from "../schema";

export class Residency {
  constructor(private readonly sql: SqlStorage) {}

  /** The kernel was supplied the span; a run that already covers it is not recorded twice. */
  record(kernel: string, span: PageSpan): void {
    const covered = this.sql
      .exec(
        `SELECT 1 FROM residency WHERE kernel = ? AND first_page <= ? AND end_page >= ? LIMIT 1`,
        kernel,
        span.first,
        span.end,
      )
      .toArray();
    if (covered.length === 0) this.insert(kernel, span.first, span.end);
  }

  /** Kernels other than `except` that may cache a page of the span. */
  holdersOf(span: PageSpan, except: string): string[] {
    // An empty span (a zero-length synchronize) has no page: the run test below would otherwise
    // match every run strictly around its point.
    if (span.end <= span.first) return [];
    return this.sql
      .exec<{ kernel: string }>(
        `SELECT DISTINCT kernel FROM residency WHERE kernel != ? AND first_page < ? AND end_page > ?`,
        except,
        span.end,
        span.first,
      )
      .toArray()
      .map((row) => row.kernel);
  }

  /** The kernel flushed the span: keep only the parts of its runs outside it. */
  forgetSpan(kernel: string, span: PageSpan): void {
    const overlapping = this.sql
      .exec<{ first_page: number; end_page: number }>(
        `DELETE FROM residency WHERE kernel = ? AND first_page < ? AND end_page > ?
         RETURNING first_page, end_page`,
        kernel,
        span.end,
        span.first,
      )
      .toArray();
    for (const run of overlapping) {
      if (run.first_page < span.first)
        this.record(kernel, { first: run.first_page, end: span.first });
      if (run.end_page > span.end) this.record(kernel, { first: span.end, end: run.end_page });
    }
  }

  private insert(kernel: string, first: number, end: number): void {
    this.sql.exec(
      `INSERT INTO residency (kernel, first_page, end_page) VALUES (?, ?, ?)`,
      kernel,
      first,
      end,
    );
  }

  forgetAll(kernel: string): void {
    this.sql.exec(`DELETE FROM residency WHERE kernel = ?`, kernel);
  }
}
