/**
 * The files of one database, as the VFS opens them (docs/sqlite.md): the database is the memory
 * object of its name, byte for byte, and its rollback journal the object of that name plus
 * `-journal`; SQLite's temporary files stay in memory (client/sqlite/vfs.ts).
 *
 * One process writes a database at a time: it is kernel `sqlite-writer` of the object, and a
 * second writer is refused while the first one's socket is connected. Readers are kernels of
 * their own, each with a name of its own, and read through `SnapshotFile`.
 */
import * as VFS from "@journeyapps/wa-sqlite/src/VFS.js";
import { KernelConnection } from "../connection";
import { HttpClient } from "../http";
import { PageCache } from "../page-cache";
import { ObjectFile } from "./object-file";
import { SnapshotFile } from "./snapshot-file";
import { SqliteCodeError, type SqliteFile } from "./sqlite-file";
import type { FileSource } from "./vfs";

/** The kernel id of a database's one writer. */
export const WRITER_KERNEL = "sqlite-writer";

/** The object holding a database's rollback journal while a commit needs one. */
export function journalObjectOf(object: string): string {
  return `${object}-journal`;
}

export interface DatabaseFilesOptions {
  url: string;
  object: string;
  token?: string;
  readonly: boolean;
  /** What a commit waits for: VM_SYNC_ASYNCHRONOUS or VM_SYNC_SYNCHRONOUS. */
  syncFlags: number;
  maxGroupBytes: number;
  /** Whether the database declares atomic writes (SQLite then keeps no journal for a commit). */
  atomicCommits: boolean;
  readAheadBytes: number;
  maxCleanBytes: number;
  /** The page size of a new object. */
  pageSize: number;
  WebSocket?: typeof WebSocket;
}

export class DatabaseFiles implements FileSource {
  private readonly connections: KernelConnection[] = [];
  private journal: Promise<ObjectFile> | null = null;
  private main: SqliteFile | null = null;
  private readonly http: HttpClient;

  private constructor(
    private readonly options: DatabaseFilesOptions,
    /** The page size of the objects: the database's, or the new object's. */
    private readonly pageSize: number,
  ) {
    this.http = new HttpClient(options.url, options.token);
  }

  /** Connects to the database's object; a writer first makes sure it is the only one. */
  static async open(options: DatabaseFilesOptions): Promise<DatabaseFiles> {
    const status = await new HttpClient(options.url, options.token).stat(options.object);
    if (!options.readonly) {
      const writer = status.kernels.find((k) => k.kernel === WRITER_KERNEL && k.connected);
      if (writer) {
        throw new Error(
          `database "${options.object}" already has a writer (kernel ${WRITER_KERNEL} is connected); open it read-only, or close the other writer first`,
        );
      }
    }
    const files = new DatabaseFiles(options, status.page_size ?? options.pageSize);
    try {
      const kernel = options.readonly ? `sqlite-reader-${randomSuffix()}` : WRITER_KERNEL;
      const connection = await files.connect(options.object, kernel);
      files.main = options.readonly
        ? new SnapshotFile({
            connection,
            journalEmpty: () => files.journalEmpty(),
            readAheadBytes: options.readAheadBytes,
            maxCleanBytes: options.maxCleanBytes,
          })
        : new ObjectFile({
            cache: files.cacheOf(connection),
            syncFlags: options.syncFlags,
            maxGroupBytes: options.maxGroupBytes,
            atomic: options.atomicCommits,
            // The journal's writes must be durable before the database's (SQLite does not
            // sync it when it falls back to it from a failed atomic commit).
            before: async () => {
              if (files.journal) await (await files.journal).sync();
            },
          });
    } catch (error) {
      files.close();
      throw error;
    }
    return files;
  }

  async open(name: string, flags: number): Promise<SqliteFile> {
    if (name === this.options.object && this.main) return this.main;
    if (name === journalObjectOf(this.options.object) && !this.options.readonly) {
      return this.journalFile();
    }
    throw new SqliteCodeError(
      VFS.SQLITE_CANTOPEN,
      `cannot open "${name}" (flags 0x${flags.toString(16)}): a database on edgepager has only its object and its journal`,
    );
  }

  async exists(name: string): Promise<boolean> {
    if (name !== journalObjectOf(this.options.object)) return false;
    // A reader checks the journal itself, at each transaction's shared lock (SnapshotFile).
    if (this.options.readonly) return false;
    return (await (await this.journalFile()).size()) > 0;
  }

  async remove(name: string): Promise<void> {
    if (name !== journalObjectOf(this.options.object) || this.options.readonly) return;
    // The journal object stays; emptied, it is "deleted" for SQLite (`exists` says no).
    await (await this.journalFile()).truncate(0);
  }

  close(): void {
    for (const connection of this.connections) connection.close();
  }

  private journalFile(): Promise<ObjectFile> {
    this.journal ??= this.connect(journalObjectOf(this.options.object), WRITER_KERNEL).then(
      (connection) =>
        new ObjectFile({
          cache: this.cacheOf(connection),
          syncFlags: this.options.syncFlags,
          maxGroupBytes: this.options.maxGroupBytes,
          atomic: false,
        }),
    );
    return this.journal;
  }

  private async journalEmpty(): Promise<boolean> {
    const status = await this.http.stat(journalObjectOf(this.options.object));
    return status.size === 0;
  }

  private async connect(object: string, kernel: string): Promise<KernelConnection> {
    const { url, token, WebSocket } = this.options;
    const connection = await KernelConnection.connect({
      url,
      object,
      kernel,
      token,
      pageSize: this.pageSize,
      ...(WebSocket && { WebSocket }),
    });
    this.connections.push(connection);
    return connection;
  }

  private cacheOf(connection: KernelConnection): PageCache {
    const { readAheadBytes, maxCleanBytes, maxGroupBytes } = this.options;
    return new PageCache(connection, { readAheadBytes, maxCleanBytes, maxGroupBytes });
  }
}

function randomSuffix(): string {
  return Math.random().toString(36).slice(2, 10);
}
