/**
 * Outstanding synchronize requests (protocol.md §6), as a counted barrier (style.md §3): each
 * knows the seqno its pages must be durable below and the lock requests it waits for, and
 * completes, through the outbox and exactly once, as soon as both are settled.
 */
import {
  HTTP_KERNEL,
  KERN_ABORTED,
  KERN_MEMORY_ERROR,
  MEMORY_OBJECT_RETURN_DIRTY,
  ProtocolError,
  VM_PROT_NO_CHANGE,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
  spansOverlap,
  type PageSpan,
} from "../schema";
import type { Kernels } from "./kernels";
import type { Meta } from "./meta";
import type { Outbox } from "./outbox";
import { JOURNAL_HOLDS_BELOW, type PageStore } from "./page-store";
import type { Residency } from "./residency";

export type SyncRequest = {
  seqno: number;
  kernel: string;
  id: number;
  offset: number;
  length: number;
  first_page: number;
  end_page: number;
  sync_flags: number;
  since: string;
  active: number;
};

/** What an HTTP synchronize resolves with once its completion is due. */
export interface SyncOutcome {
  offset: number;
  length: number;
  seqno: number;
}

export interface TrackerDeps {
  sql: SqlStorage;
  meta: Meta;
  kernels: Kernels;
  outbox: Outbox;
  residency: Residency;
  store: PageStore;
  isConnected(kernel: string): boolean;
  pageSize(): number;
  lockTimeoutMs: number;
}

export class SyncTracker {
  /** HTTP requests waiting in memory; a restart loses them, and their HTTP connections with them. */
  private readonly httpWaiters = new Map<
    number,
    { resolve(outcome: SyncOutcome): void; reject(error: ProtocolError): void }
  >();

  constructor(private readonly deps: TrackerDeps) {}

