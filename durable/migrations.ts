/**
 * The object's SQLite schema, as ordered migrations. Everything the object knows lives in these
 * tables, so an eviction, a deploy or hibernation loses nothing but in-memory waiters.
 *
 * A deployed object keeps its tables across deploys, so the schema can only change by a migration:
 * each object records the version it is at (`schema_version` in `meta`), and at start-up the
 * migrations above it run in order, in one transaction, so an object is never half upgraded. A
 * migration, once released, is never edited: objects in the field were built by it. The platform
 * does not allow `PRAGMA user_version`, hence the `meta` row.
 */

type Migration = { version: number; why: string; statements: string[] };

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    why: "the tables of the first release",
    statements: [
      // seqno (the next one to give), page_size, object name, next lock id.
      `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)`,
      // Kernels that sent an init and were not forgotten (docs/protocol.md §3).
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
      // Outstanding synchronize requests; queued ones wait behind an overlapping one.
      `CREATE TABLE IF NOT EXISTS syncs (
         seqno INTEGER PRIMARY KEY, kernel TEXT NOT NULL, id INTEGER NOT NULL,
         offset INTEGER NOT NULL, length INTEGER NOT NULL,
         first_page INTEGER NOT NULL, end_page INTEGER NOT NULL,
         sync_flags INTEGER NOT NULL, since TEXT NOT NULL, active INTEGER NOT NULL)`,
      // Lock requests an INVALIDATE waits for, with the time after which the kernel is stale.
      `CREATE TABLE IF NOT EXISTS locks (
         lock_id INTEGER PRIMARY KEY, sync_seqno INTEGER NOT NULL, kernel TEXT NOT NULL,
         first_page INTEGER NOT NULL, end_page INTEGER NOT NULL, deadline INTEGER NOT NULL)`,
      // Page runs each kernel was supplied and has not flushed since.
      `CREATE TABLE IF NOT EXISTS residency (
         kernel TEXT NOT NULL, first_page INTEGER NOT NULL, end_page INTEGER NOT NULL)`,
      `CREATE INDEX IF NOT EXISTS residency_by_kernel ON residency (kernel, first_page)`,
    ],
  },
  {
    version: 2,
    why: "integer segment ids, a page index by segment, a kept count of stored pages, request spools",
    statements: [
      // A page row named its segment by its R2 key (84-216 bytes of text a row), which capped an
      // object far below 10 GB of SQLite; an integer id costs a few bytes (docs/limits.md).
      `CREATE TABLE segments_v2 (
         id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,
         pages INTEGER NOT NULL, live INTEGER NOT NULL)`,
      `INSERT INTO segments_v2 (key, pages, live) SELECT key, pages, live FROM segments ORDER BY key`,
      // Never true of a sound object (a segment row goes only once no page names it), but a page
      // must not be lost to the join below: a key with no row gets one, its pages all live.
      `INSERT INTO segments_v2 (key, pages, live)
       SELECT pages.segment, count(*), count(*) FROM pages
       WHERE pages.segment NOT IN (SELECT key FROM segments_v2) GROUP BY pages.segment`,
      `CREATE TABLE pages_v2 (
         page INTEGER PRIMARY KEY, segment INTEGER NOT NULL, slot INTEGER NOT NULL,
         seqno INTEGER NOT NULL)`,
      `INSERT INTO pages_v2 (page, segment, slot, seqno)
       SELECT pages.page, segments_v2.id, pages.slot, pages.seqno
       FROM pages JOIN segments_v2 ON segments_v2.key = pages.segment`,
      `DROP TABLE pages`,
      `DROP TABLE segments`,
      `ALTER TABLE segments_v2 RENAME TO segments`,
      `ALTER TABLE pages_v2 RENAME TO pages`,
      // Compaction finds a segment's live pages without scanning the whole index.
      `CREATE INDEX pages_by_segment ON pages (segment, slot)`,
      // The sweeper finds dead segments without scanning every segment.
      `CREATE INDEX segments_by_live ON segments (live)`,
      // Pages ever written and kept (journal or R2): status reports it without counting rows.
      `INSERT INTO meta (key, value)
       SELECT 'stored_pages', count(*) FROM (SELECT page FROM journal UNION SELECT page FROM pages)`,
      // Pages of one HTTP request kept in SQLite instead of memory (durable/spools.ts).
      `CREATE TABLE spools (
         spool INTEGER NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL,
         PRIMARY KEY (spool, part))`,
    ],
  },
  {
    version: 3,
    why: "kernels remember whether their token could write: readers have a budget of their own",
    statements: [
      // Kernels known before this version are counted as writers (they may have been).
      `ALTER TABLE kernels ADD COLUMN writer INTEGER NOT NULL DEFAULT 1`,
    ],
  },
  {
    version: 4,
    why: "synchronize requests per HTTP caller, found by range, counted in rows: their cost does not grow with how many are outstanding",
    statements: [
      // Who within kernel `http` asked ('' for a socket kernel): budgets and order are per caller.
      `ALTER TABLE syncs ADD COLUMN caller TEXT NOT NULL DEFAULT ''`,
      // The span's length class: end_page - first_page <= 2^level (durable/sync-tracker.ts), so a
      // request overlapping pages [a, b) at that level starts in (a - 2^level, b): an index
      // range. Requests older than this version take 62, where every span fits.
      `ALTER TABLE syncs ADD COLUMN level INTEGER NOT NULL DEFAULT 62`,
      // Started SYNCHRONOUS requests whose pages are not all in R2 yet: what a flush can complete.
      `ALTER TABLE syncs ADD COLUMN waiting_r2 INTEGER NOT NULL DEFAULT 0`,
      `UPDATE syncs SET waiting_r2 = 1 WHERE active = 1 AND (sync_flags & 2) != 0
         AND EXISTS (SELECT 1 FROM journal WHERE journal.page >= syncs.first_page
           AND journal.page < syncs.end_page AND journal.first_seqno < syncs.seqno)`,
      `CREATE INDEX syncs_by_range ON syncs (kernel, caller, level, first_page)`,
      `CREATE INDEX syncs_queued ON syncs (kernel, caller, seqno) WHERE active = 0`,
      `CREATE INDEX syncs_waiting_r2 ON syncs (level, first_page) WHERE waiting_r2 = 1`,
      // Outstanding requests per kernel, caller and level, and per kernel: budgets and status
      // read a row or a few instead of counting requests, and a search by range visits only the
      // levels in use.
      `CREATE TABLE sync_levels (
         kernel TEXT NOT NULL, caller TEXT NOT NULL, level INTEGER NOT NULL, n INTEGER NOT NULL,
         PRIMARY KEY (kernel, caller, level)) WITHOUT ROWID`,
      `INSERT INTO sync_levels (kernel, caller, level, n)
       SELECT kernel, caller, level, count(*) FROM syncs GROUP BY kernel, caller, level`,
      `CREATE TABLE sync_totals (kernel TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID`,
      `INSERT INTO sync_totals (kernel, n) SELECT kernel, count(*) FROM syncs GROUP BY kernel`,
      // A lock request is found by its request, its kernel or its deadline without a scan.
      `CREATE INDEX locks_by_sync ON locks (sync_seqno)`,
      `CREATE INDEX locks_by_kernel ON locks (kernel)`,
      `CREATE INDEX locks_by_deadline ON locks (deadline)`,
    ],
  },
  {
    version: 5,
    why: "atomic groups and the object size (docs/protocol.md §12, docs/protocol.md §13)",
    statements: [
      // Staged messages of open atomic groups, in the order sent (rowid): a page of a return, or
      // a set_size (page and data NULL). Nobody's read or flush sees them until the commit.
      `CREATE TABLE staged (
         kernel TEXT NOT NULL, grp INTEGER NOT NULL, page INTEGER, data BLOB, size INTEGER)`,
      `CREATE INDEX staged_by_group ON staged (kernel, grp)`,
      // Groups with something staged (failed = 0), and groups discarded by a refusal whose later
      // messages and synchronize are refused too (failed = 1), with their staged pages.
      `CREATE TABLE groups (
         kernel TEXT NOT NULL, grp INTEGER NOT NULL, pages INTEGER NOT NULL,
         failed INTEGER NOT NULL, PRIMARY KEY (kernel, grp)) WITHOUT ROWID`,
      // A shrink that cut a page held only in R2: bytes from `keep` on read as zeros until a
      // newer version of the page replaces it.
      `ALTER TABLE pages ADD COLUMN keep INTEGER`,
      // The size of an object written before sizes: up to the end of its highest stored page.
      `INSERT INTO meta (key, value)
       SELECT 'size', (1 + max(page)) * (SELECT value FROM meta WHERE key = 'page_size')
       FROM (SELECT page FROM journal UNION ALL SELECT page FROM pages) HAVING count(*) > 0`,
    ],
  },
  {
    version: 6,
    why: "coherent objects (docs/protocol.md §10)",
    statements: [
      // Who holds which pages of a coherent object, as runs per kernel: readers (writer = 0) or
      // the one writer (writer = 1). Runs of one kernel never overlap.
      `CREATE TABLE holders (
         kernel TEXT NOT NULL, first_page INTEGER NOT NULL, end_page INTEGER NOT NULL,
         writer INTEGER NOT NULL)`,
      `CREATE INDEX holders_by_kernel ON holders (kernel, first_page)`,
      `CREATE INDEX holders_by_page ON holders (first_page)`,
      // Requests of a coherent object waiting for other holders' lock_completed, granted in
      // seqno order: a data_request or data_unlock of a kernel, or an HTTP read or write.
      `CREATE TABLE grants (
         seqno INTEGER PRIMARY KEY, kernel TEXT NOT NULL, kind TEXT NOT NULL, id INTEGER NOT NULL,
         offset INTEGER NOT NULL, length INTEGER NOT NULL,
         first_page INTEGER NOT NULL, end_page INTEGER NOT NULL, write INTEGER NOT NULL)`,
      `CREATE INDEX grants_by_kernel ON grants (kernel)`,
      // What a lock request asks: an INVALIDATE's flush ('invalidate', sync_seqno its
      // synchronize), or a coherent grant's flush or demotion ('flush', 'demote', sync_seqno the
      // grant's seqno).
      `ALTER TABLE locks ADD COLUMN purpose TEXT NOT NULL DEFAULT 'invalidate'`,
    ],
  },
];

