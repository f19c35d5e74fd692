/**
 * Atomic groups (docs/protocol.md §12): the one module that writes the `staged` and `groups`
 * tables. A grouped return or set_size is staged here, durable but invisible to every read and
 * flush; the synchronize naming the group takes the staged messages out in the order they were
 * sent and applies them at its own seqno (durable/page-store.ts), all in its step's transaction,
 * so readers see all of a group or none of it, across restarts. Discarding a group is a delete.
 */
import {
  KERN_RESOURCE_SHORTAGE,
  MAX_OPEN_GROUPS,
  ProtocolError,
  type ErrorCode,
  type KernReturn,
  type PageSpan,
} from "../schema";

/** One staged message of a group, as the commit applies it. */
export type StagedStep =
  /** The staged pages with rowids in (after, through], in order: one or more returns. */
  | { pages: { after: number; through: number } }
  /** A staged set_size. */
  | { size: number };

/**
 * A refusal with an effect that outlives it (docs/protocol.md §12, the one kind of `error` that
 * changes something): the message's own changes roll back as for any error; `effect` then runs
 * in a transaction of its own before the error goes out.
 */
export class GroupRefusal extends ProtocolError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly effect: () => void,
    kernReturn: KernReturn = KERN_RESOURCE_SHORTAGE,
  ) {
    super(kernReturn, code, message);
  }
}

export class AtomicGroups {
  /** Pages staged in every open group, counted once and then kept (null: count again). */
  private staged: number | null = null;

  constructor(private readonly sql: SqlStorage) {}

  /** Stages the pages of a grouped dirty return, in a group `open` has opened. */
  stagePages(
    kernel: string,
    group: number,
    firstPage: number,
    pageSize: number,
    data: Uint8Array,
  ): void {
    const pages = data.byteLength / pageSize;
    // One statement per frame, the pages cut out of the frame by SQLite (as durable/journal.ts).
    this.sql.exec(
      `WITH RECURSIVE slot (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slot WHERE i + 1 < ?3)
       INSERT INTO staged (kernel, grp, page, data)
       SELECT ?1, ?2, ?4 + i, substr(?5, i * ?6 + 1, ?6) FROM slot`,
      kernel,
      group,
      pages,
      firstPage,
      data,
      pageSize,
    );
    this.sql.exec(
      `UPDATE groups SET pages = pages + ? WHERE kernel = ? AND grp = ?`,
      pages,
      kernel,
      group,
    );
    if (this.staged !== null) this.staged += pages;
  }

  /** Stages a grouped set_size, in a group `open` has opened. */
  stageSize(kernel: string, group: number, size: number): void {
    this.sql.exec(`INSERT INTO staged (kernel, grp, size) VALUES (?, ?, ?)`, kernel, group, size);
  }

