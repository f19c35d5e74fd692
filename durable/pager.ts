/**
 * One memory object's state and machinery, built once per Durable Object instance: the SQLite
 * tables, the sequencer, the page store and its flusher, the synchronize tracker, the outbox and
 * the sockets. `MemoryObject` forwards the platform's entry points here.
 *
 * Nothing outside sees its parts: message handlers use the operations of
 * durable/handlers/operations.ts, and the ways in (the socket loop, the upgrade, the HTTP
 * operations and their body receiver) those of durable/handlers/transport-operations.ts, which
 * the Pager implements at the end of the class, each a call into a part. Public besides: the
 * limits, what `MemoryObject` forwards (`start`, `onAlarm`, `disconnected`), `transact` and
 * `maintain`, which tests also call at a moment of their choosing, and `testHooks`, the tests'
 * one door into the parts.
 */
import {
  CLOSE_LOCK_TIMEOUT,
  DEFAULT_PAGE_SIZE,
  HTTP_KERNEL,
  KERN_MEMORY_ERROR,
  VM_PROT_NONE,
  VM_PROT_WRITE,
  MEMORY_OBJECT_RETURN_NONE,
  ProtocolError,
  type ObjectGeometry,
  type ManagerMessage,
  type PageSpan,
  type UnnumberedOutboxMessage,
} from "../schema";
import { isolateByteBudget } from "./byte-budget";
import { Coherence, cutSpan, type Grant } from "./coherence";
import { Compactor } from "./compactor";
import { Flusher } from "./flusher";
import { AtomicGroups, GroupRefusal } from "./groups";
import type {
  HttpOperations,
  KernelState,
  SocketOperations,
} from "./handlers/transport-operations";
import { Holders } from "./holders";
import { HttpGrants } from "./http-grants";
import { HttpSyncWaiters, type SyncOutcome } from "./http-sync-waiters";
import { admitNewKernel, mayHaveForgotten } from "./kernel-budget";
import { Kernels, type KernelRecord } from "./kernels";
import { maxSizeFor, readLimits, type Limits } from "./limits";
import { LockRequests } from "./lock-requests";
import { Manifest } from "./manifest";
import { Observers, type ObjectEvent } from "./observers";
import { pageMap, type PageMap } from "./page-map";
import { Mail } from "./mail";
import { Meta } from "./meta";
import { migrate } from "./migrations";
import { ObjectSize } from "./object-size";
import { Outbox } from "./outbox";
import { PageStore, type ReadPlan } from "./page-store";
import { Residency } from "./residency";
import { sharedSegmentCache } from "./segment-cache";
import { Sequencer, type BatchStep } from "./sequencer";
import { Sockets, closeQuietly, type SocketGrant, type SocketSession } from "./sockets";
import { Spools } from "./spools";
import { Sweeper } from "./sweeper";
import { SyncTracker, type NewSyncRequest, type SyncRequest } from "./sync-tracker";
import { testHooksOf, type TestHooks } from "./test-hooks";
import { Upkeep } from "./upkeep";

export class Pager implements SocketOperations, HttpOperations {
  /** The deployment's limits, read by the parts at each use (tests change them through `testHooks`). */
  readonly limits: Readonly<Limits>;
  /** For tests only (durable/test-hooks.ts): production code never calls it. */
  readonly testHooks: TestHooks;
  private readonly meta: Meta;
  private readonly sockets: Sockets;
  private readonly mail: Mail;
  private readonly kernels: Kernels;
  private readonly outbox: Outbox;
  private readonly residency: Residency;
  private readonly holders: Holders;
  private readonly coherence: Coherence;
  private readonly httpGrants: HttpGrants;
  private readonly manifest: Manifest;
  private readonly observers = new Observers();
  private readonly groups: AtomicGroups;
  private readonly size: ObjectSize;
  private readonly spools: Spools;
  private readonly store: PageStore;
  private readonly locks: LockRequests;
  private readonly httpWaiters = new HttpSyncWaiters();
  private readonly tracker: SyncTracker;
  private readonly sequencer: Sequencer;
  private readonly upkeep: Upkeep;
  private readonly sql: SqlStorage;
  /** Bumped by destroy, so I/O started before it does not write into the fresh object. */
  private epoch = 0;

