/**
 * A bound on the page bytes that requests of one isolate hold in memory at once. The platform
 * gives an isolate 128 MB, shared by every Durable Object it runs (docs/limits.md); without a
 * bound, two 64 MiB requests would pass it. Large requests stream in slices and pieces, and each
 * body slice, ranged R2 read or compaction read waits here for room before it takes its bytes in.
 *
 * Two platform facts shape it. A promise resolved by one Durable Object cannot do I/O for another
 * ("Cannot perform I/O on behalf of a different Durable Object"), so a waiter is never woken by
 * another object's release: it checks again on a timer of its own. And an object can be torn
 * down in the middle of its work without running its `finally`, so bytes are held as leases
 * that lapse after LEASE_MS: a lost holder cannot shrink the budget for good.
 */

/** How often a waiter looks again for room. */
const RETRY_MS = 5;

/** A hold older than this no longer counts (its holder is gone, or slower than any real I/O). */
const LEASE_MS = 60_000;

export class ByteBudget {
  private readonly leases = new Map<number, { bytes: number; until: number }>();
  private nextLease = 1;
  private highWater = 0;

  constructor(
    readonly maxBytes: number,
    private readonly leaseMs = LEASE_MS,
  ) {}

  /**
   * Waits until `bytes` fit, takes them, and returns the function that gives them back (call it
   * once). A request larger than the whole budget is let through when nothing else is held, so
   * it is slow rather than stuck.
   *
   * @example const release = await budget.take(run.bytes); try { … } finally { release(); }
   */
  async take(bytes: number): Promise<() => void> {
    while (!this.fits(bytes)) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    const lease = this.nextLease++;
    this.leases.set(lease, { bytes, until: Date.now() + this.leaseMs });
    this.highWater = Math.max(this.highWater, this.inUse());
    return () => {
      this.leases.delete(lease);
    };
  }

  /** Bytes held now (leases not lapsed). */
  inUse(): number {
    const now = Date.now();
    let held = 0;
    for (const [lease, { bytes, until }] of this.leases) {
      if (until <= now) this.leases.delete(lease);
      else held += bytes;
    }
    return held;
  }

  /** The most bytes ever held at once (for tests). */
  peak(): number {
    return this.highWater;
  }

  private fits(bytes: number): boolean {
    const held = this.inUse();
    return held + bytes <= this.maxBytes || held === 0;
  }
}

/** Page bytes in flight per isolate: a quarter of its 128 MB. */
const ISOLATE_IO_BYTES = 32 * 1024 * 1024;

let shared: ByteBudget | null = null;

/** The one budget of this isolate, shared by all its objects (like the segment cache). */
export function isolateByteBudget(): ByteBudget {
  shared ??= new ByteBudget(ISOLATE_IO_BYTES);
  return shared;
}
