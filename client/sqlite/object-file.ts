/**
 * A file of the database's one writer on a memory object, byte for byte (docs/sqlite.md): the
 * database itself, or its rollback journal. Reads and writes go through a `PageCache`; the writer
 * is the only one writing, so its cache is never stale. What SQLite writes stays in the cache
 * until `sync`, which sends it as one atomic group (docs/protocol.md §12), so a commit is all or
 * nothing even when SQLite writes it without its batch (a first commit, a fallback).
 *
 * The database declares batch-atomic writes: SQLite then brackets each commit's writes with
 * `atomic.begin` and `atomic.commit` and keeps no journal at all. Those writes are held here, not
 * in the cache, until the group is committed; a group over `maxGroupBytes`, or one the manager
 * refuses, fails with an I/O error, on which SQLite writes the commit again through its rollback
 * journal, a second object.
 */
import * as VFS from "@journeyapps/wa-sqlite/src/VFS.js";
import type { PageCache } from "../page-cache";
import { SqliteCodeError, type SqliteFile } from "./sqlite-file";

export interface ObjectFileOptions {
  cache: PageCache;
  /** What `sync` waits for: VM_SYNC_ASYNCHRONOUS (the object's journal) or VM_SYNC_SYNCHRONOUS (R2). */
  syncFlags: number;
  /** The most bytes one commit sends as an atomic group. */
  maxGroupBytes: number;
  /** Whether SQLite may write commits atomically here (the database, not its journal). */
  atomic: boolean;
  /** Runs before this file's writes go out: the journal must be durable before the database. */
  before?: () => Promise<void>;
}

/** Bytes of one msync when a sync is too large for one group (and the journal protects it). */
const MSYNC_WINDOW_BYTES = 16 * 1024 * 1024;

interface PendingCommit {
  writes: Map<number, Uint8Array>;
  bytes: number;
  size: number | null;
}

export class ObjectFile implements SqliteFile {
  private pending: PendingCommit | null = null;
  readonly atomic?: SqliteFile["atomic"];

  constructor(private readonly options: ObjectFileOptions) {
    if (options.atomic) {
      this.atomic = {
        begin: () => {
          this.pending = { writes: new Map(), bytes: 0, size: null };
        },
        commit: () => this.commitPending(),
        rollback: () => {
          this.pending = null;
        },
      };
    }
  }

  async read(offset: number, into: Uint8Array): Promise<boolean> {
    const available = Math.max(0, Math.min(into.byteLength, (await this.size()) - offset));
    if (available > 0) into.set(await this.options.cache.read(offset, available));
    into.fill(0, available);
    // A commit being written reads as written (SQLite may read back what it wrote).
    for (const [at, data] of this.pending?.writes ?? []) {
      const from = Math.max(at, offset);
      const to = Math.min(at + data.byteLength, offset + into.byteLength);
      if (from < to) into.set(data.subarray(from - at, to - at), from - offset);
    }
    return available === into.byteLength;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (this.pending) {
      this.pending.bytes += data.byteLength - (this.pending.writes.get(offset)?.byteLength ?? 0);
      this.pending.writes.set(offset, data);
      return;
    }
    await this.options.cache.write(offset, data);
  }

  async truncate(size: number): Promise<void> {
    if (this.pending) {
      this.pending.size = size;
      return;
    }
    await this.options.cache.setSize(size);
    // SQLite truncates after its last sync of a commit: this one must be durable too.
    await this.sync();
  }

  async sync(): Promise<void> {
    const { cache, syncFlags, maxGroupBytes, before } = this.options;
    if (!cache.hasChanges) return;
    await before?.();
    if (cache.dirtyBytes <= maxGroupBytes) {
      await cache.commit({ syncFlags });
      return;
    }
    // Too large for one group: the rollback journal, durable already, protects these writes.
    // The window holding page 0 goes first, so a reader sees the change counter move before
    // anything else does (client/sqlite/snapshot-file.ts).
    for (let offset = 0; offset < Math.max(cache.size, 1); offset += MSYNC_WINDOW_BYTES) {
      await cache.msync(offset, MSYNC_WINDOW_BYTES, syncFlags);
    }
  }

  async size(): Promise<number> {
    const pending = this.pending;
    let size = pending?.size ?? this.options.cache.size;
    for (const [at, data] of pending?.writes ?? []) size = Math.max(size, at + data.byteLength);
    return size;
  }

  async lock(): Promise<void> {}

  reservedElsewhere(): boolean {
    return false;
  }

  async close(): Promise<void> {}

  /**
   * Sends a commit's writes as one atomic group. Until the manager has them, they are not in the
   * cache: if the group fails, the cache still holds what SQLite believes the file holds, and
   * SQLite writes the commit again through its journal.
   */
  private async commitPending(): Promise<void> {
    const pending = this.pending;
    this.pending = null;
    if (!pending) return;
    const { cache, syncFlags, maxGroupBytes, before } = this.options;
    if (pending.bytes > maxGroupBytes) {
      throw new SqliteCodeError(
        VFS.SQLITE_IOERR_COMMIT_ATOMIC,
        `a commit of ${pending.bytes} bytes is over maxGroupBytes (${maxGroupBytes}): SQLite writes it through its rollback journal`,
      );
    }
    await before?.();
    await cache.commitWrites(
      [...pending.writes].map(([offset, data]) => ({ offset, data })),
      { size: pending.size ?? undefined, syncFlags },
    );
  }
}
