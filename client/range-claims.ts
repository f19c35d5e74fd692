/**
 * The page ranges a page cache's writes and updates are working on, and the lock requests that
 * must wait for them (docs/protocol.md §10). Two rules, kept apart from the cache's bytes:
 *
 * - Claims over overlapping ranges take turns, in call order, so an update's read-modify-write
 *   is never interleaved with another write of the same pages by this cache.
 * - A claim that holds every page of its range as it needs (`isHeld`, or `held` once set) keeps
 *   lock requests touching it waiting until it lets go; they are then answered in arrival order.
 *   A claim still acquiring holds nothing back: it never keeps some pages while waiting for
 *   others, which would deadlock two kernels acquiring in different orders. Taking the hold the
 *   moment the last page arrives (not when the caller's code resumes, a few ticks later) also
 *   keeps a lock request that follows the grant in the same frame from taking the pages away
 *   before they are used, round after round.
 *
 * Ranges are half-open page numbers `[first, end)`.
 */

export interface Claim {
  readonly first: number;
  readonly end: number;
  /** Whether it may hold lock requests back (coherent writes, and updates). */
  readonly defers: boolean;
  /** Its turn came: every overlapping claim made before it is released. */
  active: boolean;
  /** It holds its pages: lock requests touching it wait until `unhold` or `release`. */
  held: boolean;
}

interface Waiting {
  claim: Claim;
  wake(): void;
}

interface Deferred<Request> {
  request: Request;
  first: number;
  end: number;
}

export class RangeClaims<Request> {
  private readonly claims: Waiting[] = [];
  private readonly deferred: Deferred<Request>[] = [];

  constructor(
    /** True when every page of the claim is cached with the access it needs. */
    private readonly isHeld: (claim: Claim) => boolean,
    /** Answers a lock request (now, or once the claims it touched let go). */
    private readonly dispatch: (request: Request) => void,
  ) {}

  /**
   * A new claim, and null when its turn has come already, else a promise of it. Release it in a
   * `finally`, whether or not its turn came.
   */
  claim(first: number, end: number, defers: boolean): { claim: Claim; turn: Promise<void> | null } {
    const claim: Claim = { first, end, defers, active: false, held: false };
    let wake = () => {};
    const turn = new Promise<void>((resolve) => (wake = resolve));
    this.claims.push({ claim, wake });
    if (this.mayStart(claim)) {
      claim.active = true;
      return { claim, turn: null };
    }
    return { claim, turn };
  }

  /**
   * Whether a page lies in a claim whose turn came and that may hold lock requests back: the
   * cache keeps such a page from eviction, so acquiring a range larger than the clean cache
   * (or with none) cannot push out what it just got, round after round.
   */
  covers(page: number): boolean {
    for (const { claim } of this.claims) {
      if (claim.active && claim.defers && claim.first <= page && page < claim.end) return true;
    }
    return false;
  }

  /** The claim stops holding its pages (to acquire them again): waiting lock requests go. */
  unhold(claim: Claim): void {
    claim.held = false;
    this.drain();
  }

  /** The claim is done: later claims over its pages may start, and waiting lock requests go. */
  release(claim: Claim): void {
    claim.held = false;
    const index = this.claims.findIndex((w) => w.claim === claim);
    if (index >= 0) this.claims.splice(index, 1);
    for (const waiting of this.claims) {
      if (waiting.claim.active || !this.mayStart(waiting.claim)) continue;
      waiting.claim.active = true;
      waiting.wake();
    }
    this.drain();
  }

  /**
   * A lock request over pages `[first, end)`: answered at once, or kept until the claims it
   * touches let go (and after any kept request it overlaps, so answers keep arrival order).
   */
  offer(request: Request, first: number, end: number): void {
    if (this.mustWait(first, end, this.deferred.length)) {
      this.deferred.push({ request, first, end });
      return;
    }
    this.dispatch(request);
  }

  /** Whether a request over `[first, end)` waits: for a held claim, or a request kept earlier. */
  private mustWait(first: number, end: number, before: number): boolean {
    for (let i = 0; i < before; i++) {
      if (overlaps(this.deferred[i]!, first, end)) return true;
    }
    for (const { claim } of this.claims) {
      if (!claim.active || !claim.defers || !overlaps(claim, first, end)) continue;
      if (!claim.held && this.isHeld(claim)) claim.held = true;
      if (claim.held) return true;
    }
    return false;
  }

  /** Answers, in order, every kept request that no longer has to wait. */
  private drain(): void {
    for (let i = 0; i < this.deferred.length;) {
      const { request, first, end } = this.deferred[i]!;
      if (this.mustWait(first, end, i)) {
        i++;
        continue;
      }
      this.deferred.splice(i, 1);
      this.dispatch(request);
    }
  }

  /** No earlier claim overlaps it. */
  private mayStart(claim: Claim): boolean {
    for (const { claim: other } of this.claims) {
      if (other === claim) return true;
      if (overlaps(other, claim.first, claim.end)) return false;
    }
    return true;
  }
}

function overlaps(range: { first: number; end: number }, first: number, end: number): boolean {
  return range.first < end && first < range.end;
}
