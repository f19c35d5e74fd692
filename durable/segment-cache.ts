/**
 * Recently read segment pages, kept in memory within a byte bound (READ_CACHE_BYTES), so pages
 * that kernels fault in again and again cost no R2 read. Segments are immutable and their keys are
 * never reused (docs/architecture.md §4), so a cached page can never be stale: no invalidation is needed,
 * only eviction, least recently used first.
 *
 * The unit kept is a run: the bytes of one ranged R2 read, as read (no copy per page, so no
 * garbage and an exact count of the memory held). Each page of a run is found through its key.
 *
 * One cache serves every object in the isolate (`sharedSegmentCache`): the platform runs many
 * Durable Objects in one isolate and they share its 128 MB (docs/architecture.md §6), so the bound must be
 * per isolate. Keys are object-prefixed and unique per put, so objects never see each other's
 * pages, and a destroyed object's pages simply age out.
 */

interface Run {
  bytes: Uint8Array;
  pageSize: number;
  /** `segment#slot` of the run's first page. */
  segment: string;
  firstSlot: number;
}

export class SegmentCache {
  /** Runs by first page key; a Map iterates in insertion order, so the first is the oldest. */
  private readonly runs = new Map<string, Run>();
  /** Every cached page's run, by `segment#slot`. */
  private readonly pages = new Map<string, Run>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /**
   * The page at `slot` of `segment`, if cached (its run is now the most recently used).
   *
   * @example const bytes = cache.get("db/segments/…", 7) ?? (await readFromR2());
   */
  get(segment: string, slot: number): Uint8Array | undefined {
    const run = this.pages.get(keyOf(segment, slot));
    if (!run) return undefined;
    const runKey = keyOf(run.segment, run.firstSlot);
    this.runs.delete(runKey);
    this.runs.set(runKey, run);
    const at = (slot - run.firstSlot) * run.pageSize;
    return run.bytes.subarray(at, at + run.pageSize);
  }

  /**
   * Keeps the pages read from `segment` starting at `slot`, evicting the least recently used runs
   * as needed. A run larger than the whole bound is not kept.
   */
  keep(segment: string, slot: number, bytes: Uint8Array, pageSize: number): void {
    if (bytes.byteLength > this.maxBytes) return;
    const run: Run = { bytes, pageSize, segment, firstSlot: slot };
    this.evict(keyOf(segment, slot));
    this.runs.set(keyOf(segment, slot), run);
    this.bytes += bytes.byteLength;
    for (let i = 0; i * pageSize < bytes.byteLength; i++)
      this.pages.set(keyOf(segment, slot + i), run);
    while (this.bytes > this.maxBytes) this.evict(this.runs.keys().next().value!);
  }

  /** Bytes held now (never above the bound). */
  size(): number {
    return this.bytes;
  }

  /** Drops everything. */
  clear(): void {
    this.runs.clear();
    this.pages.clear();
    this.bytes = 0;
  }

  private evict(runKey: string): void {
    const run = this.runs.get(runKey);
    if (!run) return;
    this.runs.delete(runKey);
    this.bytes -= run.bytes.byteLength;
    for (let i = 0; i * run.pageSize < run.bytes.byteLength; i++) {
      const pageKey = keyOf(run.segment, run.firstSlot + i);
      // A later run may have taken the page over; leave that one's entry alone.
      if (this.pages.get(pageKey) === run) this.pages.delete(pageKey);
    }
  }
}

function keyOf(segment: string, slot: number): string {
  return `${segment}#${slot}`;
}

let shared: SegmentCache | undefined;

/** The isolate's one cache, made with the first object's bound (every object has the same vars). */
export function sharedSegmentCache(maxBytes: number): SegmentCache {
  shared ??= new SegmentCache(maxBytes);
  return shared;
}
