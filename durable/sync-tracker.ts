/**
 * Outstanding synchronize requests (docs/protocol.md §6), as a counted barrier (CONTRIBUTING.md §3): each
 * knows the seqno its pages must be durable below and the lock requests it waits for, and
 * completes, through the outbox and exactly once, as soon as both are settled. The lock requests
 * themselves (asking kernels, their answers, deadlines, stale marks) are durable/lock-requests.ts;
 * HTTP callers waiting for their completion are durable/http-sync-waiters.ts.
 *
 * What one request costs does not grow with how many are outstanding: a request is found by its
 * range through an index (its length class, below), budgets and status read kept counts, and a
 * change settles only the requests it can affect: a new request itself, the request of a lock
 * that was answered or dropped, the requests queued behind one that went, the SYNCHRONOUS
 * requests whose range a flushed segment covers.
 */
import {
  HTTP_KERNEL,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
  errorFrame,
  spansOverlap,
  storageFailed,
  type PageSpan,
} from "../schema";
import type { HttpSyncWaiters, SyncOutcome } from "./http-sync-waiters";
import { JOURNAL_HOLDS_UP_TO } from "./journal";
import type { LockRequests } from "./lock-requests";
import type { ObjectEvent } from "./observers";
import type { Outbox } from "./outbox";
import type { PageStore } from "./page-store";
import type { Residency } from "./residency";

export type SyncRequest = {
  seqno: number;
  kernel: string;
  /** Who within kernel `http` asked (docs/security.md); '' for a socket kernel. */
  caller: string;
  id: number;
  offset: number;
  length: number;
  first_page: number;
  end_page: number;
  sync_flags: number;
  since: string;
  /** 0 queued behind an overlapping request of its kernel and caller, 1 started. */
  active: number;
  /** The span's length class: end_page - first_page <= 2^level. */
  level: number;
  /** 1 while started, SYNCHRONOUS, and some of its pages are not in R2 yet. */
  waiting_r2: number;
};

/** A synchronize as a handler admits it; the tracker adds the rest of its row. */
export type NewSyncRequest = Omit<
  SyncRequest,
  "since" | "active" | "first_page" | "end_page" | "caller" | "level" | "waiting_r2"
> & { caller?: string };

export interface TrackerDeps {
  sql: SqlStorage;
  outbox: Outbox;
  residency: Residency;
  store: PageStore;
  locks: LockRequests;
  waiters: HttpSyncWaiters;
  /** Tells observers (durable/observers.ts) once the step commits. */
  observe(event: ObjectEvent): void;
}

/**
 * Outstanding requests overlapping pages [?3, ?4) among those of kernel ?1 and caller ?2 below
 * seqno ?5. A request of level l spans at most 2^l pages, so one overlapping [a, b) starts in
 * (a - 2^l, b): one index range per level in use. The rows such a range holds that do not
 * overlap all share a page, so they are one chain of requests queued behind each other.
 */
const OVERLAPPING_OWN = `SELECT s.seqno FROM sync_levels AS l CROSS JOIN syncs AS s
  ON s.kernel = l.kernel AND s.caller = l.caller AND s.level = l.level
    AND s.first_page > ?3 - (1 << l.level) AND s.first_page < ?4
  WHERE l.kernel = ?1 AND l.caller = ?2 AND s.end_page > ?3 AND s.seqno < ?5 LIMIT 1`;

export class SyncTracker {
  /** Started requests that may be done now (by seqno), checked by `drain`. */
  private maybeDone: number[] = [];
  /** Requests that went: the ones queued behind them may start, checked by `drain`. */
  private gone: SyncRequest[] = [];

  constructor(private readonly deps: TrackerDeps) {}

