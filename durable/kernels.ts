/**
 * The kernels an object knows (docs/protocol.md §3): the highest id applied for each, its next outbox
 * mid, whether it is stale (must flush everything at its next init, docs/protocol.md §6.6), and whether its token
 * could write (readers have a budget of their own, docs/security.md).
 */

export type KernelRecord = {
  kernel: string;
  last_id: number;
  last_seqno: number | null;
  next_mid: number;
  stale: number;
  writer: number;
};

export class Kernels {
  constructor(private readonly sql: SqlStorage) {}

  get(kernel: string): KernelRecord | undefined {
    return this.sql
      .exec<KernelRecord>(`SELECT * FROM kernels WHERE kernel = ?`, kernel)
      .toArray()[0];
  }

  /**
   * The kernel's record, created on its first init; `writer` says whether the token of its
   * latest init could write (a kernel without it counts against the readers' budget).
   */
  ensure(kernel: string, writer = true): KernelRecord {
    this.sql.exec(
      `INSERT INTO kernels (kernel, writer) VALUES (?, ?)
       ON CONFLICT (kernel) DO UPDATE SET writer = excluded.writer`,
      kernel,
      writer ? 1 : 0,
    );
    return this.get(kernel)!;
  }

  /** Kernels known of one kind: those that may write, or the read-only ones. */
  countOfKind(writer: boolean): number {
    return this.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM kernels WHERE writer = ?`, writer ? 1 : 0)
      .one().n;
  }

  /**
   * Kernels of one kind that hold nothing that must survive them, oldest first: no outbox
   * message it has not reported received, no outstanding synchronize, no lock request waiting
   * on it, and not stale (its next init must say flush). Whether one is connected is the
   * caller's to judge.
   */
  reclaimable(writer: boolean, limit: number): string[] {
    return this.sql
      .exec<{ kernel: string }>(
        `SELECT kernel FROM kernels AS k WHERE writer = ? AND stale = 0
           AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.kernel = k.kernel)
           AND NOT EXISTS (SELECT 1 FROM syncs WHERE syncs.kernel = k.kernel)
           AND NOT EXISTS (SELECT 1 FROM locks WHERE locks.kernel = k.kernel)
           AND NOT EXISTS (SELECT 1 FROM groups
             WHERE groups.kernel = k.kernel AND groups.failed = 0)
         ORDER BY rowid LIMIT ?`,
        writer ? 1 : 0,
        limit,
      )
      .toArray()
      .map((row) => row.kernel);
  }

  list(): KernelRecord[] {
    return this.sql.exec<KernelRecord>(`SELECT * FROM kernels ORDER BY kernel`).toArray();
  }

  count(): number {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM kernels`).one().n;
  }

  recordApplied(kernel: string, id: number, seqno: number): void {
    this.sql.exec(
      `UPDATE kernels SET last_id = ?, last_seqno = ? WHERE kernel = ?`,
      id,
      seqno,
      kernel,
    );
  }

  /** Returns the next outbox mid of the kernel and advances it. */
  takeMid(kernel: string): number {
    const taken = this.sql
      .exec<{ mid: number }>(
        `UPDATE kernels SET next_mid = next_mid + 1 WHERE kernel = ? RETURNING next_mid - 1 AS mid`,
        kernel,
      )
      .toArray()[0];
    if (taken) return taken.mid;
    this.ensure(kernel);
    return this.takeMid(kernel);
  }

  markStale(kernel: string): void {
    this.sql.exec(`UPDATE kernels SET stale = 1 WHERE kernel = ?`, kernel);
  }

  clearStale(kernel: string): void {
    this.sql.exec(`UPDATE kernels SET stale = 0 WHERE kernel = ?`, kernel);
  }

  forget(kernel: string): void {
    this.sql.exec(`DELETE FROM kernels WHERE kernel = ?`, kernel);
  }
}
