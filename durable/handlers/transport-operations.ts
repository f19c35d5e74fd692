/**
 * What the ways in may do to the object beyond a handler's operations (durable/handlers/operations.ts):
 * the socket loop and the upgrade (`SocketOperations`), the HTTP operations (`HttpOperations`)
 * and the receiver of their page bodies (`BodyOperations`). They admit messages through the
 * sequencer, build a handler's context and answer; how the object keeps its sockets, pages and
 * requests stays behind these operations, as for the handlers. The Pager (durable/pager.ts)
 * implements them, once.
 */
import type { ManagerMessage, ObjectGeometry, PageSpan } from "../../schema";
import type { SyncOutcome } from "../http-sync-waiters";
import type { ObjectEvent } from "../observers";
import type { PageMap } from "../page-map";
import type { ReadPlan } from "../page-store";
import type { BatchStep } from "../sequencer";
import type { SocketGrant, SocketSession } from "../sockets";
import type { SyncRequest } from "../sync-tracker";
import type { HandlerOperations } from "./operations";

/** What every way in needs: ordering, and the work a change calls for. */
interface OrderedOperations extends HandlerOperations {
  /**
   * Tells the object's observers about `event` once the step commits (durable/observers.ts);
   * `first`: before what the message's step caused (its own `message` event).
   */
  observe(event: ObjectEvent, options?: { first?: boolean }): void;
  /**
   * Gives a message its seqno and runs `ordered` as one transaction (durable/sequencer.ts); a
   * throw comes out as a `SequencedError` carrying the seqno. Then starts the work the change
   * calls for (a flush, an alarm).
   */
  admit<T>(ordered: (seqno: number) => T): { seqno: number; result: T };
  /**
   * Admits a batch's messages as one step: consecutive seqnos, one transaction, a bad message
   * undone alone and answered by `failed` in its place (durable/sequencer.ts `admitEach`).
   */
  admitEach<T>(count: number, step: BatchStep<T>): T[];
  /**
   * Runs a change outside any message's step as one transaction (inside a step: a savepoint),
   * its mail sent once it commits: what a group's refusal undoes (docs/protocol.md §12).
   */
  transact<T>(step: () => T): T;
  /**
   * A grouped return or set_size of the kernel was refused: its group is discarded and refused
   * until its synchronize (docs/protocol.md §12).
   */
  failGroup(kernel: string, group: number): void;
  /** Starts what a change made outside `admit` calls for: a flush, an alarm. */
  afterChange(): void;
  /** The object's page size and the limits of a socket's frames. */
  geometry(pageSize: number): ObjectGeometry;
}

/** The control socket: its upgrade (durable/upgrade.ts) and its frames (durable/socket-loop.ts). */
export interface SocketOperations extends OrderedOperations {
  /** Accepts the kernel's socket, keeping what its token grants; throws when over a limit. */
  acceptSocket(kernel: string, grant: SocketGrant): WebSocket;
  /** Who the socket belongs to, what its token grants, whether it has done its init. */
  sessionOf(socket: WebSocket): SocketSession;
  /** The highest message id applied for the kernel (0 for none): lower ones are resends. */
  /** The kernel's message `id` was applied at `seqno` (an ack to a resend names it). */
  recordApplied(kernel: string, id: number, seqno: number): void;
  /**
   * Sends on the socket: inside a step once it commits, outside one at once; in either case
   * behind what was reserved before it for the socket's kernel.
   */
  send(socket: WebSocket, message: ManagerMessage, payload?: Uint8Array): void;
  /** Like `send`, but before what the step sent so far: an ack precedes what its message caused. */
  sendFirst(socket: WebSocket, message: ManagerMessage): void;
  /** Reserves the socket's kernel's next place in line; returns the function that fills it. */
  reserveSend(socket: WebSocket): (message: ManagerMessage, payload?: Uint8Array) => void;
  /**
   * Counts an error answered on the socket: the sockets to close with 1008 once it has gone out,
   * when that passed a limit of docs/protocol.md §8, else null.
   */
  countError(socket: WebSocket): { sockets: WebSocket[]; reason: string } | null;
  /** A socket closed; its kernel may no longer count as connected (docs/protocol.md §6.6). */
  disconnected(socket: WebSocket): void;
}

