/**
 * Compaction (design.md §4): superseded pages leave garbage in old segments, and a segment is
 * only deleted once none of its pages is live. When segments are mostly garbage (under half
 * live) and together hold at least COMPACT_MIN_GARBAGE_BYTES of it, their live pages are copied
 * into one new segment and the index moves to it, so the old ones die and the sweeper deletes
 * them. A page superseded while the copy runs stays where the newer flush put it.
 */
import { segmentKey } from "./flusher";
import type { PageStore } from "./page-store";

export interface CompactHooks {
  transact(step: () => void): void;
  /** How many times the object was destroyed: a change means the copy belongs to nothing. */
  epoch(): number;
  objectName(): string;
  nextSeqno(): number;
  pageSize(): number;
}

export class Compactor {
  private running = false;

  constructor(
    private readonly store: PageStore,
    private readonly limits: { segmentTargetBytes: number; compactMinGarbageBytes: number },
    private readonly hooks: CompactHooks,
  ) {}

  /**
   * Runs one compaction round if enough garbage waits; resolves true when pages moved (then a
   * sweep can delete the old segments). Failures are left for a later round, never thrown.
   *
   * @example if (await compactor.compact()) await sweeper.sweep();
   */
  async compact(): Promise<boolean> {
    if (this.running) return false;
    const pageSize = this.hooks.pageSize();
    const plan = this.store.compactionCandidates(pageSize, this.limits.segmentTargetBytes);
    if (plan.pages.length === 0 || plan.freedBytes < this.limits.compactMinGarbageBytes) {
      return false;
    }
    this.running = true;
    const epoch = this.hooks.epoch();
    // The old segments may die while their pages are copied: keep them until the copy is read.
    this.store.hold(plan.segments);
    try {
      const body = await this.store.readLivePages(plan.pages, pageSize);
      const key = segmentKey(this.hooks.objectName(), this.hooks.nextSeqno());
      try {
        await this.store.bucket.put(key, body);
      } catch (error) {
        // A put that failed after writing would leave an object nothing points at.
        void this.store.bucket.delete(key).catch(() => {});
        throw error;
      }
      if (this.hooks.epoch() !== epoch) {
        await this.store.bucket.delete(key).catch(() => {});
        return false;
      }
      this.hooks.transact(() => this.store.commitCompaction(key, plan.pages));
      return true;
    } catch (error) {
      console.warn(`compaction failed, left for a later round: ${String(error)}`);
      return false;
    } finally {
      this.store.release(plan.segments);
      this.running = false;
    }
  }
}