  constructor(
    private readonly ctx: DurableObjectState,
    env: Env,
  ) {
    const limits = readLimits(env);
    this.limits = limits;
    this.sql = ctx.storage.sql;
    migrate(this.sql, (step) => ctx.storage.transactionSync(step));
    this.meta = new Meta(this.sql);
    this.sockets = new Sockets(ctx, this.limits.errorsPerMinute, () => this.limits.maxTransfer);
    this.mail = new Mail(this.sockets);
    this.kernels = new Kernels(this.sql);
    this.outbox = new Outbox(this.sql, this.kernels, this.mail);
    this.residency = new Residency(this.sql);
    this.holders = new Holders(this.sql);
    this.groups = new AtomicGroups(this.sql);
    this.size = new ObjectSize(this.meta);
    this.spools = new Spools(this.sql);
    // Spooled requests died with the instance that ran them.
    this.spools.clear();
    this.store = new PageStore(
      this.sql,
      this.meta,
      this.spools,
      env.PAGES,
      sharedSegmentCache(this.limits.readCacheBytes),
      isolateByteBudget(),
    );
    this.locks = new LockRequests({
      sql: this.sql,
      meta: this.meta,
      kernels: this.kernels,
      outbox: this.outbox,
      residency: this.residency,
      holders: this.holders,
      isConnected: (kernel) => this.sockets.isConnected(kernel),
      pageSize: () => this.pageSize() ?? DEFAULT_PAGE_SIZE,
      limits: this.limits,
      observe: (event) => this.observe(event),
    });
    this.tracker = new SyncTracker({
      sql: this.sql,
      outbox: this.outbox,
      residency: this.residency,
      store: this.store,
      locks: this.locks,
      waiters: this.httpWaiters,
      observe: (event) => this.observe(event),
    });
    this.coherence = new Coherence({
      sql: this.sql,
      holders: this.holders,
      locks: this.locks,
      answer: (grant, seqno) => this.answerGrant(grant, seqno),
    });
    this.httpGrants = new HttpGrants(this.mail, (step) => this.transact(step));
    this.manifest = new Manifest(env.DIRECTORY, this.meta);
    // HTTP synchronizes, reads and writes left by an earlier instance died with it: their
    // callers' connections ended there (durable/sync-tracker.ts, durable/http-grants.ts). The
    // grants that waited behind those of HTTP go on at start-up (`start`).
    ctx.storage.transactionSync(() => {
      this.tracker.dropHttpRequests();
      this.coherence.dropGrantsOf(HTTP_KERNEL);
    });
    this.sequencer = new Sequencer(
      this.meta,
      (step) => this.transact(step),
      (step) => this.inOrder(step),
    );
    const flusher = new Flusher(this.store.owners, this.limits, {
      nextSeqno: () => this.sequencer.peek(),
      objectName: () => this.objectName(),
      transact: (step) => this.transact(step),
      settle: (span) => this.tracker.flushed(span),
      flushed: (segment, pages, bytes, ms) =>
        this.observe({ type: "flush", segment, pages, bytes, ms }),
      failWaiting: (seqno, reason) => this.transact(() => this.tracker.failWaiting(seqno, reason)),
      epoch: () => this.epoch,
    });
    const sweeper = new Sweeper(this.store.owners, this.meta, {
      transact: (step) => this.transact(step),
      epoch: () => this.epoch,
      objectName: () => this.meta.get<string>("object"),
    });
    const compactor = new Compactor(this.store.owners, this.store.budget, this.limits, {
      transact: (step) => this.transact(step),
      epoch: () => this.epoch,
      objectName: () => this.objectName(),
      nextSeqno: () => this.sequencer.peek(),
      pageSize: () => this.pageSize() ?? DEFAULT_PAGE_SIZE,
    });
    this.upkeep = new Upkeep(
      {
        storage: ctx.storage,
        limits,
        store: this.store,
        tracker: this.tracker,
        locks: this.locks,
        sockets: this.sockets,
        flusher,
        sweeper,
        compactor,
      },
      {
        transact: (step) => this.transact(step),
        pageSize: () => this.pageSize(),
        objectName: () => this.objectName(),
        disconnected: (socket) => this.disconnected(socket),
        expireLocks: (now) => this.expireLocks(now),
        flushed: () => this.refreshManifest(),
      },
    );
    this.testHooks = testHooksOf({ limits, store: this.store, sweeper, compactor });
  }

