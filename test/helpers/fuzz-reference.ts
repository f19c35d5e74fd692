/**
 * The reference model of the fuzz command (test/fuzz.test.ts, `npm run fuzz`): one memory object
 * as docs/protocol.md describes it, in memory, judging any frame (valid or not, text or binary)
 * sent by any kernel on any socket, and saying exactly what the object must answer: the error
 * (code, kern_return, reply_to, the field it names), the ack, the ready, the read, the outbox
 * messages, the socket closes. Field rules come from message-rules.ts; the order in which a
 * frame's faults are checked, where the protocol leaves it open, is the implementation's
 * (size, framing, JSON, type, fields, socket order, rights, duplicate, then the handler's own
 * checks), since a frame with several faults has one answer.
 *
 * Batches (docs/protocol.md §11): a socket whose init asked for them may send a JSON array (or a
 * binary frame whose header is one, pages back to back). The model reads it by the docs, not by
 * schema/batch.ts: one error and one seqno for a batch that cannot be parsed; one `too_large`
 * per message (each its own seqno and reply_to) for one whose pages pass max_transfer; else each
 * message judged as if it had come alone, in array order, with consecutive seqnos (a `Cell`
 * run: binding one binds them all), a bad one its own error and changing nothing. Where the
 * docs leave a batch's answers open it refuses the batch (an error limit passed inside it, a
 * completion that waits on a flush before its last message, a non-object entry in a batch over
 * max_transfer, and in a batch it did not build a message at a time a terminate before its last
 * message; in one it builds, each message after a terminate is `bad_frame`); the runner builds
 * its own batches a message at a time
 * (`beginBatch`, `batchEntry`, `endBatch`), drawing again what the model refuses, and the frame
 * it sends must parse into exactly the messages judged. A socket that did not ask sends version 1:
 * an array is one `bad_json`.
 *
 * The object's size and atomic groups (docs/protocol.md §13, docs/protocol.md §12): writes raise the size to their
 * end, a shrink drops the pages wholly past it (as if never written, as far as reads and status
 * tell) and zeroes the rest of its last page. A grouped return or set_size is staged in its
 * kernel's group, acked and seen by nobody, until the kernel's synchronize naming the group
 * applies the staged messages, in order, at its own seqno. Any refusal of a grouped message whose
 * group is valid discards the group, which refuses its later messages and its synchronize
 * (`group_discarded`; the synchronize frees the number). Every change of the pages or the size
 * is an `Effect` of the frame that made it, applied in seqno order once the round's seqnos are
 * known; a read, and a ready's size, are judged against the effects before their own seqno.
 * Whether a grouped return fits the journal depends on how much of the journal is flushed, which
 * the model cannot know: it refuses grouped returns that would stage more than STAGED_PAGES_CAP
 * pages in all, and judges journal_full only while the runner has made the room exact
 * (`journalLimitPages`: an empty journal and a limit of its choosing, in a round a socket at a time).
 *
 * Values the model cannot know when a frame is sent are `Cell`s, bound when the answer names
 * them: every frame's seqno (frames of different sockets reach the object in an order the
 * sender does not control), the lock id of a grant when several sockets ask in the same round,
 * the mids and lock ids of several messages one step sends a kernel at once (the protocol
 * orders only overlapping completions among them, and that is checked). A `Block` bounds what a
 * cell may be bound to, and no value twice. What a read must return is decided after the round,
 * once the seqnos of the round's writes and reads are known.
 *
 * The runner (fuzz-runner.ts) keeps to what makes the answers exact: frames whose effects reach
 * other kernels (an INVALIDATE that asks them, a lock_completed that ends one) go alone in their
 * round, a frame whose completion may wait on a flush is the last of its socket's round, no
 * socket is sent a frame after the one that closes it, and where the model would have to guess
 * (a frame whose answer depends on which of two racing sockets came first) it refuses the frame
 * and the runner draws another.
 */
import {
  FIELDS,
  MAX_OPEN_GROUPS,
  STATE_CHANGING,
  keepsRule,
  optionalFieldsKeepRules,
} from "./message-rules";

// Protocol numbers (docs/protocol.md §7).
const KERN_INVALID_ADDRESS = 1;
const KERN_PROTECTION_FAILURE = 2;
const KERN_INVALID_ARGUMENT = 4;
const KERN_RESOURCE_SHORTAGE = 6;
const VM_SYNC_SYNCHRONOUS = 0x02;
const VM_SYNC_INVALIDATE = 0x04;
const MEMORY_OBJECT_COPY_DELAY = 2;
const CLOSE_NORMAL = 1000;
const CLOSE_POLICY_VIOLATION = 1008;
const CLOSE_REPLACED = 4409;
/**
 * Staged pages of every open group together, at most: far below the journal's room (32768 pages
 * of 4 KiB), so that a grouped return's `journal_full` never depends on how much the journal holds.
 */
const STAGED_PAGES_CAP = 4096;

/** The deployment's limits that decide answers (wrangler.toml vars, docs/protocol.md). */
export interface ReferenceLimits {
  pageSize: number;
  /** As announced in memory_object_ready for `pageSize`. */
  maxSize: number;
  maxTransfer: number;
  maxHeaderBytes: number;
  /** Errors per socket per minute; one more closes it (1008). */
  errorsPerMinute: number;
  /** Errors per kernel id across its sockets per minute: twice the socket's (docs/protocol.md §8). */
  kernelErrorsPerMinute: number;
  /** Kernels that may write; read-only ones get a quarter of it. */
  maxKernels: number;
  maxSyncsPerKernel: number;
  /** Unreceived outbox messages of one kernel (docs/protocol.md §3). */
  outboxMax: number;
}

// ---------------------------------------------------------------------------------------------
// Values learned from the answers.

/** A range a floating value lies in, each value at most once. */
export class Block {
  readonly used = new Set<number>();
  constructor(
    readonly start: number,
    public count: number,
    readonly what: string,
  ) {}
}

/** A number known now, or once an answer names it (within its block, if it has one). */
export class Cell {
  /**
   * The seqnos of one batch's messages, in array order: consecutive (docs/protocol.md §11), so
   * binding one binds them all.
   */
  run?: Cell[];
  constructor(
    public value?: number,
    public block?: Block,
  ) {}
}

/** Why `value` cannot be the cell's value, or null if it can. */
export function cannotBind(cell: Cell, value: unknown): string | null {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) return `not an integer`;
  if (!cell.run) return cannotBindOne(cell, value);
  const index = cell.run.indexOf(cell);
  for (let j = 0; j < cell.run.length; j++) {
    const why = cannotBindOne(cell.run[j]!, value - index + j);
    if (why) {
      return `${why} (message ${j} of a batch whose message ${index} would have seqno ${value})`;
    }
  }
  return null;
}

export function bind(cell: Cell, value: number): void {
  if (!cell.run) return bindOne(cell, value);
  const index = cell.run.indexOf(cell);
  cell.run.forEach((other, j) => bindOne(other, value - index + j));
}

function cannotBindOne(cell: Cell, value: number): string | null {
  if (cell.value !== undefined) return cell.value === value ? null : `expected ${cell.value}`;
  const block = cell.block;
  if (!block) return null;
  if (value < block.start || value >= block.start + block.count) {
    return `${block.what} outside ${block.start}…${block.start + block.count - 1}`;
  }
  return block.used.has(value) ? `${block.what} ${value} given twice` : null;
}

function bindOne(cell: Cell, value: number): void {
  if (cell.value !== undefined) return;
  cell.value = value;
  cell.block?.used.add(value);
}

// ---------------------------------------------------------------------------------------------
// Sockets, kernels, frames and what they must be answered.

export class SocketModel {
  initialized = false;
  /** Its init asked for batches (docs/protocol.md §11): it may send them and be sent them. */
  batch = false;
  /** Open as the object sees it: not closed by it, nor by the kernel. */
  open = true;
  /** Errors counted in the socket's minute (the runner keeps every socket inside one). */
  errors = 0;
  /** What the socket must receive, in order (items of one group in any order among themselves). */
  readonly stream: Expect[] = [];
  /** The close the object will send, once planned. */
  closeExpected: number | null = null;
  constructor(
    readonly id: number,
    readonly kernel: string,
    readonly writer: boolean,
  ) {}
}

/** One frame sent: the seqno it took, and what it was, for failure reports. */
export interface FrameRec {
  n: number;
  socket: SocketModel;
  seqno: Cell;
  summary: string;
  type: string;
}

export interface OutboxEntry {
  mid: Cell;
  /** The message without its mid; a Cell where a value is learned (seqno, lock_id). */
  fields: Record<string, unknown>;
  /** A completion's request: overlapping ones of a kernel complete in seqno order (docs/protocol.md §6.8). */
  request?: { seqno: Cell; first: number; end: number };
}

