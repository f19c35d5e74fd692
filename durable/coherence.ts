/**
 * Coherent objects (docs/protocol.md §10): who may read and write which pages, decided in seqno
 * order. A request for pages (a data_request, a data_unlock, an HTTP read or write) that
 * conflicts with other holders waits as a row of `grants` while the manager asks them to give
 * up what conflicts: a writer to demote itself for a read, every other holder to flush for a
 * write. Requests over overlapping ranges are granted in seqno order, each once no lock request
 * it made is unanswered; one that conflicts with nothing and waits behind nothing is answered at
 * once, without a row. So an eviction in the middle of a grant loses nothing: the rows, the
 * holders (durable/holders.ts) and the lock requests (durable/lock-requests.ts) are all durable.
 *
 * How a grant is answered (a data_supply, a lock_request, an HTTP caller's answer) is the
 * Pager's (`answer`); this module keeps the order and the holders.
 */
import {
  KERN_PROTECTION_FAILURE,
  KERN_RESOURCE_SHORTAGE,
  ProtocolError,
  spansOverlap,
  type PageSpan,
} from "../schema";
import type { Holders } from "./holders";
import type { LockRequests } from "./lock-requests";

/** What a grant answers: a kernel's data_request or data_unlock, or an HTTP read or write. */
export type GrantKind = "request" | "unlock" | "http";

export type Grant = {
  /** The request's own seqno: the order grants are given in. */
  seqno: number;
  kernel: string;
  kind: GrantKind;
  /** The kernel message's id (`reply_to` of its answer); the seqno for HTTP. */
  id: number;
  offset: number;
  length: number;
  first_page: number;
  end_page: number;
  /** 1: write access (the requester becomes the writer); 0: read. */
  write: number;
};

/**
 * Requests one kernel may have waiting at once (kernel `http`: all HTTP callers together, the
 * bound times GRANTS_HTTP_SHARE), so the table and each settling walk stay bounded.
 */
const MAX_WAITING_GRANTS = 64;
const GRANTS_HTTP_SHARE = 8;

export interface CoherenceDeps {
  sql: SqlStorage;
  holders: Holders;
  locks: LockRequests;
  /**
   * Answers a grant inside the step of `seqno`, the step that grants it (its own, or the step
   * of the lock_completed or departure that let it go on): what a write applies is a version
   * of that seqno.
   */
  answer(grant: Grant, seqno: number): void;
}

export class Coherence {
  constructor(private readonly deps: CoherenceDeps) {}

