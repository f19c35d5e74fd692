/**
 * Deletes segments nothing points at any more (docs/architecture.md §4: superseded pages leave garbage in
 * old segments). When every page of a segment has a newer copy in a later one, its live count
 * reaches 0 and no read planned from then on can name it; reads planned before still may, so the
 * segment index keeps those until they finish. R2 first, then the row: a crash between the two
 * leaves a row whose object is gone, and deleting a missing R2 key again is harmless.
 *
 * Orphans too: a segment put that an eviction or a deploy interrupted before its commit, or a
 * failed put that still wrote and whose delete failed, leaves an R2 object no row names. Once a
 * day the object lists its prefix and deletes such keys older than an hour (a put under way is
 * never that old).
 *
 * Both work in bounded batches (durable/r2-bounds.ts): a sweep deletes at most
 * SWEEP_DELETE_CALLS × 1,000 segments and a scan lists at most ORPHAN_LIST_CALLS pages of keys,
 * then leaves the rest for the next round, so no backlog can pass the subrequest cap or bind a
 * list past the 2 MB per SQL value.
 */
import type { Meta } from "./meta";
import type { PageOwners } from "./page-store";
import { KEYS_PER_DELETE, ORPHAN_LIST_CALLS, SWEEP_DELETE_CALLS } from "./r2-bounds";

export interface SweepHooks {
  /** Runs a state change as one SQLite transaction. */
  transact(step: () => void): void;
  /** How many times the object was destroyed: a change means its segment rows are gone. */
  epoch(): number;
  /** The object's name, null if never told: its segments are the keys under `{name}/segments/`. */
  objectName(): string | null;
}

/** A segment no row names yet, younger than this, may be a put under way. */
const ORPHAN_MIN_AGE_MS = 60 * 60 * 1000;
/** How often an object lists its segments to find orphans (a list costs a Class A operation). */
const ORPHAN_SCAN_INTERVAL_MS = 24 * 60 * 60 * 1000;

export class Sweeper {
  /** Batch sizes per round (durable/r2-bounds.ts); tests make them small to see the batching. */
  readonly bounds = {
    keysPerDelete: KEYS_PER_DELETE,
    deleteCalls: SWEEP_DELETE_CALLS,
    listCalls: ORPHAN_LIST_CALLS,
  };

  /** The sweep under way: a second caller waits for it rather than starting another. */
  private running: Promise<boolean> | null = null;

  constructor(
    private readonly owners: PageOwners,
    private readonly meta: Meta,
    private readonly hooks: SweepHooks,
  ) {}

  /**
   * Deletes dead segments not being read, a batch per R2 call, up to SWEEP_DELETE_CALLS calls;
   * one sweep at a time, failures left for the next. Resolves true when dead segments remain.
   *
   * @example if (await sweeper.sweep()) maintenanceDue = true; // after a flush committed segments
   */
  sweep(): Promise<boolean> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<boolean> {
    const { index, segments } = this.owners;
    const epoch = this.hooks.epoch();
    try {
      for (let call = 0; call < this.bounds.deleteCalls; call++) {
        const keys = index.deadSegments(this.bounds.keysPerDelete);
        if (keys.length === 0) return false;
        await segments.delete(keys);
        if (this.hooks.epoch() !== epoch) return false;
        this.hooks.transact(() => index.forgetDead(keys));
      }
      return index.deadSegments(1).length > 0;
    } catch (error) {
      console.warn(`deleting dead segments failed, left for the next sweep: ${String(error)}`);
      return true;
    }
  }

  /** True when a scan stopped at its bound with keys left to list. */
  orphanScanUnfinished(): boolean {
    return this.meta.get<string>("orphans_cursor") !== null;
  }

  /** True when a scan is under way (it resumes) or the last one is a day old or there was none. */
  orphanScanDue(now = Date.now()): boolean {
    if (this.orphanScanUnfinished()) return true;
    const last = this.meta.get<number>("orphans_scanned_at");
    return last === null || now - last >= ORPHAN_SCAN_INTERVAL_MS;
  }

  /**
   * Deletes the R2 objects under the object's segment prefix that no segment row names and that
   * are older than `minAgeMs`, listing at most ORPHAN_LIST_CALLS pages of keys; a scan that did
   * not reach the end keeps its cursor and resumes at the next maintenance. Notes when a scan
   * finished.
   *
   * @example if (sweeper.orphanScanDue()) await sweeper.sweepOrphans();
   */
  async sweepOrphans(minAgeMs = ORPHAN_MIN_AGE_MS): Promise<void> {
    // Without its own name, a prefix could be another object's: never guess it.
    const name = this.hooks.objectName();
    if (name === null) return;
    const { index, segments } = this.owners;
    const epoch = this.hooks.epoch();
    const startedAt = Date.now();
    let cursor = this.meta.get<string>("orphans_cursor") ?? undefined;
    try {
      for (let call = 0; call < this.bounds.listCalls; call++) {
        const listed = await segments.list(name, cursor, this.bounds.keysPerDelete);
        if (this.hooks.epoch() !== epoch) return;
        // Asked after listing: a segment committed meanwhile is named (and too young anyway).
        const named = index.named(listed.segments.map((segment) => segment.key));
        const orphans = listed.segments
          .filter((segment) => startedAt - segment.uploaded.getTime() >= minAgeMs)
          .filter((segment) => !named.has(segment.key))
          .map((segment) => segment.key);
        await segments.delete(orphans);
        if (this.hooks.epoch() !== epoch) return;
        cursor = listed.cursor;
        const next = cursor;
        this.hooks.transact(() => {
          if (next === undefined) {
            this.meta.delete("orphans_cursor");
            this.meta.set("orphans_scanned_at", startedAt);
          } else {
            this.meta.set("orphans_cursor", next);
          }
        });
        if (next === undefined) return;
      }
    } catch (error) {
      console.warn(`looking for orphan segments failed, left for the next scan: ${String(error)}`);
    }
  }
}
