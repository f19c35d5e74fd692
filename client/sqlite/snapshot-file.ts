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
 *   same version. If the counter moved, a commit landed in between: the pages the transaction
 *   has read are asked for again with the header, in one step, and if none of them differs in
 *   the newer version the transaction goes on at that version (it could have read it all there).
 *   Otherwise the read fails with SQLITE_BUSY rather than mix two versions; the caller runs the
 *   transaction again, and its shared lock asks for every page the failed run had read with the
 *   header, in one step, so a reader slower than the commits does not starve.
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
  /** Bytes of pages kept; past it the least recently fetched go (the header stays). */
  maxCleanBytes: number;
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
  /** Where the last few fetches ended, and how far ahead a scan reads now. */
  private recentEnds: number[] = [];
  private ahead = 0;
  /** Pages the current read transaction has read. */
  private readonly touched = new Set<number>();
  /**
   * Pages a read transaction that met a commit had read: the next one asks for them with the
   * header, in one step, so running it again does not meet the next commit page by page.
   */
  private wanted: number[] = [];

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
    const [header, ...runs] = await this.fetchWithHeader(runsOf(this.wanted, this.mostPages()));
    this.wanted = [];
    this.touched.clear();
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
    for (const { first, data } of runs) this.keep(first, data);
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
      // Only pages served count as read: the one being fetched is not checked against itself.
      this.touched.add(page);
      // Copied at once: a later fetch of this read may push it out of a small cache.
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
    const wanted = this.runsFrom(page);
    const [header, ...fetched] = await this.fetchWithHeader(wanted);
    if (counterOf(header) === this.counter) {
      // The run holding `page` kept last, so keeping the others cannot push it out.
      for (const { first, data } of fetched.reverse()) this.keep(first, data);
      return;
    }
    // A commit landed since the transaction began. It may go on at the newer version if nothing
    // it has read differs there: asked again with the header and the runs, in one step.
    const touched = [...this.touched].sort((a, b) => a - b);
    const [newer, ...again] = await this.fetchWithHeader([
      ...wanted,
      ...runsOf(touched, this.mostPages()),
    ]);
    if (!this.unchanged(newer, again.slice(wanted.length), touched)) {
      this.pages.clear();
      this.counter = null;
      this.wanted = [...touched, ...wanted.flatMap(({ first, end }) => range(first, end))];
      throw new SqliteCodeError(
        VFS.SQLITE_BUSY,
        "the database changed under this read transaction: run it again",
      );
    }
    this.counter = counterOf(newer);
    this.pages.set(0, newer);
    for (const { first, data } of again.slice(0, wanted.length).reverse()) this.keep(first, data);
  }

  /**
   * The runs to fetch for a miss at `page`: read-ahead from it, clipped at the file's end and at
   * held pages, one request per max_transfer. A miss where a recent fetch ended is a scan:
   * each such miss doubles how far ahead it reads (up to SCAN_AHEAD_BYTES), and those requests
   * leave together, so the object reads their ranges from R2 at the same time.
   */
  private runsFrom(page: number): { first: number; end: number }[] {
    const { pageSize } = this;
    // Where a recent fetch ended: a scan going on (a b-tree's interior pages make a scan jump
    // away and come back, so a few ends are remembered), not a lookup elsewhere.
    const scanning = this.recentEnds.includes(page);
    // Never further than half of what may be kept: pages read ahead must last until read.
    const furthest = Math.min(SCAN_AHEAD_BYTES, this.options.maxCleanBytes / 2);
    this.ahead = Math.min(
      furthest,
      scanning
        ? Math.max(this.ahead * 2, this.options.readAheadBytes)
        : this.options.readAheadBytes,
    );
    const lastPage = Math.max(page + 1, Math.ceil(this.fileSize / pageSize));
    const stop = Math.min(lastPage, page + Math.max(1, Math.floor(this.ahead / pageSize)));
    const most = this.mostPages();
    const runs: { first: number; end: number }[] = [];
    let end = page + 1;
    runs.push({ first: page, end });
    while (end < stop && !this.pages.has(end)) {
      const last = runs[runs.length - 1]!;
      if (last.end - last.first < most) last.end++;
      else runs.push({ first: end, end: end + 1 });
      end++;
    }
    this.recentEnds = [end, ...this.recentEnds.slice(0, RECENT_ENDS - 1)];
    return runs;
  }

  /**
   * Whether every page the transaction read is the same in the newer version: the header but for
   * its change counter (and the copy of it at bytes 92-95), and each page read again.
   */
  private unchanged(
    newer: Uint8Array,
    reread: { first: number; data: Uint8Array }[],
    touched: number[],
  ): boolean {
    const header = this.pages.get(0);
    if (!header || !sameHeader(header, newer)) return false;
    const { pageSize } = this;
    const seen = new Set<number>([0]);
    for (const { first, data } of reread) {
      for (let at = 0; at < data.byteLength; at += pageSize) {
        const page = first + at / pageSize;
        const before = this.pages.get(page);
        if (!before || !equalBytes(before, data.subarray(at, at + pageSize))) return false;
        seen.add(page);
      }
    }
    // A transaction that read more runs than one frame may ask for cannot be checked whole.
    return touched.every((page) => seen.has(page));
  }

  /**
   * The header and the runs, asked in the same turn: they leave in one batch frame
   * (docs/protocol.md §11) and the object reads them in one step, at one version.
   */
  private async fetchWithHeader(
    runs: { first: number; end: number }[],
  ): Promise<[Uint8Array, ...{ first: number; data: Uint8Array }[]]> {
    const [header, ...data] = await Promise.all([
      this.fetch(0, 1),
      ...runs.map(({ first, end }) => this.fetch(first, end - first)),
    ]);
    return [header!, ...runs.map(({ first }, i) => ({ first, data: data[i]! }))];
  }

  private keep(first: number, data: Uint8Array): void {
    const { pageSize } = this;
    const count = data.byteLength / pageSize;
    for (let i = 0; i < count; i++) {
      this.pages.delete(first + i); // re-inserted last: the map's order is the order of use
      this.pages.set(first + i, data.slice(i * pageSize, (i + 1) * pageSize));
    }
    // The oldest go first; never the header, nor the run just fetched (it is about to be read).
    const most = Math.max(1, Math.floor(this.options.maxCleanBytes / pageSize));
    for (const page of this.pages.keys()) {
      if (this.pages.size <= most) break;
      if (page !== 0 && (page < first || page >= first + count)) this.pages.delete(page);
    }
  }

  /** Pages one request may carry: at most max_transfer, and at most `bytes` when given. */
  private mostPages(bytes = Infinity): number {
    const { pageSize } = this;
    const maxTransfer = this.options.connection.ready?.max_transfer ?? pageSize;
    return Math.max(1, Math.floor(Math.min(bytes, maxTransfer) / pageSize));
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

/** Fetch ends remembered to tell a scan from a lookup. */
const RECENT_ENDS = 4;

/** How far ahead a sequential scan reads at most: a few max_transfer requests at once. */
const SCAN_AHEAD_BYTES = 8 * 1024 * 1024;

function range(first: number, end: number): number[] {
  return Array.from({ length: end - first }, (_, i) => first + i);
}

/** Requests one batch frame may hold besides the header's (the batch bounds, docs/protocol.md §11). */
const MOST_RUNS = 200;

/** Sorted pages as runs of consecutive pages, each at most `most` long; page 0 left out. */
function runsOf(pages: number[], most: number): { first: number; end: number }[] {
  const runs: { first: number; end: number }[] = [];
  for (const page of pages) {
    if (page === 0) continue;
    const last = runs[runs.length - 1];
    if (last && last.end === page && last.end - last.first < most) last.end++;
    else if (runs.length < MOST_RUNS) runs.push({ first: page, end: page + 1 });
  }
  return runs;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Two headers that differ at most in the change counter and its copy (bytes 24-27, 92-95). */
function sameHeader(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) {
    const counter =
      (i >= CHANGE_COUNTER && i < CHANGE_COUNTER + 4) || (i >= VALID_FOR && i < VALID_FOR + 4);
    if (!counter && a[i] !== b[i]) return false;
  }
  return true;
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