/** Receiving a page body (durable/incoming-body.ts): memory from the byte budget, spools. */
export interface BodyOperations {
  readonly limits: HandlerOperations["limits"];
  /** Waits until the isolate's byte budget has `bytes`; returns the function that gives them back. */
  takeBytes(bytes: number): Promise<() => void>;
  /** A new empty spool for a body too large for one slice (durable/spools.ts). */
  openSpool(): number;
  /** Appends whole pages to the spool, from part `firstPart` on. */
  appendToSpool(spool: number, firstPart: number, bytes: Uint8Array, pageSize: number): void;
  dropSpool(spool: number): void;
}

/** A kernel the object knows, as `GET /v1/objects/{name}` shows it. */
export interface KernelState {
  kernel: string;
  connected: boolean;
  last_id: number;
  /** It must flush at its next init (docs/protocol.md §6.6). */
  stale: boolean;
}

/** The HTTP operations (durable/http-operations.ts), each a message of kernel `http`. */
export interface HttpOperations extends OrderedOperations, BodyOperations {
  /** Remembers the object's name from the Worker (the Durable Object id cannot tell it). */
  rememberName(name: string): void;
  /** A new observer's event stream, starting with `hello` (durable/observers.ts). */
  openObserver(hello: ObjectEvent): ReadableStream<Uint8Array>;
  /** Where the object's pages are, in at most `cells` runs (durable/page-map.ts). */
  pageMap(cells: number): PageMap;
  /** The object was just created and its directory entry is not written yet. */
  manifestMissing(): boolean;

  // --- status ----------------------------------------------------------------------------------

  /** Pages stored, in the journal or in R2. */
  storedPages(): number;
  /** The seqno the next message gets. */
  nextSeqno(): number;
  kernelStates(): KernelState[];
  /** Outstanding synchronize requests, of every kernel. */
  outstandingSyncCount(): number;
  outstandingSyncs(): SyncRequest[];

  // --- pages -----------------------------------------------------------------------------------

  /** Fixes, at this point in seqno order, which version of each page a read gets. */
  planRead(span: PageSpan, pageSize: number): ReadPlan;
  /** How many R2 reads the plan takes when read `piecePages` pages at a time. */
  r2ReadsFor(plan: ReadPlan, piecePages: number): number;
  /**
   * Reads pages `first` to `end` of the plan (slow: R2). Uses the read cache without filling
   * it: one export must not evict the pages kernels keep faulting on.
   */
  readPlannedPiece(
    plan: ReadPlan,
    first: number,
    end: number,
    pageSize: number,
  ): Promise<Uint8Array>;
  /**
   * An HTTP read or write of a coherent object at `seqno` over `span` (docs/protocol.md §10.7):
   * waits for the holders in its way, then runs `action` inside the step that grants it, at
   * that step's seqno; resolves with its value once that step commits.
   */
  httpAccess<T>(
    seqno: number,
    span: PageSpan,
    write: boolean,
    action: (seqno: number) => T,
  ): Promise<T>;
  /** A spooled body's pages from `firstPage` on, durable once the step commits. */
  journalSpool(spool: number, firstPage: number, pages: number, seqno: number): void;

  // --- synchronize -----------------------------------------------------------------------------

  /** Resolves when the HTTP synchronize of this seqno is due; call before admitting it. */
  waitForSync(seqno: number): Promise<SyncOutcome>;
  /** The synchronize of this seqno was not admitted after all: nothing will settle its wait. */
  stopWaitingForSync(seqno: number): void;
  /** Its caller went away: the synchronize of this seqno is withdrawn (durable/sync-tracker.ts). */
  withdrawSync(seqno: number): void;

  // --- DELETE ----------------------------------------------------------------------------------

  /** Sends the message on every socket of the object (once the step commits). */
  tellEverySocket(message: ManagerMessage): void;
  /**
   * Deletes all the object's storage at once and makes it afresh, seqno back to 0; returns the
   * R2 segments, to delete after (`deleteSegments`).
   */
  destroy(): Promise<string[]>;
  /** How many times the object was destroyed: I/O that began before a change must not commit. */
  destroyedCount(): number;
  closeEverySocket(code: number, reason: string): void;
  deleteSegments(keys: string[]): Promise<void>;
}
