/**
 * The object's SQLite as tests see it, whatever tables a later migration adds: every table of
 * the object (through `PRAGMA table_list`, which the platform allows), their rows, and their
 * shape (columns and indexes). Run inside `runInDurableObject` on `state.storage.sql`.
 */
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import { objectStub } from "./buckets";

type Row = Record<string, SqlStorageValue>;

/** The object's own tables, sorted (SQLite's and the platform's internal ones left out). */
export function userTables(sql: SqlStorage): string[] {
  return sql
    .exec<{ schema: string; name: string; type: string }>(`PRAGMA table_list`)
    .toArray()
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
 * Every row of every table, in rowid order (primary-key order for a WITHOUT ROWID table), BLOBs
 * as hex.
 */
export function dumpTables(sql: SqlStorage): Record<string, Record<string, unknown>[]> {
  const dump: Record<string, Record<string, unknown>[]> = {};
  const withoutRowid = new Set(
    sql
      .exec<{ name: string; wr: number }>(`PRAGMA table_list`)
      .toArray()
      .filter((t) => t.wr === 1)
      .map((t) => t.name),
  );
  for (const table of userTables(sql)) {
    dump[table] = sql
      .exec<Row>(`SELECT * FROM "${table}"${withoutRowid.has(table) ? "" : " ORDER BY rowid"}`)
      .toArray()
      .map(comparable);
  }
  return dump;
}

/** Rows per table. */
export function rowCounts(sql: SqlStorage): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const table of userTables(sql)) {
    counts[table] = sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${table}"`).one().n;
  }
  return counts;
}

/**
 * Each table's columns (name, declared type, not null, default, primary key position) and
 * indexes (name, unique, columns), so two objects' schemas can be compared.
 */
export function tableShapes(sql: SqlStorage): Record<string, unknown> {
  const shapes: Record<string, unknown> = {};
  for (const table of userTables(sql)) {
    const columns = sql
      .exec<Row>(`PRAGMA table_info("${table}")`)
      .toArray()
      .map(({ name, type, notnull, dflt_value, pk }) => ({ name, type, notnull, dflt_value, pk }));
    const indexes = sql
      .exec<{ name: string; unique: number }>(`PRAGMA index_list("${table}")`)
      .toArray()
      .map(({ name, unique }) => ({
        // Automatic indexes (primary keys, UNIQUE) are named by position: compare by columns.
        name: name.startsWith("sqlite_autoindex_") ? "(auto)" : name,
        unique,
        columns: sql
          .exec<{ name: string }>(`PRAGMA index_info("${name}")`)
          .toArray()
          .map((c) => c.name),
      }))
      .sort((a, b) => `${a.name} ${a.columns}`.localeCompare(`${b.name} ${b.columns}`));
    shapes[table] = { columns, indexes };
  }
  return shapes;
}

/** Pages in the journal or in R2, counted the slow way: what `stored_pages` must equal. */
export const COUNT_STORED_PAGES = `SELECT count(*) AS n FROM
  (SELECT page FROM journal UNION SELECT page FROM pages)`;

/** Counts the object's stored pages and journal rows by brute force. */
export async function countPagesByBruteForce(
  name: string,
): Promise<{ stored: number; journal: number }> {
  return runInDurableObject(objectStub(name), (_instance: MemoryObject, state) => ({
    stored: state.storage.sql.exec<{ n: number }>(COUNT_STORED_PAGES).one().n,
    journal: state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM journal`).one().n,
  }));
}
