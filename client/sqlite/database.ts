/**
 * `openDatabase`: a SQLite database whose file is a memory object (docs/sqlite.md). It loads
 * SQLite, registers a VFS over the database's objects and opens the database through it; its
 * methods run one at a time, since the SQLite build runs one call at a time.
 */
import * as SQLite from "@journeyapps/wa-sqlite";
import { VM_SYNC_ASYNCHRONOUS, VM_SYNC_SYNCHRONOUS } from "../../schema";
import { DatabaseFiles } from "./database-files";
import { loadSqlite, type LoadedSqlite } from "./load-sqlite";
import { EdgepagerVFS } from "./vfs";

export interface DatabaseOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:8787`. */
  url: string;
  /** The memory object that is the database file (its journal is `<object>-journal`). */
  object: string;
  token?: string;
  /** Open for reading only: any number of readers, each seeing whole commits only. */
  readonly?: boolean;
  /**
   * What a COMMIT waits for: `"journal"` (default), the commit durably in the object's journal
   * (Durable Object storage, docs/protocol.md §6.5), or `"r2"`, its pages in R2
   * (docs/protocol.md §6.4).
   */
  durability?: "journal" | "r2";
  /** The most bytes one commit sends as one atomic group (default 32 MiB); larger ones use a journal. */
  maxGroupBytes?: number;
  /**
   * Commit through atomic groups (default true). `false` makes SQLite keep a rollback journal
   * for every commit, as on a disk without atomic writes: slower, for comparison.
   */
  atomicCommits?: boolean;
  /** Bytes read past a page SQLite misses (default 1 MiB). */
  readAheadBytes?: number;
  /** Clean pages kept in memory (default 64 MiB). */
  maxCleanBytes?: number;
  /** The page size of a new object and database (default 4096). */
  pageSize?: number;
  /** A reader retries a read transaction that met a commit this many times (default 20). */
  retries?: number;
  WebSocket?: typeof WebSocket;
}

type Row = Record<string, SQLiteCompatibleType | null>;
type Params = SQLiteCompatibleType[] | Record<string, SQLiteCompatibleType>;

const MiB = 1024 * 1024;

let vfsCount = 0;

/**
 * @example
 * const db = await openDatabase({ url: "http://127.0.0.1:8787", object: "shop.db" });
 * await db.exec("CREATE TABLE IF NOT EXISTS items (name TEXT)");
 * await db.query("SELECT count(*) AS n FROM items");
 * await db.close();
 */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  const settings = checkOptions(options);
  const files = await DatabaseFiles.open(settings);
  try {
    const sqlite = await loadSqlite();
    const vfs = new EdgepagerVFS(`edgepager-${++vfsCount}`, sqlite.module, files);
    sqlite.sqlite3.vfs_register(vfs, false);
    const flags = options.readonly
      ? SQLite.SQLITE_OPEN_READONLY
      : SQLite.SQLITE_OPEN_READWRITE | SQLite.SQLITE_OPEN_CREATE;
    const handle = await sqlite.sqlite3.open_v2(options.object, flags, vfs.name);
    const db = new Database(sqlite, handle, vfs, files, settings.retries);
    if (!options.readonly) {
      // A commit that fits in SQLite's page cache is written in one atomic group; past the cache
      // it spills into the journal first. So the cache holds as much as one group may.
      const cacheKiB = Math.ceil(settings.maxGroupBytes / 1024);
      await db.exec(`PRAGMA page_size = ${settings.pageSize}; PRAGMA cache_size = -${cacheKiB}`);
    }
    return db;
  } catch (error) {
    files.close();
    throw error;
  }
}

export class Database {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  /** @internal Use `openDatabase`. */
  constructor(
    private readonly sqlite: LoadedSqlite,
    private readonly handle: number,
    private readonly vfs: EdgepagerVFS,
    private readonly files: DatabaseFiles,
    private readonly retries: number,
  ) {}

  /** Runs SQL statements (no parameters, no rows). */
  exec(sql: string): Promise<void> {
    return this.run(async () => {
      await this.sqlite.sqlite3.exec(this.handle, sql);
    });
  }

  /** Runs one or more statements with `params` bound to each; the rows of the last that has any. */
  query<T extends Row = Row>(sql: string, params?: Params): Promise<T[]> {
    return this.run(async () => {
      const { sqlite3 } = this.sqlite;
      let rows: T[] = [];
      for await (const stmt of sqlite3.statements(this.handle, sql)) {
        if (params !== undefined) sqlite3.bind_collection(stmt, params);
        const columns = sqlite3.column_names(stmt);
        const these: T[] = [];
        while ((await sqlite3.step(stmt)) === SQLite.SQLITE_ROW) {
          const row = sqlite3.row(stmt);
          these.push(Object.fromEntries(columns.map((name, i) => [name, row[i] ?? null])) as T);
        }
        if (columns.length > 0) rows = these;
      }
      return rows;
    });
  }

  /**
   * Runs every statement of `sql` and returns each one's columns and rows (as arrays), for
   * tools that print them all (`edgepager sql`).
   */
  results(sql: string): Promise<ResultSet[]> {
    return this.run(async () => {
      const { sqlite3 } = this.sqlite;
      const results: ResultSet[] = [];
      for await (const stmt of sqlite3.statements(this.handle, sql)) {
        const columns = sqlite3.column_names(stmt);
        const rows: (SQLiteCompatibleType | null)[][] = [];
        while ((await sqlite3.step(stmt)) === SQLite.SQLITE_ROW) rows.push(sqlite3.row(stmt));
        if (columns.length > 0) results.push({ columns, rows });
      }
      return results;
    });
  }

  /** A statement to run many times: `all(params)` for its rows, `run(params)` for none. */
  prepare<T extends Row = Row>(sql: string): PreparedStatement<T> {
    return {
      all: (params?: Params) => this.query<T>(sql, params),
      run: async (params?: Params) => {
        await this.query(sql, params);
      },
    };
  }

  /** Whether the database is inside a transaction (BEGIN without its COMMIT yet). */
  get inTransaction(): boolean {
    return this.sqlite.sqlite3.get_autocommit(this.handle) === 0;
  }

  /** Closes the database and its connections. */
  close(): Promise<void> {
    return this.run(async () => {
      this.closed = true;
      try {
        await this.sqlite.sqlite3.close(this.handle);
      } finally {
        this.files.close();
      }
    });
  }

  /**
   * Runs `step` after the calls before it. A reader's transaction that met a commit (SQLITE_BUSY
   * from its file, client/sqlite/snapshot-file.ts) runs again, outside an explicit transaction.
   */
  private run<T>(step: () => Promise<T>): Promise<T> {
    const result = this.queue.then(async () => {
      if (this.closed) throw new Error("the database is closed");
      for (let attempt = 0; ; attempt++) {
        try {
          return await step();
        } catch (error) {
          if (!this.retriable(error) || attempt >= this.retries) throw this.explained(error);
          // Short: the retry asks for what the failed run read in one step (snapshot-file.ts).
          await sleep(Math.min(10, 2 ** attempt) * Math.random());
        }
      }
    });
    this.queue = result.catch(() => {});
    return result;
  }

  private retriable(error: unknown): boolean {
    return (
      error instanceof SQLite.SQLiteError &&
      error.code === SQLite.SQLITE_BUSY &&
      !this.inTransaction
    );
  }

  /** SQLite's error, with the reason the VFS met, which SQLite passes on only as a code. */
  private explained(error: unknown): unknown {
    const cause = this.vfs.lastError;
    this.vfs.lastError = null;
    if (!(error instanceof Error) || cause === null) return error;
    const why = cause instanceof Error ? cause.message : String(cause);
    return Object.assign(error, { message: `${error.message} (${why})`, cause });
  }
}

/** What one statement returned: its column names and its rows. */
export interface ResultSet {
  columns: string[];
  rows: (SQLiteCompatibleType | null)[][];
}

export interface PreparedStatement<T extends Row> {
  all(params?: Params): Promise<T[]>;
  run(params?: Params): Promise<void>;
}

function checkOptions(options: DatabaseOptions) {
  const { object, durability = "journal" } = options;
  if (typeof object !== "string" || object.length === 0 || object.length > 120) {
    throw new TypeError(
      "openDatabase: object must be a name of 1 to 120 characters (its journal adds 8)",
    );
  }
  if (durability !== "journal" && durability !== "r2") {
    throw new TypeError('openDatabase: durability must be "journal" or "r2"');
  }
  const bytes = (name: keyof DatabaseOptions, fallback: number) => {
    const value = options[name] ?? fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new TypeError(`openDatabase: ${name} must be a positive integer`);
    }
    return value;
  };
  const count = (name: "retries", fallback: number) => {
    const value = options[name] ?? fallback;
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(`openDatabase: ${name} must be a non-negative integer`);
    }
    return value;
  };
  return {
    url: options.url,
    object,
    token: options.token,
    readonly: options.readonly === true,
    atomicCommits: options.atomicCommits !== false,
    syncFlags: durability === "r2" ? VM_SYNC_SYNCHRONOUS : VM_SYNC_ASYNCHRONOUS,
    maxGroupBytes: bytes("maxGroupBytes", 32 * MiB),
    readAheadBytes: bytes("readAheadBytes", MiB),
    maxCleanBytes: bytes("maxCleanBytes", 64 * MiB),
    pageSize: bytes("pageSize", 4096),
    retries: count("retries", 20),
    WebSocket: options.WebSocket,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
