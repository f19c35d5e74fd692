/**
 * W9: a cold open, a full scan and `PRAGMA integrity_check` of a 16 MiB database by a reader
 * (`openDatabase({ readonly: true })`, default read-ahead), against the same queries on a local
 * file of the same bytes with Node's built-in SQLite (`node:sqlite`), in the same run.
 *
 * Cold: each repetition puts the database into a fresh object (in R2 once the put returns, never
 * read since, so no page of it is in the object's read cache) and opens it with a fresh
 * `openDatabase`: a new SQLite instance, a new kernel, an empty page cache.
 *
 * Two references split the figure: the same queries run again on the same reader, every page
 * held (what wa-sqlite itself takes, no fetch), and the same bytes read from R2 by the bench
 * Worker in the ranges the reader asks for (1 MiB, one at a time): the floor of moving them.
 */
import { DatabaseSync } from "node:sqlite";
import { openDatabase } from "../../client/sqlite";
import { loadSqlite } from "../../client/sqlite/load-sqlite";
import { getRange, putOnce } from "../baselines";
import {
  FrameCounter,
  INTEGRITY_CHECK,
  SCAN,
  putDatabase,
  removeObjects,
} from "../sqlite-fixtures";
import { MiB, freshObject } from "../settings";
import { ms } from "../statistics";
import { elapsed } from "../timing";

interface ScanAnswer {
  n: number;
  bytes: number;
  integrity: string;
}

export interface ColdScans {
  /** Open + scan + integrity_check + close, ms. */
  edgepager: number[];
  baseline: number[];
  /** The parts of each edgepager run: `openDatabase`, the scan, the check. */
  openMs: number[];
  scanMs: number[];
  checkMs: number[];
  /** Loading a fresh SQLite instance alone (compiling wa-sqlite's wasm), inside `openMs`. */
  loadSqliteMs: number[];
  /** The scan and the check again on the same reader, every page held: wa-sqlite's own time. */
  heldMs: number[];
  /** The bytes read from R2 by the bench Worker, 1 MiB per request, one at a time. */
  r2ReadMs: number[];
  /** Frames the reader sent and received in one cold scan (requests and their answers). */
  framesSent: number;
  framesReceived: number;
  answer: ScanAnswer;
}

/**
 * `warmups` + `reps` cold scans of `database` (the file at `path`) through edgepager, each
 * alternating with the same on the local file.
 */
export async function coldScans(
  url: string,
  database: { path: string; bytes: Uint8Array },
  warmups: number,
  reps: number,
  log: (line: string) => void,
): Promise<ColdScans> {
  const result: ColdScans = {
    edgepager: [],
    baseline: [],
    openMs: [],
    scanMs: [],
    checkMs: [],
    loadSqliteMs: [],
    heldMs: [],
    r2ReadMs: [],
    framesSent: 0,
    framesReceived: 0,
    answer: localScan(database.path).answer,
  };
  const key = await putOnce(url, database.bytes as Uint8Array<ArrayBuffer>);
  for (let rep = 0; rep < warmups + reps; rep++) {
    const r2Start = performance.now();
    for (let at = 0; at < database.bytes.byteLength; at += MiB) {
      await getRange(url, key, at, Math.min(MiB, database.bytes.byteLength - at));
    }
    const r2ReadMs = elapsed(r2Start);
    const object = freshObject("w9");
    await putDatabase(url, object, database.bytes);
    const local = localScan(database.path);
    const frames = new FrameCounter();
    const remote = await edgepagerScan(url, object, frames);
    await removeObjects(url, object);
    const loadStart = performance.now();
    await loadSqlite();
    const loadMs = elapsed(loadStart);
    for (const [where, answer] of [
      ["edgepager", remote.answer],
      ["local", local.answer],
    ] as const) {
      if (JSON.stringify(answer) !== JSON.stringify(result.answer)) {
        throw new Error(`W9: ${where} answered ${JSON.stringify(answer)}`);
      }
    }
    const label = rep < warmups ? "warm-up" : `rep ${rep - warmups + 1}/${reps}`;
    log(
      `${label}: edgepager ${ms(remote.totalMs)} (open ${ms(remote.openMs)}, scan ` +
        `${ms(remote.scanMs)}, check ${ms(remote.checkMs)}; ${frames.sent} frames out; held ` +
        `${ms(remote.heldMs)}), local ${ms(local.totalMs)}, R2 read ${ms(r2ReadMs)}`,
    );
    if (rep < warmups) continue;
    result.edgepager.push(remote.totalMs);
    result.baseline.push(local.totalMs);
    result.openMs.push(remote.openMs);
    result.scanMs.push(remote.scanMs);
    result.checkMs.push(remote.checkMs);
    result.loadSqliteMs.push(loadMs);
    result.heldMs.push(remote.heldMs);
    result.r2ReadMs.push(r2ReadMs);
    result.framesSent = frames.sent;
    result.framesReceived = frames.received;
  }
  return result;
}

/** A fresh reader of `object`: open, scan, check, close, each timed. */
async function edgepagerScan(url: string, object: string, frames: FrameCounter) {
  const start = performance.now();
  const db = await openDatabase({ url, object, readonly: true, WebSocket: frames.WebSocket });
  const openMs = elapsed(start);
  try {
    const scanStart = performance.now();
    const [scan] = (await db.query(SCAN)) as [{ n: number; bytes: number }];
    const scanMs = elapsed(scanStart);
    const checkStart = performance.now();
    const [check] = (await db.query(INTEGRITY_CHECK)) as [{ integrity_check: string }];
    const checkMs = elapsed(checkStart);
    const heldStart = performance.now();
    await db.query(SCAN);
    await db.query(INTEGRITY_CHECK);
    const heldMs = elapsed(heldStart);
    const closeStart = performance.now();
    await db.close();
    const totalMs = openMs + scanMs + checkMs + elapsed(closeStart);
    const answer = { n: scan.n, bytes: scan.bytes, integrity: check.integrity_check };
    return { answer, openMs, scanMs, checkMs, heldMs, totalMs };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}

/** The baseline: the same open, queries and close on the local file, with `node:sqlite`. */
function localScan(path: string): { answer: ScanAnswer; totalMs: number } {
  const start = performance.now();
  const db = new DatabaseSync(path, { readOnly: true });
  const scan = db.prepare(SCAN).get() as { n: number; bytes: number };
  const check = db.prepare(INTEGRITY_CHECK).get() as { integrity_check: string };
  db.close();
  const totalMs = elapsed(start);
  return {
    answer: { n: scan.n, bytes: scan.bytes, integrity: check.integrity_check },
    totalMs,
  };
}
