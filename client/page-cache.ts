/**
 * A kernel-style page cache on a `KernelConnection`: `read` faults pages in with data_request
 * (and reads ahead), `write` dirties them, `msync` returns the range's dirty pages and then
 * synchronizes it, the way `vm_msync` did, and `commit` sends every dirty page as one atomic
 * group (docs/protocol.md §12), so readers see all of it or none of it. It keeps the object's
 * size (docs/protocol.md §13), answers the manager's lock requests (return, flush, lock) and
 * keeps precious pages until they are returned. Clean pages are bounded (least recently used
 * go first); dirty ones stay until returned, in a set of their own, so msync and commit cost what
 * is dirty, not what is cached. On a coherent object (docs/protocol.md §10) it obeys each page's
 * `lock_value`: a write first becomes the page's writer, and `update` is a read-modify-write
 * atomic across kernels, holding lock requests that touch its range back while it runs
 * (client/range-claims.ts).
 */
import {
  KERN_INVALID_ADDRESS,
  KERN_PROTECTION_FAILURE,
  KERN_RESOURCE_SHORTAGE,
  MEMORY_OBJECT_RETURN_ALL,
  MEMORY_OBJECT_RETURN_ANYTHING,
  MEMORY_OBJECT_RETURN_DIRTY,
  VM_PROT_NO_CHANGE,
  VM_PROT_NONE,
  VM_PROT_READ,
  VM_PROT_WRITE,
  VM_SYNC_SYNCHRONOUS,
  type LockRequestMessage,
  type ReadyMessage,
  type SynchronizeCompletedMessage,
} from "../schema";
import { callSignal, checkCallOptions, type CallOptions } from "./call-options";
import type { DataReply, KernelConnection } from "./connection";
import { KernReturnError } from "./errors";
import { RangeClaims, type Claim } from "./range-claims";

interface CachedPage {
  data: Uint8Array;
  dirty: boolean;
  precious: boolean;
  /** Access the manager prohibits (`lock_value`): a write to a page locked against it unlocks first. */
  prohibited: number;
  /** Bumped by every write, so a failed return re-dirties only pages not written since. */
  version: number;
  /** Returns of it not yet answered: until then it may have to be dirty again, so it stays. */
  sending: number;
  /**
   * Dropped on purpose (flushed, fenced, cut), not merely evicted: an update holding it must
   * start again. An evicted clean page an update holds is still good (lock requests wait).
   */
  lost: boolean;
}

export interface PageCacheOptions {
  /** Bytes of clean pages kept; beyond, the least recently used go. Default 64 MiB. */
  maxCleanBytes?: number;
  /**
   * A read that misses fetches a contiguous run this long from the first missing page (clipped at
   * the object's size and at cached pages). Default 1 MiB or `max_transfer`, whichever is
   * smaller; 0 fetches only what is read.
   */
  readAheadBytes?: number;
  /**
   * The most dirty bytes one `commit` sends as a group: a larger one is refused before anything
   * is sent (`group_too_large`), so the caller can fall back (a rollback journal, say). Staged
   * pages count against the manager's journal room (docs/protocol.md §12). Default 32 MiB.
   */
  maxGroupBytes?: number;
}

export interface CommitOptions extends CallOptions {
  /** The synchronize's flags (docs/protocol.md §6). Default `VM_SYNC_SYNCHRONOUS`. */
  syncFlags?: number;
}

const MiB = 1024 * 1024;
const DEFAULTS = { maxCleanBytes: 64 * MiB, readAheadBytes: 1 * MiB, maxGroupBytes: 32 * MiB };

interface Geometry {
  pageSize: number;
  maxTransfer: number;
  maxSize: number;
  /** The object is coherent (docs/protocol.md §10): pages are held as a reader or the writer. */
  coherent: boolean;
}

/** A run of pages being returned: their bytes as sent, and their versions then. */
interface Sending {
  run: [number, CachedPage][];
  body: Uint8Array;
  dirty: boolean;
  versions: number[];
  /** Not settled yet: its pages count it in `sending`. */
  open: boolean;
}

/** A page's bytes once its fetch is answered: null when never written (zeros). */
type Fetch = Promise<Uint8Array | null>;

export class PageCache {
  private readonly pages = new Map<number, CachedPage>();
  /** Clean, unsent pages, least recently used first: what may be evicted. */
  private readonly clean = new Set<number>();
  /** Dirty, precious or being sent: never evicted, and all msync and commit look at. */
  private readonly pinned = new Set<number>();
  /** Pages asked for and not answered yet: a second read waits for the same request. */
  private readonly fetching = new Map<number, Fetch>();
  private readonly unsubscribe: (() => void)[];
  /** From the last `memory_object_ready`: kept while the connection reconnects. */
  private known: Geometry | null = null;
  private readonly options: Required<PageCacheOptions>;
  /** The object's size as this kernel knows it (docs/protocol.md §13). */
  private localSize = 0;
  /** The size the manager has, as far as this kernel knows. */
  private managerSize = 0;
  /**
   * The lowest size set since the manager last heard, when below its size: the next msync or
   * commit sends it first, so the manager drops what lies past it before the new pages land.
   * Bytes at or past it read as zeros here meanwhile.
   */
  private shrinkTo: number | null = null;
  /** `setSize` calls made, and how many of them the manager has heard of. */
  private sizeEdits = 0;
  private sizeEditsHeard = 0;
  /** Ranges being acquired for a shrink: a lock request taking a page of one back marks it. */
  private readonly watches = new Set<{ first: number; end: number; takenBack: boolean }>();
  /** The ranges writes and updates work on, and the lock requests waiting for them. */
  private readonly claims = new RangeClaims<LockRequestMessage>(
    (claim) => this.holds(claim),
    (lock) => void this.onLockRequest(lock),
  );

  /**
   * @example
   * const cache = new PageCache(await KernelConnection.connect({ url, object, kernel }));
   * await cache.write(0, bytes);
   * await cache.commit(); // one atomic group, SYNCHRONOUS
   */
  constructor(
    readonly connection: KernelConnection,
    options: PageCacheOptions = {},
  ) {
    this.options = checkOptions(options);
    const ready = connection.ready;
    if (ready) this.onReady(ready);
    this.unsubscribe = [
      connection.on("connected", (message) => this.onReady(message)),
      connection.on("lock_request", (lock) => this.offerLockRequest(lock)),
      connection.on("flush", () => this.onFlush()),
    ];
  }

  get pageSize(): number {
    return this.geometry().pageSize;
  }