  /**
   * A request at its seqno: answered at once when nothing earlier over its range waits and no
   * other holder conflicts; else it waits, and the holders in its way are asked to give way.
   */
  request(grant: Grant): void {
    if (!this.waitsOver(spanOf(grant)) && this.conflicts(grant).length === 0) {
      this.give(grant, grant.seqno);
      return;
    }
    this.checkRoom(grant.kernel);
    this.deps.sql.exec(
      `INSERT INTO grants (seqno, kernel, kind, id, offset, length, first_page, end_page, write)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      grant.seqno,
      grant.kernel,
      grant.kind,
      grant.id,
      grant.offset,
      grant.length,
      grant.first_page,
      grant.end_page,
      grant.write,
    );
    this.settle(grant.seqno);
  }

  /**
   * Gives, in seqno order, every waiting grant whose way is clear: no earlier waiting grant over
   * an overlapping range, no lock request of its own unanswered, no holder left in its way. One
   * that still finds holders in its way asks them (again: a departure may have changed them).
   * Called inside the step of `seqno`, after whatever may have cleared a way.
   */
  settle(seqno: number): void {
    const waiting = this.deps.sql.exec<Grant>(`SELECT * FROM grants ORDER BY seqno`).toArray();
    const blocked: PageSpan[] = [];
    for (const grant of waiting) {
      const span = spanOf(grant);
      if (
        blocked.some((earlier) => spansOverlap(earlier, span)) ||
        this.deps.locks.pending(grant.seqno)
      ) {
        blocked.push(span);
        continue;
      }
      const inTheWay = this.conflicts(grant);
      if (inTheWay.length > 0) {
        this.ask(grant, inTheWay);
        blocked.push(span);
        continue;
      }
      this.deps.sql.exec(`DELETE FROM grants WHERE seqno = ?`, grant.seqno);
      this.give(grant, seqno);
    }
  }

  /** The kernel's waiting grants go (its departure, its terminate), their lock requests too. */
  dropGrantsOf(kernel: string): number[] {
    const gone = this.deps.sql
      .exec<{ seqno: number }>(`DELETE FROM grants WHERE kernel = ? RETURNING seqno`, kernel)
      .toArray()
      .map((row) => row.seqno);
    for (const seqno of gone) this.deps.locks.withdrawFor(seqno);
    return gone;
  }

  /**
   * Whether the kernel's departure changes anything: it holds pages, waits for a grant, or a
   * lock request waits on it (a coherent grant's or an INVALIDATE's).
   */
  involves(kernel: string): boolean {
    return (
      this.deps.sql
        .exec(
          `SELECT 1 FROM holders WHERE kernel = ?1 UNION ALL SELECT 1 FROM grants WHERE kernel = ?1
           UNION ALL SELECT 1 FROM locks WHERE kernel = ?1 LIMIT 1`,
          kernel,
        )
        .toArray().length > 0
    );
  }

  /** Kernels that hold pages or wait for a grant: at start-up, those without a socket depart. */
  involvedKernels(): string[] {
    return this.deps.sql
      .exec<{ kernel: string }>(
        `SELECT kernel FROM holders UNION SELECT kernel FROM grants
         UNION SELECT kernel FROM locks WHERE purpose != 'invalidate'`,
      )
      .toArray()
      .map((row) => row.kernel);
  }

  /**
   * Fencing (docs/protocol.md §10.6): `what` changes the pages of `span`, which only their writer
   * may do at this seqno.
   */
  checkWriter(kernel: string, span: PageSpan, what: string): void {
    if (this.deps.holders.writesAll(kernel, span)) return;
    throw new ProtocolError(
      KERN_PROTECTION_FAILURE,
      "not_writer",
      `${what} changes pages ${span.first} to ${span.end - 1} of a coherent object, and this ` +
        `kernel is not the writer of all of them (docs/protocol.md §10.6): ask for write access ` +
        `first (data_request or data_unlock with VM_PROT_WRITE)`,
    );
  }

  /** The kernel no longer holds `span` (a data_return with kernel_copy false). */
  release(kernel: string, span: PageSpan): void {
    this.deps.holders.drop(kernel, span);
  }

  /** Whether the kernel holds any page: its departure marks it stale. */
  holdsAny(kernel: string): boolean {
    return this.deps.holders.holdsAny(kernel);
  }

  /** Grants waiting now (status). */
  waitingCount(): number {
    return this.deps.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM grants`).one().n;
  }

  /** The holders' runs in the grant's way: every other holder for a write, other writers for a read. */
  private conflicts(grant: Grant) {
    const others = this.deps.holders.othersIn(spanOf(grant), grant.kernel);
    return grant.write === 1 ? others : others.filter((run) => run.writer === 1);
  }

  /** One lock request per run in the way: flush for a write, demote a writer for a read. */
  private ask(grant: Grant, inTheWay: ReturnType<Coherence["conflicts"]>): void {
    const purpose = grant.write === 1 ? "flush" : "demote";
    for (const run of inTheWay) {
      const span = { first: run.first_page, end: run.end_page };
      this.deps.locks.askHolder(grant.seqno, run.kernel, span, purpose);
    }
  }

  /** The requester holds the range now (HTTP holds nothing after), and is answered. */
  private give(grant: Grant, seqno: number): void {
    if (grant.kind !== "http") {
      const span = spanOf(grant);
      if (grant.write === 1) this.deps.holders.hold(grant.kernel, span, true);
      else this.deps.holders.holdReading(grant.kernel, span);
    }
    this.deps.answer(grant, seqno);
  }

  private waitsOver(span: PageSpan): boolean {
    return (
      this.deps.sql
        .exec(
          `SELECT 1 FROM grants WHERE first_page < ? AND end_page > ? LIMIT 1`,
          span.end,
          span.first,
        )
        .toArray().length > 0
    );
  }

  private checkRoom(kernel: string): void {
    const limit = kernel === "http" ? MAX_WAITING_GRANTS * GRANTS_HTTP_SHARE : MAX_WAITING_GRANTS;
    const { n } = this.deps.sql
      .exec<{ n: number }>(`SELECT count(*) AS n FROM grants WHERE kernel = ?`, kernel)
      .one();
    if (n < limit) return;
    throw new ProtocolError(
      KERN_RESOURCE_SHORTAGE,
      "too_many_waiting",
      `this kernel already has ${limit} requests waiting for other kernels to give up pages; ` +
        `retry after one is answered`,
    );
  }
}

/** The pages a shrink from `size` to `to` writes: the one it cuts into and those past it. */
export function cutSpan(to: number, size: number, pageSize: number): PageSpan {
  return { first: Math.floor(to / pageSize), end: Math.ceil(size / pageSize) };
}

function spanOf(grant: Grant): PageSpan {
  return { first: grant.first_page, end: grant.end_page };
}
