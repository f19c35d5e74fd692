/**
 * A kernel-style page cache on a `KernelConnection`: `read` faults pages in with data_request,
 * `write` dirties them, `msync` returns the range's dirty pages and then synchronizes it, the way
 * `vm_msync` did. It answers the manager's lock requests (return, flush, lock) and keeps precious
 * pages until they are returned.
 */
import {
  MEMORY_OBJECT_RETURN_ALL,
  MEMORY_OBJECT_RETURN_ANYTHING,
  MEMORY_OBJECT_RETURN_DIRTY,
  VM_PROT_NO_CHANGE,
  VM_PROT_NONE,
  VM_PROT_WRITE,
  VM_SYNC_SYNCHRONOUS,
  type LockRequestMessage,
  type SynchronizeCompletedMessage,
} from "../schema";
import type { KernelConnection } from "./connection";

interface CachedPage {
  data: Uint8Array;
  dirty: boolean;
  precious: boolean;
  /** Access the manager prohibits (`lock_value`): a write to a page locked against it unlocks first. */
  prohibited: number;
  /** Bumped by every write, so a failed return re-dirties only pages not written since. */
  version: number;
}

export class PageCache {
  private readonly pages = new Map<number, CachedPage>();
  private readonly unsubscribe: (() => void)[];
  /** From the last `memory_object_ready`: kept while the connection reconnects. */
  private known: { pageSize: number; maxTransfer: number } | null = null;

  /**
   * @example
   * const cache = new PageCache(await KernelConnection.connect({ url, object, kernel }));
   * await cache.write(0, bytes);
   * await cache.msync(0, bytes.length, VM_SYNC_SYNCHRONOUS);
   */
  constructor(readonly connection: KernelConnection) {
    if (connection.ready) this.geometry();
    this.unsubscribe = [
      connection.on("lock_request", (lock) => void this.onLockRequest(lock)),
      connection.on("flush", () => this.dropClean()),
    ];
  }

  get pageSize(): number {
    return this.geometry().pageSize;
  }

  /** Pages cached now, and how many of them are dirty. */
  get stats(): { cached: number; dirty: number } {
    let dirty = 0;
    for (const page of this.pages.values()) if (page.dirty) dirty++;
    return { cached: this.pages.size, dirty };
  }