  /** Pages cached now, and how many of them are dirty. */
  get stats(): { cached: number; dirty: number; cleanBytes: number } {
    return {
      cached: this.pages.size,
      dirty: this.dirtyPages().length,
      cleanBytes: this.clean.size * this.geometry().pageSize,
    };
  }

  /** Bytes a `commit` would send now: the dirty pages. */
  get dirtyBytes(): number {
    return this.dirtyPages().length * this.geometry().pageSize;
  }

  /**
   * The object's size in bytes as this kernel knows it (docs/protocol.md §13): the ready's,
   * raised by this cache's writes to their end, set by `setSize` and `noteSize`. Infinity when the
   * manager predates sizes.
   */
  get size(): number {
    return this.localSize;
  }

  /**
   * Tells the cache the object's size learned elsewhere (a reader that refreshed it, from
   * `HttpClient.stat`, say). Unless this cache has a size change of its own not yet sent, it
   * becomes the known size; cached clean bytes past it are dropped.
   */
  noteSize(size: number): void {
    checkByteCount("noteSize", "size", size);
    this.learnSize(size);
  }

  private learnSize(size: number): void {
    const pending = this.localSize !== this.managerSize || this.shrinkTo !== null;
    this.managerSize = size;
    if (pending) return;
    if (size < this.localSize) this.cut(size, (page) => !page.dirty && page.sending === 0);
    this.localSize = size;
  }

  /**
   * Sets the object's size: here at once (cached pages wholly past it dropped, the rest of the
   * last page zeroed), at the manager with the next `commit` (inside its group) or `msync`, so a
   * truncate commits atomically with the pages around it.
   */
  async setSize(size: number, options: CallOptions = {}): Promise<void> {
    checkByteCount("setSize", "size", size);
    checkCallOptions("setSize", options);
    const { maxSize } = this.geometry();
    if (size > maxSize) {
      throw new KernReturnError(
        KERN_INVALID_ADDRESS,
        "bad_range",
        `setSize: size ${size} is over the object's max_size ${maxSize}`,
      );
    }
    if (size < this.localSize) this.cut(size, () => true);
    if (size < (this.shrinkTo ?? this.managerSize)) this.shrinkTo = size;
    this.localSize = size;
    this.sizeEdits++;
  }

  /**
   * The bytes of any range; missing pages are faulted in (never-written ones, and pages wholly
   * past the known size, read as zeros; the latter without a request), with read-ahead.
   */
  async read(offset: number, length: number, options: CallOptions = {}): Promise<Uint8Array> {
    const call = callSignal("read", options);
    try {
      const { pageSize } = this.geometry();
      const first = Math.floor(offset / pageSize);
      const end = Math.ceil((offset + length) / pageSize);
      const fetched = await abortable(this.faultIn(first, end, true), call.signal);
      const out = new Uint8Array(length);
      for (let page = first; page < end; page++) {
        const data = this.touch(page)?.data ?? fetched.get(page);
        if (!data) continue;
        const pageStart = page * pageSize;
        const from = Math.max(offset, pageStart);
        const to = Math.min(offset + length, pageStart + pageSize);
        out.set(data.subarray(from - pageStart, to - pageStart), from - offset);
      }
      return out;
    } finally {
      call.done();
    }
  }

  /**
   * Writes bytes at any offset: the pages become dirty until `msync` or `commit` returns them,
   * and the size grows to the write's end if it ends past it. On a coherent object
   * (docs/protocol.md §10) this kernel first becomes the writer of every page written: missing
   * ones are requested with write access (one data_request per contiguous run), read-only ones
   * unlocked; the bytes land once it holds them all, in one step.
   */
  async write(offset: number, bytes: Uint8Array, options: CallOptions = {}): Promise<void> {
    const call = callSignal("write", options);
    try {
      const { pageSize, coherent } = this.geometry();
      const first = Math.floor(offset / pageSize);
      const end = Math.ceil((offset + bytes.byteLength) / pageSize);
      const { claim, turn } = this.claims.claim(first, end, coherent);
      try {
        if (turn) await abortable(turn, call.signal);
        if (coherent) {
          await this.acquireWritable(first, end, call.signal);
          this.apply(offset, bytes, new Map());
          return;
        }
        // Whole pages need no fault; partly written ones keep their other bytes (those past the
        // known size are zeros: no fault either).
        const partial = new Set(
          [first, end - 1].filter((page) => {
            const start = page * pageSize;
            return offset > start || offset + bytes.byteLength < start + pageSize;
          }),
        );
        const fetched = new Map<number, Uint8Array>();
        for (const page of partial) {
          for (const [p, data] of await abortable(this.faultIn(page, page + 1, false), call.signal))
            fetched.set(p, data);
        }
        await abortable(this.unlockForWrite(first, end), call.signal);
        this.apply(offset, bytes, fetched);
      } finally {
        this.release(claim);
      }
    } finally {
      call.done();
    }
  }

  /**
   * An atomic read-modify-write of `[offset, offset + length)`: `fn` gets a copy of the range's
   * bytes and returns (or resolves with) the new bytes, exactly `length` of them. Resolves with
   * them once the manager has accepted them (the ack of a dirty data_return, kernel_copy true);
   * they are not yet in R2 (msync or commit for that).
   *
   * On a coherent object (docs/protocol.md §10) it is atomic across every kernel: the cache first
   * becomes the writer of every page of the range (answering lock requests meanwhile, holding
   * nothing while it waits), then, holding them all, runs `fn`, writes the result and returns
   * it; lock requests touching the range wait until the return is acked. If this kernel loses
   * the pages before that (its socket dropped and the manager dropped it as a holder,
   * docs/protocol.md §10.5, or the return was fenced with KERN_PROTECTION_FAILURE,
   * docs/protocol.md §10.6), nothing was applied and it starts again: `fn` may run more than
   * once, but its result is applied exactly once. On an object that is not coherent it is atomic
   * only against this cache's own writes and updates (they take turns on overlapping ranges);
   * other kernels may write in between.
   *
   * The range's pages must fit one data_return (`max_transfer`). Aborted before `fn` ran,
   * nothing is applied; after, the new bytes may still be.
   */
  async update(
    offset: number,
    length: number,
    fn: (bytes: Uint8Array) => Uint8Array | Promise<Uint8Array>,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    checkByteCount("update", "offset", offset);
    checkByteCount("update", "length", length);
    if (length === 0) throw new TypeError("update: length must be 1 or more bytes");
    if (typeof fn !== "function") {
      throw new TypeError("update: fn must be a function from the bytes to the new bytes");
    }
    const call = callSignal("update", options);
    try {
      const { pageSize, maxTransfer, maxSize, coherent } = this.geometry();
      if (offset + length > maxSize) {
        throw new KernReturnError(
          KERN_INVALID_ADDRESS,
          "bad_range",
          `update: offset + length ${offset + length} is over the object's max_size ${maxSize}`,
        );
      }
      const first = Math.floor(offset / pageSize);
      const end = Math.ceil((offset + length) / pageSize);
      if ((end - first) * pageSize > maxTransfer) {
        throw new TypeError(
          `update: length ${length} at offset ${offset} spans ${end - first} pages, more than one data_return carries (max_transfer ${maxTransfer} bytes)`,
        );
      }
      const { claim, turn } = this.claims.claim(first, end, true);
      try {
        if (turn) await abortable(turn, call.signal);
        for (;;) {
          const held = await this.acquireForUpdate(claim, call.signal);
          const after = await abortable(
            Promise.resolve(fn(this.copyOf(offset, length, first, held))),
            call.signal,
          );
          if (!(after instanceof Uint8Array) || after.byteLength !== length) {
            throw new TypeError(`update: fn must return a Uint8Array of ${length} bytes`);
          }
          if (!this.stillHeld(first, held)) {
            // Lost while fn ran (a departure flushed them): nothing was applied.
            this.claims.unhold(claim);
            continue;
          }
          // Evicted while fn ran (clean, still ours): back in, so the bytes land in them.
          held.forEach((cached, i) => this.pages.set(first + i, cached));
          this.apply(offset, after, new Map());
          const sending = this.startSending(held.map((cached, i) => [first + i, cached]));
          try {
            await abortable(this.returnRun(sending, { kernelCopy: true }), call.signal);
            return after;
          } catch (error) {
            if (!(coherent && isFenced(error))) throw error;
            // Refused: not applied, and the pages are gone here (returnRun dropped them).
            this.claims.unhold(claim);
          }
        }
      } finally {
        this.release(claim);
      }
    } finally {
      call.done();
    }
  }

