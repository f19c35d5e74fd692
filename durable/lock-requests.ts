/**
 * The lock requests an INVALIDATE waits for (docs/protocol.md §6.6), kept apart from the
 * synchronize tracker as libpager keeps lock handling in its own file: asking each other kernel
 * that may cache the range to flush it, taking its `lock_completed`, and marking a kernel stale
 * when it cannot answer (disconnected) or does not in time (the lock's deadline).
 *
 * This module alone writes the `locks` table. It never completes a request itself: each change
 * returns the synchronize requests (by seqno) that stopped waiting on a lock, and the tracker
 * (durable/sync-tracker.ts) decides whether they are done.
 */
import {
  MEMORY_OBJECT_RETURN_DIRTY,
  VM_PROT_NO_CHANGE,
  VM_PROT_WRITE,
  type PageSpan,
} from "../schema";
import type { Holders } from "./holders";
import type { Kernels } from "./kernels";
import type { Limits } from "./limits";
import type { Meta } from "./meta";
import type { ObjectEvent } from "./observers";
import type { Outbox } from "./outbox";
import type { Residency } from "./residency";

export interface LockRequestDeps {
  sql: SqlStorage;
  meta: Meta;
  kernels: Kernels;
  outbox: Outbox;
  residency: Residency;
  holders: Holders;
  isConnected(kernel: string): boolean;
  pageSize(): number;
  /** Read at each lock request, for `lockTimeoutMs`. */
  limits: Pick<Limits, "lockTimeoutMs">;
  /** Tells observers (durable/observers.ts) once the step commits. */
  observe(event: ObjectEvent): void;
}

/** What `ask` did: lock requests sent, and requests released by the stale marks it made. */
export interface Asked {
  sent: number;
  released: number[];
}

export class LockRequests {
  /** The earliest deadline of the lock requests made since `takeNewDeadline` last ran. */
  private newDeadline: number | null = null;

  constructor(private readonly deps: LockRequestDeps) {}

  /**
   * The earliest deadline set since the last call, for the alarm (durable/upkeep.ts). One from a
   * step that rolled back only makes an alarm come early, which finds nothing due.
   */
  takeNewDeadline(): number | null {
    const at = this.newDeadline;
    this.newDeadline = null;
    return at;
  }

  /**
   * INVALIDATE of request `syncSeqno` over `span`: a lock request to each of `holders` (other
   * kernels that may cache the range), or, for one that is disconnected or already stale, the
   * stale mark instead.
   */
  ask(syncSeqno: number, span: PageSpan, holders: string[]): Asked {
    const asked: Asked = { sent: 0, released: [] };
    for (const kernel of holders) {
      const stale = this.deps.kernels.get(kernel)?.stale === 1;
      if (stale || !this.deps.isConnected(kernel)) {
        asked.released.push(...this.markStale(kernel));
        continue;
      }
      this.send(syncSeqno, kernel, span, "invalidate");
      asked.sent++;
    }
    return asked;
  }

  /**
   * A coherent object's grant `grantSeqno` needs `kernel` to give up `span` (docs/protocol.md §10):
   * to return its dirty pages and flush them (`flush`, for a writer), or to keep them read-only
   * (`demote`, for a reader). Sent through the outbox whether the kernel is connected or not:
   * a departure (its socket's close, or the deadline) drops it and the lock with it.
   */
  askHolder(grantSeqno: number, kernel: string, span: PageSpan, purpose: "flush" | "demote"): void {
    this.send(grantSeqno, kernel, span, purpose);
  }

