/**
 * Compaction (docs/architecture.md §4): superseded pages leave garbage in old segments, and a segment is
 * only deleted once none of its pages is live. When segments are mostly garbage (under half
 * live) and together hold at least COMPACT_MIN_GARBAGE_BYTES of it, their live pages are copied
 * into one new segment and the index moves to it, so the old ones die and the sweeper deletes
 * them. Many small segments (one per small SYNCHRONOUS msync) are merged the same way, so a
 * range needs few R2 reads. A page superseded while the copy runs stays where the newer flush
 * put it.
 */
import { segmentKey } from "./flusher";
import type { PageStore } from "./page-store";
import { COMPACT_MAX_SEGMENTS } from "./r2-bounds";
import { inChunks } from "./sql-lists";

/** Small segments (under an eighth of the target) that are merged once this many exist. */
export const SMALL_SEGMENTS_TO_MERGE = 16;

/** A page in R2 as the index has it: which segment (its id), which slot. */
export type LivePage = { page: number; segment: number; slot: number };

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
    private readonly sql: SqlStorage,
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
    const keys = [...plan.segments.values()];
    this.store.hold(keys);
    try {
      const body = await this.readLivePages(plan, pageSize);
      const key = segmentKey(this.hooks.objectName(), this.hooks.nextSeqno());
      await this.store.putSegment(key, body);
      if (this.hooks.epoch() !== epoch) {
        await this.store.bucket.delete(key).catch(() => {});
        return false;
      }
      this.hooks.transact(() => this.commit(key, plan.pages));
      return true;
    } catch (error) {
      console.warn(`compaction failed, left for a later round: ${String(error)}`);
      return false;
    } finally {
      this.store.release(keys);
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
    for (const row of this.sql.exec<{ id: number; key: string; pages: number; live: number }>(
      `SELECT id, key, pages, live FROM segments WHERE live > 0 AND live * 2 < pages
       ORDER BY CAST(live AS REAL) / pages, id`,
    )) {
      if (segments.size > 0 && liveBytes + row.live * pageSize > targetBytes) break;
      if (segments.size >= COMPACT_MAX_SEGMENTS) break;
      segments.set(row.id, row.key);
      liveBytes += row.live * pageSize;
      freedBytes += (row.pages - row.live) * pageSize;
    }
    return { segments, pages: this.livePagesOf(segments), freedBytes };
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
    for (const row of this.sql.exec<{ id: number; key: string; live: number }>(
      `SELECT id, key, live FROM segments WHERE live > 0 AND pages * ? * 8 < ? ORDER BY id LIMIT ?`,
      pageSize,
      targetBytes,
      COMPACT_MAX_SEGMENTS,
    )) {
      if (segments.size > 0 && liveBytes + row.live * pageSize > targetBytes) break;
      segments.set(row.id, row.key);
      liveBytes += row.live * pageSize;
    }
    return { segments, pages: this.livePagesOf(segments), freedBytes: 0 };
  }

  /** The live pages of these segments, by segment and slot. */
  private livePagesOf(segments: Map<number, string>): LivePage[] {
    return this.sql
      .exec<LivePage>(
        `SELECT page, segment, slot FROM pages WHERE segment IN (SELECT value FROM json_each(?))
         ORDER BY segment, slot`,
        JSON.stringify([...segments.keys()]),
      )
      .toArray();
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
      const release = await this.store.budget.take((end - first) * pageSize);
      try {
        const key = plan.segments.get(segment)!;
        const bytes = await this.store.readSlots(key, first, end - first, pageSize);
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

  /**
   * After a compaction's put resolved: the pages still where the compaction read them (not
   * superseded meanwhile) now live at their slot of the new segment; the old segments lose them.
   */
  private commit(key: string, pages: LivePage[]): void {
    const id = this.sql
      .exec<{ id: number }>(
        `INSERT INTO segments (key, pages, live) VALUES (?, ?, 0) RETURNING id`,
        key,
        pages.length,
      )
      .one().id;
    const stillThere = `pages.page = b.value ->> 0 AND pages.segment = b.value ->> 1
      AND pages.slot = b.value ->> 2`;
    let live = 0;
    let slot = 0;
    for (const chunk of inChunks(pages)) {
      const moved = JSON.stringify(chunk.map(({ page, segment, slot }) => [page, segment, slot]));
      this.sql.exec(
        `UPDATE segments SET live = live - gone.n
         FROM (SELECT pages.segment, count(*) AS n FROM json_each(?1) AS b
               JOIN pages ON ${stillThere} GROUP BY pages.segment) AS gone
         WHERE segments.id = gone.segment`,
        moved,
      );
      live += this.sql
        .exec(
          `UPDATE pages SET segment = ?2, slot = ?3 + b.key FROM json_each(?1) AS b
           WHERE ${stillThere} RETURNING pages.page`,
          moved,
          id,
          slot,
        )
        .toArray().length;
      slot += chunk.length;
    }
    this.sql.exec(`UPDATE segments SET live = ? WHERE id = ?`, live, id);
  }
}