/** The schema version this code runs: the last migration's. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Brings the object's tables to `SCHEMA_VERSION`, running the missing migrations in order inside
 * `transact` (one transaction). A fresh object runs them all.
 *
 * @example migrate(ctx.storage.sql, (step) => ctx.storage.transactionSync(step));
 */
export function migrate(sql: SqlStorage, transact: (step: () => void) => void): void {
  const current = schemaVersion(sql);
  if (current === SCHEMA_VERSION) return;
  if (current > SCHEMA_VERSION) {
    // Never run old code on newer tables: it would misread them.
    throw new Error(
      `the object's schema is version ${current}, newer than this code's ${SCHEMA_VERSION}`,
    );
  }
  transact(() => {
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      for (const statement of migration.statements) sql.exec(statement);
    }
    sql.exec(
      `INSERT INTO meta (key, value) VALUES ('schema_version', ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      SCHEMA_VERSION,
    );
  });
}

/**
 * The version the object's tables are at: 0 for a fresh object (no `meta` table), 1 for an object
 * made before versions were recorded (it has `meta`, without the row).
 */
export function schemaVersion(sql: SqlStorage): number {
  let rows: { value: number }[];
  try {
    rows = sql
      .exec<{ value: number }>(`SELECT value FROM meta WHERE key = 'schema_version'`)
      .toArray();
  } catch (error) {
    // The platform does not let an object read sqlite_schema; a missing table is the answer.
    if (/no such table/.test(String(error))) return 0;
    throw error;
  }
  return rows[0]?.value ?? 1;
}