  /** Start-up after a restart or eviction: pick up work that was under way (docs/architecture.md §6). */
  async start(): Promise<void> {
    await this.upkeep.start();
    this.departUnconnected();
    // An object made before the directory, or one that died before its entry was written.
    if (this.pageSize() !== null && this.manifest.missing()) this.refreshManifest();
  }

  /**
   * Writes the object's directory entry (schema/directory.ts) now; resolves once R2 has it. The
   * request that created the object waits for it: a created object is listed when its creator
   * hears back.
   */
  publishManifest(): Promise<void> {
    const pageSize = this.pageSize();
    if (pageSize === null) return Promise.resolve();
    const pages = this.store.storedPages();
    return this.manifest.publish({
      object: this.objectName(),
      page_size: pageSize,
      coherent: this.coherent() === true,
      pages,
      bytes: pages * pageSize,
    });
  }

  /** The entry was never written (the object was created by the step that just ran). */
  manifestMissing(): boolean {
    return this.pageSize() !== null && this.manifest.missing();
  }

  /** After a flush: the entry's figures are refreshed, at most once a minute. */
  private refreshManifest(): void {
    if (this.pageSize() === null || !this.manifest.due(this.store.storedPages())) return;
    this.publishManifest().catch((error: unknown) =>
      console.warn(`directory entry of ${this.objectName()} not written: ${String(error)}`),
    );
  }

  /**
   * Admits a message through the sequencer, then starts the work its change calls for (a flush a
   * SYNCHRONOUS request waits on, an alarm), before any caller awaits anything.
   */
  admit<T>(ordered: (seqno: number) => T): { seqno: number; result: T } {
    try {
      return this.sequencer.admit(ordered);
    } finally {
      this.afterChange();
    }
  }

  /** Admits a batch's messages as one step (durable/sequencer.ts), then as `admit`. */
  admitEach<T>(count: number, step: BatchStep<T>): T[] {
    try {
      return this.sequencer.admitEach(count, step);
    } finally {
      this.afterChange();
    }
  }

  /**
   * Runs one message of a step: what it posts keeps its place (an ack before what its message
   * caused), as in a savepoint of its own, without one: if it throws, the step rolls back.
   */
  private inOrder<T>(step: () => T): T {
    this.mail.hold();
    try {
      const result = step();
      this.mail.deliver();
      return result;
    } catch (error) {
      this.mail.discard();
      throw error;
    }
  }

  /**
   * Runs a state change as one SQLite transaction and sends what it posted only after it commits.
   * Called within another, it is a savepoint of that one: it rolls back alone, and what it posted
   * leaves when the outermost commits.
   */
  transact<T>(step: () => T): T {
    this.mail.hold();
    try {
      const result = this.ctx.storage.transactionSync(() => {
        const result = step();
        this.size.save();
        return result;
      });
      this.mail.deliver();
      return result;
    } catch (error) {
      this.mail.discard();
      this.size.forget();
      this.groups.forgetCounts();
      // What was cached of the rolled-back state is read again from SQLite.
      this.store.forgetCounts();
      this.pageSizeCache = undefined;
      this.coherentCache = undefined;
      throw error;
    }
  }

  /** After every change: starts the work it calls for (durable/upkeep.ts). */
  afterChange(): void {
    this.upkeep.afterChange();
  }

  /** The alarm (durable/upkeep.ts). */
  onAlarm(): Promise<void> {
    return this.upkeep.onAlarm();
  }

  /**
   * Sweeps and compacts now (durable/upkeep.ts). Called by the alarm; tests call it to sweep at a
   * moment of their choosing.
   */
  maintain(): Promise<void> {
    return this.upkeep.maintain();
  }

