/**
 * The kernels an object knows (protocol.md §3): the highest id applied for each, its next outbox
 * mid, and whether it is stale (must flush everything at its next init, §6.6).
 */

export type KernelRecord = {
  kernel: string;
  last_id: number;
  last_seqno: number | null;
  next_mid: number;
  stale: number;
};

export class Kernels {
  constructor(private readonly sql: SqlStorage) {}

  get(kernel: string): KernelRecord | undefined {
    return this.sql
      .exec<KernelRecord>(`SELECT * FROM kernels WHERE kernel = ?`, kernel)
      .toArray()[0];
  }

  /** The kernel's record, created on its first init. */
  ensure(kernel: string): KernelRecord {
    this.sql.exec(
      `INSERT INTO kernels (kernel) VALUES (?) ON CONFLICT (kernel) DO NOTHING`,
      kernel,
    );
    return this.get(kernel)!;
  }

  list(): KernelRecord[] {
    return this.sql.exec<KernelRecord>(`SELECT * FROM kernels ORDER BY kernel`).toArray();
  }

  count(): number {
    return this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM kernels`).one().n;
  }

  lastId(kernel: string): number {
    return this.get(kernel)?.last_id ?? 0;
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
