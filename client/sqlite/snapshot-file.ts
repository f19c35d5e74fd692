/**
 * The database as a reader process sees it (docs/sqlite.md): only whole commits, never a torn or
 * stale state, with no lock service and no coherence protocol. SQLite's own file change counter
 * (bytes 24-27 of the header, moved by every commit) names the version a read transaction reads:
 *
 * - At the transaction's shared lock, the header is read afresh. If the counter moved since the
 *   pages kept here were read, they are dropped; and if the journal object holds a commit that
 *   is being written the long way (too large for one atomic group), the lock waits (SQLITE_BUSY).
 * - Every page read after that asks for the header again in the same batch frame
 *   (docs/protocol.md §11), so both are read at consecutive seqnos in one step of the object: the
 *   same version. If the counter moved, a commit landed in between, and the read fails with
 *   SQLITE_BUSY rather than mix two versions; the caller runs the transaction again.
 *
 * A writer's commit is one atomic group, so pages and counter move together; a commit written
 * the long way writes page 0 first and empties its journal last, which the checks above see.
 */
import * as VFS from "@journeyapps/wa-sqlite/src/VFS.js";
import type { KernelConnection } from "../connection";
import { SqliteCodeError, type SqliteFile } from "./sqlite-file";

export interface SnapshotFileOptions {
  connection: KernelConnection;
  /** Whether the journal object is empty: no commit is being written the long way. */
  journalEmpty: () => Promise<boolean>;
  /** Bytes fetched past a missed page, in one request (at most max_transfer). */
  readAheadBytes: number;
}

/** Where SQLite keeps the change counter, and the page count it vouches for (bytes 92-95). */
const CHANGE_COUNTER = 24;
const PAGE_COUNT = 28;
const VALID_FOR = 92;
const HEADER_BYTES = 100;

export class SnapshotFile implements SqliteFile {
  /** Pages of the version being read, by object page number. */
  private readonly pages = new Map<number, Uint8Array>();
  /** The change counter of that version; null until the first shared lock. */
  private counter: number | null = null;
  private fileSize = 0;
  private locked = false;

  constructor(private readonly options: SnapshotFileOptions) {}

  private get pageSize(): number {
    const ready = this.options.connection.ready;
    if (!ready) throw new SqliteCodeError(VFS.SQLITE_BUSY, "the reader is reconnecting");
    return ready.page_size;
  }

  async lock(level: number): Promise<void> {
    if (level === VFS.SQLITE_LOCK_NONE) {
      this.locked = false;
      return;
    }
    if (level > VFS.SQLITE_LOCK_SHARED) {
      throw new SqliteCodeError(VFS.SQLITE_READONLY, "this database was opened read-only");
    }
    if (this.locked) return;
    const header = await this.fetch(0, 1);
    const counter = counterOf(header);
    if (counter !== this.counter) {
      this.pages.clear();
      this.counter = counter;
      // Read after the header: a commit written the long way empties the journal last, so an
      // empty journal now means every page of the version the header names has landed.
      if (!(await this.options.journalEmpty())) {
        this.counter = null;
        throw new SqliteCodeError(VFS.SQLITE_BUSY, "a commit is being written: try again");
      }
    }
    this.pages.set(0, header);
    this.fileSize = sizeOf(header, this.options.connection.ready?.size ?? 0);
    this.locked = true;
  }

  async read(offset: number, into: Uint8Array): Promise<boolean> {
    const { pageSize } = this;
    const available = Math.max(0, Math.min(into.byteLength, this.fileSize - offset));
    const first = Math.floor(offset / pageSize);
    const end = Math.ceil((offset + available) / pageSize);
    for (let page = first; page < end; page++) {
      if (!this.pages.has(page)) await this.readFrom(page);
    }
    for (let page = first; page < end; page++) {
      const data = this.pages.get(page)!;
      const start = page * pageSize;
      const from = Math.max(offset, start);
      const to = Math.min(offset + available, start + pageSize);
      into.set(data.subarray(from - start, to - start), from - offset);
    }
    into.fill(0, available);
    return available === into.byteLength;
  }

  /** Reads a run from `page` on (read-ahead) with the header in the same step, and checks it. */
  private async readFrom(page: number): Promise<void> {
    const { pageSize } = this;
    const maxTransfer = this.options.connection.ready?.max_transfer ?? pageSize;
    const lastPage = Math.max(page + 1, Math.ceil(this.fileSize / pageSize));
    let end = page + 1;
    const most = Math.max(
      1,
      Math.floor(Math.min(this.options.readAheadBytes, maxTransfer) / pageSize),
    );
    while (end < lastPage && end - page < most && !this.pages.has(end)) end++;
    // Asked in the same turn, so they leave in one batch frame and are read in one step.
    const [header, run] = await Promise.all([this.fetch(0, 1), this.fetch(page, end - page)]);
    if (counterOf(header) !== this.counter) {
      this.pages.clear();
      this.counter = null;
      throw new SqliteCodeError(
        VFS.SQLITE_BUSY,
        "the database changed during this read transaction: run it again",
      );
    }
    for (let p = page; p < end; p++) {
      this.pages.set(p, run.slice((p - page) * pageSize, (p - page + 1) * pageSize));
    }
  }

  private async fetch(page: number, count: number): Promise<Uint8Array> {
    const { pageSize } = this;
    const reply = await this.options.connection.dataRequest(page * pageSize, count * pageSize);
    // data_unavailable (nothing of the range written) carries no bytes: zeros.
    return reply.data && reply.data.byteLength > 0 ? reply.data : new Uint8Array(count * pageSize);
  }

  async write(): Promise<void> {
    throw new SqliteCodeError(VFS.SQLITE_READONLY, "this database was opened read-only");
  }

  async truncate(): Promise<void> {
    throw new SqliteCodeError(VFS.SQLITE_READONLY, "this database was opened read-only");
  }

  async sync(): Promise<void> {}

  async size(): Promise<number> {
    return this.fileSize;
  }

  /** Always: a reader must never roll back a journal the writer may still be writing. */
  reservedElsewhere(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.pages.clear();
  }
}

function counterOf(header: Uint8Array): number {
  return new DataView(header.buffer, header.byteOffset).getUint32(CHANGE_COUNTER);
}

/**
 * The database's size: the page count in its header, when the header vouches for it (its
 * "version-valid-for" equals the change counter, as every SQLite since 3.7.0 writes), else the
 * object's size.
 */
function sizeOf(header: Uint8Array, objectSize: number): number {
  if (header.byteLength < HEADER_BYTES) return objectSize;
  const view = new DataView(header.buffer, header.byteOffset);
  const rawPageSize = view.getUint16(16);
  const dbPageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  const pageCount = view.getUint32(PAGE_COUNT);
  if (dbPageSize === 0 || view.getUint32(VALID_FOR) !== view.getUint32(CHANGE_COUNTER)) {
    return objectSize;
  }
  return pageCount * dbPageSize;
}