  /**
   * A socket closed. If the kernel has no other initialized socket, INVALIDATE requests stop
   * waiting on it and it must flush at its next init (docs/protocol.md §6.6).
   */
  disconnected(socket: WebSocket): void {
    const { kernel, initialized } = this.sockets.session(socket);
    if (!initialized) return;
    if (this.observers.any() && !this.sockets.isConnected(kernel)) {
      this.observe({ type: "kernel", kernel, connected: false });
    }
    if (this.coherent()) {
      // A socket that replaced it departed it already (`acceptSocket`).
      if (!this.sockets.hasSocket(kernel)) this.departIfInvolved(kernel);
      return;
    }
    if (this.sockets.isConnected(kernel)) return;
    this.transact(() => this.tracker.disconnected(kernel));
    this.afterChange();
  }

  /**
   * A kernel of a coherent object departs (docs/protocol.md §10.5): its socket closed or was
   * replaced, or it did not answer a lock request in time, or the object restarted without its
   * socket. An event in seqno order like a message, since what waited on it goes on in that
   * step: its waiting grants go, and if it held pages it is dropped from all of them and marked
   * stale (what waited on its lock requests stops waiting).
   */
  private depart(kernel: string, seqno: number): void {
    this.coherence.dropGrantsOf(kernel);
    const stale = this.coherence.holdsAny(kernel);
    if (stale) this.tracker.departed(kernel);
    else this.tracker.disconnected(kernel);
    this.observe({ type: "departure", seqno, kernel, stale });
    this.coherence.settle(seqno);
  }

  /**
   * Tells the object's observers (durable/observers.ts) about `event` once the step commits
   * (at once outside a step). Nothing is built or sent when nobody observes.
   */
  observe(event: ObjectEvent, { first = false } = {}): void {
    if (!this.observers.any()) return;
    const stamped = { ...event, at: Date.now() };
    this.mail.onCommit(() => this.observers.publish(stamped), { first });
  }

  /** A new observer's event stream, starting with `hello` (refused past MAX_OBSERVERS). */
  openObserver(hello: ObjectEvent): ReadableStream<Uint8Array> {
    return this.observers.open({ ...hello, at: Date.now() });
  }

  /** Where the object's pages are, in `cells` runs (durable/page-map.ts). */
  pageMap(cells: number): PageMap {
    return pageMap(this.sql, this.pageSize() ?? DEFAULT_PAGE_SIZE, cells);
  }

  /** A departure that changes nothing takes no seqno: most closes of most kernels. */
  private departIfInvolved(kernel: string): void {
    if (this.coherence.involves(kernel)) this.admit((seqno) => this.depart(kernel, seqno));
  }

  /** Start-up of a coherent object: kernels involved in coherence that have no socket depart. */
  private departUnconnected(): void {
    if (!this.coherent()) return;
    const gone = this.coherence
      .involvedKernels()
      .filter((kernel) => !this.sockets.hasSocket(kernel));
    // The grants behind HTTP's, dropped in the constructor, may go on too.
    if (gone.length === 0 && this.coherence.waitingCount() === 0) return;
    this.admit((seqno) => {
      for (const kernel of gone) this.depart(kernel, seqno);
      this.coherence.settle(seqno);
    });
  }

  /**
   * The alarm found lock requests past their deadline. On a coherent object their kernels
   * depart: closed with 4408 (docs/protocol.md §10.5) and dropped. Elsewhere they are marked
   * stale (docs/protocol.md §6.6).
   */
  private expireLocks(now: number): void {
    if (!this.coherent()) {
      this.transact(() => this.tracker.expireLocks(now));
      return;
    }
    for (const kernel of this.locks.lateKernels(now)) {
      for (const socket of this.sockets.socketsOf(kernel)) {
        closeQuietly(socket, CLOSE_LOCK_TIMEOUT, "a lock request was not answered in time");
      }
      this.admit((seqno) => this.depart(kernel, seqno));
    }
  }

  objectName(): string {
    // `~` is not allowed in object names, so this prefix can never be a real object's.
    return this.meta.get<string>("object") ?? "~unnamed";
  }

  /** Remembers the object's name from the Worker's header (the Durable Object id cannot tell it). */
  rememberName(name: string): void {
    if (this.meta.get<string>("object") !== name) this.meta.set("object", name);
  }

  /** Fixed once per object, read by every message: cached (undefined: not read yet). */
  private pageSizeCache: number | null | undefined;

