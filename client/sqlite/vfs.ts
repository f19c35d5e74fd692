/**
 * The VFS through which wa-sqlite's SQLite reads and writes its files (docs/sqlite.md). It only
 * translates: SQLite's calls on a file id become calls on that file's `SqliteFile`, errors become
 * result codes. Which file is which object, and what durable means, is decided by the
 * `FileSource` it is given (client/sqlite/database-files.ts).
 */
import { FacadeVFS } from "@journeyapps/wa-sqlite/src/FacadeVFS.js";
import * as VFS from "@journeyapps/wa-sqlite/src/VFS.js";
import { MemoryFile, SqliteCodeError, type SqliteFile } from "./sqlite-file";

/** Where the VFS finds the files of one database by name. */
export interface FileSource {
  /** Opens the database or its rollback journal (`flags` say which). */
  open(name: string, flags: number): Promise<SqliteFile>;
  /** Whether the file exists with content: SQLite asks for its journal before each transaction. */
  exists(name: string): Promise<boolean>;
  /** SQLite deletes the file: its journal, once a commit that needed one is done. */
  remove(name: string): Promise<void>;
}

/** Files SQLite opens that are the database's own: the rest live in memory. */
const SHARED_FILES = VFS.SQLITE_OPEN_MAIN_DB | VFS.SQLITE_OPEN_MAIN_JOURNAL;

export class EdgepagerVFS extends FacadeVFS {
  private readonly files = new Map<number, SqliteFile>();
  /** Why the last call failed: SQLite passes on only a code (client/sqlite/database.ts reads it). */
  lastError: unknown = null;

  constructor(
    name: string,
    module: object,
    private readonly source: FileSource,
  ) {
    super(name, module);
  }

  override async jOpen(
    filename: string | null,
    fileId: number,
    flags: number,
    pOutFlags: DataView,
  ): Promise<number> {
    return this.run(async () => {
      const file =
        filename !== null && (flags & SHARED_FILES) !== 0
          ? await this.source.open(filename, flags)
          : new MemoryFile();
      this.files.set(fileId, file);
      pOutFlags.setInt32(0, flags, true);
    }, VFS.SQLITE_CANTOPEN);
  }

  override async jClose(fileId: number): Promise<number> {
    return this.run(async () => {
      const file = this.files.get(fileId);
      this.files.delete(fileId);
      await file?.close();
    });
  }

  override async jRead(fileId: number, pData: Uint8Array, offset: number): Promise<number> {
    // `pData` views the wasm memory, which may move while we wait: read into our own bytes.
    const bytes = new Uint8Array(pData.byteLength);
    let complete = true;
    const code = await this.run(async () => {
      complete = await this.file(fileId).read(offset, bytes);
    }, VFS.SQLITE_IOERR_READ);
    if (code !== VFS.SQLITE_OK) return code;
    pData.set(bytes);
    return complete ? VFS.SQLITE_OK : VFS.SQLITE_IOERR_SHORT_READ;
  }

  override async jWrite(fileId: number, pData: Uint8Array, offset: number): Promise<number> {
    const bytes = pData.slice();
    return this.run(() => this.file(fileId).write(offset, bytes), VFS.SQLITE_IOERR_WRITE);
  }

  override async jTruncate(fileId: number, size: number): Promise<number> {
    return this.run(() => this.file(fileId).truncate(size), VFS.SQLITE_IOERR_TRUNCATE);
  }

  override async jSync(fileId: number): Promise<number> {
    return this.run(() => this.file(fileId).sync(), VFS.SQLITE_IOERR_FSYNC);
  }

  override async jFileSize(fileId: number, pSize: DataView): Promise<number> {
    return this.run(async () => {
      pSize.setBigInt64(0, BigInt(await this.file(fileId).size()), true);
    }, VFS.SQLITE_IOERR_FSTAT);
  }

  override async jLock(fileId: number, lockType: number): Promise<number> {
    return this.run(() => this.file(fileId).lock(lockType), VFS.SQLITE_IOERR_LOCK);
  }

  override async jUnlock(fileId: number, lockType: number): Promise<number> {
    return this.run(() => this.file(fileId).lock(lockType), VFS.SQLITE_IOERR_UNLOCK);
  }

  override jCheckReservedLock(fileId: number, pResOut: DataView): number {
    pResOut.setInt32(0, this.files.get(fileId)?.reservedElsewhere() ? 1 : 0, true);
    return VFS.SQLITE_OK;
  }

  override async jFileControl(fileId: number, op: number): Promise<number> {
    const atomic = this.files.get(fileId)?.atomic;
    if (!atomic) return VFS.SQLITE_NOTFOUND;
    switch (op) {
      case VFS.SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
        atomic.begin();
        return VFS.SQLITE_OK;
      case VFS.SQLITE_FCNTL_COMMIT_ATOMIC_WRITE:
        // An I/O error here makes SQLite write the commit again through its rollback journal.
        return this.run(() => atomic.commit(), VFS.SQLITE_IOERR_COMMIT_ATOMIC);
      case VFS.SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
        atomic.rollback();
        return VFS.SQLITE_OK;
      default:
        return VFS.SQLITE_NOTFOUND;
    }
  }

  override jSectorSize(): number {
    return 512;
  }

  override jDeviceCharacteristics(fileId: number): number {
    return this.files.get(fileId)?.atomic ? VFS.SQLITE_IOCAP_BATCH_ATOMIC : 0;
  }

  override async jAccess(filename: string, _flags: number, pResOut: DataView): Promise<number> {
    return this.run(async () => {
      pResOut.setInt32(0, (await this.source.exists(filename)) ? 1 : 0, true);
    }, VFS.SQLITE_IOERR_ACCESS);
  }

  override async jDelete(filename: string): Promise<number> {
    return this.run(() => this.source.remove(filename), VFS.SQLITE_IOERR_DELETE);
  }

  private file(fileId: number): SqliteFile {
    const file = this.files.get(fileId);
    if (!file) throw new Error(`no open file ${fileId}`);
    return file;
  }

  /** Runs a file operation: its error becomes its result code, or `failure`. */
  private async run(
    step: () => Promise<void>,
    failure: number = VFS.SQLITE_IOERR,
  ): Promise<number> {
    try {
      await step();
      return VFS.SQLITE_OK;
    } catch (error) {
      this.lastError = error;
      return error instanceof SqliteCodeError ? error.code : failure;
    }
  }
}
