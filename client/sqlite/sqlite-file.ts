/**
 * What the VFS (client/sqlite/vfs.ts) asks of one file SQLite opened: the few operations of an
 * SQLite file, as promises. A file throws `SqliteCodeError` to make the VFS answer SQLite with
 * that result code; anything else it throws is an I/O error.
 */

/** An SQLite result code a file wants returned to SQLite (e.g. SQLITE_BUSY). */
export class SqliteCodeError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "SqliteCodeError";
  }
}

export interface SqliteFile {
  /** Fills `into` from `offset`; false when the file ends first (the rest is then zeros). */
  read(offset: number, into: Uint8Array): Promise<boolean>;
  write(offset: number, data: Uint8Array): Promise<void>;
  truncate(size: number): Promise<void>;
  /** Makes what was written durable (docs/sqlite.md: what durable means here). */
  sync(): Promise<void>;
  size(): Promise<number>;
  /** SQLite's lock on the file moved to `level` (0 none … 4 exclusive), up or down. */
  lock(level: number): Promise<void>;
  /**
   * Whether another process may hold a reserved lock: true keeps SQLite from rolling back a
   * journal that another process is still writing.
   */
  reservedElsewhere(): boolean;
  /**
   * Present on a file that can write atomically (SQLITE_IOCAP_BATCH_ATOMIC): SQLite brackets a
   * commit's writes with `begin` and `commit`, or `rollback`.
   */
  atomic?: { begin(): void; commit(): Promise<void>; rollback(): void };
  close(): Promise<void>;
}

/** A file that lives in memory only: SQLite's temporary files, never shared, never durable. */
export class MemoryFile implements SqliteFile {
  private bytes = new Uint8Array(0);
  private length = 0;

  async read(offset: number, into: Uint8Array): Promise<boolean> {
    const available = Math.max(0, Math.min(into.byteLength, this.length - offset));
    into.set(this.bytes.subarray(offset, offset + available));
    into.fill(0, available);
    return available === into.byteLength;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    const end = offset + data.byteLength;
    this.makeRoom(end);
    this.bytes.set(data, offset);
    this.length = Math.max(this.length, end);
  }

  async truncate(size: number): Promise<void> {
    if (size < this.length) this.bytes.fill(0, size, this.length);
    this.makeRoom(size);
    this.length = size;
  }

  /** Bytes past `length` are always zeros, so a file grown by truncate reads zeros there. */
  private makeRoom(end: number): void {
    if (end <= this.bytes.byteLength) return;
    const grown = new Uint8Array(Math.max(end, this.bytes.byteLength * 2));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  async sync(): Promise<void> {}

  async size(): Promise<number> {
    return this.length;
  }

  async lock(): Promise<void> {}

  reservedElsewhere(): boolean {
    return false;
  }

  async close(): Promise<void> {
    this.bytes = new Uint8Array(0);
    this.length = 0;
  }
}