  /**
   * Returns the dirty (and precious) pages of the range, contiguous runs coalesced up to
   * `max_transfer` per frame, then sends the synchronize and resolves on its completion. A size
   * change made with `setSize` goes too (a shrink before the returns, the final size after).
   * Nothing is awaited between the sends unless the connection is over capacity, so with batches
   * (docs/protocol.md §11) the returns and the synchronize leave together, in as few frames as
   * the batch bounds allow. Not atomic: use `commit` for that.
   *
   * Aborted, it rejects at once: what was not sent yet never is (not after a reconnect either)
   * and its pages stay dirty; what was sent may still take effect.
   */
  async msync(
    offset: number,
    length: number,
    syncFlags = VM_SYNC_SYNCHRONOUS,
    options: CallOptions = {},
  ): Promise<SynchronizeCompletedMessage> {
    const call = callSignal("msync", options);
    let cut: Claim | null = null;
    try {
      const { pageSize, coherent } = this.geometry();
      // Only then an await before the sends: otherwise the pages are taken at the call, as ever.
      if (coherent && this.shrinkTo !== null) cut = await this.acquireCut(call.signal);
      const first = Math.floor(offset / pageSize);
      const end = length === 0 ? first : Math.ceil((offset + length) / pageSize);
      const runs = this.runsOf(
        this.chosen(this.pinned, first, end, (page) => page.dirty || page.precious),
      );
      const sends = { signal: call.signal };
      const sizes = this.sizeSteps(runs);
      const sendings = runs.map((run) => this.startSending(run));
      const sent: Promise<unknown>[] = [];
      if (sizes.shrink !== null) {
        const shrink = sizes.shrink;
        sent.push(
          this.connection.setSize(shrink, sends).then(
            () => this.heard(shrink, shrink),
            // Not cut at the manager: the pages this msync returns must go again after the cut.
            (error: Error) => {
              for (const sending of sendings) this.redirty(sending);
              throw error;
            },
          ),
        );
      }
      // The shrink is queued: a lock_completed giving the cut pages up now goes after it.
      cut = this.releaseCut(cut);
      for (const sending of sendings) {
        if (this.connection.overCapacity) await this.connection.capacity(sends);
        const end = (sending.run.at(-1)![0] + 1) * pageSize;
        sent.push(
          this.returnRun(sending, sends).then(() => {
            this.managerSize = Math.max(this.managerSize, end);
          }),
        );
      }
      if (sizes.final !== null) {
        const final = sizes.final;
        const edits = this.sizeEdits;
        sent.push(this.connection.setSize(final, sends).then(() => this.heard(final, null, edits)));
      }
      const completion = this.connection.synchronize(offset, length, syncFlags, sends);
      const [done] = await Promise.all([completion, ...sent]);
      return done;
    } finally {
      this.releaseCut(cut);
      call.done();
    }
  }

  /**
   * Commits every dirty page, and a size change made with `setSize`, as ONE atomic group
   * (docs/protocol.md §12): the grouped returns, then the synchronize that commits them, over the
   * span of what changed; with batches on, one frame when it fits the batch bounds. No reader
   * sees any of it before the commit, nor part of it ever, even if this process dies on the way.
   * Resolves with the completion (with `VM_SYNC_SYNCHRONOUS`, once the pages are in R2); the
   * pages are then clean.
   *
   * If it fails (an error, `group_discarded`, `group_too_large` over `maxGroupBytes`, an abort),
   * the pages stay dirty (those not written since) and the size change pending: retry, or fall
   * back. Aborted before its synchronize left, the group is never committed (the manager
   * discards it at the next init); after, it may still have been committed.
   */
  async commit(options: CommitOptions = {}): Promise<SynchronizeCompletedMessage> {
    const { syncFlags = VM_SYNC_SYNCHRONOUS, ...callOptions } = options ?? {};
    if (!Number.isInteger(syncFlags) || syncFlags < 0) {
      throw new TypeError("commit: syncFlags must be a VM_SYNC_* bit set");
    }
    const call = callSignal("commit", callOptions);
    let cut: Claim | null = null;
    try {
      const { pageSize, maxSize, coherent } = this.geometry();
      if (coherent && this.shrinkTo !== null) cut = await this.acquireCut(call.signal);
      const dirty = this.dirtyPages().sort((a, b) => a - b);
      const bytes = dirty.length * pageSize;
      if (bytes > this.options.maxGroupBytes) {
        throw new KernReturnError(
          KERN_RESOURCE_SHORTAGE,
          "group_too_large",
          `commit: ${bytes} dirty bytes are over maxGroupBytes (${this.options.maxGroupBytes}); nothing was sent`,
        );
      }
      const runs = this.runsOf(dirty.map((page) => [page, this.pages.get(page)!]));
      const sizes = this.sizeSteps(runs);
      const target = { size: this.localSize, shrinkTo: this.shrinkTo, edits: this.sizeEdits };
      const span = commitSpan(dirty, sizes, pageSize, maxSize);
      if (span.length === 0) {
        return await this.connection.synchronize(0, 0, syncFlags, { signal: call.signal });
      }
      const group = this.connection.newGroup();
      const sends = { group, signal: call.signal };
      const sendings = runs.map((run) => this.startSending(run));
      const sent: Promise<unknown>[] = [];
      try {
        if (sizes.shrink !== null) sent.push(this.connection.setSize(sizes.shrink, sends));
        for (const sending of sendings) {
          if (this.connection.overCapacity) await this.connection.capacity(sends);
          const offset = sending.run[0]![0] * pageSize;
          // On a coherent object the pages stay cached, so the hold stays (docs/protocol.md §10.2).
          const kernelCopy = this.geometry().coherent;
          sent.push(
            this.connection.dataReturn(offset, sending.body, { dirty: true, kernelCopy, ...sends }),
          );
        }
        if (sizes.final !== null) sent.push(this.connection.setSize(sizes.final, sends));
        const completion = this.connection.synchronize(span.offset, span.length, syncFlags, sends);
        // The commit is queued (its shrink is fenced there): lock_completed messages go after it.
        cut = this.releaseCut(cut);
        const [done] = await Promise.all([completion, ...sent]);
        for (const sending of sendings) this.finishSending(sending);
        this.heard(target.size, target.shrinkTo, target.edits);
        return done;
      } catch (error) {
        // Nothing of it is committed (or, aborted late, all of it): either way the pages go again.
        this.connection.abandonGroup(group, error as Error);
        for (const sending of sendings) this.redirty(sending);
        throw error;
      }
    } finally {
      this.releaseCut(cut);
      call.done();
    }
  }