  /**
   * Before a grouped message is staged: opens the group if it is not open yet. Refuses a group a
   * refusal discarded, and a new group past MAX_OPEN_GROUPS for the kernel.
   */
  open(kernel: string, group: number): void {
    const row = this.sql
      .exec<{ failed: number }>(
        `SELECT failed FROM groups WHERE kernel = ? AND grp = ?`,
        kernel,
        group,
      )
      .toArray()[0];
    if (row?.failed === 1) throw discarded(group);
    if (row) return;
    const open = this.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM groups WHERE kernel = ?`, kernel)
      .one().n;
    if (open >= MAX_OPEN_GROUPS) {
      throw new ProtocolError(
        KERN_RESOURCE_SHORTAGE,
        "too_many_groups",
        `this kernel already has ${MAX_OPEN_GROUPS} open atomic groups (MAX_OPEN_GROUPS); commit or abandon one first`,
      );
    }
    this.sql.exec(
      `INSERT INTO groups (kernel, grp, pages, failed) VALUES (?, ?, 0, 0)`,
      kernel,
      group,
    );
  }

  /**
   * A grouped message was refused (docs/protocol.md §12): the group is discarded, and its later
   * messages and its synchronize are refused until the number is free again.
   */
  fail(kernel: string, group: number): void {
    this.discard(kernel, group);
    // Marks are bounded too: a kernel past MAX_OPEN_GROUPS of them (refusals of groups it could
    // not even open) gets no more; such a group's synchronize then commits nothing.
    const failed = this.sql
      .exec<{ n: number }>(
        `SELECT count(*) AS n FROM groups WHERE kernel = ? AND failed = 1`,
        kernel,
      )
      .one().n;
    if (failed >= MAX_OPEN_GROUPS) return;
    this.sql.exec(
      `INSERT INTO groups (kernel, grp, pages, failed) VALUES (?, ?, 0, 1)`,
      kernel,
      group,
    );
  }

  /**
   * Before a synchronize commits `group`: a group a refusal discarded is refused once more, at
   * its synchronize, and its number is free after that.
   */
  checkCommittable(kernel: string, group: number): void {
    const failed = this.sql
      .exec(`SELECT 1 FROM groups WHERE kernel = ? AND grp = ? AND failed = 1`, kernel, group)
      .toArray().length;
    if (failed === 0) return;
    throw new GroupRefusal(
      "group_discarded",
      `atomic group ${group} was discarded by an earlier refusal: nothing of it is committed; the number is free again`,
      () => this.discard(kernel, group),
    );
  }

  /**
   * The group's staged messages, in the order sent, for the commit: runs of pages between
   * set_size steps. Call `discard` once they are applied.
   */
  stepsOf(kernel: string, group: number): StagedStep[] {
    const steps: StagedStep[] = [];
    let after = 0;
    const last = this.sql
      .exec<{ last: number | null }>(
        `SELECT max(rowid) AS last FROM staged WHERE kernel = ? AND grp = ?`,
        kernel,
        group,
      )
      .one().last;
    if (last === null) return steps;
    for (const { rowid, size } of this.sql.exec<{ rowid: number; size: number }>(
      `SELECT rowid, size FROM staged WHERE kernel = ? AND grp = ? AND size IS NOT NULL
       ORDER BY rowid`,
      kernel,
      group,
    )) {
      if (rowid - 1 > after) steps.push({ pages: { after, through: rowid - 1 } });
      steps.push({ size });
      after = rowid;
    }
    if (last > after) steps.push({ pages: { after, through: last } });
    return steps;
  }

  /** The pages the group staged, as runs in page order (the fence of a coherent commit). */
  stagedRuns(kernel: string, group: number): PageSpan[] {
    const runs: PageSpan[] = [];
    for (const { page } of this.sql.exec<{ page: number }>(
      `SELECT DISTINCT page FROM staged WHERE kernel = ? AND grp = ? AND page IS NOT NULL
       ORDER BY page`,
      kernel,
      group,
    )) {
      const last = runs.at(-1);
      if (last && last.end === page) last.end++;
      else runs.push({ first: page, end: page + 1 });
    }
    return runs;
  }

  /** The sizes the group's set_size messages stage, in the order sent. */
  stagedSizes(kernel: string, group: number): number[] {
    return this.sql
      .exec<{ size: number }>(
        `SELECT size FROM staged WHERE kernel = ? AND grp = ? AND size IS NOT NULL ORDER BY rowid`,
        kernel,
        group,
      )
      .toArray()
      .map((row) => row.size);
  }

  /** Drops the group and what it staged (committed, abandoned, or refused). */
  discard(kernel: string, group: number): void {
    this.sql.exec(`DELETE FROM staged WHERE kernel = ? AND grp = ?`, kernel, group);
    this.sql.exec(`DELETE FROM groups WHERE kernel = ? AND grp = ?`, kernel, group);
    this.staged = null;
  }

  /** At the kernel's init: every group it does not name in `open_groups` is abandoned. */
  discardAllBut(kernel: string, keep: number[]): void {
    const kept = JSON.stringify(keep);
    const abandoned = `kernel = ?1 AND grp NOT IN (SELECT value FROM json_each(?2))`;
    this.sql.exec(`DELETE FROM staged WHERE ${abandoned}`, kernel, kept);
    this.sql.exec(`DELETE FROM groups WHERE ${abandoned}`, kernel, kept);
    this.staged = null;
  }

  /** The kernel is forgotten (terminate, or its place given to another): its groups go. */
  forget(kernel: string): void {
    this.discardAllBut(kernel, []);
  }

  /** Pages staged in every open group: they count against the journal's room. */
  stagedPages(): number {
    this.staged ??= this.sql
      .exec<{ n: number }>(`SELECT coalesce(sum(pages), 0) AS n FROM groups`)
      .one().n;
    return this.staged;
  }

  /** A transaction rolled back, or the tables were cleared: count again. */
  forgetCounts(): void {
    this.staged = null;
  }
}

function discarded(group: number): ProtocolError {
  return new ProtocolError(
    KERN_RESOURCE_SHORTAGE,
    "group_discarded",
    `atomic group ${group} was discarded by an earlier refusal: its messages are refused until its synchronize`,
  );
}