  pageSize(): number | null {
    this.pageSizeCache ??= this.meta.get<number>("page_size");
    return this.pageSizeCache;
  }

  setPageSize(pageSize: number): void {
    this.meta.set("page_size", pageSize);
    this.pageSizeCache = pageSize;
    this.manifest.created();
  }

  /** Fixed with the page size, read by every message on a coherent object: cached. */
  private coherentCache: boolean | undefined;

  coherent(): boolean | null {
    if (this.pageSize() === null) return null;
    this.coherentCache ??= this.meta.get<number>("coherent") === 1;
    return this.coherentCache;
  }

  setCoherent(coherent: boolean): void {
    this.meta.set("coherent", coherent ? 1 : 0);
    this.coherentCache = coherent;
  }

  geometry(pageSize: number): ObjectGeometry {
    return { pageSize, maxTransfer: this.limits.maxTransfer, maxSize: this.maxSize(pageSize) };
  }

  /** The `max_size` announced for this page size: what the object's database can hold. */
  maxSize(pageSize: number): number {
    return maxSizeFor(this.limits, pageSize);
  }

  /** Bytes of the object's SQLite database now (the platform's measure of its storage). */
  databaseBytes(): number {
    return this.sql.databaseSize;
  }

  /**
   * Destroys the object (docs/protocol.md §9 DELETE): all its storage deleted at once (the platform's
   * `deleteAll`, which also stops billing for it), the schema made afresh, seqno back to 0. Returns
   * the R2 segments to delete, which the caller deletes after this resolves. While the object
   * awaits its own storage the platform delivers no other event to it, so no message lands
   * between the old tables and the new.
   */
  async destroy(): Promise<string[]> {
    const name = this.objectName();
    const segments = this.store.segmentKeys();
    // Bumped first: I/O under way (a flush, a compaction, a spooling PUT) must not write into the
    // fresh object.
    this.epoch++;
    this.httpWaiters.abortAll();
    this.httpGrants.abortAll();
    this.observers.closeAll();
    // Unlisted before its tables go: a listed name always has an object behind it.
    await this.manifest.remove(name);
    await this.ctx.storage.deleteAll();
    await this.ctx.storage.deleteAlarm();
    migrate(this.sql, (step) => this.ctx.storage.transactionSync(step));
    this.store.forgetCounts();
    this.size.forget();
    this.groups.forgetCounts();
    this.pageSizeCache = undefined;
    this.coherentCache = undefined;
    this.rememberName(name);
    this.sequencer.reset();
    this.upkeep.reset();
    this.manifest.resume();
    return segments;
  }

  /** How many times the object was destroyed: I/O that began before a change must not commit. */
  destroyedCount(): number {
    return this.epoch;
  }

  // --- the operations of message handlers (durable/handlers/operations.ts) ---------------------

  planSupply(kernel: string, span: PageSpan, pageSize: number): ReadPlan {
    const plan = this.store.planRead(span, pageSize);
    this.residency.record(kernel, span);
    return plan;
  }

  readPlanned(plan: ReadPlan, pageSize: number): Promise<Uint8Array> {
    return this.store.read(plan, pageSize);
  }

  finishRead(plan: ReadPlan): void {
    this.store.finishRead(plan);
  }

  journalPages(): number {
    return this.store.journalPages();
  }

  journalReturn(firstPage: number, pageSize: number, data: Uint8Array, seqno: number): void {
    this.store.journal(firstPage, pageSize, data, seqno);
    this.size.raiseTo(firstPage * pageSize + data.byteLength);
  }

  objectSize(): number {
    return this.size.get();
  }

  resize(size: number, pageSize: number, seqno: number): void {
    if (size < this.size.get()) {
      const firstDropped = this.store.truncate(size, pageSize, seqno);
      // Requests that waited for dropped journal pages wait for nothing now.
      this.tracker.flushed({ first: firstDropped, end: Number.MAX_SAFE_INTEGER });
    }
    this.size.set(size);
  }

  stagedPages(): number {
    return this.groups.stagedPages();
  }

  openGroup(kernel: string, group: number): void {
    this.groups.open(kernel, group);
  }

  stageReturn(
    kernel: string,
    group: number,
    firstPage: number,
    pageSize: number,
    data: Uint8Array,
  ): void {
    this.groups.stagePages(kernel, group, firstPage, pageSize, data);
  }