  /**
   * Commits `writes` (applied in order, after a size change to `size` if given) together with
   * whatever else is dirty, as one atomic group (see `commit`). If the commit fails, the cache is
   * as it was before the call: what the writes and the size change did here is undone, so it
   * still holds what the manager holds. Nothing else may write to the cache meanwhile.
   */
  async commitWrites(
    writes: readonly { offset: number; data: Uint8Array }[],
    options: CommitOptions & { size?: number } = {},
  ): Promise<SynchronizeCompletedMessage> {
    const { size, syncFlags, ...callOptions } = options ?? {};
    if (size !== undefined) checkByteCount("commitWrites", "size", size);
    const call = callSignal("commitWrites", callOptions);
    const undo = this.undoLog(writes, size);
    try {
      if (size !== undefined) await this.setSize(size);
      for (const { offset, data } of writes) {
        await this.write(offset, data, { signal: call.signal });
      }
      return await this.commit({ syncFlags, signal: call.signal });
    } catch (error) {
      undo();
      throw error;
    } finally {
      call.done();
    }
  }

  /** Dirty pages to commit, or a size change the manager has not heard of. */
  get hasChanges(): boolean {
    return (
      this.dirtyPages().length > 0 ||
      this.localSize !== this.managerSize ||
      this.shrinkTo !== null ||
      this.sizeEdits !== this.sizeEditsHeard
    );
  }

  /**
   * What `commitWrites` needs to undo its changes to the cache: the pages the writes touch and,
   * with a size, the cached pages it may cut, as they are now; and the size.
   */
  private undoLog(
    writes: readonly { offset: number; data: Uint8Array }[],
    size: number | undefined,
  ): () => void {
    const { pageSize } = this.geometry();
    const touched = new Set<number>();
    for (const { offset, data } of writes) {
      const end = Math.ceil((offset + data.byteLength) / pageSize);
      for (let page = Math.floor(offset / pageSize); page < end; page++) touched.add(page);
    }
    if (size !== undefined) {
      const cut = Math.floor(size / pageSize);
      for (const page of this.pages.keys()) if (page >= cut) touched.add(page);
    }
    const saved = [...touched].map((page) => {
      const cached = this.pages.get(page);
      return { page, cached, state: cached && { ...cached, data: cached.data.slice() } };
    });
    const sizes = { local: this.localSize, shrinkTo: this.shrinkTo, edits: this.sizeEdits };
    return () => {
      for (const { page, cached, state } of saved) {
        if (!cached || !state) {
          if (this.pages.get(page)?.sending === 0) this.forget(page);
          continue;
        }
        Object.assign(cached, { ...state, sending: cached.sending, version: cached.version + 1 });
        this.place(page, cached);
      }
      this.localSize = sizes.local;
      this.shrinkTo = sizes.shrinkTo;
      this.sizeEdits = sizes.edits;
    };
  }

  /**
   * Stops answering lock requests and following the connection; the connection stays open. On a
   * coherent object the manager still counts this kernel as holding what it was supplied, so
   * other kernels' requests for those pages wait for the lock timeout (docs/protocol.md §10.5):
   * close the connection (or terminate) rather than leave it open detached.
   */
  detach(): void {
    for (const stop of this.unsubscribe) stop();
  }

  /**
   * The object's geometry, from the current ready or, while the connection reconnects, the last
   * one (the page size cannot change under a connection: it inits with the same one each time),
   * so reads, writes and msyncs during an outage queue instead of throwing.
   */
  private geometry(): Geometry {
    const ready = this.connection.ready;
    if (ready && !this.known) this.onReady(ready);
    if (!this.known) {
      throw new Error("the kernel is not connected yet: await connection.whenReady()");
    }
    return this.known;
  }

  /** Each ready: the geometry, and the manager's size (ours too, unless we changed it since). */
  private onReady(ready: ReadyMessage): void {
    const first = this.known === null;
    this.known = {
      pageSize: ready.page_size,
      maxTransfer: ready.max_transfer,
      maxSize: ready.max_size,
      coherent: ready.coherent === true,
    };
    const size = typeof ready.size === "number" ? ready.size : Number.POSITIVE_INFINITY;
    if (first) {
      this.localSize = size;
      this.managerSize = size;
    } else this.learnSize(size);
  }

  // --- writing and holding pages ---------------------------------------------------------

  /** Writes `bytes` at `offset` into the cache, the pages dirty; missing ones from `fetched`. */
  private apply(offset: number, bytes: Uint8Array, fetched: Map<number, Uint8Array>): void {
    const { pageSize } = this.geometry();
    const end = Math.ceil((offset + bytes.byteLength) / pageSize);
    for (let page = Math.floor(offset / pageSize); page < end; page++) {
      const pageStart = page * pageSize;
      const from = Math.max(offset, pageStart);
      const to = Math.min(offset + bytes.byteLength, pageStart + pageSize);
      const cached = this.pages.get(page) ?? newPage(fetched.get(page) ?? null, pageSize);
      cached.data.set(bytes.subarray(from - offset, to - offset), from - pageStart);
      cached.dirty = true;
      cached.version++;
      this.place(page, cached);
    }
    this.localSize = Math.max(this.localSize, offset + bytes.byteLength);
  }