  /** The bytes of any range; missing pages are faulted in (never-written ones read as zeros). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const { pageSize } = this.geometry();
    const first = Math.floor(offset / pageSize);
    const end = Math.ceil((offset + length) / pageSize);
    await this.faultIn(first, end);
    const out = new Uint8Array(length);
    for (let page = first; page < end; page++) {
      const data = this.pages.get(page)?.data ?? new Uint8Array(pageSize);
      const pageStart = page * pageSize;
      const from = Math.max(offset, pageStart);
      const to = Math.min(offset + length, pageStart + pageSize);
      out.set(data.subarray(from - pageStart, to - pageStart), from - offset);
    }
    return out;
  }

  /** Writes bytes at any offset: the pages become dirty until `msync` returns them. */
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const { pageSize } = this.geometry();
    const first = Math.floor(offset / pageSize);
    const end = Math.ceil((offset + bytes.byteLength) / pageSize);
    // Whole pages need no fault; partly written ones keep their other bytes.
    const partial = [first, end - 1].filter((page) => {
      const start = page * pageSize;
      return (
        !this.pages.has(page) && (offset > start || offset + bytes.byteLength < start + pageSize)
      );
    });
    for (const page of new Set(partial)) await this.faultIn(page, page + 1);
    await this.unlockForWrite(first, end);
    for (let page = first; page < end; page++) {
      const pageStart = page * pageSize;
      const from = Math.max(offset, pageStart);
      const to = Math.min(offset + bytes.byteLength, pageStart + pageSize);
      const cached = this.pages.get(page) ?? {
        data: new Uint8Array(pageSize),
        dirty: false,
        precious: false,
        prohibited: VM_PROT_NONE,
        version: 0,
      };
      cached.data.set(bytes.subarray(from - offset, to - offset), from - pageStart);
      cached.dirty = true;
      cached.version++;
      this.pages.set(page, cached);
    }
  }

  /**
   * Returns the dirty (and precious) pages of the range, contiguous runs coalesced up to
   * `max_transfer` per frame, then sends the synchronize and resolves on its completion. Nothing
   * is awaited between the sends unless the connection is over capacity, so with batches
   * (docs/protocol.md §11) the returns and the synchronize leave together, in as few frames as
   * the batch bounds allow.
   */
  async msync(
    offset: number,
    length: number,
    syncFlags = VM_SYNC_SYNCHRONOUS,
  ): Promise<SynchronizeCompletedMessage> {
    const { pageSize } = this.geometry();
    const first = Math.floor(offset / pageSize);
    const end = length === 0 ? first : Math.ceil((offset + length) / pageSize);
    const returns: Promise<unknown>[] = [];
    for (const run of this.runsOf(first, end, (page) => page.dirty || page.precious)) {
      if (this.connection.overCapacity) await this.connection.capacity();
      returns.push(this.returnRun(run));
    }
    const completion = this.connection.synchronize(offset, length, syncFlags);
    await Promise.all(returns);
    return completion;
  }

  /** Stops answering lock requests; the connection stays open. */
  detach(): void {
    for (const stop of this.unsubscribe) stop();
  }

  /**
   * The object's geometry, from the current ready or, while the connection reconnects, the last
   * one (the page size cannot change under a connection: it inits with the same one each time),
   * so reads, writes and msyncs during an outage queue instead of throwing.
   */
  private geometry(): { pageSize: number; maxTransfer: number } {
    const ready = this.connection.ready;
    if (ready) this.known = { pageSize: ready.page_size, maxTransfer: ready.max_transfer };
    if (!this.known) {
      throw new Error("the kernel is not connected yet: await connection.whenReady()");
    }
    return this.known;
  }

  /** Requests every missing page of [first, end), in runs of at most max_transfer. */
  private async faultIn(first: number, end: number): Promise<void> {
    const { pageSize, maxTransfer } = this.geometry();
    const perRequest = maxTransfer / pageSize;
    const requests: Promise<void>[] = [];
    for (let page = first; page < end;) {
      if (this.pages.has(page)) {
        page++;
        continue;
      }
      let runEnd = page + 1;
      while (runEnd < end && runEnd - page < perRequest && !this.pages.has(runEnd)) runEnd++;
      const runStart = page;
      requests.push(
        this.connection
          .dataRequest(runStart * pageSize, (runEnd - runStart) * pageSize)
          .then((reply) => {
            for (let p = runStart; p < runEnd; p++) {
              if (this.pages.has(p)) continue; // written meanwhile: the local copy is newer
              const at = (p - runStart) * pageSize;
              this.pages.set(p, {
                data: reply.data ? reply.data.slice(at, at + pageSize) : new Uint8Array(pageSize),
                dirty: false,
                precious: reply.precious,
                prohibited: reply.lockValue,
                version: 0,
              });
            }
          }),
      );
      page = runEnd;
    }
    await Promise.all(requests);
  }

  /**
   * Sends data_returns for the pages of [first, end) that `select` picks, contiguous runs up to
   * max_transfer each, waiting for capacity only when over it (see `msync`).
   */
  private async returnPages(
    first: number,
    end: number,
    select: (page: CachedPage) => boolean,
  ): Promise<Promise<unknown>[]> {
    const sent: Promise<unknown>[] = [];
    for (const run of this.runsOf(first, end, select)) {
      if (this.connection.overCapacity) await this.connection.capacity();
      sent.push(this.returnRun(run));
    }
    return sent;
  }

  /** The pages of [first, end) that `select` picks, in contiguous runs of at most max_transfer. */
  private runsOf(
    first: number,
    end: number,
    select: (page: CachedPage) => boolean,
  ): [number, CachedPage][][] {
    const { pageSize, maxTransfer } = this.geometry();
    const chosen = [...this.pages.entries()]
      .filter(([page, cached]) => page >= first && page < end && select(cached))
      .sort(([a], [b]) => a - b);
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
   * One data_return of a run, its bytes as they are now. The pages count as clean once sent; if
   * the return fails, those not written since are dirty again.
   */
  private returnRun(pages: [number, CachedPage][]): Promise<unknown> {
    const { pageSize } = this.geometry();
    const body = new Uint8Array(pages.length * pageSize);
    pages.forEach(([, cached], i) => body.set(cached.data, i * pageSize));
    const dirty = pages.some(([, cached]) => cached.dirty);
    const versions = pages.map(([, cached]) => cached.version);
    for (const [, cached] of pages) {
      cached.dirty = false;
      cached.precious = false;
    }
    return this.connection.dataReturn(pages[0]![0] * pageSize, body, { dirty }).catch((error) => {
      pages.forEach(([page, cached], i) => {
        if (this.pages.get(page) === cached && cached.version === versions[i]) cached.dirty = true;
      });
      throw error;
    });
  }

  /** memory_object_lock_request: return what it asks, flush if told, apply the lock, answer. */
  private async onLockRequest(lock: LockRequestMessage): Promise<void> {
    const { pageSize } = this.geometry();
    const first = Math.floor(lock.offset / pageSize);
    const end = Math.ceil((lock.offset + lock.length) / pageSize);
    const select = returnSelector(lock.should_return);
    const returns = select ? await this.returnPages(first, end, select) : [];
    for (const [page, cached] of [...this.pages.entries()]) {
      if (page < first || page >= end) continue;
      if (lock.should_flush) this.pages.delete(page);
      else if (lock.lock_value !== VM_PROT_NO_CHANGE) cached.prohibited = lock.lock_value;
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

  /** The manager said our copies may be stale: keep only what it has not got yet. */
  private dropClean(): void {
    for (const [page, cached] of [...this.pages.entries()]) {
      if (!cached.dirty && !cached.precious) this.pages.delete(page);
    }
  }
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
