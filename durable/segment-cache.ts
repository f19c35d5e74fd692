/**
 * Recently read segment pages, kept in memory within a byte bound (READ_CACHE_BYTES), so pages
 * that kernels fault in again and again cost no R2 read. Segments are immutable and their keys are
 * never reused (design.md §4), so a cached page can never be stale: no invalidation is needed,
 * only eviction, least recently used first.
 */

export class SegmentCache {
  /** Page bytes by `segment#slot`; a Map iterates in insertion order, so the first is the oldest. */
  private readonly pages = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /**
   * The page at `slot` of `segment`, if cached (and now the most recently used).
   *
   * @example const bytes = cache.get("db/segments/…", 7) ?? (await readFromR2());
   */
  get(segment: string, slot: number): Uint8Array | undefined {
    const key = keyOf(segment, slot);
    const page = this.pages.get(key);
    if (page) {
      this.pages.delete(key);
      this.pages.set(key, page);
    }
    return page;
  }

  /**
   * Keeps copies of `count` consecutive pages read from `segment` starting at `slot` (copies, so a
   * cached page never pins the larger buffer it was read into), evicting the oldest as needed.
   */
  keep(segment: string, slot: number, bytes: Uint8Array, pageSize: number): void {
    if (pageSize > this.maxBytes) return;
    for (let i = 0; i * pageSize < bytes.byteLength; i++) {
      const key = keyOf(segment, slot + i);
      this.forget(key);
      this.pages.set(key, bytes.slice(i * pageSize, (i + 1) * pageSize));
      this.bytes += pageSize;
      while (this.bytes > this.maxBytes) this.forget(this.pages.keys().next().value!);
    }
  }

  /** Bytes held now (never above the bound). */
  size(): number {
    return this.bytes;
  }

  /** The object was destroyed: nothing it read is wanted any more. */
  clear(): void {
    this.pages.clear();
    this.bytes = 0;
  }

  private forget(key: string): void {
    const page = this.pages.get(key);
    if (!page) return;
    this.pages.delete(key);
    this.bytes -= page.byteLength;
  }
}

function keyOf(segment: string, slot: number): string {
  return `${segment}#${slot}`;
}