  /**
   * Takes a synchronize in seqno order. A request that overlaps an outstanding one of the same
   * kernel is queued behind it (§6.8); otherwise it starts at once.
   */
  admit(
    request: Omit<SyncRequest, "since" | "active" | "first_page" | "end_page">,
    span: PageSpan,
  ): void {
    const row: SyncRequest = {
      ...request,
      first_page: span.first,
      end_page: span.end,
      since: new Date().toISOString(),
      active: 0,
    };
    if (this.isDoneOnArrival(row)) {
      // The common case needs no row at all: nothing to queue behind, wait for or lock.
      this.sendCompletion(row);
      return;
    }
    this.deps.sql.exec(
      `INSERT INTO syncs (seqno, kernel, id, offset, length, first_page, end_page, sync_flags, since, active)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
      row.seqno,
      row.kernel,
      row.id,
      row.offset,
      row.length,
      row.first_page,
      row.end_page,
      row.sync_flags,
      row.since,
    );
    this.settle();
  }

  /** Resolves when the HTTP synchronize of this seqno is due; call before `admit`, since a clean
   * range completes inside it. */
  waitFor(seqno: number): Promise<SyncOutcome> {
    return new Promise((resolve, reject) => this.httpWaiters.set(seqno, { resolve, reject }));
  }

  /** The HTTP request failed before it was admitted: nothing will resolve its waiter. */
  stopWaiting(seqno: number): void {
    this.httpWaiters.delete(seqno);
  }

  /** The object was destroyed: waiting HTTP requests get `error` instead of hanging. */
  abortWaiters(): void {
    const error = new ProtocolError(
      KERN_ABORTED,
      "object_deleted",
      "the object was deleted while this synchronize waited",
    );
    for (const waiter of this.httpWaiters.values()) waiter.reject(error);
    this.httpWaiters.clear();
  }

  /**
   * Starts queued requests whose way is clear and completes every request that is done, until
   * nothing changes. Call after anything a request may wait on has moved.
   */
  settle(): void {
    for (let changed = true; changed;) {
      changed = false;
      const outstanding = this.outstanding();
      if (outstanding.length === 0) return;
      // One query for every request active now; completing one never changes another's answer.
      const doneNow = this.activeDone();
      const done = new Set<number>();
      for (const row of outstanding) {
        let isDone = doneNow.has(row.seqno);
        if (!row.active) {
          const earlier = outstanding.filter((other) => !done.has(other.seqno));
          if (this.blockedByEarlier(row, earlier)) continue;
          this.start(row);
          changed = true;
          isDone = this.isDone(row);
        }
        if (isDone) {
          this.complete(row);
          done.add(row.seqno);
          changed = true;
        }
      }
    }
  }

  /** SYNCHRONOUS requests still waiting on R2: the flusher must run now (§6.4). */
  needsFlush(): boolean {
    const waiting = this.deps.sql
      .exec(
        `SELECT 1 FROM syncs AS s WHERE active = 1 AND (sync_flags & ${VM_SYNC_SYNCHRONOUS}) != 0
           AND ${JOURNAL_HOLDS_BELOW} LIMIT 1`,
      )
      .toArray();
    return waiting.length > 0;
  }

  /**
   * Seqnos of the active requests (or of request `only`) that are done: durable as far as their
   * flags ask (no journal version below their seqno in their range) and waiting on no lock
   * request.
   */
  private activeDone(only?: number): Set<number> {
    const rows = this.deps.sql.exec<{ seqno: number }>(
      `SELECT seqno FROM syncs AS s WHERE active = 1 AND (?1 IS NULL OR seqno = ?1)
         AND ((sync_flags & ${VM_SYNC_SYNCHRONOUS}) = 0 OR NOT ${JOURNAL_HOLDS_BELOW})
         AND NOT EXISTS (SELECT 1 FROM locks WHERE locks.sync_seqno = s.seqno)`,
      only ?? null,
    );
    return new Set(Array.from(rows, (row) => row.seqno));
  }

  /** Every R2 attempt failed: the SYNCHRONOUS requests waiting on returns below `seqno` fail (§6.9). */
  failWaiting(seqno: number, reason: string): void {
    for (const row of this.outstanding()) {
      if (!row.active || row.seqno > seqno || (row.sync_flags & VM_SYNC_SYNCHRONOUS) === 0)
        continue;
      if (this.isDurable(row)) continue;
      this.remove(row);
      if (row.kernel === HTTP_KERNEL) {
        this.takeWaiter(row.seqno)?.reject(
          new ProtocolError(KERN_MEMORY_ERROR, "storage_failed", reason),
        );
      } else {
        this.deps.outbox.push(row.kernel, {
          type: "error",
          reply_to: row.id,
          seqno: row.seqno,
          kern_return: KERN_MEMORY_ERROR,
          code: "storage_failed",
          message: reason,
        });
      }
    }
    this.settle();
  }

  /** A kernel answered a lock request: it flushed the pages, the INVALIDATE stops waiting on it. */
  lockCompleted(kernel: string, lockId: number): void {
    const lock = this.deps.sql
      .exec<{ first_page: number; end_page: number }>(
        `DELETE FROM locks WHERE lock_id = ? AND kernel = ? RETURNING first_page, end_page`,
        lockId,
        kernel,
      )
      .toArray()[0];
    if (lock)
      this.deps.residency.forgetSpan(kernel, { first: lock.first_page, end: lock.end_page });
    this.settle();
  }

  /** Kernels that did not answer a lock request in time are stale (§6.6). */
  expireLocks(now: number): void {
    const late = this.deps.sql
      .exec<{ kernel: string }>(`SELECT DISTINCT kernel FROM locks WHERE deadline <= ?`, now)
      .toArray();
    for (const { kernel } of late) this.markStale(kernel);
    if (late.length > 0) this.settle();
  }

  /** A kernel's socket closed: INVALIDATE requests stop waiting on it, it must flush at its next init. */
  disconnected(kernel: string): void {
    const waited = this.deps.sql
      .exec(`SELECT 1 FROM locks WHERE kernel = ? LIMIT 1`, kernel)
      .toArray();
    if (waited.length === 0) return;
    this.markStale(kernel);
    this.settle();
  }

  /** Terminate: the kernel's requests and the locks waiting on it go with it. */
  forget(kernel: string): void {
    this.deps.sql.exec(
      `DELETE FROM locks WHERE kernel = ? OR sync_seqno IN (SELECT seqno FROM syncs WHERE kernel = ?)`,
      kernel,
      kernel,
    );
    this.deps.sql.exec(`DELETE FROM syncs WHERE kernel = ?`, kernel);
    this.settle();
  }

  nextLockDeadline(): number | null {
    return this.deps.sql.exec<{ at: number | null }>(`SELECT min(deadline) AS at FROM locks`).one()
      .at;
  }

  list(): SyncRequest[] {
    return this.outstanding();
  }

  countOf(kernel: string): number {
    return this.deps.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM syncs WHERE kernel = ?`, kernel)
      .one().n;
  }

