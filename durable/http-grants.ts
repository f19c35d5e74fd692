/**
 * HTTP reads and writes of a coherent object waiting for their grant (docs/protocol.md §10.7).
 * A kernel's grant is answered on its socket; an HTTP caller waits on its open connection, so
 * what its grant does (read the pages, apply the body) is kept here, in memory, and run inside
 * the step that grants it. A restart loses these with the connections that waited on them (the
 * object drops kernel `http`'s grant rows at start-up). The caller hears the outcome only once
 * that step commits.
 */
import { objectDeleted } from "../schema";
import type { Mail } from "./mail";

interface Waiting {
  /** What the grant does, inside the granting step at its seqno. */
  action(seqno: number): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export class HttpGrants {
  private readonly waiting = new Map<number, Waiting>();

  constructor(
    private readonly mail: Mail,
    /** Runs a change as a savepoint of the step: a failed action rolls back alone. */
    private readonly transact: <T>(step: () => T) => T,
  ) {}

  /**
   * The HTTP request of `requestSeqno` will do `action` once granted; resolves with its value.
   * Call before asking for the grant: one that is given at once runs inside the asking.
   */
  wait<T>(requestSeqno: number, action: (seqno: number) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(requestSeqno, {
        action,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
    });
  }

  /** The request was refused before it could wait: nothing will answer it here. */
  drop(requestSeqno: number): void {
    this.waiting.delete(requestSeqno);
  }

  /** The grant of `requestSeqno` is given in the step of `seqno`: its action runs now. */
  answer(requestSeqno: number, seqno: number): void {
    const waiting = this.waiting.get(requestSeqno);
    // Its caller's instance is gone (the rows of such grants are dropped at start-up).
    if (!waiting) return;
    const settle = (done: () => void) =>
      this.mail.onCommit(() => {
        this.waiting.delete(requestSeqno);
        done();
      });
    try {
      const value = this.transact(() => waiting.action(seqno));
      settle(() => waiting.resolve(value));
    } catch (error) {
      settle(() => waiting.reject(error));
    }
  }

  /** The object was destroyed: every waiting caller gets an error instead of hanging. */
  abortAll(): void {
    const error = objectDeleted("while this request waited for other kernels");
    for (const waiting of this.waiting.values()) waiting.reject(error);
    this.waiting.clear();
  }
}