export type Expect =
  | {
      kind: "error";
      frame: FrameRec;
      replyTo: number | null;
      code: string;
      kernReturn: number;
      /** The field the message must start with, when a field broke its rule. */
      field?: string;
    }
  | { kind: "ack"; frame: FrameRec; id: number; seqno: Cell; applied: boolean }
  | { kind: "ready"; frame: FrameRec; fields: Record<string, unknown> }
  | {
      kind: "read";
      frame: FrameRec;
      replyTo: number;
      offset: number;
      length: number;
    }
  /** `group`: what one step sent a kernel at once comes in any order (docs/protocol.md §6.8). */
  | { kind: "outbox"; entry: OutboxEntry; group: number | null };

export class KernelModel {
  lastId = 0;
  /** The frame of `lastId`: a resend of that id is acked with its seqno. */
  lastFrame: FrameRec | null = null;
  nextMid = 1;
  /** The highest mid the kernel was seen to receive (the runner's, for what it reports). */
  seenMid = 0;
  stale = false;
  outbox: OutboxEntry[] = [];
  /** Pages the kernel may cache (supplied or told unavailable, not flushed since). */
  readonly residency = new Set<number>();
  /** Its open atomic groups (docs/protocol.md §12), failed ones among them, by number. */
  readonly groups = new Map<number, Group>();
  constructor(
    readonly name: string,
    public writer: boolean,
    /** Registration order: reclamation takes the oldest. */
    readonly order: number,
  ) {}
}

interface SyncRow {
  frame: FrameRec;
  kernel: string;
  id: number;
  offset: number;
  length: number;
  first: number;
  end: number;
  flags: number;
  active: boolean;
  /** Lock requests it waits on: holder kernel → lock id. */
  locks: Map<string, Cell>;
}

/** One change of the pages or the size: a page written (raising the size), or the size set. */
type Op = { page: number; bytes: Uint8Array } | { size: number };

/** What a frame changed, at its seqno, in order. */
interface Effect {
  frame: FrameRec;
  ops: Op[];
}

/**
 * An open atomic group of a kernel: what it staged, in the order sent, or failed (a grouped
 * message was refused: its later messages and its synchronize are refused, docs/protocol.md §12).
 */
interface Group {
  ops: Op[];
  failed: boolean;
}

/** What processing a frame came to, for the runner and the figures. */
export interface Outcome {
  /** The frame was not processed: it would make the answers depend on timing. Draw another. */
  refused?: string;
  error?: string;
  /** A state-changing message applied (acked for the first time). */
  applied?: boolean;
  duplicate?: boolean;
  /** Its socket is closed after it: nothing more may be sent on it. */
  closes?: boolean;
  /** It has a completion that may wait on a flush: the last of its socket's (or its) round. */
  delayed?: boolean;
  type?: string;
  /** A batch: how many messages it held. */
  batch?: number;
}

type Mode = "concurrent" | "solo";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const lenientDecoder = new TextDecoder();

class Fault {
  constructor(
    readonly code: string,
    readonly kernReturn: number,
    readonly field?: string,
    /** What answering it changes besides its group (docs/protocol.md §12): a synchronize's frees its number. */
    readonly effect?: () => void,
  ) {}
}

const invalid = (code: string, field?: string) => new Fault(code, KERN_INVALID_ARGUMENT, field);

/** What one message's checks came to: its fault (null: it applies), and what it was. */
interface MessageVerdict {
  fault: Fault | null;
  replyTo: number | null;
  type: string;
  header?: Record<string, any>;
  payload: Uint8Array | null;
}

/** A batch frame that parses: its messages (any JSON value) with their pages. */
interface ParsedBatch {
  entries: BatchEntry[];
  payloadBytes: number;
}

export interface BatchEntry {
  value: unknown;
  payload: Uint8Array | null;
}

/** docs/protocol.md §11. */
export const MAX_BATCH_MESSAGES = 256;
const CARRIES_PAGES: ReadonlySet<unknown> = new Set([
  "memory_object_data_return",
  "memory_object_data_supply",
]);

// ---------------------------------------------------------------------------------------------

export class ReferenceObject {
  readonly kernels = new Map<string, KernelModel>();
  readonly sockets = new Set<SocketModel>();
  /** Outstanding synchronize requests, in seqno order. */
  syncs: SyncRow[] = [];
  /** Page → its bytes before this round (pages never written, or dropped by a shrink, absent). */
  readonly pages = new Map<number, Uint8Array>();
  /** The object's size before this round (docs/protocol.md §13). */
  size = 0;
  /** Pages that ever had a version (for what a SYNCHRONOUS request may wait on). */
  private readonly written = new Set<number>();
  /** Changes made this round, seqnos not yet known. */
  private roundEffects: Effect[] = [];
  /**
   * Set by the runner while the journal is empty and its limit is this many pages: a grouped
   * return that would stage past it is `journal_full` (null: the room is not known exactly).
   */
  journalLimitPages: number | null = null;
  /** What groups and sizes came to, counted for the run's figures. */
  readonly tallies: Record<string, number> = {};
  /** Residency at the round's start plus everything recorded in it: for concurrent INVALIDATE. */
  private roundHolders = new Map<number, Set<string>>();
  /** INVALIDATE ranges of this round, by kernel: no other kernel may read them in it. */
  private roundInvalidations: { kernel: string; first: number; end: number }[] = [];
  /** Kernels of each kind at the round's start, and registered in it. */
  private roundKinds = { writer: 0, reader: 0 };
  /** Errors per kernel id in its minute. */
  readonly kernelErrors = new Map<string, number>();
  nextSeqno = 0;
  nextLockId = 1;
  /** Fixed by the first init of a kernel that may write (docs/protocol.md §3 Reading). */
  pageSizeFixed = false;
  reclaimed = false;
  private kernelOrder = 0;
  private socketIds = 0;
  private frameNo = 0;
  mode: Mode = "concurrent";
  /** Kernels made stale when the object saw their socket close: the runner waits to see it. */
  disconnectStale: string[] = [];
  /** This round's frames, and its blocks of floating values. */
  private roundFrames: FrameRec[] = [];
  private seqnoBlock = new Block(0, 0, "seqno");
  private lockBlock: Block | null = null;
  /** What this step sends kernels: numbered when it is done (finishStep). */
  private stepPushes: {
    k: KernelModel;
    fields: Record<string, unknown>;
    request?: OutboxEntry["request"];
  }[] = [];
  /** Lock ids this step takes: one block when there are several. */
  private stepLocks: Cell[] = [];
  /** Whether a completion of this step may wait on a flush. */
  private stepDelayed = false;
  /** Groups of this round, checked at its end: overlapping completions in seqno order. */
  private roundGroups: OutboxEntry[][] = [];
  private groupIds = 0;
  /** Rows completed in this frame after a flush: rows queued behind them start after it too. */
  private delayedDone: SyncRow[] = [];

  constructor(
    readonly limits: ReferenceLimits,
    readonly objectName: string,
  ) {}

  // --- rounds ---------------------------------------------------------------------------------

  beginRound(mode: Mode): void {
    this.mode = mode;
    this.roundFrames = [];
    this.seqnoBlock = new Block(this.nextSeqno, 0, "seqno");
    this.lockBlock = mode === "concurrent" ? new Block(this.nextLockId, 0, "lock_id") : null;
    this.roundEffects = [];
    this.roundHolders = new Map();
    this.roundInvalidations = [];
    this.roundKinds = { writer: 0, reader: 0 };
    for (const k of this.kernels.values()) {
      for (const page of k.residency) this.holderSet(page).add(k.name);
      this.roundKinds[k.writer ? "writer" : "reader"]++;
    }
  }

  /** A frame's record; its seqno is somewhere in the round's block. */
  newFrame(socket: SocketModel, data: string | Uint8Array, summary = summarize(data)): FrameRec {
    this.seqnoBlock.count++;
    const frame: FrameRec = {
      n: this.frameNo++,
      socket,
      seqno: new Cell(undefined, this.seqnoBlock),
      summary,
      type: "?",
    };
    this.roundFrames.push(frame);
    return frame;
  }

