/**
 * Counts the SQLite rows an object writes and reads: wraps `exec` of the object's running
 * instance's `ctx.storage.sql` and sums each statement's `rowsWritten` and `rowsRead` (what
 * Durable Object SQLite bills); also counts the statements themselves (each one a call from
 * JavaScript into SQLite). A cursor's `rowsRead` grows as it is iterated: read the figures once
 * the operation measured has answered.
 * Like the bucket wrappers, an eviction drops it.
 */
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import { objectStub } from "./buckets";

export interface SqlMeter {
  /** Rows written by every statement run since the meter was installed or last reset. */
  rowsWritten(): number;
  /** Statements run (each `exec` call), reads included. */
  statements(): number;
  /** Rows written per statement text (whitespace collapsed), for explaining a figure. */
  byStatement(): Record<string, number>;
  /** Rows read by every statement run since the meter was installed or last reset. */
  rowsRead(): number;
  /** Rows read per statement text (whitespace collapsed), for explaining a figure. */
  readsByStatement(): Record<string, number>;
  reset(): void;
  /** Puts the original `exec` back. */
  stop(): Promise<void>;
}

export async function meterObjectSql(name: string): Promise<SqlMeter> {
  let cursors: { query: string; cursor: SqlStorageCursor<Record<string, SqlStorageValue>> }[] = [];
  let restore: () => void = () => {};
  await runInDurableObject(objectStub(name), (_instance: MemoryObject, state) => {
    const sql = state.storage.sql;
    const original = sql.exec;
    sql.exec = function (this: SqlStorage, query: string, ...bindings: any[]) {
      const cursor = original.call(this, query, ...bindings);
      cursors.push({ query: query.replace(/\s+/g, " ").trim(), cursor });
      return cursor;
    } as typeof sql.exec;
    restore = () => {
      sql.exec = original;
    };
  });
  return {
    rowsWritten: () => cursors.reduce((sum, { cursor }) => sum + cursor.rowsWritten, 0),
    statements: () => cursors.length,
    byStatement: () => {
      const totals: Record<string, number> = {};
      for (const { query, cursor } of cursors) {
        if (cursor.rowsWritten > 0) totals[query] = (totals[query] ?? 0) + cursor.rowsWritten;
      }
      return totals;
    },
    rowsRead: () => cursors.reduce((sum, { cursor }) => sum + cursor.rowsRead, 0),
    readsByStatement: () => {
      const totals: Record<string, number> = {};
      for (const { query, cursor } of cursors) {
        if (cursor.rowsRead > 0) totals[query] = (totals[query] ?? 0) + cursor.rowsRead;
      }
      return totals;
    },
    reset: () => {
      cursors = [];
    },
    stop: () =>
      runInDurableObject(objectStub(name), () => {
        restore();
      }),
  };
}
