/**
 * W8 and W8b: the latency of a 1-row INSERT transaction on a database opened with `openDatabase`,
 * against W2's p50 (one dirty page + SYNCHRONOUS msync) in the same run. W8 commits as an atomic
 * group (docs/sqlite.md); W8b (`atomicCommits: false`) keeps SQLite's rollback journal for every
 * commit, as on a disk without atomic writes.
 */
import { journalObjectOf, openDatabase } from "../../client/sqlite";
import { CREATE_TABLE, FrameCounter, countersOf, removeObjects } from "../sqlite-fixtures";
import { freshObject } from "../settings";
import { elapsed } from "../timing";

export interface CommitOptions {
  durability: "journal" | "r2";
  atomicCommits: boolean;
}

export interface CommitLatencies {
  latencies: number[];
  commits: number;
  /** Per timed commit: frames the client sent and received (both objects' sockets). */
  framesSentPerCommit: number;
  framesReceivedPerCommit: number;
  /** Per timed commit: messages the manager numbered (seqnos), on the database and on its journal. */
  seqnosPerCommit: number;
  journalSeqnosPerCommit: number;
}

/**
 * Opens a fresh database as its writer, makes its table and runs `warmups` untimed inserts (the
 * first commit of an empty database always goes through the journal), then times `samples`
 * autocommit INSERTs of one small row each, from the call to its return (COMMIT returned).
 */
export async function insertTransactions(
  url: string,
  samples: number,
  warmups: number,
  options: CommitOptions,
): Promise<CommitLatencies> {
  const object = freshObject("w8");
  const frames = new FrameCounter();
  const db = await openDatabase({ url, object, ...options, WebSocket: frames.WebSocket });
  try {
    await db.exec(CREATE_TABLE);
    const insert = db.prepare("INSERT INTO t (b) VALUES (?)");
    const row = (i: number) => [`row ${i} of a small transaction`];
    for (let i = 0; i < warmups; i++) await insert.run(row(i));
    const before = await countersOf(url, object);
    const journalBefore = await countersOf(url, journalObjectOf(object));
    const [sent, received] = [frames.sent, frames.received];
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      const start = performance.now();
      await insert.run(row(warmups + i));
      latencies.push(elapsed(start));
    }
    const after = await countersOf(url, object);
    const journalAfter = await countersOf(url, journalObjectOf(object));
    const [{ n }] = (await db.query("SELECT count(*) AS n FROM t")) as [{ n: number }];
    if (n !== warmups + samples) throw new Error(`W8: ${n} rows, not ${warmups + samples}`);
    return {
      latencies,
      commits: samples,
      framesSentPerCommit: (frames.sent - sent) / samples,
      framesReceivedPerCommit: (frames.received - received) / samples,
      seqnosPerCommit: (after.seqno - before.seqno) / samples,
      journalSeqnosPerCommit: (journalAfter.seqno - journalBefore.seqno) / samples,
    };
  } finally {
    await db.close();
    await removeObjects(url, object);
  }
}