  /**
   * After every answer of the round arrived: the frames took seqnos nextSeqno … + n - 1, each
   * socket's in the order sent; page versions are ordered by them. Returns a fault, or null.
   */
  endRound(): string | null {
    const bySocket = new Map<SocketModel, number>();
    for (const frame of this.roundFrames) {
      const seqno = frame.seqno.value;
      if (seqno === undefined) continue;
      const before = bySocket.get(frame.socket);
      if (before !== undefined && seqno <= before) {
        return `frame ${frame.n} (${frame.summary}) took seqno ${seqno}, not after ${before} of the same socket`;
      }
      bySocket.set(frame.socket, seqno);
    }
    if (this.lockBlock && this.lockBlock.used.size !== this.lockBlock.count) {
      return `${this.lockBlock.count} lock ids taken, ${this.lockBlock.used.size} seen`;
    }
    if (this.lockBlock) this.nextLockId = this.lockBlock.start + this.lockBlock.count;
    for (const group of this.roundGroups) {
      for (const a of group) {
        for (const b of group) {
          const [ra, rb] = [a.request, b.request];
          if (!ra || !rb || ra.seqno.value! >= rb.seqno.value!) continue;
          if (ra.first < rb.end && rb.first < ra.end && a.mid.value! > b.mid.value!) {
            return `completion of seqno ${rb.seqno.value} (mid ${b.mid.value}) came before the one of seqno ${ra.seqno.value} (mid ${a.mid.value}) it was queued behind`;
          }
        }
      }
    }
    this.roundGroups = [];
    this.nextSeqno += this.roundFrames.length;
    for (const effect of this.sortedEffects(Infinity)) {
      this.size = applyOps(this.pages, this.size, effect.ops, this.limits.pageSize);
    }
    this.roundEffects = [];
    for (const k of this.kernels.values()) {
      if (k.outbox.some((e) => e.mid.value === undefined)) {
        return `kernel ${k.name} has an outbox message whose mid was never seen`;
      }
      k.outbox.sort((a, b) => a.mid.value! - b.mid.value!);
    }
    this.roundFrames = [];
    return null;
  }

  /** An HTTP operation between rounds takes a seqno too. */
  httpOperation(): number {
    return this.nextSeqno++;
  }

  /** `PUT /v1/objects/{name}/pages` between rounds: pages written at its own seqno. */
  httpWrite(firstPage: number, bytes: Uint8Array): number {
    const { pageSize } = this.limits;
    const ops: Op[] = [];
    for (let p = 0; p < bytes.byteLength / pageSize; p++) {
      ops.push({ page: firstPage + p, bytes: bytes.subarray(p * pageSize, (p + 1) * pageSize) });
      this.written.add(firstPage + p);
    }
    this.size = applyOps(this.pages, this.size, ops, pageSize);
    return this.nextSeqno++;
  }

  /** `PATCH /v1/objects/{name}` between rounds: the size set at its own seqno. */
  httpSetSize(size: number): number {
    this.size = applyOps(this.pages, this.size, [{ size }], this.limits.pageSize);
    return this.nextSeqno++;
  }

  /** The round's effects below `seqno` (those whose seqno is known), in seqno order. */
  private sortedEffects(seqno: number): Effect[] {
    return this.roundEffects
      .filter((e) => e.frame.seqno.value !== undefined && e.frame.seqno.value < seqno)
      .sort((a, b) => a.frame.seqno.value! - b.frame.seqno.value!);
  }

  /**
   * What a read at `seqno` of pages [first, first + count) returns: the bytes, or null for
   * data_unavailable (no page of the range written, and not dropped since, before it).
   */
  readAt(seqno: number, first: number, count: number): Uint8Array | null {
    const { pageSize } = this.limits;
    const pages = new Map<number, Uint8Array>();
    for (let p = first; p < first + count; p++) {
      const bytes = this.pages.get(p);
      if (bytes) pages.set(p, bytes);
    }
    // Every write counts for the size, which decides what a later shrink drops.
    const inRange = (page: number) => page >= first && page < first + count;
    let size = this.size;
    for (const effect of this.sortedEffects(seqno)) {
      size = applyOps(pages, size, effect.ops, pageSize, inRange);
    }
    if (pages.size === 0) return null;
    const bytes = new Uint8Array(count * pageSize);
    for (const [page, data] of pages) bytes.set(data, (page - first) * pageSize);
    return bytes;
  }

  /** The object's size as a message at `seqno` finds it (a ready's `size`). */
  sizeAt(seqno: number): number {
    let size = this.size;
    for (const effect of this.sortedEffects(seqno)) {
      size = applyOps(new Map(), size, effect.ops, this.limits.pageSize, () => false);
    }
    return size;
  }

  /** Pages staged in every open group of every kernel: they count against the journal's room. */
  stagedPages(): number {
    let pages = 0;
    for (const k of this.kernels.values()) {
      for (const group of k.groups.values()) pages += group.ops.filter((op) => "page" in op).length;
    }
    return pages;
  }

  /** Rows of the object's `groups` and `staged` tables: open groups, and what they staged. */
  groupRows(): { groups: number; staged: number } {
    let groups = 0;
    let staged = 0;
    for (const k of this.kernels.values()) {
      groups += k.groups.size;
      for (const group of k.groups.values()) staged += group.ops.length;
    }
    return { groups, staged };
  }

  private tally(what: string, n = 1): void {
    this.tallies[what] = (this.tallies[what] ?? 0) + n;
  }

  /** A frame's change of the pages or the size, applied at its seqno once the round knows it. */
  private effect(frame: FrameRec, ops: Op[]): void {
    if (ops.length === 0) return;
    this.roundEffects.push({ frame, ops });
    for (const op of ops) if ("page" in op) this.written.add(op.page);
  }

  // --- sockets ----------------------------------------------------------------------------------

  /** A new socket of `kernel` (the upgrade): older ones of the kernel are closed with 4409. */
  connect(kernel: string, writer: boolean): SocketModel {
    for (const old of this.socketsOf(kernel)) {
      old.closeExpected = CLOSE_REPLACED;
      this.closed(old);
    }
    const socket = new SocketModel(++this.socketIds, kernel, writer);
    this.sockets.add(socket);
    return socket;
  }

  /** The kernel closed the socket and the object has seen it. */
  clientClosed(socket: SocketModel): void {
    if (socket.open) this.closed(socket);
    this.sockets.delete(socket);
  }

  /** A socket the runner is done with (closed, every answer in). */
  forgetSocket(socket: SocketModel): void {
    this.sockets.delete(socket);
  }

  socketsOf(kernel: string): SocketModel[] {
    return [...this.sockets].filter((s) => s.kernel === kernel && s.open);
  }

  /** The kernel's open, initialized socket: where its messages go. */
  socketOf(kernel: string): SocketModel | undefined {
    return this.socketsOf(kernel).find((s) => s.initialized);
  }

  private closed(socket: SocketModel): void {
    socket.open = false;
    if (!socket.initialized || this.socketOf(socket.kernel)) return;
    // The kernel departed: INVALIDATE requests stop waiting on it, and it must flush (docs/protocol.md §6.6).
    const k = this.kernels.get(socket.kernel);
    if (!k || !this.syncs.some((row) => row.locks.has(k.name))) return;
    this.disconnectStale.push(k.name);
    this.markStale(k);
    this.settle();
    this.finishStep();
  }

  // --- frames -----------------------------------------------------------------------------------

  /**
   * Processes a frame sent on `socket`: queues what the socket (and others) must receive and
   * changes the model as the object must change. A batch (docs/protocol.md §11) is judged here
   * too; the runner's own batches are built message by message (`beginBatch`).
   */
  frame(socket: SocketModel, data: string | Uint8Array): Outcome {
    const verdict = this.check(socket, data);
    if ("refused" in verdict) return { refused: verdict.refused };
    if ("batch" in verdict) return this.batchFrame(socket, data, verdict.batch);
    const frame = this.newFrame(socket, data);
    frame.type = verdict.type;
    return this.judged(socket, frame, verdict);
  }

  /** A message checked and not refused: its error, or its effects. */
  private judged(socket: SocketModel, frame: FrameRec, verdict: MessageVerdict): Outcome {
    if (verdict.fault) {
      verdict.fault.effect?.();
      return this.answerError(socket, frame, verdict.fault, verdict.replyTo, verdict.header);
    }
    const outcome = this.apply(socket, frame, verdict.header!, verdict.payload);
    if (this.stepDelayed) outcome.delayed = true;
    this.finishStep();
    return outcome;
  }

  /** What a frame would come to on `socket`, changing nothing: refused, its error, or applied. */
  preview(
    socket: SocketModel,
    data: string | Uint8Array,
  ): { refused?: string; error?: string; type: string; duplicate: boolean } {
    const verdict = this.check(socket, data);
    if ("refused" in verdict) return { refused: verdict.refused, type: "?", duplicate: false };
    if ("batch" in verdict) {
      // A batch that would end the kernel says so: the lane decides when it ends.
      const passes = this.prejudge(socket, verdict.batch);
      if (typeof passes === "string") return { refused: passes, type: "batch", duplicate: false };
      return { type: passes ? "memory_object_terminate" : "batch", duplicate: false };
    }
    if (verdict.fault) return { error: verdict.fault.code, type: verdict.type, duplicate: false };
    return { type: verdict.type, duplicate: this.isDuplicate(socket, verdict) };
  }

