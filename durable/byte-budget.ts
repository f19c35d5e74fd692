/**
 * A bound on the page bytes that requests of one isolate hold in memory at once. The platform
 * gives an isolate 128 MB, shared by every Durable Object it runs (design notes in
 * docs/limits.md); without a bound, two 64 MiB requests would pass it. Large requests stream in
 * slices and pieces, and each slice or ranged R2 read waits here for room before it is taken in.
 */

export class ByteBudget {
  private held = 0;
  private highWater = 0;
  private readonly waiting: { bytes: number; wake: () => void }[] = [];

  constructor(readonly maxBytes: number) {}

  /**
   * Waits until `bytes` fit, takes them, and returns the function that gives them back (call it
   * once). A request larger than the whole budget is let through when nothing else is held, so
   * it is slow rather than stuck. First come, first served.
   *
   * @example const release = await budget.take(run.bytes); try { … } finally { release(); }
   */
  async take(bytes: number): Promise<() => void> {
    if (this.waiting.length > 0 || !this.fits(bytes)) {
      // `wakeNext` counts the bytes as held before it wakes this caller.
      await new Promise<void>((wake) => this.waiting.push({ bytes, wake }));
    } else {
      this.held += bytes;
    }
    this.highWater = Math.max(this.highWater, this.held);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= bytes;
      this.wakeNext();
    };
  }

  /** Bytes held now. */
  inUse(): number {
    return this.held;
  }

  /** The most bytes ever held at once since the last `resetHighWater` (for tests). */
  peak(): number {
    return this.highWater;
  }

  resetHighWater(): void {
    this.highWater = this.held;
  }

  private fits(bytes: number): boolean {
    return this.held + bytes <= this.maxBytes || this.held === 0;
  }

  private wakeNext(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) {
      const next = this.waiting.shift()!;
      this.held += next.bytes;
      next.wake();
    }
  }
}

/** Page bytes in flight per isolate: a quarter of its 128 MB. */
export const ISOLATE_IO_BYTES = 32 * 1024 * 1024;

let shared: ByteBudget | null = null;

/** The one budget of this isolate, shared by all its objects (like the segment cache). */
export function isolateByteBudget(): ByteBudget {
  shared ??= new ByteBudget(ISOLATE_IO_BYTES);
  return shared;
}