  /**
   * Takes a synchronize in seqno order. A request that overlaps an outstanding one of the same
   * kernel (and, for kernel `http`, the same caller) is queued behind it (docs/protocol.md §6.8); otherwise it
   * starts at once.
   */
  admit(request: NewSyncRequest, span: PageSpan): void {
    const row: SyncRequest = {
      ...request,
      caller: request.caller ?? "",
      first_page: span.first,
      end_page: span.end,
      since: new Date().toISOString(),
      active: 0,
      level: levelOf(span),
      waiting_r2: 0,
    };
    if (this.overlapsEarlier(row)) {
      this.insert(row);
      return;
    }
    const waitsFor = this.whatItWaitsFor(row);
    if (!waitsFor.r2 && waitsFor.holders.length === 0) {
      // The common case needs no row at all: nothing to queue behind, wait for or lock.
      this.sendCompletion(row);
      return;
    }
    // Written once, as started (not queued, then updated).
    row.active = 1;
    row.waiting_r2 = waitsFor.r2 ? 1 : 0;
    this.insert(row);
    if (this.askLocks(row, waitsFor.holders) === 0 && !waitsFor.r2) this.complete(row);
    this.drain();
  }

  /**
   * Resolves when the HTTP synchronize of this seqno is due; call before `admit`, since a clean
   * range completes inside it. (Used by durable/http-operations.ts.)
   */
  waitFor(seqno: number): Promise<SyncOutcome> {
    return this.deps.waiters.waitFor(seqno);
  }

  /** The HTTP request failed before it was admitted: nothing will resolve its waiter. */
  stopWaiting(seqno: number): void {
    this.deps.waiters.drop(seqno);
  }

  /**
   * The HTTP caller of request `seqno` went away: its waiter is dropped (never settled) and the
   * request withdrawn: its row goes, so it holds no slot of its caller's budget; its lock
   * requests go (nothing else waits on them: each belongs to one request), both the rows whose
   * deadline would mark a silent kernel stale and the copies still queued in those kernels'
   * outboxes; a kernel that already received one may still flush and answer, which is acked
   * and changes nothing. The requests queued behind it may start. Nothing if it is not
   * outstanding (complete, failed, or never admitted).
   */
  withdraw(seqno: number): void {
    this.deps.waiters.drop(seqno);
    const row = this.deps.sql
      .exec<SyncRequest>(`SELECT * FROM syncs WHERE seqno = ?`, seqno)
      .toArray()[0];
    if (!row) return;
    this.remove(row);
    this.drain();
  }

  /**
   * HTTP requests outstanding when the object starts belong to connections that ended with the
   * instance that had them (their waiters were in its memory): withdraw them all, so no slot is
   * held by a caller that cannot be answered.
   */
  dropHttpRequests(): void {
    this.deps.locks.withdrawForRequestsOf(HTTP_KERNEL);
    this.deps.sql.exec(`DELETE FROM syncs WHERE kernel = ?`, HTTP_KERNEL);
    this.deps.sql.exec(`DELETE FROM sync_levels WHERE kernel = ?`, HTTP_KERNEL);
    this.deps.sql.exec(`DELETE FROM sync_totals WHERE kernel = ?`, HTTP_KERNEL);
  }

  /**
   * A segment holding pages of `span` reached R2: the SYNCHRONOUS requests waiting on R2 whose
   * range overlaps it and is now durable stop waiting on it, and complete if nothing else holds
   * them. Requests elsewhere are not looked at.
   */
  flushed(span: PageSpan): void {
    const durable = this.deps.sql
      .exec<{ seqno: number }>(
        `UPDATE syncs AS s SET waiting_r2 = 0
         WHERE s.seqno IN (SELECT w.seqno FROM (SELECT DISTINCT level FROM sync_levels) AS l
             CROSS JOIN syncs AS w ON w.waiting_r2 = 1 AND w.level = l.level
               AND w.first_page > ?1 - (1 << l.level) AND w.first_page < ?2
             WHERE w.end_page > ?1)
           AND NOT ${JOURNAL_HOLDS_UP_TO}
         RETURNING seqno`,
        span.first,
        span.end,
      )
      .toArray();
    for (const { seqno } of durable.sort((a, b) => a.seqno - b.seqno)) this.maybeDone.push(seqno);
    this.drain();
  }

  /** SYNCHRONOUS requests still waiting on R2: the flusher must run now (docs/protocol.md §6.4). */
  needsFlush(): boolean {
    return (
      this.deps.sql.exec(`SELECT 1 FROM syncs WHERE waiting_r2 = 1 LIMIT 1`).toArray().length > 0
    );
  }