  private isDuplicate(socket: SocketModel, verdict: MessageVerdict): boolean {
    const k = this.kernels.get(socket.kernel);
    return STATE_CHANGING.has(verdict.type) && verdict.header!.id <= (k?.lastId ?? 0);
  }

  // --- batches (docs/protocol.md §11) -----------------------------------------------------------

  /**
   * A batch frame that parsed: over max_transfer, one `too_large` per message; else each message
   * judged in array order as if alone, with consecutive seqnos. Refused when the model would have
   * to guess: an error limit passed inside it (the docs do not say which of its messages are
   * still answered), a terminate or a completion that may wait on a flush before its last
   * message, a non-object entry in a batch over max_transfer (its row and the entry's row of
   * docs/protocol.md §11 give it different errors).
   */
  private batchFrame(socket: SocketModel, data: string | Uint8Array, batch: ParsedBatch): Outcome {
    const n = batch.entries.length;
    if (batch.payloadBytes > this.limits.maxTransfer) {
      if (batch.entries.some((entry) => !isObject(entry.value))) {
        return { refused: "a non-object entry in a batch over max_transfer" };
      }
      if (this.errorsWouldClose(socket, n)) return { refused: "errors past an error limit" };
      const run: Cell[] = [];
      batch.entries.forEach((entry, i) => {
        const frame = this.batchRec(socket, entry.value, i, run);
        const header = entry.value as Record<string, unknown>;
        this.answerError(socket, frame, invalid("too_large"), peekId(header), header);
      });
      return { type: "batch", error: "too_large", batch: n };
    }
    const prejudged = this.prejudge(socket, batch);
    if (typeof prejudged === "string") return { refused: prejudged };
    this.beginBatch(socket, typeof data !== "string");
    batch.entries.forEach((entry, i) => {
      const outcome = this.batchEntry(entry.value, entry.payload);
      if (outcome.refused) {
        throw new Error(
          `fuzz rule broken: message ${i} of a batch refused after the batch was judged: ${outcome.refused}`,
        );
      }
    });
    return this.endBatch(null);
  }

  /**
   * A batch's messages against the state before it, changing nothing: the reason to refuse it,
   * or whether it would terminate the kernel.
   */
  private prejudge(socket: SocketModel, batch: ParsedBatch): string | boolean {
    if (batch.payloadBytes > this.limits.maxTransfer) return false;
    if (this.errorsWouldClose(socket, batch.entries.length)) return "errors past an error limit";
    let terminates = false;
    for (const [i, entry] of batch.entries.entries()) {
      if (!isObject(entry.value)) continue;
      const verdict = this.checkMessage(socket, entry.value, entry.payload, true);
      if ("refused" in verdict) return verdict.refused;
      if (verdict.fault || this.isDuplicate(socket, verdict)) continue;
      const ends = ["memory_object_terminate", "memory_object_synchronize"].includes(verdict.type);
      if (ends && i < batch.entries.length - 1)
        return "a batch that may end before its last message";
      terminates ||= verdict.type === "memory_object_terminate";
    }
    return terminates;
  }

  /** The batch being built, message by message (`batchEntry`), by the runner or `batchFrame`. */
  private building: {
    socket: SocketModel;
    binary: boolean;
    run: Cell[];
    entries: BatchEntry[];
    outcome: Outcome;
    ended: boolean;
    /** A terminate of it applied: every later message is `bad_frame` (docs/protocol.md §11). */
    terminated: boolean;
  } | null = null;

  /** Starts a batch for `socket`: a binary one carries pages. */
  beginBatch(socket: SocketModel, binary: boolean): void {
    if (this.building) throw new Error("fuzz rule broken: a batch inside a batch");
    this.building = {
      socket,
      binary,
      run: [],
      entries: [],
      outcome: { type: "batch" },
      ended: false,
      terminated: false,
    };
  }

  /** Whether the batch being built must end: its last message closes the socket or waits. */
  get batchEnded(): boolean {
    return this.building?.ended ?? true;
  }

  /**
   * The next message of the batch being built (any JSON value, and its pages in a binary batch):
   * refused, changing nothing, when it would make the batch unparseable or the answers guesses,
   * or when `veto` (the runner's) refuses what it would come to; else judged as if alone.
   */
  batchEntry(
    value: unknown,
    payload: Uint8Array | null,
    veto?: (verdict: { error?: string; type: string; duplicate: boolean }) => boolean,
  ): Outcome {
    const b = this.building!;
    const { socket } = b;
    if (b.ended) return { refused: "the batch has ended" };
    if (b.entries.length >= MAX_BATCH_MESSAGES) return { refused: "the batch is full" };
    if (b.binary && carriesPages(value)) {
      const length = (value as Record<string, unknown>).length;
      if (!Number.isSafeInteger(length) || (length as number) < 0) {
        return { refused: "pages with no valid length: the batch would not parse" };
      }
      if (payload?.byteLength !== length) return { refused: "pages not of their length" };
      const carried = b.entries.reduce((sum, entry) => sum + (entry.payload?.byteLength ?? 0), 0);
      if (carried + payload!.byteLength > this.limits.maxTransfer) {
        return { refused: "pages over max_transfer" };
      }
    } else {
      payload = null;
    }
    const verdict: { refused: string } | MessageVerdict = isObject(value)
      ? this.checkMessage(socket, value, payload, true, b.terminated)
      : { fault: invalid("bad_json"), replyTo: null, type: "?", payload: null };
    if ("refused" in verdict) return { refused: verdict.refused };
    if (verdict.fault && this.errorCloses(socket)) return { refused: "errors past an error limit" };
    const duplicate = !verdict.fault && this.isDuplicate(socket, verdict);
    if (veto?.({ error: verdict.fault?.code, type: verdict.type, duplicate })) {
      return { refused: "vetoed" };
    }
    const frame = this.batchRec(socket, value, b.entries.length, b.run);
    frame.type = verdict.type;
    const outcome = this.judged(socket, frame, verdict);
    b.entries.push({ value, payload });
    const all = b.outcome;
    all.error ??= outcome.error;
    all.applied ||= outcome.applied;
    all.closes ||= outcome.closes;
    all.delayed ||= outcome.delayed;
    // After a terminate the batch goes on, each later message refused; the socket then closes.
    if (outcome.applied && outcome.type === "memory_object_terminate") b.terminated = true;
    else if (!b.terminated) b.ended = Boolean(outcome.closes || outcome.delayed);
    return outcome;
  }

  /**
   * The batch is built; `data` is the frame the runner sends for it, which must parse (by the
   * model's own reading, docs/protocol.md §11) into exactly the messages judged. Null: nothing
   * to check (no message was taken, or the frame is the one `batchFrame` parsed).
   */
  endBatch(data: string | Uint8Array | null): Outcome {
    const b = this.building!;
    this.building = null;
    if (data !== null) {
      const verdict = this.check(b.socket, data);
      const parsed = "batch" in verdict ? verdict.batch : null;
      const same =
        parsed !== null &&
        parsed.payloadBytes <= this.limits.maxTransfer &&
        parsed.entries.length === b.entries.length &&
        parsed.entries.every((entry, i) => {
          const judged = b.entries[i]!;
          return (
            JSON.stringify(entry.value) === JSON.stringify(judged.value) &&
            sameBytes(entry.payload, judged.payload)
          );
        });
      if (!same) {
        throw new Error(
          `fuzz rule broken: the batch sent is not the batch judged (${b.entries.length} messages): ${summarize(data)}`,
        );
      }
    }
    return { ...b.outcome, batch: b.entries.length };
  }

  /** A record of a batch's message `index`: its seqno follows the one before it. */
  private batchRec(socket: SocketModel, value: unknown, index: number, run: Cell[]): FrameRec {
    const text = JSON.stringify(value) ?? String(value);
    const frame = this.newFrame(
      socket,
      text,
      `batch[${index}] ${text.slice(0, 300)}${text.length > 300 ? "…" : ""}`,
    );
    frame.seqno.run = run;
    run.push(frame.seqno);
    return frame;
  }

  private errorsWouldClose(socket: SocketModel, errors: number): boolean {
    return (
      (this.kernelErrors.get(socket.kernel) ?? 0) + errors > this.limits.kernelErrorsPerMinute ||
      socket.errors + errors > this.limits.errorsPerMinute
    );
  }

