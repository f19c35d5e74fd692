/**
 * What the SQLite workloads (W8-W10) share: a 16 MiB database built once per run with Node's own
 * SQLite and put into objects as the CLI's `put` would (every page, then one SYNCHRONOUS msync, so
 * it is in R2 when the put returns), a WebSocket that counts the frames a database sends and
 * receives, and the object's counters that do not depend on speed.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { HttpClient, PageCache, VM_SYNC_SYNCHRONOUS } from "../client";
import { journalObjectOf } from "../client/sqlite";
import { connect } from "./session";
import { PAGE } from "./settings";

/** The table every SQLite workload writes and scans: an id and a blob of `ROW_BYTES`. */
export const CREATE_TABLE = "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, b BLOB)";
const ROW_BYTES = 1000;

/** W9's queries: every row read, then every page checked. */
export const SCAN = "SELECT count(*) AS n, sum(length(b)) AS bytes FROM t";
export const INTEGRITY_CHECK = "PRAGMA integrity_check";

/**
 * A database file of at least `bytes` (page size 4096, rollback journal mode), built in a
 * temporary file with `node:sqlite`, and where it lies (kept until `remove`).
 */
export function buildDatabase(bytes: number): { path: string; bytes: Uint8Array<ArrayBuffer> } {
  const dir = mkdtempSync(join(tmpdir(), "edgepager-bench-db-"));
  const path = join(dir, "bench.db");
  const db = new DatabaseSync(path);
  db.exec(`PRAGMA page_size = ${PAGE}; PRAGMA journal_mode = DELETE; ${CREATE_TABLE}`);
  const insert = db.prepare("INSERT INTO t (b) VALUES (randomblob(?))");
  const pages = () => (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
  while (pages() * PAGE < bytes) {
    db.exec("BEGIN");
    for (let i = 0; i < 500; i++) insert.run(ROW_BYTES);
    db.exec("COMMIT");
  }
  db.close();
  const file = readFileSync(path);
  return { path, bytes: new Uint8Array(file.buffer, file.byteOffset, file.byteLength) as never };
}

/** Deletes what `buildDatabase` made. */
export function removeDatabase(path: string): void {
  rmSync(join(path, ".."), { recursive: true, force: true });
}

/**
 * Puts `bytes` into `object` as `edgepager put` does: every page returned, the size set to the
 * file's end, one SYNCHRONOUS msync (the pages are in R2 when it returns), then terminate.
 */
export async function putDatabase(url: string, object: string, bytes: Uint8Array): Promise<void> {
  const connection = await connect(url, object, "bench-put");
  const cache = new PageCache(connection);
  await cache.write(0, bytes);
  await cache.msync(0, bytes.byteLength, VM_SYNC_SYNCHRONOUS);
  await connection.terminate();
}

/** Deletes a database's object and its journal's. */
export async function removeObjects(url: string, object: string): Promise<void> {
  const http = new HttpClient(url);
  await http.remove(object).catch(() => {});
  await http.remove(journalObjectOf(object)).catch(() => {});
}

/** Frames sent and received by the sockets made with `FrameCounter.WebSocket`. */
export class FrameCounter {
  sent = 0;
  received = 0;
  readonly WebSocket: typeof WebSocket;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the class below reports here
    const counter = this;
    this.WebSocket = class CountingWebSocket extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener("message", () => counter.received++);
      }
      override send(data: Parameters<WebSocket["send"]>[0]): void {
        counter.sent++;
        super.send(data);
      }
    };
  }
}

/** The counters of an object that do not depend on speed (`GET /v1/objects/{name}`). */
export interface ObjectCounters {
  /** The next seqno the manager gives: one per step that committed something. */
  seqno: number;
  /** Pages in the object's journal (Durable Object storage), not yet flushed to R2. */
  journalPages: number;
  /** Pages stored, in the journal or in R2. */
  pages: number;
  size: number;
}

export async function countersOf(url: string, object: string): Promise<ObjectCounters> {
  const status = await new HttpClient(url).stat(object);
  return {
    seqno: status.seqno,
    journalPages: status.journal_pages,
    pages: status.pages,
    size: status.size,
  };
}