  private send(
    seqno: number,
    kernel: string,
    span: PageSpan,
    purpose: "invalidate" | "flush" | "demote",
  ): void {
    const pageSize = this.deps.pageSize();
    const lockId = this.deps.meta.take("next_lock_id", 1);
    const deadline = Date.now() + this.deps.limits.lockTimeoutMs;
    this.newDeadline = Math.min(this.newDeadline ?? deadline, deadline);
    this.deps.sql.exec(
      `INSERT INTO locks (lock_id, sync_seqno, kernel, first_page, end_page, deadline, purpose)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      lockId,
      seqno,
      kernel,
      span.first,
      span.end,
      deadline,
      purpose,
    );
    const demote = purpose === "demote";
    const offset = span.first * pageSize;
    const length = (span.end - span.first) * pageSize;
    this.deps.observe({ type: "lock_request", kernel, lock_id: lockId, offset, length, purpose });
    this.deps.outbox.push(kernel, {
      type: "memory_object_lock_request",
      lock_id: lockId,
      offset,
      length,
      should_return: MEMORY_OBJECT_RETURN_DIRTY,
      should_flush: !demote,
      lock_value: demote ? VM_PROT_WRITE : VM_PROT_NO_CHANGE,
    });
  }

  /**
   * A kernel answered a lock request: it flushed the pages and no longer caches them, or (a
   * demotion) keeps them read-only. Returns the request or grant that waited on it, or null for
   * a lock that is not outstanding (already dropped, or never sent: acked and nothing changes).
   */
  completed(kernel: string, lockId: number): number | null {
    const lock = this.deps.sql
      .exec<{ sync_seqno: number; first_page: number; end_page: number; purpose: string }>(
        `DELETE FROM locks WHERE lock_id = ? AND kernel = ?
         RETURNING sync_seqno, first_page, end_page, purpose`,
        lockId,
        kernel,
      )
      .toArray()[0];
    if (!lock) return null;
    const span = { first: lock.first_page, end: lock.end_page };
    if (lock.purpose === "demote") {
      this.deps.holders.demote(kernel, span);
    } else {
      this.deps.residency.forgetSpan(kernel, span);
      this.deps.holders.drop(kernel, span);
    }
    return lock.sync_seqno;
  }

  /** Kernels with a lock request unanswered at `now` (a coherent object's departures). */
  lateKernels(now: number): string[] {
    // By the deadline index (DISTINCT in SQL would scan every lock by kernel instead).
    const late = this.deps.sql
      .exec<{ kernel: string }>(`SELECT kernel FROM locks WHERE deadline <= ?`, now)
      .toArray();
    return [...new Set(late.map((lock) => lock.kernel))];
  }

  /** Kernels that did not answer a lock request by `now` are stale; returns the released requests. */
  expire(now: number): number[] {
    return this.lateKernels(now).flatMap((kernel) => this.markStale(kernel));
  }

  /**
   * A kernel's last socket closed: if a lock request waits on it, it can no longer answer, so it
   * is stale (it flushes at its next init). Returns the released requests.
   */
  disconnected(kernel: string): number[] {
    const waited = this.deps.sql
      .exec(`SELECT 1 FROM locks WHERE kernel = ? LIMIT 1`, kernel)
      .toArray();
    return waited.length === 0 ? [] : this.markStale(kernel);
  }

  /** Request `syncSeqno` went: its lock requests go, rows and the copies still queued in outboxes. */
  withdrawFor(syncSeqno: number): void {
    this.withdraw(
      this.deps.sql
        .exec<{ kernel: string; lock_id: number }>(
          `DELETE FROM locks WHERE sync_seqno = ? RETURNING kernel, lock_id`,
          syncSeqno,
        )
        .toArray(),
    );
  }

  /** Every request of `kernel` goes (at start-up, kernel `http`'s): their lock requests with them. */
  withdrawForRequestsOf(kernel: string): void {
    this.withdraw(
      this.deps.sql
        .exec<{ kernel: string; lock_id: number }>(
          `DELETE FROM locks WHERE sync_seqno IN (SELECT seqno FROM syncs WHERE kernel = ?)
           RETURNING kernel, lock_id`,
          kernel,
        )
        .toArray(),
    );
  }

  /**
   * Terminate: the locks waiting on `kernel` go (returned: another kernel's INVALIDATE may be
   * done now), and so do those of its own requests. The copies of the latter queued in other
   * kernels' outboxes stay; an answer to one finds no lock and changes nothing.
   */
  forgetKernel(kernel: string): number[] {
    const released = this.deps.sql
      .exec<{ sync_seqno: number }>(
        `DELETE FROM locks WHERE kernel = ? RETURNING sync_seqno`,
        kernel,
      )
      .toArray();
    this.deps.sql.exec(
      `DELETE FROM locks WHERE sync_seqno IN (SELECT seqno FROM syncs WHERE kernel = ?)`,
      kernel,
    );
    return released.map((lock) => lock.sync_seqno);
  }

  /** Request `syncSeqno` still waits for a lock request. */
  pending(syncSeqno: number): boolean {
    return (
      this.deps.sql.exec(`SELECT 1 FROM locks WHERE sync_seqno = ? LIMIT 1`, syncSeqno).toArray()
        .length > 0
    );
  }

  /** When the next lock request times out (for the alarm), or null if none is out. */
  nextDeadline(): number | null {
    return this.deps.sql.exec<{ at: number | null }>(`SELECT min(deadline) AS at FROM locks`).one()
      .at;
  }

  private withdraw(locks: { kernel: string; lock_id: number }[]): void {
    const byKernel = new Map<string, number[]>();
    for (const { kernel, lock_id } of locks) {
      byKernel.set(kernel, [...(byKernel.get(kernel) ?? []), lock_id]);
    }
    for (const [kernel, ids] of byKernel) this.deps.outbox.withdrawLockRequests(kernel, ids);
  }

  /**
   * The kernel may hold stale pages: it flushes everything at its next init
   * (docs/protocol.md §6.6) and holds nothing (docs/protocol.md §10.5). Returns the requests and
   * grants whose lock requests to it were dropped: they may go on.
   */
  markStale(kernel: string): number[] {
    this.deps.kernels.markStale(kernel);
    this.deps.residency.forgetAll(kernel);
    this.deps.holders.dropAll(kernel);
    // No lock request stays queued for a stale kernel (docs/protocol.md §6.6): its flush: true
    // covers them.
    const locks = this.deps.sql
      .exec<{ lock_id: number; sync_seqno: number }>(
        `DELETE FROM locks WHERE kernel = ? RETURNING lock_id, sync_seqno`,
        kernel,
      )
      .toArray();
    this.deps.outbox.withdrawLockRequests(
      kernel,
      locks.map((lock) => lock.lock_id),
    );
    return locks.map((lock) => lock.sync_seqno);
  }
}