  count(): number {
    return this.deps.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM syncs`).one().n;
  }

  private outstanding(): SyncRequest[] {
    return this.deps.sql.exec<SyncRequest>(`SELECT * FROM syncs ORDER BY seqno`).toArray();
  }

  /** An earlier outstanding request of the same kernel overlaps this one. */
  private blockedByEarlier(row: SyncRequest, outstanding: SyncRequest[]): boolean {
    const span = spanOf(row);
    return outstanding.some(
      (other) =>
        other.kernel === row.kernel && other.seqno < row.seqno && spansOverlap(spanOf(other), span),
    );
  }

  /** Starting a request: INVALIDATE sends lock requests to the other kernels that may cache it. */
  private start(row: SyncRequest): void {
    this.deps.sql.exec(`UPDATE syncs SET active = 1 WHERE seqno = ?`, row.seqno);
    row.active = 1;
    if ((row.sync_flags & VM_SYNC_INVALIDATE) === 0) return;
    const span = spanOf(row);
    const pageSize = this.deps.pageSize();
    for (const kernel of this.deps.residency.holdersOf(span, row.kernel)) {
      const stale = this.deps.kernels.get(kernel)?.stale === 1;
      if (stale || !this.deps.isConnected(kernel)) {
        this.markStale(kernel);
        continue;
      }
      const lockId = this.deps.meta.take("next_lock_id", 1);
      this.deps.sql.exec(
        `INSERT INTO locks (lock_id, sync_seqno, kernel, first_page, end_page, deadline)
         VALUES (?, ?, ?, ?, ?, ?)`,
        lockId,
        row.seqno,
        kernel,
        span.first,
        span.end,
        Date.now() + this.deps.lockTimeoutMs,
      );
      this.deps.outbox.push(kernel, {
        type: "memory_object_lock_request",
        lock_id: lockId,
        offset: span.first * pageSize,
        length: (span.end - span.first) * pageSize,
        should_return: MEMORY_OBJECT_RETURN_DIRTY,
        should_flush: true,
        lock_value: VM_PROT_NO_CHANGE,
      });
    }
  }

  /**
   * A request that overlaps none of its kernel's outstanding ones, whose range is durable as far
   * as its flags ask, and that has no other kernel to invalidate, is complete as it arrives.
   */
  private isDoneOnArrival(row: SyncRequest): boolean {
    const span = spanOf(row);
    if ((row.sync_flags & VM_SYNC_SYNCHRONOUS) !== 0 && !this.isDurable(row)) return false;
    if (
      (row.sync_flags & VM_SYNC_INVALIDATE) !== 0 &&
      this.deps.residency.holdersOf(span, row.kernel).length > 0
    ) {
      return false;
    }
    const overlapping = this.deps.sql
      .exec(
        `SELECT 1 FROM syncs WHERE kernel = ? AND first_page < ? AND end_page > ? LIMIT 1`,
        row.kernel,
        span.end,
        span.first,
      )
      .toArray();
    return overlapping.length === 0;
  }

  /** One request, just started: the same test as `activeDone`, for its row alone. */
  private isDone(row: SyncRequest): boolean {
    return this.activeDone(row.seqno).has(row.seqno);
  }

  private isDurable(row: SyncRequest): boolean {
    return this.deps.store.isDurableBelow(spanOf(row), row.seqno);
  }

  private complete(row: SyncRequest): void {
    this.remove(row);
    this.sendCompletion(row);
  }

  private sendCompletion(row: SyncRequest): void {
    const { offset, length, seqno } = row;
    if (row.kernel === HTTP_KERNEL) {
      this.takeWaiter(seqno)?.resolve({ offset, length, seqno });
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

  private remove(row: SyncRequest): void {
    this.deps.sql.exec(`DELETE FROM syncs WHERE seqno = ?`, row.seqno);
    this.deps.sql.exec(`DELETE FROM locks WHERE sync_seqno = ?`, row.seqno);
  }

  private takeWaiter(seqno: number) {
    const waiter = this.httpWaiters.get(seqno);
    this.httpWaiters.delete(seqno);
    return waiter;
  }

  /** The kernel may hold stale pages: it flushes everything at its next init (§6.6). */
  private markStale(kernel: string): void {
    this.deps.kernels.markStale(kernel);
    this.deps.residency.forgetAll(kernel);
    // No lock request stays queued for a stale kernel (§6.6): its flush: true covers them.
    const locks = this.deps.sql
      .exec<{ lock_id: number }>(`DELETE FROM locks WHERE kernel = ? RETURNING lock_id`, kernel)
      .toArray();
    this.deps.outbox.withdrawLockRequests(
      kernel,
      locks.map((lock) => lock.lock_id),
    );
  }
}

function spanOf(row: SyncRequest): PageSpan {
  return { first: row.first_page, end: row.end_page };
}