  stageSize(kernel: string, group: number, size: number): void {
    this.groups.stageSize(kernel, group, size);
  }

  failGroup(kernel: string, group: number): void {
    this.groups.fail(kernel, group);
  }

  commitGroup(kernel: string, group: number, pageSize: number, seqno: number): void {
    this.groups.checkCommittable(kernel, group);
    if (this.coherent()) this.fenceGroup(kernel, group, pageSize);
    // In the order sent, as if each staged message had arrived at the synchronize's seqno.
    for (const step of this.groups.stepsOf(kernel, group)) {
      if ("size" in step) {
        this.resize(step.size, pageSize, seqno);
        continue;
      }
      const { after, through } = step.pages;
      const end = this.store.journalStaged(kernel, group, after, through, seqno);
      this.size.raiseTo(end * pageSize);
    }
    this.groups.discard(kernel, group);
  }

  /**
   * On a coherent object a group commits only if its kernel is the writer of every page it
   * changes at the commit's seqno: its pages, and what its set_size messages cut. Else the
   * commit is refused and the group discarded (docs/protocol.md §10.6).
   */
  private fenceGroup(kernel: string, group: number, pageSize: number): void {
    const changed = this.groups.stagedRuns(kernel, group);
    const size = this.size.get();
    for (const staged of this.groups.stagedSizes(kernel, group)) {
      if (staged < size) changed.push(cutSpan(staged, size, pageSize));
    }
    try {
      for (const span of changed) this.coherence.checkWriter(kernel, span, `atomic group ${group}`);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      throw new GroupRefusal(
        error.code,
        `${error.message}; the group is discarded, nothing of it is committed`,
        () => this.groups.discard(kernel, group),
        error.kernReturn,
      );
    }
  }

  /** Fencing of a set_size on a coherent object: it writes the pages it cuts. */
  checkResize(kernel: string, size: number, pageSize: number): void {
    const current = this.size.get();
    if (size >= current) return;
    this.coherence.checkWriter(kernel, cutSpan(size, current, pageSize), "this set_size");
  }

  discardGroupsBut(kernel: string, keep: number[]): void {
    this.groups.discardAllBut(kernel, keep);
  }

  syncCount(kernel: string, caller?: string): number {
    return this.tracker.countOf(kernel, caller);
  }

  requestSync(request: NewSyncRequest, span: PageSpan): void {
    this.tracker.admit(request, span);
  }

  lockCompleted(kernel: string, lockId: number, seqno: number): void {
    this.tracker.lockCompleted(kernel, lockId);
    if (this.coherent()) this.coherence.settle(seqno);
  }

  requestAccess(grant: Grant): void {
    this.coherence.request(grant);
  }

  checkWriter(kernel: string, span: PageSpan, what: string): void {
    this.coherence.checkWriter(kernel, span, what);
  }

  releaseHold(kernel: string, span: PageSpan): void {
    this.coherence.release(kernel, span);
    this.residency.forgetSpan(kernel, span);
  }

