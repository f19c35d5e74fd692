/**
 * The object's SQLite tables. Everything the object knows lives here, so an eviction, a deploy
 * or hibernation loses nothing but in-memory waiters; the constructor runs `createTables` again.
 */

const TABLES = [
  // seqno (the next one to give), page_size, object name, next lock id.
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)`,
  // Kernels that sent an init and were not forgotten (protocol.md §3).
  `CREATE TABLE IF NOT EXISTS kernels (
     kernel TEXT PRIMARY KEY,
     last_id INTEGER NOT NULL DEFAULT 0,
     last_seqno INTEGER,
     next_mid INTEGER NOT NULL DEFAULT 1,
     stale INTEGER NOT NULL DEFAULT 0)`,
  // Completions and lock requests not yet reported received, per kernel, by mid.
  `CREATE TABLE IF NOT EXISTS outbox (
     kernel TEXT NOT NULL, mid INTEGER NOT NULL, message TEXT NOT NULL,
     PRIMARY KEY (kernel, mid))`,
  // Returned pages not yet in R2: the newest version of each page. first_seqno is the lowest
  // seqno of a version not yet in R2, the one a synchronize barrier must wait for.
  `CREATE TABLE IF NOT EXISTS journal (
     page INTEGER PRIMARY KEY, seqno INTEGER NOT NULL, first_seqno INTEGER NOT NULL,
     data BLOB NOT NULL)`,
  // Where the R2 copy of each page lives: segment key and slot (page index inside the segment).
  `CREATE TABLE IF NOT EXISTS pages (
     page INTEGER PRIMARY KEY, segment TEXT NOT NULL, slot INTEGER NOT NULL,
     seqno INTEGER NOT NULL)`,
  // Immutable R2 segment objects and how many of their pages the index still points at.
  `CREATE TABLE IF NOT EXISTS segments (
     key TEXT PRIMARY KEY, pages INTEGER NOT NULL, live INTEGER NOT NULL)`,
  // Outstanding synchronize requests; queued ones wait behind an overlapping one (§6.8).
  `CREATE TABLE IF NOT EXISTS syncs (
     seqno INTEGER PRIMARY KEY, kernel TEXT NOT NULL, id INTEGER NOT NULL,
     offset INTEGER NOT NULL, length INTEGER NOT NULL,
     first_page INTEGER NOT NULL, end_page INTEGER NOT NULL,
     sync_flags INTEGER NOT NULL, since TEXT NOT NULL, active INTEGER NOT NULL)`,
  // Lock requests an INVALIDATE waits for (§6.6), with the time after which the kernel is stale.
  `CREATE TABLE IF NOT EXISTS locks (
     lock_id INTEGER PRIMARY KEY, sync_seqno INTEGER NOT NULL, kernel TEXT NOT NULL,
     first_page INTEGER NOT NULL, end_page INTEGER NOT NULL, deadline INTEGER NOT NULL)`,
  // Page runs each kernel was supplied and has not flushed since (§6.6).
  `CREATE TABLE IF NOT EXISTS residency (
     kernel TEXT NOT NULL, first_page INTEGER NOT NULL, end_page INTEGER NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS residency_by_kernel ON residency (kernel, first_page)`,
];

const TABLE_NAMES = [
  "meta",
  "kernels",
  "outbox",
  "journal",
  "pages",
  "segments",
  "syncs",
  "locks",
  "residency",
];

export function createTables(sql: SqlStorage): void {
  for (const statement of TABLES) sql.exec(statement);
}

/** Empties every table: the object starts afresh (protocol.md §9 DELETE). */
export function clearTables(sql: SqlStorage): void {
  for (const name of TABLE_NAMES) sql.exec(`DELETE FROM ${name}`);
}