  /**
   * The checks, in the object's order; the first that fails is the answer. Changes nothing.
   * A socket that asked for batches reads a frame's JSON before its size (docs/protocol.md §11
   * leaves the order open; this is the implementation's): the header's size, the framing and
   * JSON, then an array is a batch, and anything else one message, whose frame size is checked
   * next. Otherwise, as in version 1: the frame's size, the header's, the framing and JSON.
   */
  private check(
    socket: SocketModel,
    data: string | Uint8Array,
  ): { refused: string } | MessageVerdict | { batch: ParsedBatch } {
    const L = this.limits;
    const none = { replyTo: null, type: "?", payload: null };
    if (typeof data === "string" && /[\uD800-\uDFFF]/.test(data)) {
      // On the wire a lone surrogate is U+FFFD.
      data = lenientDecoder.decode(encoder.encode(data));
    }
    const frameBytes = typeof data === "string" ? data.length : data.byteLength;
    const frameTooLarge = frameBytes > 4 + 3 * L.maxHeaderBytes + L.maxTransfer;
    if (frameTooLarge && !socket.batch) return { ...none, fault: invalid("too_large") };
    const headerBytes =
      typeof data === "string"
        ? encoder.encode(data).byteLength
        : data.byteLength >= 4
          ? new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0)
          : 0;
    if (headerBytes > L.maxHeaderBytes) return { ...none, fault: invalid("too_large") };
    let parsed: { json: unknown; payload: Uint8Array | null };
    try {
      parsed = parseFrame(data);
      if (Array.isArray(parsed.json) && socket.batch) {
        return { batch: splitBatch(parsed.json, parsed.payload) };
      }
      asObject(parsed.json);
    } catch (fault) {
      if (fault instanceof Fault) return { ...none, fault };
      throw fault;
    }
    if (frameTooLarge) return { ...none, fault: invalid("too_large") };
    return this.checkMessage(socket, parsed.json as Record<string, any>, parsed.payload, false);
  }

  /**
   * One message's checks, for a frame of its own or a message of a batch (`inBatch`: each is
   * checked as if alone, but an init in a batch is `bad_frame`, and so is any message after a
   * terminate of the same batch once its own fields passed, `afterTerminate`, docs/protocol.md §11).
   */
  private checkMessage(
    socket: SocketModel,
    header: Record<string, any>,
    payload: Uint8Array | null,
    inBatch: boolean,
    afterTerminate = false,
  ): { refused: string } | MessageVerdict {
    const L = this.limits;
    const replyTo = peekId(header);
    const type = typeof header.type === "string" ? header.type : "?";
    const result = (fault: Fault | null) => ({
      fault,
      replyTo,
      type,
      header,
      payload,
    });
    if (typeof header.type !== "string") return result(invalid("bad_field", "type"));
    if (!Object.hasOwn(FIELDS, header.type)) return result(invalid("unknown_type"));
    for (const [name, rule] of Object.entries(FIELDS[header.type as keyof typeof FIELDS])) {
      if (!keepsRule(rule, header[name])) return result(invalid("bad_field", name));
    }
    const badOptional = optionalFieldsKeepRules(header.type as keyof typeof FIELDS, header);
    if (badOptional !== null) return result(invalid("bad_field", badOptional));
    if (type === "memory_object_data_return") {
      if (payload === null) return result(invalid("bad_field", type));
      if (payload.byteLength !== header.length) return result(invalid("bad_field", "length"));
    }
    const isInit = type === "memory_object_init";
    if (inBatch && isInit) return result(invalid("bad_frame"));
    if (!socket.initialized && !isInit) return result(invalid("not_initialized"));
    if (socket.initialized && isInit) return result(invalid("already_initialized"));
    // The kernel is forgotten: nothing after its terminate in the same batch applies.
    if (afterTerminate) return result(invalid("bad_frame"));
    if (NEEDS_WRITE.has(type) && !socket.writer) {
      return result(new Fault("forbidden", KERN_PROTECTION_FAILURE));
    }
    const k = this.kernels.get(socket.kernel);
    if (STATE_CHANGING.has(type) && header.id <= (k?.lastId ?? 0)) return result(null);
    const m = header;
    switch (type) {
      case "memory_object_init": {
        if (this.pageSizeFixed && m.page_size !== L.pageSize) {
          return result(invalid("page_size_mismatch"));
        }
        if (!this.pageSizeFixed && socket.writer && m.page_size !== L.pageSize) {
          // The first writer's init fixes the page size: the runner's first is 4096.
          return { refused: "an init that would fix another page size" };
        }
        if (!k) {
          if (this.mode === "concurrent") {
            // Which kernel a full kind lets go would depend on the order of the round's inits.
            const kind = socket.writer ? "writer" : "reader";
            if (this.roundKinds[kind] + 1 >= this.kindLimit(socket.writer)) {
              return { refused: "a new kernel while the kernel budget is nearly full" };
            }
          }
          const admission = this.admission(socket.writer);
          if (admission instanceof Fault) return result(admission);
        }
        const ahead = this.midAhead(k, m.received_mid);
        if (ahead === "ambiguous") return { refused: "received_mid among mids not yet seen" };
        if (ahead) return result(invalid("mid_ahead", "received_mid"));
        return result(null);
      }
      case "memory_object_data_request": {
        const fault = this.pageRange(m.offset, m.length);
        if (!fault && this.mode === "concurrent") {
          const { first, end } = spanOf(m.offset, m.length, L.pageSize);
          const raced = this.roundInvalidations.some(
            (inv) => inv.kernel !== socket.kernel && inv.first < end && first < inv.end,
          );
          if (raced) return { refused: "a read of pages another kernel invalidates this round" };
        }
        return result(fault);
      }
      case "memory_object_data_return": {
        const fault = this.pageRange(m.offset, m.length);
        if (fault) return result(fault);
        if (m.group === undefined) {
          return m.dirty && this.journalLimitPages !== null
            ? { refused: "a write to the journal while its room is exact" }
            : result(null);
        }
        const groupFault = this.groupOpens(k!, m.group);
        if (groupFault || !m.dirty) return result(groupFault);
        // Staged pages count against the journal's room (docs/protocol.md §12).
        const staged = this.stagedPages() + m.length / L.pageSize;
        if (this.journalLimitPages !== null && staged > this.journalLimitPages) {
          return result(new Fault("journal_full", KERN_RESOURCE_SHORTAGE));
        }
        if (staged > STAGED_PAGES_CAP) return { refused: "staged pages past the model's cap" };
        return result(null);
      }
      case "memory_object_set_size":
        if (m.size > L.maxSize)
          return result(new Fault("out_of_range", KERN_INVALID_ADDRESS, "size"));
        return result(m.group === undefined ? null : this.groupOpens(k!, m.group));
      case "memory_object_data_unlock":
        return result(
          this.pageRange(m.offset, m.length) ??
            (k!.outbox.length >= L.outboxMax
              ? new Fault("outbox_full", KERN_RESOURCE_SHORTAGE)
              : null),
        );
      case "memory_object_synchronize": {
        if (m.offset + m.length > L.maxSize) return result(outOfRange());
        const outstanding = this.syncs.filter((row) => row.kernel === k!.name).length;
        if (outstanding >= L.maxSyncsPerKernel) {
          return result(new Fault("too_many_syncs", KERN_RESOURCE_SHORTAGE));
        }
        if (k!.outbox.length + outstanding >= L.outboxMax) {
          return result(new Fault("outbox_full", KERN_RESOURCE_SHORTAGE));
        }
        const group = m.group === undefined ? undefined : k!.groups.get(m.group);
        if (group?.failed) {
          // Refused once more at its synchronize, which frees the number (docs/protocol.md §12).
          return result(
            new Fault("group_discarded", KERN_RESOURCE_SHORTAGE, undefined, () =>
              k!.groups.delete(m.group),
            ),
          );
        }
        if (group && this.journalLimitPages !== null && group.ops.some((op) => "page" in op)) {
          // Its pages would enter the journal, whose room the model then no longer knows.
          return { refused: "a commit while the journal's room is exact" };
        }
        if (this.mode === "concurrent") {
          const refused = this.concurrentSync(k!, m.offset, m.length, m.sync_flags);
          if (refused) return { refused };
        }
        return result(null);
      }
      case "memory_object_lock_completed":
        return result(m.offset + m.length > L.maxSize ? outOfRange() : null);
      case "received": {
        const ahead = this.midAhead(k, m.mid);
        if (ahead === "ambiguous") return { refused: "mid among mids not yet seen" };
        return result(ahead ? invalid("mid_ahead", "mid") : null);
      }
      default:
        return result(null); // terminate
    }
  }

  private pageRange(offset: number, length: number): Fault | null {
    const { pageSize, maxTransfer, maxSize } = this.limits;
    if (offset % pageSize !== 0) return invalid("bad_field", "offset");
    if (length === 0 || length % pageSize !== 0) return invalid("bad_field", "length");
    if (length > maxTransfer) return invalid("bad_field", "length");
    if (offset + length > maxSize) return outOfRange();
    return null;
  }

  /**
   * A grouped message opens its group if it is not open (docs/protocol.md §12): refused for a group a
   * refusal discarded, and for one more than MAX_OPEN_GROUPS (discarded ones count). Changes
   * nothing here; the refusal discards the group (`answerError`).
   */
  private groupOpens(k: KernelModel, group: number): Fault | null {
    const open = k.groups.get(group);
    if (open?.failed) return new Fault("group_discarded", KERN_RESOURCE_SHORTAGE);
    if (!open && k.groups.size >= MAX_OPEN_GROUPS) {
      return new Fault("too_many_groups", KERN_RESOURCE_SHORTAGE);
    }
    return null;
  }

  /** The kernel's group `group`, opened if it is not. */
  private openGroup(k: KernelModel, group: number): Group {
    let open = k.groups.get(group);
    if (!open) k.groups.set(group, (open = { ops: [], failed: false }));
    return open;
  }

  /** Whether `mid` is above the last mid sent to the kernel (or can't be told yet). */
  private midAhead(k: KernelModel | undefined, mid: number): boolean | "ambiguous" {
    if (!k) return mid > 0;
    if (mid > k.nextMid - 1) return true;
    const floating = k.outbox.some((e) => e.mid.value === undefined);
    return floating && mid >= Math.min(...k.outbox.map((e) => e.mid.value ?? Infinity))
      ? "ambiguous"
      : false;
  }

  /**
   * A kernel the object does not know asks to init: room for it, or a reclaimable kernel of its
   * kind to forget, or too_many_kernels (docs/protocol.md §3 Reading). Changes nothing.
   */
  private kindLimit(writer: boolean): number {
    return writer ? this.limits.maxKernels : Math.max(1, Math.floor(this.limits.maxKernels / 4));
  }

  private admission(writer: boolean): Fault | KernelModel | null {
    const limit = this.kindLimit(writer);
    const ofKind = [...this.kernels.values()].filter((k) => k.writer === writer);
    if (ofKind.length < limit) return null;
    const victim = ofKind
      .sort((a, b) => a.order - b.order)
      .find(
        (k) =>
          !k.stale &&
          k.outbox.length === 0 &&
          !this.syncs.some((row) => row.kernel === k.name || row.locks.has(k.name)) &&
          ![...k.groups.values()].some((group) => !group.failed) &&
          this.socketsOf(k.name).length === 0,
      );
    return victim ?? new Fault("too_many_kernels", KERN_RESOURCE_SHORTAGE);
  }

  /**
   * In a round where sockets race, a synchronize must not reach other kernels (an INVALIDATE of
   * pages another kernel may cache, now or by a read earlier in the round) nor wait behind one.
   */
  private concurrentSync(
    k: KernelModel,
    offset: number,
    length: number,
    flags: number,
  ): string | null {
    if (this.syncs.length > 0) return "synchronize while requests are outstanding";
    if ((flags & VM_SYNC_INVALIDATE) === 0 || length === 0) return null;
    const { first, end } = spanOf(offset, length, this.limits.pageSize);
    for (let page = first; page < end; page++) {
      for (const holder of this.roundHolders.get(page) ?? []) {
        if (holder !== k.name) return "INVALIDATE of pages another kernel may cache";
      }
    }
    return null;
  }

  private answerError(
    socket: SocketModel,
    frame: FrameRec,
    fault: Fault,
    replyTo: number | null,
    header?: Record<string, unknown>,
  ): Outcome {
    // Any refusal of a grouped return or set_size whose group is valid discards the group, which
    // then refuses its later messages and its synchronize (docs/protocol.md §12), so that a commit
    // sent in the same batch never applies without the refused message.
    const group = header?.group;
    if (socket.initialized && GROUPED.has(header?.type) && keepsRule("positive", group)) {
      const k = this.kernels.get(socket.kernel);
      k?.groups.set(group as number, { ops: [], failed: true });
      this.tally("groups discarded by a refusal");
    }
    socket.stream.push({
      kind: "error",
      frame,
      replyTo,
      code: fault.code,
      kernReturn: fault.kernReturn,
      field: fault.field,
    });
    // The kernel's budget first; past it every socket of the kernel goes (docs/protocol.md §8).
    const kernelErrors = (this.kernelErrors.get(socket.kernel) ?? 0) + 1;
    this.kernelErrors.set(socket.kernel, kernelErrors);
    let closes = false;
    if (kernelErrors > this.limits.kernelErrorsPerMinute) {
      for (const s of this.socketsOf(socket.kernel)) {
        s.closeExpected = CLOSE_POLICY_VIOLATION;
        this.closed(s);
      }
      closes = true;
    } else if (++socket.errors > this.limits.errorsPerMinute) {
      socket.closeExpected = CLOSE_POLICY_VIOLATION;
      this.closed(socket);
      closes = true;
    }
    return { error: fault.code, closes, type: frame.type };
  }

  /** Whether an error now on `socket` would close it (the runner plans the last frame). */
  errorCloses(socket: SocketModel): boolean {
    return this.errorsWouldClose(socket, 1);
  }

  private apply(
    socket: SocketModel,
    frame: FrameRec,
    m: Record<string, any>,
    payload: Uint8Array | null,
  ): Outcome {
    const type = m.type as string;
    let k = this.kernels.get(socket.kernel)!;
    if (STATE_CHANGING.has(type) && m.id <= (k?.lastId ?? 0)) {
      // A resend: acked again, with the original seqno if it is the latest id (docs/protocol.md §3 Reading).
      const seqno = m.id === k.lastId ? k.lastFrame!.seqno : frame.seqno;
      socket.stream.push({ kind: "ack", frame, id: m.id, seqno, applied: false });
      return { duplicate: true, type };
    }
    const ack = () =>
      socket.stream.push({ kind: "ack", frame, id: m.id, seqno: frame.seqno, applied: true });
    const applied = () => {
      k.lastId = m.id;
      k.lastFrame = frame;
    };
    switch (type) {
      case "memory_object_init": {
        const known = k !== undefined;
        if (!known) this.roundKinds[socket.writer ? "writer" : "reader"]++;
        if (!known) {
          const victim = this.admission(socket.writer);
          if (victim instanceof KernelModel) {
            this.kernels.delete(victim.name);
            this.reclaimed = true;
          }
          k = new KernelModel(socket.kernel, socket.writer, ++this.kernelOrder);
          this.kernels.set(k.name, k);
        }
        k.writer = socket.writer;
        if (socket.writer) this.pageSizeFixed = true;
        k.outbox = k.outbox.filter((e) => e.mid.value! > m.received_mid);
        // The groups it does not name are abandoned, never applied (docs/protocol.md §12).
        const kept: unknown[] = m.open_groups ?? [];
        for (const group of [...k.groups.keys()]) {
          if (kept.includes(group)) continue;
          k.groups.delete(group);
          this.tally("groups abandoned at init");
        }
        const flush = k.stale || (!known && this.reclaimed);
        if (flush) {
          k.stale = false;
          k.residency.clear();
        }
        socket.initialized = true;
        socket.batch = m.batch === true;
        socket.stream.push({
          kind: "ready",
          frame,
          fields: {
            type: "memory_object_ready",
            object: this.objectName,
            kernel: k.name,
            page_size: m.page_size,
            max_transfer: this.limits.maxTransfer,
            max_size: this.limits.maxSize,
            may_cache: true,
            copy_strategy: MEMORY_OBJECT_COPY_DELAY,
            last_id: k.lastId,
            flush,
            batch: m.batch === true,
            // The runner never asks for coherence (docs/protocol.md §10): the mode stays off.
            coherent: false,
          },
        });
        for (const entry of k.outbox) socket.stream.push({ kind: "outbox", entry, group: null });
        return { type };
      }
      case "memory_object_data_request": {
        const { first, end } = spanOf(m.offset, m.length, this.limits.pageSize);
        for (let page = first; page < end; page++) {
          k.residency.add(page);
          this.holderSet(page).add(k.name);
        }
        socket.stream.push({
          kind: "read",
          frame,
          replyTo: m.id,
          offset: m.offset,
          length: m.length,
        });
        return { type };
      }
      case "memory_object_data_unlock": {
        this.push(k, {
          type: "memory_object_lock_request",
          lock_id: this.takeLockId(),
          offset: m.offset,
          length: m.length,
          should_return: 0,
          should_flush: false,
          lock_value: 0,
        });
        return { type };
      }
      case "memory_object_data_return": {
        const ops: Op[] = [];
        if (m.dirty) {
          const { pageSize } = this.limits;
          const first = m.offset / pageSize;
          for (let p = 0; p < m.length / pageSize; p++) {
            ops.push({
              page: first + p,
              bytes: payload!.subarray(p * pageSize, (p + 1) * pageSize),
            });
          }
        }
        // Grouped: staged, seen by nobody until its synchronize (a clean one opens the group).
        if (m.group !== undefined) {
          this.openGroup(k, m.group).ops.push(...ops);
          this.tally(m.dirty ? "returns staged" : "clean grouped returns");
        } else this.effect(frame, ops);
        applied();
        ack();
        return { applied: true, type };
      }
      case "memory_object_set_size": {
        const op: Op = { size: m.size };
        if (m.group !== undefined) {
          this.openGroup(k, m.group).ops.push(op);
          this.tally("set_sizes staged");
        } else this.effect(frame, [op]);
        applied();
        ack();
        return { applied: true, type };
      }
      case "memory_object_synchronize": {
        applied();
        ack();
        if (m.group !== undefined) {
          // The group commits at this seqno, in the order staged, before the request's own range.
          const ops = k.groups.get(m.group)?.ops ?? [];
          this.tally(ops.length > 0 ? "groups committed" : "commits of nothing");
          this.effect(frame, ops);
          k.groups.delete(m.group);
        }
        if (this.mode === "concurrent" && (m.sync_flags & VM_SYNC_INVALIDATE) !== 0) {
          this.roundInvalidations.push({
            kernel: k.name,
            ...spanOf(m.offset, m.length, this.limits.pageSize),
          });
        }
        this.admitSync(k, frame, m);
        return { applied: true, type };
      }
      case "memory_object_lock_completed": {
        applied();
        ack();
        for (const row of this.syncs) {
          const lock = row.locks.get(k.name);
          if (lock?.value !== m.lock_id) continue;
          row.locks.delete(k.name);
          for (let page = row.first; page < row.end; page++) k.residency.delete(page);
          break;
        }
        this.settle();
        return { applied: true, type };
      }
      case "memory_object_terminate": {
        applied();
        ack();
        // Forgotten at once: its requests, the locks waiting on it, its outbox, residency and groups.
        if (k.groups.size > 0) this.tally("groups abandoned at terminate", k.groups.size);
        this.syncs = this.syncs.filter((row) => row.kernel !== k.name);
        for (const row of this.syncs) row.locks.delete(k.name);
        this.kernels.delete(k.name);
        this.settle();
        socket.closeExpected = CLOSE_NORMAL;
        this.closed(socket);
        return { applied: true, type, closes: true };
      }
      case "received":
        k.outbox = k.outbox.filter((e) => e.mid.value! > m.mid);
        return { type };
    }
    throw new Error(`unreachable: ${type}`);
  }

  private takeLockId(): Cell {
    if (this.lockBlock) {
      this.lockBlock.count++;
      return new Cell(undefined, this.lockBlock);
    }
    const cell = new Cell();
    this.stepLocks.push(cell);
    return cell;
  }

  /** Keeps a message for the kernel; it is numbered and sent when the step is done. */
  private push(
    k: KernelModel,
    fields: Record<string, unknown>,
    request?: OutboxEntry["request"],
  ): void {
    this.stepPushes.push({ k, fields, request });
  }

  /**
   * The step (a frame, or a socket the object saw close) is done: lock ids are given, and what
   * it sent each kernel is numbered. Several messages to one kernel come in any order (the
   * protocol orders only overlapping completions), so their mids are known only as a block.
   */
  private finishStep(): void {
    if (this.stepLocks.length === 1) this.stepLocks[0]!.value = this.nextLockId;
    if (this.stepLocks.length > 1) {
      const block = new Block(this.nextLockId, this.stepLocks.length, "lock_id");
      for (const cell of this.stepLocks) cell.block = block;
    }
    this.nextLockId += this.stepLocks.length;
    this.stepLocks = [];
    const byKernel = new Map<KernelModel, typeof this.stepPushes>();
    for (const push of this.stepPushes) {
      if (!byKernel.has(push.k)) byKernel.set(push.k, []);
      byKernel.get(push.k)!.push(push);
    }
    this.stepPushes = [];
    this.stepDelayed = false;
    this.delayedDone = [];
    for (const [k, pushes] of byKernel) {
      const socket = this.socketOf(k.name);
      const several = pushes.length > 1;
      if (several && !socket) {
        throw new Error(
          `fuzz rule broken: several messages at once for ${k.name}, disconnected: ${JSON.stringify(pushes.map((p) => p.fields))}`,
        );
      }
      const block = several ? new Block(k.nextMid, pushes.length, `mid of ${k.name}`) : undefined;
      const group = several ? ++this.groupIds : null;
      const entries: OutboxEntry[] = [];
      for (const { fields, request } of pushes) {
        const entry: OutboxEntry = {
          mid: several ? new Cell(undefined, block) : new Cell(k.nextMid),
          fields,
          request,
        };
        entries.push(entry);
        k.outbox.push(entry);
        socket?.stream.push({ kind: "outbox", entry, group });
      }
      k.nextMid += pushes.length;
      if (several) this.roundGroups.push(entries);
    }
  }

  // --- synchronize (docs/protocol.md §6) -------------------------------------------------------------

  private admitSync(k: KernelModel, frame: FrameRec, m: Record<string, any>): void {
    const { first, end } = spanOf(m.offset, m.length, this.limits.pageSize);
    const row: SyncRow = {
      frame,
      kernel: k.name,
      id: m.id,
      offset: m.offset,
      length: m.length,
      first,
      end,
      flags: m.sync_flags,
      active: false,
      locks: new Map(),
    };
    this.syncs.push(row);
    this.settle();
  }

  /** Starts what may start and completes what is done, until nothing changes. */
  private settle(): void {
    for (let changed = true; changed;) {
      changed = false;
      for (const row of [...this.syncs]) {
        if (!this.syncs.includes(row)) continue;
        if (!row.active) {
          const blocked = this.syncs.some(
            (other) =>
              other !== row &&
              other.kernel === row.kernel &&
              this.syncs.indexOf(other) < this.syncs.indexOf(row) &&
              overlaps(other, row),
          );
          if (blocked) continue;
          this.start(row);
          changed = true;
        }
        if (row.locks.size === 0) {
          this.complete(row);
          changed = true;
        }
      }
    }
  }

  private afterFlush(row: SyncRow): boolean {
    return this.delayedDone.some((done) => done.kernel === row.kernel && overlaps(done, row));
  }

  /** INVALIDATE asks every other kernel that may cache a page of the range (docs/protocol.md §6.6). */
  private start(row: SyncRow): void {
    row.active = true;
    if ((row.flags & VM_SYNC_INVALIDATE) === 0 || row.length === 0) return;
    const holders = [...this.kernels.values()].filter(
      (k) =>
        k.name !== row.kernel &&
        [...k.residency].some((page) => page >= row.first && page < row.end),
    );
    const asked: KernelModel[] = [];
    for (const k of holders) {
      if (k.stale || !this.socketOf(k.name)) this.markStale(k);
      else asked.push(k);
    }
    if (asked.length === 0) return;
    if (this.afterFlush(row)) {
      throw new Error("fuzz rule broken: an INVALIDATE would ask kernels after a flush");
    }
    if (this.lockBlock) throw new Error("fuzz rule broken: lock requests in a concurrent round");
    const pageSize = this.limits.pageSize;
    for (const k of asked) {
      const lockId = this.takeLockId();
      row.locks.set(k.name, lockId);
      this.push(k, {
        type: "memory_object_lock_request",
        lock_id: lockId,
        offset: row.first * pageSize,
        length: (row.end - row.first) * pageSize,
        should_return: 1,
        should_flush: true,
        lock_value: 8,
      });
    }
  }

  private complete(row: SyncRow): void {
    this.syncs = this.syncs.filter((r) => r !== row);
    const fields = {
      type: "memory_object_synchronize_completed",
      reply_to: row.id,
      seqno: row.frame.seqno,
      offset: row.offset,
      length: row.length,
    };
    const k = this.kernels.get(row.kernel);
    if (!k) return;
    // SYNCHRONOUS waits on R2 for pages written below it; in a racing round any may have been.
    const waitsOnFlush =
      ((row.flags & VM_SYNC_SYNCHRONOUS) !== 0 &&
        (this.mode === "concurrent" || this.everWritten(row.first, row.end))) ||
      this.afterFlush(row);
    if (waitsOnFlush) {
      this.delayedDone.push(row);
      this.stepDelayed = true;
    }
    this.push(k, fields, { seqno: row.frame.seqno, first: row.first, end: row.end });
  }

  private everWritten(first: number, end: number): boolean {
    for (let page = first; page < end; page++) if (this.written.has(page)) return true;
    return false;
  }

  private markStale(k: KernelModel): void {
    k.stale = true;
    k.residency.clear();
    // Lock requests it has not answered are withdrawn from its outbox: flush: true covers them.
    const withdrawn = new Set<Cell>();
    for (const row of this.syncs) {
      const lock = row.locks.get(k.name);
      if (lock) withdrawn.add(lock);
      row.locks.delete(k.name);
    }
    k.outbox = k.outbox.filter(
      (e) =>
        e.fields.type !== "memory_object_lock_request" || !withdrawn.has(e.fields.lock_id as Cell),
    );
  }

  private holderSet(page: number): Set<string> {
    let set = this.roundHolders.get(page);
    if (!set) this.roundHolders.set(page, (set = new Set()));
    return set;
  }

  // --- what the object reports -------------------------------------------------------------------

  /** `GET /v1/objects/{name}` at the next seqno, but for journal_pages (timing). */
  expectedStat(seqno: number): Record<string, unknown> {
    return {
      object: this.objectName,
      page_size: this.pageSizeFixed ? this.limits.pageSize : null,
      max_size: this.limits.maxSize,
      size: this.size,
      // The runner never asks for coherence (docs/protocol.md §10).
      coherent: false,
      pages: this.pages.size,
      bytes: this.pages.size * this.limits.pageSize,
      seqno: seqno + 1,
      kernels: [...this.kernels.values()]
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((k) => ({
          kernel: k.name,
          connected: this.socketOf(k.name) !== undefined,
          last_id: k.lastId,
          stale: k.stale,
        })),
      syncs: this.syncs.length,
    };
  }

  /** `GET …/syncs`, but for `since`. */
  expectedSyncs(): Record<string, unknown>[] {
    return this.syncs.map((row) => ({
      kernel: row.kernel,
      id: row.id,
      seqno: row.frame.seqno.value,
      offset: row.offset,
      length: row.length,
      sync_flags: row.flags,
    }));
  }

  /** The pages as a GET of pages [first, end) must return them. */
  expectedBytes(first: number, end: number): Uint8Array {
    const { pageSize } = this.limits;
    const bytes = new Uint8Array((end - first) * pageSize);
    for (const [page, data] of this.pages) {
      if (page >= first && page < end) bytes.set(data, (page - first) * pageSize);
    }
    return bytes;
  }

  /** Outstanding lock requests: holder → lock id, for the scenario that answers them. */
  locksOf(kernel: string): number[] {
    return this.syncs.flatMap((row) => {
      const lock = row.locks.get(kernel);
      return lock?.value !== undefined ? [lock.value] : [];
    });
  }

  /** The kernels some outstanding request waits on. */
  waitedOn(): string[] {
    return [...new Set(this.syncs.flatMap((row) => [...row.locks.keys()]))];
  }

  lockSpanOf(kernel: string, lockId: number): { offset: number; length: number } | null {
    for (const row of this.syncs) {
      if (row.locks.get(kernel)?.value === lockId) {
        const { pageSize } = this.limits;
        return { offset: row.first * pageSize, length: (row.end - row.first) * pageSize };
      }
    }
    return null;
  }
}

