/**
 * Compaction (design.md §4): superseded pages leave garbage in old segments, and a segment is
 * only deleted once none of its pages is live. When segments are mostly garbage (under half
 * live) and together hold at least COMPACT_MIN_GARBAGE_BYTES of it, their live pages are copied
 * into one new segment and the index moves to it, so the old ones die and the sweeper deletes
 * them. A page superseded while the copy runs stays where the newer flush put it.
 */
import { segmentKey } from "./flusher";
import type { PageStore } from "./page-store";

/** A page in R2 as the index has it: which segment, which slot. */
export type LivePage = { page: number; segment: string; slot: number };

/** The pages a compaction moves, the segments they come from, and the garbage it frees. */
export interface CompactionPlan {
  segments: string[];
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
    const plan = this.candidates(pageSize, this.limits.segmentTargetBytes);
    if (plan.pages.length === 0 || plan.freedBytes < this.limits.compactMinGarbageBytes) {
      return false;
    }
    const epoch = this.hooks.epoch();
    // The old segments may die while their pages are copied: keep them until the copy is read.
    this.store.hold(plan.segments);
    try {
      const body = await this.readLivePages(plan.pages, pageSize);
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
      this.store.release(plan.segments);
    }
  }

  /**
   * What a compaction would move: the live pages of the segments that are mostly garbage (under
   * half their pages live), emptiest first, about `targetBytes` of them (at least one segment's),
   * ordered by segment and slot; and the bytes of garbage moving them frees.
   */
  private candidates(pageSize: number, targetBytes: number): CompactionPlan {
    const segments: string[] = [];
    let liveBytes = 0;
    let freedBytes = 0;
    for (const row of this.sql.exec<{ key: string; pages: number; live: number }>(
      `SELECT key, pages, live FROM segments WHERE live > 0 AND live * 2 < pages
       ORDER BY CAST(live AS REAL) / pages, key`,
    )) {
      if (segments.length > 0 && liveBytes + row.live * pageSize > targetBytes) break;
      segments.push(row.key);
      liveBytes += row.live * pageSize;
      freedBytes += (row.pages - row.live) * pageSize;
    }
    const pages = this.sql
      .exec<LivePage>(
        `SELECT page, segment, slot FROM pages WHERE segment IN (SELECT value FROM json_each(?))
         ORDER BY segment, slot`,
        JSON.stringify(segments),
      )
      .toArray();
    return { segments, pages, freedBytes };
  }

  /**
   * Reads the pages of a compaction from their segments, one ranged read per run of consecutive
   * slots, into one body in the order given.
   */
  private async readLivePages(pages: LivePage[], pageSize: number): Promise<Uint8Array> {
    const body = new Uint8Array(pages.length * pageSize);
    const runs: { segment: string; slot: number; at: number; count: number }[] = [];
    pages.forEach((page, at) => {
      const last = runs[runs.length - 1];
      if (last && last.segment === page.segment && last.slot + last.count === page.slot) {
        last.count++;
      } else {
        runs.push({ segment: page.segment, slot: page.slot, at, count: 1 });
      }
    });
    await Promise.all(
      runs.map(async (run) => {
        const bytes = await this.store.readSlots(run.segment, run.slot, run.count, pageSize);
        body.set(bytes, run.at * pageSize);
      }),
    );
    return body;
  }

  /**
   * After a compaction's put resolved: the pages still where the compaction read them (not
   * superseded meanwhile) now live at their slot of the new segment; the old segments lose them.
   */
  private commit(key: string, pages: LivePage[]): void {
    const moved = JSON.stringify(pages.map(({ page, segment, slot }) => [page, segment, slot]));
    const stillThere = `pages.page = b.value ->> 0 AND pages.segment = b.value ->> 1
      AND pages.slot = b.value ->> 2`;
    this.sql.exec(
      `UPDATE segments SET live = live - gone.n
       FROM (SELECT pages.segment, count(*) AS n FROM json_each(?1) AS b JOIN pages ON ${stillThere}
             GROUP BY pages.segment) AS gone
       WHERE segments.key = gone.segment`,
      moved,
    );
    const live = this.sql
      .exec(
        `UPDATE pages SET segment = ?2, slot = b.key FROM json_each(?1) AS b WHERE ${stillThere}
         RETURNING pages.page`,
        moved,
        key,
      )
      .toArray().length;
    this.sql.exec(
      `INSERT INTO segments (key, pages, live) VALUES (?, ?, ?)`,
      key,
      pages.length,
      live,
    );
  }
}
