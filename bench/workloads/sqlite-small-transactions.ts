/**
 * W10: 1,000 small transactions on a 16 MiB database opened with `openDatabase` (its writer,
 * default durability "journal"), against what putting the whole file to R2 at every commit would
 * cost: one 16 MiB put through baseline (a), measured a few times in the same run, times the
 * number of transactions. Extrapolated, not run: 1,000 real 16 MiB puts would take minutes.
 */
import { journalObjectOf, openDatabase } from "../../client/sqlite";
import { timedPut } from "./bulk-writes";
import {
  FrameCounter,
  countersOf,
  putDatabase,
  removeObjects,
  type ObjectCounters,
} from "../sqlite-fixtures";
import { freshObject } from "../settings";
import { ms } from "../statistics";
import { elapsed } from "../timing";

export interface SmallTransactions {
  transactions: number;
  /** All transactions, from the first BEGIN to the last COMMIT's return, ms. */
  elapsedMs: number;
  latencies: number[];
  /** Baseline (a): each 16 MiB put, ms. */
  puts: number[];
  /** Messages the manager numbered (seqnos) per transaction, on the database and its journal. */
  seqnosPerTransaction: number;
  journalSeqnosPerTransaction: number;
  framesSentPerTransaction: number;
  framesReceivedPerTransaction: number;
  /** The database object's counters before and after the timed transactions. */
  before: ObjectCounters;
  after: ObjectCounters;
}

/**
 * Puts `database` into a fresh object, opens it as its writer, runs `transactions` transactions
 * (BEGIN, one INSERT of a small row and one UPDATE of an existing row, COMMIT), and measures
 * `puts` 16 MiB puts of the same bytes for the baseline (before and after, alternating).
 */
export async function smallTransactions(
  url: string,
  database: Uint8Array<ArrayBuffer>,
  transactions: number,
  puts: number,
  log: (line: string) => void,
): Promise<SmallTransactions> {
  const object = freshObject("w10");
  await putDatabase(url, object, database);
  const putTimes: number[] = [];
  const put = async () => putTimes.push(await timedPut(url, database));
  await timedPut(url, database); // warm-up
  for (let i = 0; i < Math.ceil(puts / 2); i++) await put();
  const frames = new FrameCounter();
  const db = await openDatabase({ url, object, WebSocket: frames.WebSocket });
  try {
    const [{ rows }] = (await db.query("SELECT count(*) AS rows FROM t")) as [{ rows: number }];
    const insert = db.prepare("INSERT INTO t (b) VALUES (?)");
    const update = db.prepare("UPDATE t SET b = ? WHERE id = ?");
    const transaction = async (i: number) => {
      await db.exec("BEGIN");
      await insert.run([`small transaction ${i}`]);
      await update.run([`updated by ${i}`, 1 + ((i * 7919) % rows)]);
      await db.exec("COMMIT");
    };
    for (let i = 0; i < 10; i++) await transaction(i); // warm-up: the pages they touch
    const before = await countersOf(url, object);
    const journalBefore = await countersOf(url, journalObjectOf(object));
    const [sent, received] = [frames.sent, frames.received];
    const latencies: number[] = [];
    const start = performance.now();
    for (let i = 0; i < transactions; i++) {
      const one = performance.now();
      await transaction(10 + i);
      latencies.push(elapsed(one));
    }
    const elapsedMs = elapsed(start);
    const after = await countersOf(url, object);
    const journalAfter = await countersOf(url, journalObjectOf(object));
    const [{ total }] = (await db.query("SELECT count(*) AS total FROM t")) as [{ total: number }];
    if (total !== rows + 10 + transactions) throw new Error(`W10: ${total} rows after the run`);
    log(`${transactions} transactions in ${ms(elapsedMs)}`);
    for (let i = Math.ceil(puts / 2); i < puts; i++) await put();
    log(`16 MiB puts: ${putTimes.map(ms).join(", ")}`);
    return {
      transactions,
      elapsedMs,
      latencies,
      puts: putTimes,
      seqnosPerTransaction: (after.seqno - before.seqno) / transactions,
      journalSeqnosPerTransaction: (journalAfter.seqno - journalBefore.seqno) / transactions,
      framesSentPerTransaction: (frames.sent - sent) / transactions,
      framesReceivedPerTransaction: (frames.received - received) / transactions,
      before,
      after,
    };
  } finally {
    await db.close();
    await removeObjects(url, object);
  }
}
