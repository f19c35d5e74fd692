/**
 * Errors answered per minute, counted per kernel id (and per caller) across all its sockets: the
 * per-socket limit of docs/protocol.md §8 alone is bypassed by opening more sockets, and every bad
 * frame costs a durable seqno write (docs/security.md). Kept in memory: an eviction forgets the
 * counts, which only ever lets a caller start a fresh minute.
 */

const WINDOW_MS = 60_000;

/**
 * Keys kept before lapsed windows are swept. Live ones are bounded by how many ids can err in a
 * minute: each needs at least one error, and a token stops after 400.
 */
const MAX_KEYS = 1024;

export class ErrorBudget {
  private readonly windows = new Map<string, { errors: number; start: number }>();

  constructor(private readonly perMinute: number) {}

  /**
   * Counts an error of `key` and returns true when the key is now past its budget for the
   * current minute.
   *
   * @example if (errors.count(`kernel:${kernel}`)) closeEverySocketOf(kernel);
   */
  count(key: string, now = Date.now()): boolean {
    // A caller inventing new kernel ids adds a key each: past MAX_KEYS, lapsed windows go.
    if (this.windows.size >= MAX_KEYS) this.dropLapsed(now);
    const window = this.current(key, now);
    window.errors++;
    this.windows.set(key, window);
    return window.errors > this.perMinute;
  }

  /** True while `key` is past its budget in the current minute. */
  exhausted(key: string, now = Date.now()): boolean {
    return this.current(key, now).errors > this.perMinute;
  }

  /** Keys held now (windows of this minute, and lapsed ones not swept yet). */
  keys(): number {
    return this.windows.size;
  }

  private dropLapsed(now: number): void {
    for (const [key, window] of this.windows) {
      if (now - window.start > WINDOW_MS) this.windows.delete(key);
    }
  }

  private current(key: string, now: number): { errors: number; start: number } {
    const window = this.windows.get(key);
    if (window && now - window.start <= WINDOW_MS) return window;
    // Old windows are dropped as they are met, so the map holds only this minute's keys.
    this.windows.delete(key);
    return { errors: 0, start: now };
  }
}