  /**
   * On a coherent object, makes this kernel the writer of every page of [first, end): missing
   * pages are requested with write access (one data_request per contiguous run, at most
   * max_transfer each), read-only ones unlocked (one data_unlock per run), and it looks again
   * once they are answered, since lock requests answered meanwhile may have taken pages back.
   * Returns when every page is cached writable; nothing is held while it waits.
   */
  private async acquireWritable(
    first: number,
    end: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const { pageSize, maxTransfer } = this.geometry();
    const perRequest = Math.max(1, Math.floor(maxTransfer / pageSize));
    for (;;) {
      const waits: Promise<unknown>[] = [];
      const readOnly: [number, CachedPage][] = [];
      for (let page = first; page < end;) {
        const pending = this.fetching.get(page);
        const cached = this.pages.get(page);
        if (pending || cached) {
          if (pending) waits.push(pending);
          else if (cached!.prohibited & VM_PROT_WRITE) readOnly.push([page, cached!]);
          page++;
          continue;
        }
        let runEnd = page + 1;
        while (runEnd < end && !this.pages.has(runEnd) && !this.fetching.has(runEnd)) runEnd++;
        for (let start = page; start < runEnd; start += perRequest) {
          this.fetchRun(start, Math.min(runEnd, start + perRequest), VM_PROT_READ | VM_PROT_WRITE);
          waits.push(this.fetching.get(start)!);
        }
        page = runEnd;
      }
      for (const run of this.runsOf(readOnly)) {
        const offset = run[0]![0] * pageSize;
        waits.push(this.connection.dataUnlock(offset, run.length * pageSize, VM_PROT_WRITE));
      }
      if (waits.length === 0) return;
      await abortable(Promise.all(waits), signal);
    }
  }

  /**
   * The pages of an update's claim, held and returned in page order: on a coherent object as
   * their writer; on one that is not, merely cached (never-written ones and those past the known
   * size as zeros). The update keeps them even if a clean one is evicted meanwhile: lock
   * requests touching them wait, so they stay the latest bytes.
   */
  private async acquireForUpdate(
    claim: Claim,
    signal: AbortSignal | undefined,
  ): Promise<CachedPage[]> {
    const { pageSize, coherent } = this.geometry();
    const held: CachedPage[] = [];
    if (coherent) {
      await this.acquireWritable(claim.first, claim.end, signal);
      for (let page = claim.first; page < claim.end; page++) held.push(this.pages.get(page)!);
    } else {
      const fetched = await abortable(this.faultIn(claim.first, claim.end, false), signal);
      for (let page = claim.first; page < claim.end; page++) {
        let cached = this.pages.get(page);
        if (!cached) this.place(page, (cached = newPage(fetched.get(page) ?? null, pageSize)));
        held.push(cached);
      }
    }
    claim.held = true;
    return held;
  }

  /**
   * On a coherent object a shrink writes the pages it cuts, from the one the new size falls in
   * to the object's end, and only their writer may send it (docs/protocol.md §10.6). This makes
   * the kernel their writer with data_unlock (no bytes move, cached or not) and returns a claim
   * holding them from the last grant on: lock requests that touch them wait until the caller has
   * queued the shrink (or the commit that carries it) and releases the claim, so a lock_completed
   * giving them up goes after it and seqno order applies the shrink first. If a lock request took
   * some back before the last grant came, it asks again. The object's end is the size this
   * kernel last knew the manager to have; if another kernel grew it since, the shrink may still
   * be refused (`not_writer`), and the call with it.
   */
  private async acquireCut(signal: AbortSignal | undefined): Promise<Claim | null> {
    const { pageSize, maxTransfer } = this.geometry();
    const shrink = this.shrinkTo;
    if (shrink === null || !Number.isFinite(this.managerSize)) return null;
    const first = Math.floor(shrink / pageSize);
    const end = Math.ceil(this.managerSize / pageSize);
    if (end <= first) return null;
    const perRequest = Math.max(1, Math.floor(maxTransfer / pageSize));
    const { claim, turn } = this.claims.claim(first, end, true);
    try {
      if (turn) await abortable(turn, signal);
      for (;;) {
        const watch = { first, end, takenBack: false };
        this.watches.add(watch);
        let waiting = Math.ceil((end - first) / perRequest);
        const grants: Promise<unknown>[] = [];
        for (let page = first; page < end; page += perRequest) {
          const stop = Math.min(end, page + perRequest);
          const onGrant = () => {
            if (--waiting === 0 && !watch.takenBack) claim.held = true;
          };
          grants.push(
            this.connection.dataUnlock(page * pageSize, (stop - page) * pageSize, VM_PROT_WRITE, {
              onGrant,
            }),
          );
        }
        try {
          await abortable(Promise.all(grants), signal);
        } finally {
          this.watches.delete(watch);
        }
        if (claim.held) return claim;
      }
    } catch (error) {
      this.release(claim);
      throw error;
    }
  }

  /** Lets a cut's claim go (lock requests waiting for it are answered); null, to reassign. */
  private releaseCut(cut: Claim | null): null {
    if (cut) this.release(cut);
    return null;
  }

  /**
   * Lets a claim go: later claims may start, lock requests waiting for it are answered, and its
   * clean pages may be evicted again.
   */
  private release(claim: Claim): void {
    this.claims.release(claim);
    if (!claim.defers) return;
    // A shrink's claim may span far more pages than are cached: walk the smaller of the two.
    const pinned =
      claim.end - claim.first <= this.pinned.size
        ? Array.from({ length: claim.end - claim.first }, (_, i) => claim.first + i)
        : [...this.pinned].filter((page) => page >= claim.first && page < claim.end);
    for (const page of pinned) {
      const cached = this.pages.get(page);
      if (cached && this.pinned.has(page)) this.place(page, cached);
    }
  }

  /** Whether every page of a claim is cached, and writable on a coherent object. */
  private holds(claim: Claim): boolean {
    const { coherent } = this.geometry();
    for (let page = claim.first; page < claim.end; page++) {
      const cached = this.pages.get(page);
      if (!cached || (coherent && cached.prohibited & VM_PROT_WRITE)) return false;
    }
    return true;
  }

