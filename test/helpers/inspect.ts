/**
 * The one way tests read an object's stored state: named reads of its tables, run inside the
 * Durable Object (`runInDurableObject`), so no test file spells SQL against the schema and a
 * change of the schema (durable/migrations.ts) is followed here once. Tests that take several
 * reads at one moment (with the instance itself) take them in one `inspect` call; the shortcuts
 * below take one read each.
 *
 * It also dumps whole tables, whatever tables a later migration adds (through `PRAGMA
 * table_list`, which the platform allows): their rows and their shape (columns and indexes), for
 * tests that compare two objects or an object before and after.
 */
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import type { PageSpan } from "../../schema";
import { objectStub } from "./buckets";

type Row = Record<string, SqlStorageValue>;

/** A page in R2 as the index has it, with its segment's R2 key (the table names it by id). */
export type IndexedPage = { page: number; segment: string; slot: number; seqno: number };

/** Named reads of one object's tables, on its `ctx.storage.sql`. */
export class StateView {
  constructor(readonly sql: SqlStorage) {}

  private rows<T extends Row>(query: string, ...bindings: unknown[]): T[] {
    return this.sql.exec<T>(query, ...bindings).toArray();
  }

  /** Journaled pages by page, their bytes as hex. */
  journalRows(): { page: number; seqno: number; first_seqno: number; data: string }[] {
    return this.rows(
      `SELECT page, seqno, first_seqno, hex(data) AS data FROM journal ORDER BY page`,
    );
  }

  /** The page index by page, each with its segment's key; only pages of `span` if given. */
  pageIndex(span?: PageSpan): IndexedPage[] {
    const [first, end] = span ? [span.first, span.end] : [0, Number.MAX_SAFE_INTEGER];
    return this.rows(
      `SELECT pages.page, segments.key AS segment, pages.slot, pages.seqno
       FROM pages JOIN segments ON segments.id = pages.segment
       WHERE pages.page >= ? AND pages.page < ? ORDER BY pages.page`,
      first,
      end,
    );
  }

  /** Where the R2 copy of a page is, or null if it has none. */
  pageLocation(page: number): { segment: string; slot: number } | null {
    const [row] = this.pageIndex({ first: page, end: page + 1 });
    return row ? { segment: row.segment, slot: row.slot } : null;
  }

  /** Segment rows by key: R2 key, pages held, pages the index still points at. */
  segments(): { key: string; pages: number; live: number }[] {
    return this.rows(`SELECT key, pages, live FROM segments ORDER BY key`);
  }

  /** Synchronize requests by seqno, every column. */
  syncs(): Row[] {
    return this.rows(`SELECT * FROM syncs ORDER BY seqno`);
  }

  /** Lock requests by lock id, every column. */
  locks(): Row[] {
    return this.rows(`SELECT * FROM locks ORDER BY lock_id`);
  }

  /** Kernels by name, every column. */
  kernels(): Row[] {
    return this.rows(`SELECT * FROM kernels ORDER BY kernel`);
  }

  /** Outbox messages by kernel and mid, the message parsed. */
  outbox(): { kernel: string; mid: number; message: Record<string, unknown> }[] {
    return this.rows<{ kernel: string; mid: number; message: string }>(
      `SELECT kernel, mid, message FROM outbox ORDER BY kernel, mid`,
    ).map((row) => ({ ...row, message: JSON.parse(row.message) }));
  }

  /** Residency runs by kernel and page. */
  residency(): { kernel: string; first_page: number; end_page: number }[] {
    return this.rows(
      `SELECT kernel, first_page, end_page FROM residency ORDER BY kernel, first_page, end_page`,
    );
  }

  /** The `meta` table as an object. */
  meta(): Record<string, string | number> {
    return Object.fromEntries(
      this.rows<{ key: string; value: string | number }>(`SELECT key, value FROM meta`).map(
        (row) => [row.key, row.value],
      ),
    );
  }

  /** Rows of one table. */
  count(table: string): number {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${table}"`).one().n;
  }

  /** Pages in the journal or in R2, counted the slow way: what `stored_pages` must equal. */
  storedPagesByBruteForce(): number {
    return this.sql
      .exec<{ n: number }>(
        `SELECT count(*) AS n FROM (SELECT page FROM journal UNION SELECT page FROM pages)`,
      )
      .one().n;
  }

  /** The object's own tables, sorted (SQLite's and the platform's internal ones left out). */
  userTables(): string[] {
    return this.rows<{ schema: string; name: string; type: string }>(`PRAGMA table_list`)
      .filter(
        (t) =>
          t.schema === "main" &&
          t.type === "table" &&
          !t.name.startsWith("sqlite_") &&
          !t.name.startsWith("_cf_"),
      )
      .map((t) => t.name)
      .sort();
  }

