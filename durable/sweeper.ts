/**
 * Deletes segments nothing points at any more (design.md §4: superseded pages leave garbage in
 * old segments). When every page of a segment has a newer copy in a later one, its live count
 * reaches 0 and no read planned from then on can name it; reads planned before still may, so the
 * page store keeps those until they finish. R2 first, then the row: a crash between the two
 * leaves a row whose object is gone, and deleting a missing R2 key again is harmless.
 *
 * Orphans too: a segment put that an eviction or a deploy interrupted before its commit, or a
 * failed put that still wrote and whose delete failed, leaves an R2 object no row names. Once a
 * day the object lists its prefix and deletes such keys older than an hour (a put under way is
 * never that old).
 */
import type { Meta } from "./meta";
import type { PageStore } from "./page-store";

export interface SweepHooks {
  /** Runs a state change as one SQLite transaction. */
  transact(step: () => void): void;
  /** How many times the object was destroyed: a change means its segment rows are gone. */
  epoch(): number;
  /** The object's name, null if never told: its segments are the keys under `{name}/segments/`. */
  objectName(): string | null;
}

/** A segment no row names yet, younger than this, may be a put under way. */
export const ORPHAN_MIN_AGE_MS = 60 * 60 * 1000;
/** How often an object lists its segments to find orphans (a list costs a Class A operation). */
const ORPHAN_SCAN_INTERVAL_MS = 24 * 60 * 60 * 1000;

export class Sweeper {
  /** The sweep under way: a second caller waits for it rather than starting another. */
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: PageStore,
    private readonly meta: Meta,
    private readonly hooks: SweepHooks,
  ) {}

  /**
   * Deletes every dead segment not being read; one sweep at a time, failures left for the next.
   *
   * @example await sweeper.sweep(); // after a flush committed new segments
   */
  sweep(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<void> {
    const epoch = this.hooks.epoch();
    try {
      const keys = this.store.deadSegments();
      if (keys.length === 0) return;
      await this.store.deleteSegments(keys);
      if (this.hooks.epoch() !== epoch) return;
      this.hooks.transact(() => this.store.forgetSegments(keys));
    } catch (error) {
      console.warn(`deleting dead segments failed, left for the next sweep: ${String(error)}`);
    }
  }

  /** True when the last orphan scan is a day old or there was none. */
  orphanScanDue(now = Date.now()): boolean {
    const last = this.meta.get<number>("orphans_scanned_at");
    return last === null || now - last >= ORPHAN_SCAN_INTERVAL_MS;
  }

  /**
   * Deletes the R2 objects under the object's segment prefix that no segment row names and that
   * are older than `minAgeMs`, and notes when it ran.
   *
   * @example if (sweeper.orphanScanDue()) await sweeper.sweepOrphans();
   */
  async sweepOrphans(minAgeMs = ORPHAN_MIN_AGE_MS): Promise<void> {
    // Without its own name, a prefix could be another object's: never guess it.
    const name = this.hooks.objectName();
    if (name === null) return;
    const epoch = this.hooks.epoch();
    const startedAt = Date.now();
    // Named before listing: a segment committed meanwhile was put just now, so it is too young.
    const named = new Set(this.store.segmentKeys());
    const orphans: string[] = [];
    try {
      let cursor: string | undefined;
      do {
        const listed = await this.store.bucket.list({
          prefix: `${name}/segments/`,
          cursor,
        });
        for (const object of listed.objects) {
          const age = startedAt - object.uploaded.getTime();
          if (!named.has(object.key) && age >= minAgeMs) orphans.push(object.key);
        }
        cursor = listed.truncated ? listed.cursor : undefined;
      } while (cursor);
      if (this.hooks.epoch() !== epoch) return;
      await this.store.deleteSegments(orphans);
      if (this.hooks.epoch() !== epoch) return;
      this.hooks.transact(() => this.meta.set("orphans_scanned_at", startedAt));
    } catch (error) {
      console.warn(`looking for orphan segments failed, left for the next scan: ${String(error)}`);
    }
  }
}
