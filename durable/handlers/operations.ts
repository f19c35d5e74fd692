/**
 * What a message handler may do to the object: the operations it needs, named for what they
 * do, instead of the Pager's parts (the page store, the tracker, the outbox, the kernel table,
 * ...). A handler states the protocol's rule (what is checked, in which order, what is
 * answered); how the object keeps its state stays behind these operations, so a part can change
 * without touching the handlers. The Pager (durable/pager.ts) implements them, once.
 */
import type { PageSpan, UnnumberedOutboxMessage } from "../../schema";
import type { Grant } from "../coherence";
import type { KernelRecord } from "../kernels";
import type { Limits } from "../limits";
import type { ReadPlan } from "../page-store";
import type { NewSyncRequest } from "../sync-tracker";

export interface HandlerOperations {
  /** The deployment's limits. */
  readonly limits: Readonly<Limits>;

  // --- the object ----------------------------------------------------------------------------

  /** The object's page size, fixed by the first init of a writer or the first write; null before. */
  pageSize(): number | null;
  setPageSize(pageSize: number): void;
  /**
   * Whether the object is coherent (docs/protocol.md §10): fixed with the page size, so null
   * while that is not fixed.
   */
  coherent(): boolean | null;
  /** Fixes the mode, with the page size. */
  setCoherent(coherent: boolean): void;
  objectName(): string;
  /** Writes the object's directory entry; resolves once R2 has it (durable/manifest.ts). */
  publishManifest(): Promise<void>;
  /** The `max_size` announced for this page size. */
  maxSize(pageSize: number): number;
  /** Bytes of the object's SQLite database now. */
  databaseBytes(): number;

  // --- pages -----------------------------------------------------------------------------------

  /**
   * A kernel asks for `span`: records that it may now cache the range (INVALIDATE asks it to
   * flush) and fixes, at this point in seqno order, which version of each page it gets.
   */
  planSupply(kernel: string, span: PageSpan, pageSize: number): ReadPlan;
  /** Reads what `planSupply` fixed (slow: R2); call `finishRead` after, also on failure. */
  readPlanned(plan: ReadPlan, pageSize: number): Promise<Uint8Array>;
  /** The plan's segments may be deleted again. */
  finishRead(plan: ReadPlan): void;
  /** Pages in the journal, not yet in R2. */
  journalPages(): number;
  /** Dirty pages from `firstPage` on, durable once the step commits; raises the size to their end. */
  journalReturn(firstPage: number, pageSize: number, data: Uint8Array, seqno: number): void;

  // --- the object's size (docs/protocol.md §13) ------------------------------------------------

  objectSize(): number;
  /**
   * Sets the size at `seqno`: a shrink drops the pages wholly past it and zeroes the rest of the
   * last page; growing adds nothing (the bytes past the size are zeros already).
   */
  resize(size: number, pageSize: number, seqno: number): void;

  // --- atomic groups (docs/protocol.md §12) ----------------------------------------------------

  /** Pages staged in every open group: they count against the journal's room. */
  stagedPages(): number;
  /** Opens the group for a grouped message; refuses a discarded group and one too many. */
  openGroup(kernel: string, group: number): void;
  /** Stages a grouped dirty return's pages: durable, seen by nobody until the commit. */
  stageReturn(
    kernel: string,
    group: number,
    firstPage: number,
    pageSize: number,
    data: Uint8Array,
  ): void;
  /** Stages a grouped set_size. */
  stageSize(kernel: string, group: number, size: number): void;
  /**
   * Applies the group's staged messages at `seqno`, in the order sent, and frees its number; a
   * group a refusal discarded is refused here (a `GroupRefusal` that frees the number).
   */
  commitGroup(kernel: string, group: number, pageSize: number, seqno: number): void;
  /** The kernel's open groups not in `keep` are abandoned (its init's `open_groups`). */
  discardGroupsBut(kernel: string, keep: number[]): void;

  // --- synchronize and INVALIDATE's locks ----------------------------------------------------------

  /** Outstanding synchronize requests of the kernel, or of one HTTP caller of it. */
  syncCount(kernel: string, caller?: string): number;
  /** Records a synchronize; it completes through the outbox (or its HTTP waiter) when due. */
  requestSync(request: NewSyncRequest, span: PageSpan): void;
  /**
   * A kernel answered lock request `lockId` at `seqno`: the INVALIDATE or the coherent grant
   * that waited on it may go on.
   */
  lockCompleted(kernel: string, lockId: number, seqno: number): void;
  /** A fresh lock_id (INVALIDATE's lock requests and unlock grants share the sequence). */
  nextLockId(): number;

  // --- coherent objects (docs/protocol.md §10) ------------------------------------------------

  /**
   * A request to hold pages (durable/coherence.ts): answered at once, or once the other holders
   * in its way gave way, in seqno order.
   */
  requestAccess(grant: Grant): void;
  /** Throws `not_writer` (KERN_PROTECTION_FAILURE) unless the kernel writes all of `span`. */
  checkWriter(kernel: string, span: PageSpan, what: string): void;
  /** Fences a set_size that shrinks: it writes the pages it cuts. */
  checkResize(kernel: string, size: number, pageSize: number): void;
  /** The kernel keeps no copy of `span` (a data_return with kernel_copy false). */
  releaseHold(kernel: string, span: PageSpan): void;

  // --- kernels ---------------------------------------------------------------------------------

  /** The token of the socket's session may write. */
  mayWrite(socket: WebSocket): boolean;
  kernelRecord(kernel: string): KernelRecord | undefined;
  /**
   * Makes room for a kernel the object does not know yet (durable/kernel-budget.ts); throws
   * `too_many_kernels` when none can go.
   */
  makeRoomForKernel(writer: boolean): void;
  /** The object has let a kernel go: a kernel it does not know must flush at its first init. */
  mayHaveForgotten(): boolean;
  /** The kernel's record, created at its first init; `writer` as its latest token says. */
  registerKernel(kernel: string, writer: boolean): KernelRecord;
  /** The kernel flushes everything now: it is no longer stale and caches nothing. */
  startClean(kernel: string): void;
  /**
   * The socket's kernel has initialized: it counts as connected, and its frames and replies are
   * batches from now on when it asked for them (docs/protocol.md §11).
   */
  markInitialized(socket: WebSocket, batch: boolean): void;
  /**
   * Terminate: what the kernel caches, its outbox, its record and its outstanding requests go,
   * in that order (the requests that stop waiting on it must not ask a kernel that is gone).
   */
  forgetKernel(kernel: string, seqno: number): void;
  /** Resolves once every answer reserved or posted to the kernel has been sent. */
  drained(kernel: string): Promise<void>;

  // --- the outbox (docs/protocol.md §3) --------------------------------------------------------

  /**
   * Throws `outbox_full` when the kernel's outbox, with the `pending` messages already promised
   * to it (completions of its outstanding synchronizes), has no room for one more.
   */
  checkOutboxRoom(kernel: string, pending?: number): void;
  /** Queues a message in the kernel's outbox, sent once the step commits. */
  postToOutbox(kernel: string, message: UnnumberedOutboxMessage): void;
  /** The kernel has every outbox message up to `mid`; `field` names it in an error. */
  acknowledgeOutbox(kernel: string, mid: number, field?: string): void;
  /** Sends the kernel's outbox again on `socket`, in mid order. */
  resendOutbox(socket: WebSocket, kernel: string): void;
}
