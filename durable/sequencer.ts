/**
 * The sequencer (docs/architecture.md §3, CONTRIBUTING.md §2): it owns the object's seqno counter and runs the
 * ordered part of each message, synchronously and in one SQLite transaction, in arrival order
 * (a batch's messages in one transaction together, docs/protocol.md §11).
 * Because that part never awaits, no later message can start before it ends; slow I/O (R2) runs
 * afterwards and may overlap. Every message consumes a seqno, rejected ones too (docs/protocol.md §3).
 */
import type { Meta } from "./meta";

/** A failure of the ordered part, with the seqno the message consumed. */
export class SequencedError extends Error {
  constructor(
    readonly seqno: number,
    override readonly cause: unknown,
  ) {
    super(`message ${seqno} failed`);
  }
}

/** What a batch's step runs (`Sequencer.admitEach`). */
export interface BatchStep<T> {
  /** One message's ordered part, given its seqno and its index in the batch. */
  ordered(seqno: number, index: number): T;
  /** Answers a message whose ordered part threw, in its place. */
  failed(error: SequencedError, index: number): T;
  /** Runs last inside the step's transaction, after every message (its bookkeeping). */
  finish?(): void;
  /**
   * Given, the step first runs without a savepoint per message, and this is called before the
   * careful round if a message threw: forget what the first round left in memory.
   */
  retry?(): void;
}

export class Sequencer {
  private nextSeqno: number;

  constructor(
    private readonly meta: Meta,
    private readonly transact: <T>(step: () => T) => T,
    /** Runs a message's part of a step so its replies keep their place, without a savepoint. */
    private readonly inOrder: <T>(step: () => T) => T = (step) => step(),
  ) {
    this.nextSeqno = meta.get<number>("seqno") ?? 0;
  }

  /** The seqno the next message will get. */
  peek(): number {
    return this.nextSeqno;
  }

  /**
   * Gives the message its seqno, then runs `ordered` in a transaction. `ordered` must not await
   * (it may return a promise it created): that would let later messages overtake it. If `ordered` throws, its
   * changes roll back but the seqno stays consumed; the error comes back as a `SequencedError`.
   *
   * @example const { seqno } = sequencer.admit((seqno) => store.journal(page, size, bytes, seqno));
   */
  admit<T>(ordered: (seqno: number) => T): { seqno: number; result: T } {
    const seqno = this.nextSeqno++;
    this.meta.set("seqno", this.nextSeqno);
    try {
      return { seqno, result: this.transact(() => ordered(seqno)) };
    } catch (error) {
      throw new SequencedError(seqno, error);
    }
  }

  /**
   * Admits a batch (docs/protocol.md §11) as one ordered step: its `count` messages get
   * consecutive seqnos, in order, and run in one transaction. A message whose `ordered` throws
   * rolls back alone and `failed` runs in its place, still inside the step, so what it sends
   * leaves in order with the rest once the step commits. With `retry`, the step first runs
   * without a savepoint per message and, if one throws, is rolled back and run again with a
   * savepoint each (a transaction nested in another is one on this platform). Should the step
   * itself fail to commit, nothing of it stays and every message gets `failed`.
   *
   * @example
   * const outcomes = sequencer.admitEach(frames.length, { ordered: (seqno, i) => apply(i), failed });
   */
  admitEach<T>(count: number, { ordered, failed, finish, retry }: BatchStep<T>): T[] {
    const first = this.nextSeqno;
    this.nextSeqno += count;
    this.meta.set("seqno", this.nextSeqno);
    const each = (index: number): T => {
      const seqno = first + index;
      try {
        return this.transact(() => ordered(seqno, index));
      } catch (error) {
        return failed(new SequencedError(seqno, error), index);
      }
    };
    // First without a savepoint per message: most batches hold no bad message, and a savepoint
    // each cost about a tenth of a batched return. A message that throws sends the whole step
    // back (nothing of it stays, its letters are dropped), `retry` forgets what the round left
    // in memory, and the careful round gives each message its savepoint.
    if (retry) {
      try {
        return this.transact(() => {
          const results = Array.from({ length: count }, (_, index) =>
            this.inOrder(() => ordered(first + index, index)),
          );
          finish?.();
          return results;
        });
      } catch {
        retry();
      }
    }
    try {
      return this.transact(() => {
        const results = Array.from({ length: count }, (_, index) => each(index));
        finish?.();
        return results;
      });
    } catch (error) {
      return Array.from({ length: count }, (_, index) =>
        failed(new SequencedError(first + index, error), index),
      );
    }
  }

  /** The object was destroyed: its name starts afresh at seqno 0 (docs/protocol.md §9 DELETE). */
  reset(): void {
    this.nextSeqno = 0;
  }
}