  /** Every R2 attempt failed: the SYNCHRONOUS requests waiting on returns below `seqno` fail (docs/protocol.md §6.9). */
  failWaiting(seqno: number, reason: string): void {
    const waiting = this.deps.sql
      .exec<SyncRequest>(
        `SELECT * FROM syncs WHERE waiting_r2 = 1 AND seqno <= ? ORDER BY seqno`,
        seqno,
      )
      .toArray();
    for (const row of waiting) {
      if (this.isDurable(row)) {
        this.deps.sql.exec(`UPDATE syncs SET waiting_r2 = 0 WHERE seqno = ?`, row.seqno);
        this.maybeDone.push(row.seqno);
        continue;
      }
      this.remove(row);
      const error = storageFailed(reason);
      if (row.kernel === HTTP_KERNEL) this.deps.waiters.reject(row.seqno, error);
      else this.deps.outbox.push(row.kernel, errorFrame(error, row.seqno, row.id));
    }
    this.drain();
  }

  /** A kernel answered a lock request: it flushed the pages, the INVALIDATE stops waiting on it. */
  lockCompleted(kernel: string, lockId: number): void {
    const waited = this.deps.locks.completed(kernel, lockId);
    if (waited === null) return;
    this.maybeDone.push(waited);
    this.drain();
  }

  /** Kernels that did not answer a lock request in time are stale (docs/protocol.md §6.6). */
  expireLocks(now: number): void {
    this.maybeDone.push(...this.deps.locks.expire(now));
    this.drain();
  }

  /** A kernel's socket closed: INVALIDATE requests stop waiting on it, it must flush at its next init. */
  disconnected(kernel: string): void {
    this.maybeDone.push(...this.deps.locks.disconnected(kernel));
    this.drain();
  }

  /**
   * A holder of a coherent object departed (docs/protocol.md §10.5): it is stale and holds
   * nothing, and INVALIDATE requests stop waiting on it.
   */
  departed(kernel: string): void {
    this.maybeDone.push(...this.deps.locks.markStale(kernel));
    this.drain();
  }

  /** Terminate: the kernel's requests and the locks waiting on it go with it. */
  forget(kernel: string): void {
    const released = this.deps.locks.forgetKernel(kernel);
    this.deps.sql.exec(`DELETE FROM syncs WHERE kernel = ?`, kernel);
    this.deps.sql.exec(`DELETE FROM sync_levels WHERE kernel = ?`, kernel);
    this.deps.sql.exec(`DELETE FROM sync_totals WHERE kernel = ?`, kernel);
    // Another kernel's INVALIDATE that waited on this one may be done now.
    this.maybeDone.push(...released);
    this.drain();
  }

  list(): SyncRequest[] {
    return this.deps.sql.exec<SyncRequest>(`SELECT * FROM syncs ORDER BY seqno`).toArray();
  }

  /** Outstanding requests of the kernel, or of one caller of it (a kept count, not a scan). */
  countOf(kernel: string, caller?: string): number {
    if (caller === undefined) {
      return (
        this.deps.sql
          .exec<{ n: number }>(`SELECT n FROM sync_totals WHERE kernel = ?`, kernel)
          .toArray()[0]?.n ?? 0
      );
    }
    return this.deps.sql
      .exec<{ n: number }>(
        `SELECT coalesce(sum(n), 0) AS n FROM sync_levels WHERE kernel = ? AND caller = ?`,
        kernel,
        caller,
      )
      .one().n;
  }

  /** Outstanding requests of the object: one kept count per kernel. */
  count(): number {
    return this.deps.sql
      .exec<{ n: number }>(`SELECT coalesce(sum(n), 0) AS n FROM sync_totals`)
      .one().n;
  }

  /**
   * Settles what the changes so far may have moved, until nothing more moves: each started
   * request that may be done is checked alone, and for each request that went, the requests
   * queued behind it start if nothing earlier still overlaps them.
   */
  private drain(): void {
    try {
      this.settleQueued();
    } finally {
      // Left only by a failure, whose transaction rolls back what they were about.
      this.maybeDone = [];
      this.gone = [];
    }
  }