// ---------------------------------------------------------------------------------------------

function outOfRange(): Fault {
  return new Fault("out_of_range", KERN_INVALID_ADDRESS);
}

/** Messages that may carry a `group` to stage in (docs/protocol.md §12). */
const GROUPED: ReadonlySet<unknown> = new Set([
  "memory_object_data_return",
  "memory_object_set_size",
]);

/** Messages that need the write right (docs/security.md). */
const NEEDS_WRITE: ReadonlySet<string> = new Set([
  "memory_object_data_return",
  "memory_object_synchronize",
  "memory_object_set_size",
]);

/**
 * Applies `ops` in order to `pages` (changed in place; only the pages `kept` keeps) and to
 * `size`; returns the new size. A write raises the size to its end; a smaller size drops the
 * pages wholly past it and zeroes the rest of its last page; a larger one adds nothing, the bytes
 * past the size being zeros already (docs/protocol.md §13).
 */
function applyOps(
  pages: Map<number, Uint8Array>,
  size: number,
  ops: readonly Op[],
  pageSize: number,
  kept: (page: number) => boolean = () => true,
): number {
  for (const op of ops) {
    if ("page" in op) {
      if (kept(op.page)) pages.set(op.page, op.bytes);
      size = Math.max(size, (op.page + 1) * pageSize);
      continue;
    }
    if (op.size < size) {
      const firstDropped = Math.ceil(op.size / pageSize);
      for (const page of [...pages.keys()]) if (page >= firstDropped) pages.delete(page);
      const keep = op.size % pageSize;
      const last = pages.get(firstDropped - 1);
      if (keep !== 0 && last) {
        const cut = last.slice();
        cut.fill(0, keep);
        pages.set(firstDropped - 1, cut);
      }
    }
    size = op.size;
  }
  return size;
}

