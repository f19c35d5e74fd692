/**
 * Compaction (docs/architecture.md §4): superseded pages leave garbage in old segments, and a segment is
 * only deleted once none of its pages is live. When segments are mostly garbage (under half
 * live) and together hold at least COMPACT_MIN_GARBAGE_BYTES of it, their live pages are copied
 * into one new segment and the index moves to it, so the old ones die and the sweeper deletes
 * them. Many small segments (one per small SYNCHRONOUS msync) are merged the same way, so a
 * range needs few R2 reads. A page superseded while the copy runs stays where the newer flush
 * put it.
 */
import type { ByteBudget } from "./byte-budget";
import type { PageOwners } from "./page-store";
import { COMPACT_MAX_SEGMENTS } from "./r2-bounds";
import type { LivePage } from "./segment-index";

/** Small segments (under an eighth of the target) that are merged once this many exist. */
export const SMALL_SEGMENTS_TO_MERGE = 16;

/** The pages a compaction moves, the segments they come from, and the garbage it frees. */
export interface CompactionPlan {
  /** The old segments' R2 keys, by id. */
  segments: Map<number, string>;
  pages: LivePage[];
  freedBytes: number;
}

export interface CompactHooks {
  transact(step: () => void): void;
  /** How many times the object was destroyed: a change means the copy belongs to nothing. */
  epoch(): number;
  objectName(): string;
  nextSeqno(): number;
  pageSize(): number;
}

export class Compactor {
  /** The round under way: a second caller waits for it rather than starting another. */
  private running: Promise<boolean> | null = null;

  constructor(
    private readonly owners: PageOwners,
    /** Page bytes the isolate's requests may hold at once: the copy's reads wait for room. */
    private readonly budget: ByteBudget,
    private readonly limits: { segmentTargetBytes: number; compactMinGarbageBytes: number },
    private readonly hooks: CompactHooks,
  ) {}

  /**
   * Runs one compaction round if enough garbage waits; resolves true when pages moved (then a
   * sweep can delete the old segments). Failures are left for a later round, never thrown.
   *
   * @example if (await compactor.compact()) await sweeper.sweep();
   */
  compact(): Promise<boolean> {
    this.running ??= this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async round(): Promise<boolean> {
    const pageSize = this.hooks.pageSize();
    let plan = this.candidates(pageSize, this.limits.segmentTargetBytes);
    if (plan.pages.length === 0 || plan.freedBytes < this.limits.compactMinGarbageBytes) {
      plan = this.smallSegments(pageSize, this.limits.segmentTargetBytes);
      if (plan.segments.size < SMALL_SEGMENTS_TO_MERGE) return false;
    }
    const epoch = this.hooks.epoch();
    // The old segments may die while their pages are copied: keep them until the copy is read.
    const { index, segments } = this.owners;
    const keys = [...plan.segments.values()];
    index.hold(keys);
    try {
      const body = await this.readLivePages(plan, pageSize);
      const key = segments.newKey(this.hooks.objectName(), this.hooks.nextSeqno());
      await segments.put(key, body);
      if (this.hooks.epoch() !== epoch) {
        await segments.discard(key);
        return false;
      }
      this.hooks.transact(() => index.addCompacted(key, plan.pages));
      return true;
    } catch (error) {
      console.warn(`compaction failed, left for a later round: ${String(error)}`);
      return false;
    } finally {
      index.release(keys);
    }
  }

  /**
   * What a compaction would move: the live pages of the segments that are mostly garbage (under
   * half their pages live), emptiest first, about `targetBytes` of them (at least one segment's)
   * from at most COMPACT_MAX_SEGMENTS segments, ordered by segment and slot; and the bytes of
   * garbage moving them frees.
   */
  private candidates(pageSize: number, targetBytes: number): CompactionPlan {
    const segments = new Map<number, string>();
    let liveBytes = 0;
    let freedBytes = 0;
    for (const row of this.owners.index.mostlyGarbage()) {
      if (segments.size > 0 && liveBytes + row.live * pageSize > targetBytes) break;
      if (segments.size >= COMPACT_MAX_SEGMENTS) break;
      segments.set(row.id, row.key);
      liveBytes += row.live * pageSize;
      freedBytes += (row.pages - row.live) * pageSize;
    }
    return { segments, pages: this.owners.index.livePagesOf([...segments.keys()]), freedBytes };
  }

  /**
   * The other reason to rewrite: many small segments. Each SYNCHRONOUS msync of a few pages puts
   * a segment of its own, and a read of a range costs an R2 call per segment it touches, so a
   * range written in many small msyncs reads slowly and may pass R2_READS_PER_REQUEST. Segments
   * under an eighth of the target are merged, oldest first, up to the target and
   * COMPACT_MAX_SEGMENTS.
   */
  private smallSegments(pageSize: number, targetBytes: number): CompactionPlan {
    const segments = new Map<number, string>();
    let liveBytes = 0;
    const maxPages = targetBytes / 8 / pageSize;
    for (const row of this.owners.index.smallSegments(maxPages, COMPACT_MAX_SEGMENTS)) {
      if (segments.size > 0 && liveBytes + row.live * pageSize > targetBytes) break;
      segments.set(row.id, row.key);
      liveBytes += row.live * pageSize;
    }
    return { segments, pages: this.owners.index.livePagesOf([...segments.keys()]), freedBytes: 0 };
  }

  /**
   * Reads the pages of a compaction into one body in the order given: one ranged read per old
   * segment, covering its live slots, so the R2 calls are bounded by the segment count.
   */
  private async readLivePages(plan: CompactionPlan, pageSize: number): Promise<Uint8Array> {
    const body = new Uint8Array(plan.pages.length * pageSize);
    const bySegment = new Map<number, { at: number; slot: number }[]>();
    plan.pages.forEach(({ segment, slot }, at) => {
      const list = bySegment.get(segment);
      if (list) list.push({ at, slot });
      else bySegment.set(segment, [{ at, slot }]);
    });
    for (const [segment, slots] of bySegment) {
      // Ordered by slot (the plan's order), so the first and last are the range to read.
      const first = slots[0]!.slot;
      const end = slots[slots.length - 1]!.slot + 1;
      const release = await this.budget.take((end - first) * pageSize);
      try {
        const key = plan.segments.get(segment)!;
        const bytes = await this.owners.segments.readSlots(key, first, end - first, pageSize);
        for (const { at, slot } of slots) {
          const from = (slot - first) * pageSize;
          body.set(bytes.subarray(from, from + pageSize), at * pageSize);
        }
      } finally {
        release();
      }
    }
    return body;
  }
}