  /**
   * Whether an update's pages (from page `first` on) are still its own: none dropped on purpose
   * or replaced by a fresh fetch, none made read-only.
   */
  private stillHeld(first: number, held: CachedPage[]): boolean {
    const { coherent } = this.geometry();
    return held.every(
      (cached, i) =>
        !cached.lost &&
        (this.pages.get(first + i) ?? cached) === cached &&
        !(coherent && cached.prohibited & VM_PROT_WRITE),
    );
  }

  /** A copy of the bytes of `[offset, offset + length)` from `held`, its pages from `first` on. */
  private copyOf(offset: number, length: number, first: number, held: CachedPage[]): Uint8Array {
    const { pageSize } = this.geometry();
    const out = new Uint8Array(length);
    held.forEach((cached, i) => {
      const pageStart = (first + i) * pageSize;
      const from = Math.max(offset, pageStart);
      const to = Math.min(offset + length, pageStart + pageSize);
      out.set(cached.data.subarray(from - pageStart, to - pageStart), from - offset);
    });
    return out;
  }

  // --- faults and read-ahead ---------------------------------------------------------------

  /**
   * Requests every missing page of [first, end) (with `readAhead`, the run from a miss goes on
   * past `end`, up to `readAheadBytes`), in requests of at most max_transfer, and resolves with
   * the bytes of the pages of [first, end) it had to wait for. Pages wholly past the known size
   * are zeros and never requested, except on a coherent object, where another kernel may have
   * written past the size this one knows (read-ahead still stops there).
   */
  private async faultIn(
    first: number,
    end: number,
    readAhead: boolean,
  ): Promise<Map<number, Uint8Array>> {
    const { pageSize, maxTransfer, maxSize, coherent } = this.geometry();
    const perRequest = Math.max(1, Math.floor(maxTransfer / pageSize));
    const zeroFrom = this.zeroPage();
    const maxPage = Math.floor(maxSize / pageSize);
    const lastPage = Math.min(zeroFrom, maxPage);
    const wanted = coherent ? maxPage : lastPage;
    const ahead = readAhead ? Math.floor(this.readAheadBytes() / pageSize) : 0;
    const waits: [number, Fetch][] = [];
    for (let page = first; page < end && page < wanted;) {
      const pending = this.fetching.get(page);
      if (this.pages.has(page) || pending) {
        if (pending) waits.push([page, pending]);
        page++;
        continue;
      }
      const limit = Math.min(wanted, Math.max(end, Math.min(lastPage, page + ahead)));
      let runEnd = page + 1;
      while (runEnd < limit && !this.pages.has(runEnd) && !this.fetching.has(runEnd)) runEnd++;
      for (let start = page; start < runEnd; start += perRequest) {
        this.fetchRun(start, Math.min(runEnd, start + perRequest));
      }
      for (let p = page; p < Math.min(runEnd, end); p++) waits.push([p, this.fetching.get(p)!]);
      page = runEnd;
    }
    const fetched = new Map<number, Uint8Array>();
    for (const [page, fetch] of waits) {
      const data = await fetch;
      if (data) fetched.set(page, data);
    }
    return fetched;
  }

  /**
   * One data_request for pages [start, end), each page's fetch registered until answered. The
   * pages are placed the moment the answer arrives, before any message after it is handled: a
   * lock request right behind the supply (docs/protocol.md §10) then finds them to flush or demote.
   */
  private fetchRun(start: number, end: number, access = VM_PROT_READ): void {
    const { pageSize } = this.geometry();
    const zeroFrom = this.shrinkTo;
    const pages = new Map<number, Uint8Array>();
    const place = (answer: DataReply) => {
      for (let p = start; p < end; p++) {
        this.fetching.delete(p);
        const at = (p - start) * pageSize;
        const data = answer.data ? answer.data.slice(at, at + pageSize) : null;
        // Bytes past a shrink the manager has not heard of yet are zeros here already.
        if (data && zeroFrom !== null && (p + 1) * pageSize > zeroFrom) {
          data.fill(0, Math.max(0, zeroFrom - p * pageSize));
        }
        if (data) pages.set(p, data);
        // Written meanwhile: the local copy is newer.
        if (this.pages.has(p)) continue;
        const cached = newPage(null, pageSize);
        if (data) cached.data = data;
        cached.precious = answer.precious;
        cached.prohibited = answer.lockValue;
        this.place(p, cached);
      }
    };
    const reply = this.connection.dataRequest(start * pageSize, (end - start) * pageSize, access, {
      onReply: place,
    });
    const settled = reply.then(
      () => pages,
      (error: Error) => {
        for (let p = start; p < end; p++) this.fetching.delete(p);
        throw error;
      },
    );
    for (let p = start; p < end; p++) {
      const fetch = settled.then((pages) => pages.get(p) ?? null);
      // Read ahead, nobody may wait for it: a failure is then nobody's to report.
      fetch.catch(() => {});
      this.fetching.set(p, fetch);
    }
  }

  /**
   * Never more than the clean pages kept: what is read ahead must stay until it is read. Off by
   * default on a coherent object: every page fetched makes this kernel a reader of it, and a
   * reader demotes the page's writer (docs/protocol.md §10.3), so pages nobody asked for would cost
   * the kernels writing them a lock request each, and bytes read ahead go stale the moment
   * another kernel writes them anyway. An explicit `readAheadBytes` still applies.
   */
  private readAheadBytes(): number {
    const { maxTransfer, coherent } = this.geometry();
    const bytes =
      this.options.readAheadBytes === -1
        ? coherent
          ? 0
          : Math.min(DEFAULTS.readAheadBytes, maxTransfer)
        : this.options.readAheadBytes;
    return Math.min(bytes, this.options.maxCleanBytes);
  }

  /** The first page wholly past the known size (or a pending shrink): all zeros from there. */
  private zeroPage(): number {
    const { pageSize } = this.geometry();
    const size = Math.min(this.localSize, this.shrinkTo ?? Number.POSITIVE_INFINITY);
    return Math.ceil(size / pageSize);
  }

  // --- the page sets -----------------------------------------------------------------------

  /**
   * Files a page under clean or pinned after a change, and evicts clean pages over the bound. A
   * page a write or update is acquiring or holds (client/range-claims.ts) is pinned until the
   * claim is released.
   */
  private place(page: number, cached: CachedPage): void {
    this.pages.set(page, cached);
    this.clean.delete(page);
    if (cached.dirty || cached.precious || cached.sending > 0 || this.claims.covers(page)) {
      this.pinned.add(page);
      return;
    }
    this.pinned.delete(page);
    this.clean.add(page);
    this.evict();
  }

  /** The cached page, marked most recently used if clean. */
  private touch(page: number): CachedPage | undefined {
    const cached = this.pages.get(page);
    if (cached && this.clean.delete(page)) this.clean.add(page);
    return cached;
  }