/**
 * The binary framing and JSON of docs/protocol.md §2: a message, or a batch's array
 * (docs/protocol.md §11).
 */
function parseFrame(data: string | Uint8Array): { json: unknown; payload: Uint8Array | null } {
  if (typeof data === "string") return { json: parseJson(data), payload: null };
  if (data.byteLength < 4) throw invalid("bad_frame");
  const headerLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  if (headerLength > data.byteLength - 4) throw invalid("bad_frame");
  let text: string;
  try {
    text = strictDecoder.decode(data.subarray(4, 4 + headerLength));
  } catch {
    throw invalid("bad_json");
  }
  return { json: parseJson(text), payload: data.subarray(4 + headerLength) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalid("bad_json");
  }
}

/** A message is a JSON object (an array too is refused, outside a batch). */
function asObject(value: unknown): Record<string, any> {
  if (!isObject(value)) throw invalid("bad_json");
  return value;
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Whether the message's pages follow it in a binary frame or batch (docs/protocol.md §2, docs/protocol.md §11). */
export function carriesPages(value: unknown): boolean {
  return isObject(value) && CARRIES_PAGES.has(value.type);
}

/**
 * A batch's messages, each with its own pages in a binary batch (those that carry pages take
 * exactly their `length` bytes, in array order), or the `bad_frame` of one that cannot be parsed
 * (docs/protocol.md §11): empty, over MAX_BATCH_MESSAGES, a message that carries pages with no
 * valid length, payload bytes that do not add up.
 */
function splitBatch(entries: unknown[], payload: Uint8Array | null): ParsedBatch {
  if (entries.length === 0 || entries.length > MAX_BATCH_MESSAGES) throw invalid("bad_frame");
  let offset = 0;
  const split = entries.map((value) => {
    if (payload === null || !carriesPages(value)) return { value, payload: null };
    const length = (value as Record<string, unknown>).length;
    if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 0) {
      throw invalid("bad_frame");
    }
    if (offset + length > payload.byteLength) throw invalid("bad_frame");
    const own = payload.subarray(offset, offset + length);
    offset += length;
    return { value, payload: own };
  });
  if (payload !== null && offset !== payload.byteLength) throw invalid("bad_frame");
  return { entries: split, payloadBytes: offset };
}