  /** Rows per table. */
  rowCounts(): Record<string, number> {
    return Object.fromEntries(this.userTables().map((table) => [table, this.count(table)]));
  }

  /**
   * Every row of every table, in rowid order (primary-key order for a WITHOUT ROWID table),
   * BLOBs as hex, so rows compare by value.
   */
  dumpTables(): Record<string, Record<string, unknown>[]> {
    const withoutRowid = new Set(
      this.rows<{ name: string; wr: number }>(`PRAGMA table_list`)
        .filter((t) => t.wr === 1)
        .map((t) => t.name),
    );
    const dump: Record<string, Record<string, unknown>[]> = {};
    for (const table of this.userTables()) {
      const order = withoutRowid.has(table) ? "" : " ORDER BY rowid";
      dump[table] = this.rows(`SELECT * FROM "${table}"${order}`).map(comparable);
    }
    return dump;
  }

  /**
   * Each table's columns (name, declared type, not null, default, primary key position) and
   * indexes (name, unique, columns), so two objects' schemas can be compared.
   */
  tableShapes(): Record<string, unknown> {
    const shapes: Record<string, unknown> = {};
    for (const table of this.userTables()) {
      const columns = this.rows(`PRAGMA table_info("${table}")`).map(
        ({ name, type, notnull, dflt_value, pk }) => ({ name, type, notnull, dflt_value, pk }),
      );
      const indexes = this.rows<{ name: string; unique: number }>(`PRAGMA index_list("${table}")`)
        .map(({ name, unique }) => ({
          // Automatic indexes (primary keys, UNIQUE) are named by position: compare by columns.
          name: name.startsWith("sqlite_autoindex_") ? "(auto)" : name,
          unique,
          columns: this.rows<{ name: string }>(`PRAGMA index_info("${name}")`).map((c) => c.name),
        }))
        .sort((a, b) => `${a.name} ${a.columns}`.localeCompare(`${b.name} ${b.columns}`));
      shapes[table] = { columns, indexes };
    }
    return shapes;
  }
}

/** BLOBs as hex, so rows compare by value. */
function comparable(row: Row): Record<string, string | number | null> {
  const out: Record<string, string | number | null> = {};
  for (const [column, value] of Object.entries(row)) {
    out[column] =
      value instanceof ArrayBuffer
        ? `blob:${Buffer.from(value).toString("hex")}`
        : (value as string | number | null);
  }
  return out;
}

/**
 * Runs `read` inside the object's running instance with a view of its tables.
 *
 * @example const { segments, index } = await inspect(name, (s) => ({ segments: s.segments(), index: s.pageIndex() }));
 */
export function inspect<T>(
  name: string,
  read: (view: StateView, instance: MemoryObject, state: DurableObjectState) => T | Promise<T>,
): Promise<T> {
  return runInDurableObject(objectStub(name), (instance: MemoryObject, state) =>
    read(new StateView(state.storage.sql), instance, state),
  );
}

/** Rows of one of the object's tables. */
export function countRows(name: string, table: string): Promise<number> {
  return inspect(name, (view) => view.count(table));
}

/** The object's segment rows, by key. */
export function segments(name: string): Promise<{ key: string; pages: number; live: number }[]> {
  return inspect(name, (view) => view.segments());
}

/** The object's page index, with segment keys; only pages of `span` if given. */
export function pageIndex(name: string, span?: PageSpan): Promise<IndexedPage[]> {
  return inspect(name, (view) => view.pageIndex(span));
}

/** Where the R2 copy of a page is, or null. */
export function pageLocation(
  name: string,
  page: number,
): Promise<{ segment: string; slot: number } | null> {
  return inspect(name, (view) => view.pageLocation(page));
}

/** The object's stored pages and journal rows, counted by brute force. */
export function countPagesByBruteForce(name: string): Promise<{ stored: number; journal: number }> {
  return inspect(name, (view) => ({
    stored: view.storedPagesByBruteForce(),
    journal: view.count("journal"),
  }));
}

/** The rows with only these columns, in this order (for comparing part of a table). */
export function pick<K extends string>(
  rows: Record<string, unknown>[],
  columns: readonly K[],
): Record<K, unknown>[] {
  return rows.map((row) => {
    const out = {} as Record<K, unknown>;
    for (const column of columns) out[column] = row[column];
    return out;
  });
}
