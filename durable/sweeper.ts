/**
 * Deletes segments nothing points at any more (design.md §4: superseded pages leave garbage in
 * old segments). When every page of a segment has a newer copy in a later one, its live count
 * reaches 0 and no read planned from then on can name it; reads planned before still may, so the
 * page store keeps those until they finish. R2 first, then the row: a crash between the two
 * leaves a row whose object is gone, and deleting a missing R2 key again is harmless.
 */
import type { PageStore } from "./page-store";

export interface SweepHooks {
  /** Runs a state change as one SQLite transaction. */
  transact(step: () => void): void;
  /** How many times the object was destroyed: a change means its segment rows are gone. */
  epoch(): number;
}

/** R2 deletes at most 1,000 keys per call. */
const KEYS_PER_DELETE = 1000;

export class Sweeper {
  /** The sweep under way: a second caller waits for it rather than starting another. */
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: PageStore,
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
      for (let i = 0; i < keys.length; i += KEYS_PER_DELETE) {
        const chunk = keys.slice(i, i + KEYS_PER_DELETE);
        await this.store.bucket.delete(chunk);
        if (this.hooks.epoch() !== epoch) return;
        this.hooks.transact(() => this.store.forgetSegments(chunk));
      }
    } catch (error) {
      console.warn(`deleting dead segments failed, left for the next sweep: ${String(error)}`);
    }
  }
}