  private forget(page: number): void {
    const cached = this.pages.get(page);
    if (cached) cached.lost = true;
    this.pages.delete(page);
    this.clean.delete(page);
    this.pinned.delete(page);
  }

  private evict(): void {
    const max = Math.floor(this.options.maxCleanBytes / this.geometry().pageSize);
    while (this.clean.size > max) {
      const oldest = this.clean.values().next().value!;
      this.clean.delete(oldest);
      this.pages.delete(oldest);
    }
  }

  private dirtyPages(): number[] {
    return [...this.pinned].filter((page) => this.pages.get(page)!.dirty);
  }

  /** Cached pages `select` picks: wholly past `size` dropped, the last one's tail zeroed. */
  private cut(size: number, select: (page: CachedPage) => boolean): void {
    const { pageSize } = this.geometry();
    const firstGone = Math.ceil(size / pageSize);
    for (const [page, cached] of [...this.pages]) {
      if (!select(cached)) continue;
      if (page >= firstGone) this.forget(page);
      else if ((page + 1) * pageSize > size) cached.data.fill(0, size - page * pageSize);
    }
  }

  // --- returns -----------------------------------------------------------------------------

  /** The pages of `candidates` within [first, end) that `select` picks, in page order. */
  private chosen(
    candidates: Iterable<number>,
    first: number,
    end: number,
    select: (page: CachedPage) => boolean,
  ): [number, CachedPage][] {
    const chosen: [number, CachedPage][] = [];
    for (const page of candidates) {
      const cached = this.pages.get(page);
      if (cached && page >= first && page < end && select(cached)) chosen.push([page, cached]);
    }
    return chosen.sort(([a], [b]) => a - b);
  }

  /** Pages in page order, as contiguous runs of at most max_transfer. */
  private runsOf(chosen: [number, CachedPage][]): [number, CachedPage][][] {
    const { pageSize, maxTransfer } = this.geometry();
    const runs: [number, CachedPage][][] = [];
    let run: [number, CachedPage][] = [];
    for (const entry of chosen) {
      const last = run[run.length - 1];
      if (last && (last[0] + 1 !== entry[0] || (run.length + 1) * pageSize > maxTransfer)) {
        runs.push(run);
        run = [];
      }
      run.push(entry);
    }
    if (run.length > 0) runs.push(run);
    return runs;
  }

  /**
   * The size messages an msync or commit returning `runs` needs: the pending shrink first, and
   * after the returns the size, unless the returns leave the manager at it already (a return
   * raises the size to its end, docs/protocol.md §13).
   */
  private sizeSteps(runs: [number, CachedPage][][]): {
    shrink: number | null;
    final: number | null;
  } {
    const { pageSize } = this.geometry();
    const returnsEnd = Math.max(0, ...runs.map((run) => (run.at(-1)![0] + 1) * pageSize));
    const expected = Math.max(this.shrinkTo ?? this.managerSize, returnsEnd);
    // Only a size this kernel set with `setSize`. A size raised by writes comes with the returns
    // (to the end of their last page); sending it, even for a write that ends inside a page,
    // could cut what another kernel wrote past it since: a set_size is absolute.
    const set = this.sizeEdits !== this.sizeEditsHeard;
    const final = Number.isFinite(this.localSize) && this.localSize !== expected && set;
    return { shrink: this.shrinkTo, final: final ? this.localSize : null };
  }

  /** The manager now has `size`; the shrink it applied is no longer pending unless set since. */
  private heard(size: number, shrinkTo: number | null, edits = this.sizeEditsHeard): void {
    this.managerSize = size;
    this.sizeEditsHeard = Math.max(this.sizeEditsHeard, edits);
    if (shrinkTo !== null && this.shrinkTo === shrinkTo) this.shrinkTo = null;
  }

  /**
   * A run's bytes as they are now, its pages counted clean from here; they stay cached (never
   * evicted) until `finishSending` or `redirty` settles the send.
   */
  private startSending(run: [number, CachedPage][]): Sending {
    const { pageSize } = this.geometry();
    const body = new Uint8Array(run.length * pageSize);
    const dirty = run.some(([, cached]) => cached.dirty);
    run.forEach(([page, cached], i) => {
      body.set(cached.data, i * pageSize);
      cached.dirty = false;
      cached.precious = false;
      cached.sending++;
      this.place(page, cached);
    });
    return { run, body, dirty, versions: run.map(([, c]) => c.version), open: true };
  }

  /** The send succeeded: its pages are clean (unless written since) and may be evicted. */
  private finishSending(sending: Sending): void {
    if (!sending.open) return;
    sending.open = false;
    for (const [page, cached] of sending.run) {
      cached.sending--;
      if (this.pages.get(page) === cached) this.place(page, cached);
    }
  }

  /** The send failed (or must go again): its pages not written since are dirty again. */
  private redirty(sending: Sending): void {
    sending.run.forEach(([page, cached], i) => {
      if (sending.open) cached.sending--;
      if (this.pages.get(page) !== cached) return;
      if (cached.version === sending.versions[i]) cached.dirty = true;
      this.place(page, cached);
    });
    sending.open = false;
  }

  /**
   * One data_return of a send's bytes; its pages are settled with its answer. On a coherent
   * object it says kernel_copy true unless told otherwise (the pages stay cached, so the hold
   * must stay too, docs/protocol.md §10.2), and a return refused with KERN_PROTECTION_FAILURE
   * (fenced: this kernel is no longer the pages' writer) drops the pages instead of dirtying them
   * again: the manager took someone else's bytes since, and these are lost, as a departed
   * kernel's are.
   */
  private returnRun(
    sending: Sending,
    options: CallOptions & { kernelCopy?: boolean },
  ): Promise<unknown> {
    const { pageSize, coherent } = this.geometry();
    const offset = sending.run[0]![0] * pageSize;
    const dirty = sending.dirty;
    const { kernelCopy = coherent, ...callOptions } = options;
    return this.connection
      .dataReturn(offset, sending.body, { dirty, kernelCopy, ...callOptions })
      .then(
        () => this.finishSending(sending),
        (error: Error) => {
          if (coherent && isFenced(error)) this.dropSent(sending);
          else this.redirty(sending);
          throw error;
        },
      );
  }

  /** A fenced send: its pages, unless replaced since, leave the cache. */
  private dropSent(sending: Sending): void {
    for (const [page, cached] of sending.run) {
      if (sending.open) cached.sending--;
      if (this.pages.get(page) === cached) this.forget(page);
    }
    sending.open = false;
  }

  // --- the manager's requests --------------------------------------------------------------