  /**
   * Answers a grant of a coherent object in the step of `seqno` (durable/coherence.ts): a
   * data_request with the current bytes (zeros where never written, docs/protocol.md §10.4), a
   * data_unlock with the lock request that grants it, an HTTP request by running what it waits
   * to do.
   */
  private answerGrant(grant: Grant, seqno: number): void {
    if (seqno !== grant.seqno) {
      const { kernel, kind, offset, length, write } = grant;
      this.observe({
        type: "grant",
        seqno: grant.seqno,
        kernel,
        kind,
        offset,
        length,
        write: write === 1,
      });
    }
    if (grant.kind === "http") {
      this.httpGrants.answer(grant.seqno, seqno);
      return;
    }
    const span = { first: grant.first_page, end: grant.end_page };
    // A read by the pages' own writer leaves it the writer (docs/protocol.md §10.3): it may go
    // on writing without asking.
    const writes = grant.write === 1 || this.holders.writesAll(grant.kernel, span);
    const lockValue = writes ? VM_PROT_NONE : VM_PROT_WRITE;
    if (grant.kind === "unlock") {
      const { kernel, offset, length } = grant;
      this.observe({ type: "lock_request", kernel, offset, length, purpose: "grant" });
      this.outbox.push(grant.kernel, {
        type: "memory_object_lock_request",
        lock_id: this.nextLockId(),
        offset: grant.offset,
        length: grant.length,
        should_return: MEMORY_OBJECT_RETURN_NONE,
        should_flush: false,
        lock_value: lockValue,
      });
      return;
    }
    const pageSize = this.pageSize() ?? DEFAULT_PAGE_SIZE;
    this.residency.record(grant.kernel, span);
    const plan = this.store.planRead(span, pageSize);
    // In the kernel's line: a lock request posted after this grant must not overtake the data.
    const reply = this.mail.reserve(grant.kernel);
    const answer = {
      reply_to: grant.id,
      seqno: grant.seqno,
      offset: grant.offset,
      length: grant.length,
    };
    void this.store
      .read(plan, pageSize)
      .then(
        (bytes) =>
          reply(
            {
              type: "memory_object_data_supply",
              ...answer,
              lock_value: lockValue,
              precious: false,
            },
            bytes,
          ),
        (error: unknown) =>
          reply({
            type: "memory_object_data_error",
            ...answer,
            kern_return: KERN_MEMORY_ERROR,
            reason: `pages could not be read from storage: ${String(error)}`,
          }),
      )
      .finally(() => this.store.finishRead(plan));
  }

  /**
   * An HTTP request of a coherent object (docs/protocol.md §10.7) at `seqno` over `span`: asks
   * the holders in its way to give way, then runs `action` inside the step that grants it.
   */
  httpAccess<T>(
    seqno: number,
    span: PageSpan,
    write: boolean,
    action: (seqno: number) => T,
  ): Promise<T> {
    const done = this.httpGrants.wait(seqno, action);
    const pageSize = this.pageSize() ?? DEFAULT_PAGE_SIZE;
    try {
      this.coherence.request({
        seqno,
        kernel: HTTP_KERNEL,
        kind: "http",
        id: seqno,
        offset: span.first * pageSize,
        length: (span.end - span.first) * pageSize,
        first_page: span.first,
        end_page: span.end,
        write: write ? 1 : 0,
      });
    } catch (error) {
      this.httpGrants.drop(seqno);
      throw error;
    }
    return done;
  }

  nextLockId(): number {
    return this.meta.take("next_lock_id", 1);
  }

  mayWrite(socket: WebSocket): boolean {
    return this.sockets.session(socket).rights.includes("write");
  }

  kernelRecord(kernel: string): KernelRecord | undefined {
    return this.kernels.get(kernel);
  }

  makeRoomForKernel(writer: boolean): void {
    const { limits, kernels, sockets, meta, residency, groups } = this;
    admitNewKernel({ limits, kernels, sockets, meta, residency, groups }, writer);
  }

  mayHaveForgotten(): boolean {
    return mayHaveForgotten(this.meta);
  }

  registerKernel(kernel: string, writer: boolean): KernelRecord {
    return this.kernels.ensure(kernel, writer);
  }

  startClean(kernel: string): void {
    this.kernels.clearStale(kernel);
    this.residency.forgetAll(kernel);
    this.holders.dropAll(kernel);
  }

  markInitialized(socket: WebSocket, batch: boolean): void {
    this.sockets.markInitialized(socket, batch);
    this.observe({ type: "kernel", kernel: this.sockets.session(socket).kernel, connected: true });
  }

  forgetKernel(kernel: string, seqno: number): void {
    // What it caches goes first: the requests that stop waiting on it (tracker.forget settles
    // them) may start queued INVALIDATEs, which must not ask a kernel that is gone.
    this.residency.forgetAll(kernel);
    this.holders.dropAll(kernel);
    this.coherence.dropGrantsOf(kernel);
    this.outbox.forget(kernel);
    this.kernels.forget(kernel);
    this.tracker.forget(kernel);
    this.groups.forget(kernel);
    if (this.coherent()) this.coherence.settle(seqno);
  }

  drained(kernel: string): Promise<void> {
    return this.mail.drained(kernel);
  }

  checkOutboxRoom(kernel: string, pending?: number): void {
    this.outbox.checkRoom(kernel, pending);
  }

