/**
 * The one door tests have into a running object's machinery (`pager.testHooks`): what they may
 * look at, swap or shrink to run a scenario against a failing bucket, small batches or tight
 * limits. Nothing in production calls it. Everything else a test wants to know it asks through
 * the object's HTTP API, its sockets, or the inspection helper over SQLite (test/helpers).
 */
import type { Compactor } from "./compactor";
import type { Limits } from "./limits";
import type { PageStore } from "./page-store";
import type { SegmentCache } from "./segment-cache";
import type { Sweeper } from "./sweeper";

export interface TestHooks {
  /**
   * The object's limits, which its parts read at each use: a test tightens or stretches one in
   * the running instance (an eviction brings back the deployment's).
   */
  readonly limits: Limits;
  /** Batch sizes of each maintenance round (durable/r2-bounds.ts): small ones show the batching. */
  readonly sweepBounds: Sweeper["bounds"];
  /** The R2 bucket the segment store calls (durable/segment-store.ts, its only caller). */
  bucket(): R2Bucket;
  /** Replaces that bucket, e.g. with a failing, slow or counting wrapper of `bucket()`. */
  useBucket(bucket: R2Bucket): void;
  /** The read cache in use (durable/segment-cache.ts: shared by the objects of an isolate). */
  readCache(): SegmentCache;
  /** Replaces it for this instance, e.g. with a small one to see its bound. */
  useReadCache(cache: SegmentCache): void;
  /** Lists the object's segments now and deletes the orphans older than `minAgeMs`. */
  sweepOrphans(minAgeMs?: number): Promise<void>;
  /** The daily orphan scan is due. */
  orphanScanDue(): boolean;
  /** An orphan scan stopped at its bound and continues in the next round. */
  orphanScanUnfinished(): boolean;
  /** Compaction does nothing in this instance from now on: small segments stay apart. */
  stopCompaction(): void;
}

/** The parts the hooks reach; built by the Pager, which keeps them private otherwise. */
export interface TestHookParts {
  limits: Limits;
  store: PageStore;
  sweeper: Sweeper;
  compactor: Compactor;
}

export function testHooksOf({ limits, store, sweeper, compactor }: TestHookParts): TestHooks {
  const segments = store.owners.segments;
  return {
    limits,
    sweepBounds: sweeper.bounds,
    bucket: () => segments.bucket,
    useBucket: (bucket) => {
      segments.bucket = bucket;
    },
    readCache: () => store.cache,
    useReadCache: (cache) => {
      store.cache = cache;
    },
    sweepOrphans: (minAgeMs) => sweeper.sweepOrphans(minAgeMs),
    orphanScanDue: () => sweeper.orphanScanDue(),
    orphanScanUnfinished: () => sweeper.orphanScanUnfinished(),
    stopCompaction: () => {
      compactor.compact = async () => false;
    },
  };
}