  /**
   * A lock request arrives: answered now, or, when it touches pages a write or update holds,
   * once that lets go (client/range-claims.ts).
   */
  private offerLockRequest(lock: LockRequestMessage): void {
    const { pageSize } = this.geometry();
    const first = Math.floor(lock.offset / pageSize);
    const end = Math.ceil((lock.offset + lock.length) / pageSize);
    this.claims.offer(lock, first, end);
  }

  /**
   * memory_object_lock_request: return what it asks, flush if told, apply the lock, answer. All
   * it does to the cache happens at once, before anything is sent; then the returns go (waiting
   * for capacity between them) and the lock_completed after them.
   */
  private async onLockRequest(lock: LockRequestMessage): Promise<void> {
    const { pageSize, coherent } = this.geometry();
    const first = Math.floor(lock.offset / pageSize);
    const end = Math.ceil((lock.offset + lock.length) / pageSize);
    const select = returnSelector(lock.should_return);
    const sendings: Sending[] = [];
    if (select) {
      const candidates =
        lock.should_return === MEMORY_OBJECT_RETURN_ANYTHING ? this.pages.keys() : this.pinned;
      for (const run of this.runsOf(this.chosen(candidates, first, end, select))) {
        sendings.push(this.startSending(run));
      }
    }
    for (const [page, cached] of [...this.pages]) {
      if (page < first || page >= end) continue;
      if (lock.should_flush) this.forget(page);
      else if (lock.lock_value !== VM_PROT_NO_CHANGE) cached.prohibited = lock.lock_value;
    }
    const takesBack =
      lock.should_flush ||
      (lock.lock_value !== VM_PROT_NO_CHANGE && lock.lock_value & VM_PROT_WRITE);
    for (const watch of this.watches) {
      if (takesBack && watch.first < end && first < watch.end) watch.takenBack = true;
    }
    // Pages kept (a demotion) keep their hold on a coherent object; flushed ones give it up.
    const kernelCopy = coherent && !lock.should_flush;
    const returns: Promise<unknown>[] = [];
    for (const sending of sendings) {
      if (this.connection.overCapacity) await this.connection.capacity();
      returns.push(this.returnRun(sending, { kernelCopy }));
    }
    try {
      await Promise.all(returns);
      await this.connection.lockCompleted(lock.lock_id, lock.offset, lock.length);
    } catch {
      // The connection closed: the manager marks this kernel stale and it flushes on resume.
    }
  }

  /** Pages locked against writing are unlocked (data_unlock) before the write. */
  private async unlockForWrite(first: number, end: number): Promise<void> {
    const { pageSize } = this.geometry();
    for (let page = first; page < end; page++) {
      const cached = this.pages.get(page);
      if (!cached || (cached.prohibited & VM_PROT_WRITE) === 0) continue;
      const grant = await this.connection.dataUnlock(page * pageSize, pageSize, VM_PROT_WRITE);
      cached.prohibited =
        grant.lock_value === VM_PROT_NO_CHANGE ? cached.prohibited : grant.lock_value;
    }
  }

  /**
   * The manager said our copies may be stale (a ready with `flush: true`): keep only what it has
   * not got yet. On a coherent object it dropped this kernel from every page it held
   * (docs/protocol.md §10.5), so dirty pages never returned are lost, as a departed kernel's are:
   * they go too, and so do pages being returned (resent, such a return is applied if it was
   * before the departure, else fenced). An update under way notices and starts again.
   */
  private onFlush(): void {
    const { coherent } = this.geometry();
    for (const page of coherent ? [...this.pages.keys()] : [...this.clean]) this.forget(page);
  }
}

/** A clean page of a copy of `data`, or of zeros. */
function newPage(data: Uint8Array | null, pageSize: number): CachedPage {
  return {
    data: data ? data.slice() : new Uint8Array(pageSize),
    dirty: false,
    precious: false,
    prohibited: VM_PROT_NONE,
    version: 0,
    sending: 0,
    lost: false,
  };
}

/**
 * The range a commit's synchronize covers: its dirty pages, and the page where a size change
 * cuts, so a SYNCHRONOUS commit waits for all it changed.
 */
function commitSpan(
  dirty: number[],
  sizes: { shrink: number | null; final: number | null },
  pageSize: number,
  maxSize: number,
): { offset: number; length: number } {
  let first = dirty.length > 0 ? dirty[0]! : Number.POSITIVE_INFINITY;
  let end = dirty.length > 0 ? dirty.at(-1)! + 1 : 0;
  for (const size of [sizes.shrink, sizes.final]) {
    if (size === null) continue;
    const page = Math.min(Math.floor(size / pageSize), Math.floor(maxSize / pageSize) - 1);
    first = Math.min(first, page);
    end = Math.max(end, page + 1);
  }
  if (end <= first) return { offset: 0, length: 0 };
  return { offset: first * pageSize, length: (end - first) * pageSize };
}

/** Rejects with the signal's reason as soon as it aborts, whatever `work` is doing. */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const aborted = () => reject(signal.reason as Error);
    signal.addEventListener("abort", aborted, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", aborted));
  });
}

function checkOptions(options: PageCacheOptions): Required<PageCacheOptions> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("PageCache: the options must be an object");
  }
  const { maxCleanBytes, readAheadBytes, maxGroupBytes } = options;
  for (const [name, value] of Object.entries({ maxCleanBytes, readAheadBytes, maxGroupBytes })) {
    if (value !== undefined) checkByteCount("PageCache", name, value);
  }
  return {
    maxCleanBytes: maxCleanBytes ?? DEFAULTS.maxCleanBytes,
    // -1: the default, which depends on the ready's max_transfer.
    readAheadBytes: readAheadBytes ?? -1,
    maxGroupBytes: maxGroupBytes ?? DEFAULTS.maxGroupBytes,
  };
}

function checkByteCount(call: string, name: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`${call}: ${name} must be a byte count (an integer, 0 or more)`);
  }
}

/** A dirty return refused because this kernel is not the pages' writer (docs/protocol.md §10.6). */
function isFenced(error: unknown): boolean {
  return error instanceof KernReturnError && error.kernReturn === KERN_PROTECTION_FAILURE;
}

function returnSelector(shouldReturn: number): ((page: CachedPage) => boolean) | null {
  switch (shouldReturn) {
    case MEMORY_OBJECT_RETURN_DIRTY:
      return (page) => page.dirty;
    case MEMORY_OBJECT_RETURN_ALL:
      return (page) => page.dirty || page.precious;
    case MEMORY_OBJECT_RETURN_ANYTHING:
      return () => true;
    default:
      return null;
  }
}
