/**
 * A kernel's highest applied id (docs/protocol.md §3) during one step of the socket loop: read
 * from its row once, when a state-changing message first needs it, kept here while the step's
 * messages apply, and written back once at the step's end. A batch of N returns
 * (docs/protocol.md §11) so costs one read and one write of the kernel's row instead of N of each.
 */
import type { SocketOperations } from "./handlers/transport-operations";

export class LastApplied {
  private known: { id: number; seqno: number | null } | undefined;
  private changed = false;
  /** A terminate of this step forgot the kernel: nothing after it in the step applies. */
  terminated = false;

  constructor(
    private readonly pager: SocketOperations,
    private readonly kernel: string,
  ) {}

  /** The highest id applied for the kernel so far, this step's included. */
  id(): number {
    return this.current().id;
  }

  /** The seqno `id` was applied at, if it is the highest applied (for a resend's ack). */
  seqnoOf(id: number): number | null {
    const { id: last, seqno } = this.current();
    return id === last ? seqno : null;
  }

  /** Message `id` was applied at `seqno`, in this step's transaction. */
  applied(id: number, seqno: number): void {
    this.known = { id, seqno };
    this.changed = true;
  }

  /** The kernel was forgotten (terminate): what this step applied before is moot, ids start afresh. */
  forgotten(): void {
    this.known = { id: 0, seqno: null };
    this.changed = false;
    this.terminated = true;
  }

  /** The step was rolled back to be run again: read the kernel's row afresh. */
  forget(): void {
    this.known = undefined;
    this.changed = false;
    this.terminated = false;
  }

  /** Writes the step's highest applied id to the kernel's row: call inside the step's transaction. */
  save(): void {
    if (!this.changed || !this.known) return;
    this.pager.recordApplied(this.kernel, this.known.id, this.known.seqno!);
    this.changed = false;
  }

  private current(): { id: number; seqno: number | null } {
    if (!this.known) {
      const record = this.pager.kernelRecord(this.kernel);
      this.known = { id: record?.last_id ?? 0, seqno: record?.last_seqno ?? null };
    }
    return this.known;
  }
}