  private settleQueued(): void {
    for (;;) {
      const seqno = this.maybeDone.shift();
      if (seqno !== undefined) {
        const row = this.deps.sql
          .exec<SyncRequest>(
            `SELECT * FROM syncs WHERE seqno = ? AND active = 1 AND waiting_r2 = 0`,
            seqno,
          )
          .toArray()[0];
        if (row && !this.deps.locks.pending(seqno)) this.complete(row);
        continue;
      }
      const went = this.gone.shift();
      if (went === undefined) return;
      for (const next of this.queuedBehind(went)) {
        if (this.overlapsEarlier(next)) continue;
        this.startQueued(next);
      }
    }
  }

  /**
   * Queued requests of the same kernel and caller that overlapped `went`, in seqno order, as
   * far as they can start: once those seen cover its range, any later one overlaps one of them
   * (earlier, still outstanding, or itself settled by `drain` when it goes) and stays queued.
   */
  private queuedBehind(went: SyncRequest): SyncRequest[] {
    // A zero-length range overlaps what strictly contains its point, hence the page at it.
    const span = effectiveSpan(went);
    const covered: PageSpan[] = [];
    const found: SyncRequest[] = [];
    const queued = this.deps.sql.exec<SyncRequest>(
      `SELECT * FROM syncs WHERE kernel = ? AND caller = ? AND active = 0 AND seqno > ?
       ORDER BY seqno`,
      went.kernel,
      went.caller,
      went.seqno,
    );
    for (const row of queued) {
      if (!spansOverlap(span, spanOf(row))) continue;
      found.push(row);
      if (cover(covered, spanOf(row), span)) break;
    }
    return found;
  }

  /** An earlier outstanding request of the same kernel and caller overlaps this one. */
  private overlapsEarlier(row: SyncRequest): boolean {
    return (
      this.deps.sql
        .exec(OVERLAPPING_OWN, row.kernel, row.caller, row.first_page, row.end_page, row.seqno)
        .toArray().length > 0
    );
  }

