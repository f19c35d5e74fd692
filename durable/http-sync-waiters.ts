/**
 * HTTP synchronize callers waiting for their completion. A socket kernel is answered through its
 * outbox, which survives restarts; an HTTP caller waits on its open connection, so its waiter
 * lives in memory only and a restart loses it, and the connection with it (the tracker then
 * withdraws such requests, durable/sync-tracker.ts `dropHttpRequests`).
 */
import { objectDeleted, type ProtocolError } from "../schema";

/** What an HTTP synchronize resolves with once its completion is due. */
export interface SyncOutcome {
  offset: number;
  length: number;
  seqno: number;
}

interface Waiter {
  resolve(outcome: SyncOutcome): void;
  reject(error: ProtocolError): void;
}

export class HttpSyncWaiters {
  private readonly waiting = new Map<number, Waiter>();

  /** Resolves when the HTTP synchronize of this seqno is due. */
  waitFor(seqno: number): Promise<SyncOutcome> {
    return new Promise((resolve, reject) => this.waiting.set(seqno, { resolve, reject }));
  }

  /** Nothing will settle the waiter of `seqno` any more (never admitted, or withdrawn). */
  drop(seqno: number): void {
    this.waiting.delete(seqno);
  }

  /** The request of `seqno` is complete: its caller is answered, if it still waits. */
  resolve(seqno: number, outcome: SyncOutcome): void {
    this.take(seqno)?.resolve(outcome);
  }

  /** The request of `seqno` failed: its caller gets `error`, if it still waits. */
  reject(seqno: number, error: ProtocolError): void {
    this.take(seqno)?.reject(error);
  }

  /** The object was destroyed: every waiting caller gets an error instead of hanging. */
  abortAll(): void {
    const error = objectDeleted("while this synchronize waited");
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }

  private take(seqno: number): Waiter | undefined {
    const waiter = this.waiting.get(seqno);
    this.waiting.delete(seqno);
    return waiter;
  }
}
