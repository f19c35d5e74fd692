/**
 * Moves journal pages into R2 (docs/architecture.md §4). One flush runs at a time; requests that arrive
 * while one runs share the next one. A put that fails is retried with backoff and never changes
 * the index or the journal, so no barrier moves and no completion goes out for it.
 */
import type { PageSpan } from "../schema";
import type { JournalRow, SegmentPage } from "./journal";
import type { Limits } from "./limits";
import type { PageOwners } from "./page-store";

/**
 * Segment puts in flight at once: about 16 MiB of page data at the default segment size. Bounded
 * per object rather than by the isolate's byte budget: a flush is the path to durability, and an
 * R2 put that hangs for one object must not hold up the others' (docs/limits.md).
 */
const PARALLEL_PUTS = 4;

export interface FlushHooks {
  /** The next seqno to be given: every return below it is in the journal or in R2. */
  nextSeqno(): number;
  /** The object's name, the prefix of its segment keys in the shared bucket. */
  objectName(): string;
  /** Runs a state change in one transaction and sends what it posted after commit. */
  transact(step: () => void): void;
  /** Pages of `span` reached R2: wake the synchronize requests that waited for them. */
  settle(span: PageSpan): void;
  /** A segment reached R2 (for observers, durable/observers.ts). */
  flushed(segment: string, pages: number, bytes: number, ms: number): void;
  /** Every attempt failed: fail the SYNCHRONOUS requests that waited on returns below `seqno`. */
  failWaiting(seqno: number, reason: string): void;
  /** How many times the object was destroyed: a change means the flush's pages are gone. */
  epoch(): number;
}

export class Flusher {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly owners: PageOwners,
    private readonly limits: Limits,
    private readonly hooks: FlushHooks,
  ) {}

  /**
   * Starts a flush now, or marks that another must follow the one running, and resolves when the
   * journal as of this call has been handled (written, or given up on after every attempt).
   */
  flush(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<void> {
    do {
      this.again = false;
      await this.flushOnce();
    } while (this.again);
  }

  /**
   * Packs the journal into segments in page order and uploads up to `PARALLEL_PUTS` at once;
   * each segment is committed (index pointed at it, journal rows dropped) as soon as its own put
   * resolves. If any put fails for good, the others still finish, then the waiting SYNCHRONOUS
   * requests fail.
   */
  private async flushOnce(): Promise<void> {
    const epoch = this.hooks.epoch();
    const snapshotSeqno = this.hooks.nextSeqno();
    const inFlight: Promise<void>[] = [];
    let failure: unknown = null;
    let afterPage = -1;
    while (failure === null && this.hooks.epoch() === epoch) {
      const readSeqno = this.hooks.nextSeqno();
      const batch = this.owners.journal.takeBatch(afterPage, this.limits.segmentTargetBytes);
      if (batch.length === 0) break;
      afterPage = batch[batch.length - 1]!.page;
      const body = packSegment(batch);
      // Keep only what the commit needs, so the page bytes exist once (in the body) per upload.
      const pages = batch.map(({ page, seqno }) => ({ page, seqno }));
      inFlight.push(
        this.upload(body, pages, readSeqno, epoch).catch((error: unknown) => {
          failure ??= error;
        }),
      );
      if (inFlight.length >= PARALLEL_PUTS) await inFlight.shift();
    }
    await Promise.all(inFlight);
    if (failure !== null) {
      this.hooks.failWaiting(snapshotSeqno, `R2 write failed: ${String(failure)}`);
      throw failure;
    }
  }

  private async upload(
    body: Uint8Array,
    pages: SegmentPage[],
    readSeqno: number,
    epoch: number,
  ): Promise<void> {
    const { journal, index, segments } = this.owners;
    const started = Date.now();
    const key = await this.putWithRetry(
      () => segments.newKey(this.hooks.objectName(), readSeqno),
      body,
    );
    if (this.hooks.epoch() !== epoch) {
      // The object was destroyed while the put ran: the segment belongs to nothing now.
      await segments.discard(key);
      return;
    }
    // Point the index at the segment, then drop the journal rows it holds (unless a newer version
    // arrived meanwhile: such versions start at `readSeqno`), in one transaction.
    this.hooks.transact(() => {
      index.addFlushed(key, pages);
      journal.dropFlushed(pages, readSeqno);
      // Told before the completions it makes due.
      this.hooks.flushed(key, pages.length, body.byteLength, Date.now() - started);
      // The batch is in page order (takeBatch): its first and last pages bound it.
      this.hooks.settle({ first: pages[0]!.page, end: pages[pages.length - 1]!.page + 1 });
    });
  }

  /**
   * Puts the segment, retrying with backoff, and returns the key of the put that resolved. Each
   * attempt takes a fresh key: a rejected put may still have written its object (R2 allows about
   * one write per second per key, and the index must only name a key whose put resolved).
   */
  private async putWithRetry(newKey: () => string, body: Uint8Array): Promise<string> {
    let delay = this.limits.flushRetryMs;
    for (let attempt = 1; ; attempt++) {
      const key = newKey();
      try {
        await this.owners.segments.put(key, body);
        return key;
      } catch (error) {
        if (attempt >= this.limits.flushMaxAttempts) throw error;
        await sleep(delay * (0.5 + Math.random()));
        delay *= 2;
      }
    }
  }
}

function packSegment(batch: JournalRow[]): Uint8Array {
  const total = batch.reduce((sum, row) => sum + row.data.byteLength, 0);
  const body = new Uint8Array(total);
  let at = 0;
  for (const row of batch) {
    body.set(new Uint8Array(row.data), at);
    at += row.data.byteLength;
  }
  return body;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