  private insert(row: SyncRequest): void {
    this.deps.sql.exec(
      `INSERT INTO syncs (seqno, kernel, caller, id, offset, length, first_page, end_page,
         sync_flags, since, active, level, waiting_r2)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      row.seqno,
      row.kernel,
      row.caller,
      row.id,
      row.offset,
      row.length,
      row.first_page,
      row.end_page,
      row.sync_flags,
      row.since,
      row.active,
      row.level,
      row.waiting_r2,
    );
    this.deps.sql.exec(
      `INSERT INTO sync_levels (kernel, caller, level, n) VALUES (?, ?, ?, 1)
       ON CONFLICT (kernel, caller, level) DO UPDATE SET n = n + 1`,
      row.kernel,
      row.caller,
      row.level,
    );
    this.deps.sql.exec(
      `INSERT INTO sync_totals (kernel, n) VALUES (?, 1)
       ON CONFLICT (kernel) DO UPDATE SET n = n + 1`,
      row.kernel,
    );
  }

  /**
   * What a request starting now waits for: R2, if it is SYNCHRONOUS and some of its pages are
   * not there yet; for INVALIDATE, the other kernels that may cache its pages.
   */
  private whatItWaitsFor(row: SyncRequest): { r2: boolean; holders: string[] } {
    return {
      r2: (row.sync_flags & VM_SYNC_SYNCHRONOUS) !== 0 && !this.isDurable(row),
      holders:
        (row.sync_flags & VM_SYNC_INVALIDATE) === 0
          ? []
          : this.deps.residency.holdersOf(spanOf(row), row.kernel),
    };
  }

  /** A queued request whose way is clear starts, and completes at once if it waits for nothing. */
  private startQueued(row: SyncRequest): void {
    const waitsFor = this.whatItWaitsFor(row);
    row.active = 1;
    row.waiting_r2 = waitsFor.r2 ? 1 : 0;
    this.deps.sql.exec(
      `UPDATE syncs SET active = 1, waiting_r2 = ? WHERE seqno = ?`,
      row.waiting_r2,
      row.seqno,
    );
    if (this.askLocks(row, waitsFor.holders) === 0 && !waitsFor.r2) this.complete(row);
  }

  /**
   * INVALIDATE: asks the other kernels that may cache the range to flush it (durable/lock-requests.ts);
   * the requests a stale mark released may be done. Returns how many lock requests were sent.
   */
  private askLocks(row: SyncRequest, holders: string[]): number {
    const { sent, released } = this.deps.locks.ask(row.seqno, spanOf(row), holders);
    this.maybeDone.push(...released);
    return sent;
  }

  private isDurable(row: SyncRequest): boolean {
    return this.deps.store.isDurableUpTo(spanOf(row), row.seqno);
  }

  private complete(row: SyncRequest): void {
    this.remove(row);
    this.sendCompletion(row);
  }

  private sendCompletion(row: SyncRequest): void {
    const { offset, length, seqno } = row;
    this.deps.observe({
      type: "completion",
      kernel: row.kernel,
      id: row.id,
      seqno,
      offset,
      length,
    });
    if (row.kernel === HTTP_KERNEL) {
      this.deps.waiters.resolve(seqno, { offset, length, seqno });
      return;
    }
    this.deps.outbox.push(row.kernel, {
      type: "memory_object_synchronize_completed",
      reply_to: row.id,
      seqno,
      offset,
      length,
    });
  }

  /**
   * The request goes (complete, failed or withdrawn): its row, its counts, and any lock request
   * still out for it; the requests queued behind it are looked at by `drain`.
   */
  private remove(row: SyncRequest): void {
    this.deps.sql.exec(`DELETE FROM syncs WHERE seqno = ?`, row.seqno);
    this.deps.locks.withdrawFor(row.seqno);
    this.uncount(
      `DELETE FROM sync_levels WHERE kernel = ?1 AND caller = ?2 AND level = ?3 AND n = 1`,
      `UPDATE sync_levels SET n = n - 1 WHERE kernel = ?1 AND caller = ?2 AND level = ?3`,
      row.kernel,
      row.caller,
      row.level,
    );
    this.uncount(
      `DELETE FROM sync_totals WHERE kernel = ?1 AND n = 1`,
      `UPDATE sync_totals SET n = n - 1 WHERE kernel = ?1`,
      row.kernel,
    );
    this.gone.push(row);
  }

  /** Takes one from a kept count: its row goes with the last one (callers come and go). */
  private uncount(dropLast: string, decrement: string, ...key: (string | number)[]): void {
    if (this.deps.sql.exec(dropLast, ...key).rowsWritten === 0)
      this.deps.sql.exec(decrement, ...key);
  }
}

function spanOf(row: SyncRequest): PageSpan {
  return { first: row.first_page, end: row.end_page };
}

/** The range whose overlap `queuedBehind` looks for: a zero-length one as the page at its point. */
function effectiveSpan(row: SyncRequest): PageSpan {
  return row.end_page > row.first_page
    ? spanOf(row)
    : { first: row.first_page, end: row.first_page + 1 };
}

/**
 * The length class of a span: the least `level` with length <= 2^level (0 for one page or none).
 *
 * @example levelOf({ first: 8, end: 13 }); // 3: five pages, at most 2^3
 */
function levelOf(span: PageSpan): number {
  let level = 0;
  while (2 ** level < span.end - span.first) level++;
  return level;
}

/**
 * Adds `add` to `covered` (disjoint, sorted spans inside `within`) and says whether they now
 * cover all of `within`.
 */
function cover(covered: PageSpan[], add: PageSpan, within: PageSpan): boolean {
  const part = { first: Math.max(add.first, within.first), end: Math.min(add.end, within.end) };
  if (part.first < part.end) {
    covered.push(part);
    covered.sort((a, b) => a.first - b.first);
    const merged: PageSpan[] = [];
    for (const span of covered) {
      const last = merged[merged.length - 1];
      if (last && span.first <= last.end) last.end = Math.max(last.end, span.end);
      else merged.push({ ...span });
    }
    covered.splice(0, covered.length, ...merged);
  }
  return covered.length === 1 && covered[0]!.first <= within.first && covered[0]!.end >= within.end;
}