  postToOutbox(kernel: string, message: UnnumberedOutboxMessage): void {
    this.outbox.push(kernel, message);
  }

  acknowledgeOutbox(kernel: string, mid: number, field?: string): void {
    this.outbox.acknowledge(kernel, mid, field);
  }

  resendOutbox(socket: WebSocket, kernel: string): void {
    this.outbox.resend(socket, kernel);
  }

  // --- the operations of the ways in (durable/handlers/transport-operations.ts) -----------------

  acceptSocket(kernel: string, grant: SocketGrant): WebSocket {
    // On a coherent object a holder whose socket is replaced departs (docs/protocol.md §10.5).
    const replaced = this.coherent() === true && this.sockets.isConnected(kernel);
    const socket = this.sockets.accept(kernel, grant);
    if (replaced) this.departIfInvolved(kernel);
    return socket;
  }

  sessionOf(socket: WebSocket): SocketSession {
    return this.sockets.session(socket);
  }

  recordApplied(kernel: string, id: number, seqno: number): void {
    this.kernels.recordApplied(kernel, id, seqno);
  }

  send(socket: WebSocket, message: ManagerMessage, payload?: Uint8Array): void {
    this.mail.post(socket, message, payload);
  }

  sendFirst(socket: WebSocket, message: ManagerMessage): void {
    this.mail.postFirst(socket, message);
  }

  reserveSend(socket: WebSocket): (message: ManagerMessage, payload?: Uint8Array) => void {
    return this.mail.reserve(socket);
  }

  countError(socket: WebSocket): { sockets: WebSocket[]; reason: string } | null {
    return this.sockets.countError(socket);
  }

  tellEverySocket(message: ManagerMessage): void {
    for (const socket of this.sockets.all()) this.mail.post(socket, message);
  }

  closeEverySocket(code: number, reason: string): void {
    for (const socket of this.sockets.all()) closeQuietly(socket, code, reason);
  }

  takeBytes(bytes: number): Promise<() => void> {
    return this.store.budget.take(bytes);
  }

  openSpool(): number {
    return this.spools.open();
  }

  appendToSpool(spool: number, firstPart: number, bytes: Uint8Array, pageSize: number): void {
    this.spools.appendSlice(spool, firstPart, bytes, pageSize);
  }

  dropSpool(spool: number): void {
    this.spools.drop(spool);
  }

  journalSpool(spool: number, firstPage: number, pages: number, seqno: number): void {
    this.store.journalSpool(spool, firstPage, pages, seqno);
    const pageSize = this.pageSize() ?? DEFAULT_PAGE_SIZE;
    this.size.raiseTo((firstPage + pages) * pageSize);
  }

  planRead(span: PageSpan, pageSize: number): ReadPlan {
    return this.store.planRead(span, pageSize);
  }

  r2ReadsFor(plan: ReadPlan, piecePages: number): number {
    return this.store.r2ReadsFor(plan, piecePages);
  }

  readPlannedPiece(
    plan: ReadPlan,
    first: number,
    end: number,
    pageSize: number,
  ): Promise<Uint8Array> {
    return this.store.read(this.store.slicePlan(plan, first, end), pageSize, { fillCache: false });
  }

  deleteSegments(keys: string[]): Promise<void> {
    return this.store.deleteSegments(keys);
  }

  storedPages(): number {
    return this.store.storedPages();
  }

  nextSeqno(): number {
    return this.sequencer.peek();
  }

  kernelStates(): KernelState[] {
    return this.kernels.list().map(({ kernel, last_id, stale }) => ({
      kernel,
      connected: this.sockets.isConnected(kernel),
      last_id,
      stale: stale === 1,
    }));
  }

  outstandingSyncCount(): number {
    return this.tracker.count();
  }

  outstandingSyncs(): SyncRequest[] {
    return this.tracker.list();
  }

  waitForSync(seqno: number): Promise<SyncOutcome> {
    return this.tracker.waitFor(seqno);
  }

  stopWaitingForSync(seqno: number): void {
    this.tracker.stopWaiting(seqno);
  }

  withdrawSync(seqno: number): void {
    this.transact(() => this.tracker.withdraw(seqno));
    this.afterChange();
  }
}
