/**
 * Counts the SQLite rows an object writes and reads: wraps `exec` of the object's running
 * instance's `ctx.storage.sql` and sums each statement's `rowsWritten` and `rowsRead` (what
 * Durable Object SQLite bills); also counts the statements themselves (each one a call from
 * JavaScript into SQLite). A cursor's `rowsRead` grows as it is iterated: read the figures once
 * the operation measured has answered.
 * Also counts commits: top-level `transactionSync` calls. Every change the object makes goes
 * through one (`Pager.transact`: the ordered step of a message or a batch, a flush's index
 * update), and a nested call is a savepoint inside its parent, not a commit of its own.
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
  /** Top-level `transactionSync` calls: the object's commits. */
  commits(): number;
  /** Nested `transactionSync` calls: savepoints inside a commit. */
  savepoints(): number;
  /** Statements run per statement text (whitespace collapsed). */
  countsByStatement(): Record<string, number>;
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
  let commits = 0;
  let savepoints = 0;
  await runInDurableObject(objectStub(name), (_instance: MemoryObject, state) => {
    const storage = state.storage;
    const transactionSync = storage.transactionSync;
    let depth = 0;
    storage.transactionSync = function <T>(this: DurableObjectStorage, closure: () => T): T {
      if (depth === 0) commits++;
      else savepoints++;
      depth++;
      try {
        return transactionSync.call(this, closure) as T;
      } finally {
        depth--;
      }
    };
    const sql = state.storage.sql;
    const original = sql.exec;
    sql.exec = function (this: SqlStorage, query: string, ...bindings: any[]) {
      const cursor = original.call(this, query, ...bindings);
      cursors.push({ query: query.replace(/\s+/g, " ").trim(), cursor });
      return cursor;
    } as typeof sql.exec;
    restore = () => {
      sql.exec = original;
      storage.transactionSync = transactionSync;
    };
  });
  return {
    rowsWritten: () => cursors.reduce((sum, { cursor }) => sum + cursor.rowsWritten, 0),
    statements: () => cursors.length,
    commits: () => commits,
    savepoints: () => savepoints,
    countsByStatement: () => {
      const counts: Record<string, number> = {};
      for (const { query } of cursors) counts[query] = (counts[query] ?? 0) + 1;
      return counts;
    },
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
      commits = 0;
      savepoints = 0;
    },
    stop: () =>
      runInDurableObject(objectStub(name), () => {
        restore();
      }),
  };
}