/** A message's id, if valid: its error's reply_to (docs/protocol.md §8). */
function peekId(header: Record<string, unknown>): number | null {
  const id = header.id;
  return typeof id === "number" && Number.isSafeInteger(id) && id > 0 ? id : null;
}

/** The pages a byte range touches, rounded outward (docs/protocol.md §6.2). */
function spanOf(offset: number, length: number, pageSize: number): { first: number; end: number } {
  const first = Math.floor(offset / pageSize);
  return { first, end: length === 0 ? first : Math.ceil((offset + length) / pageSize) };
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

function overlaps(a: { first: number; end: number }, b: { first: number; end: number }): boolean {
  return a.first < b.end && b.first < a.end;
}

/** A frame, shortly, for failure reports. */
export function summarize(data: string | Uint8Array): string {
  if (typeof data === "string") {
    return `text ${data.length} ${JSON.stringify(data.slice(0, 300))}${data.length > 300 ? "…" : ""}`;
  }
  const hex = Array.from(data.subarray(0, 160), (b) => b.toString(16).padStart(2, "0")).join("");
  const headerLength =
    data.byteLength >= 4 ? new DataView(data.buffer, data.byteOffset).getUint32(0) : -1;
  const header =
    headerLength >= 0 && headerLength <= Math.min(data.byteLength - 4, 600)
      ? ` ${JSON.stringify(lenientDecoder.decode(data.subarray(4, 4 + headerLength)))}`
      : "";
  return `binary ${data.byteLength}${header} ${hex}${data.byteLength > 160 ? "…" : ""}`;
}
