/**
 * The limits and timings of one deployment, read from `wrangler.toml` vars and checked once, so
 * a typo in a var fails loudly at start-up instead of as a strange limit later.
 */

export interface Limits {
  maxSize: number;
  maxTransfer: number;
  maxBodyBytes: number;
  segmentTargetBytes: number;
  flushDelayMs: number;
  flushMaxAttempts: number;
  flushRetryMs: number;
  journalMaxBytes: number;
  lockTimeoutMs: number;
  maxHeaderBytes: number;
  maxSyncsPerKernel: number;
  maxKernels: number;
  errorsPerMinute: number;
  readCacheBytes: number;
  compactMinGarbageBytes: number;
  /** Not a var: the SQLite bytes an object may use, a safe share of the platform's 10 GB. */
  maxDatabaseBytes: number;
}

/**
 * The platform's per-object SQLite limit is 10 GB. Writes stop at 80% of it: the rest is room
 * for the journal, spools, and SQLite's free pages (docs/limits.md).
 */
export const MAX_DATABASE_BYTES = 8_000_000_000;

/**
 * SQLite bytes one stored page costs in the page index (its row and its entry in the index by
 * segment), an upper bound measured by test/bench-counts.test.ts. It decides the honest
 * `max_size` for each page size.
 */
export const SQLITE_BYTES_PER_PAGE = 48;

/** A frame's payload is journaled as one SQL value: keep it well under the 2 MB per value. */
const MAX_TRANSFER_LIMIT = 1024 * 1024;

const VARS: Record<Exclude<keyof Limits, "maxDatabaseBytes">, keyof Env> = {
  maxSize: "MAX_SIZE",
  maxTransfer: "MAX_TRANSFER",
  maxBodyBytes: "MAX_BODY_BYTES",
  segmentTargetBytes: "SEGMENT_TARGET_BYTES",
  flushDelayMs: "FLUSH_DELAY_MS",
  flushMaxAttempts: "FLUSH_MAX_ATTEMPTS",
  flushRetryMs: "FLUSH_RETRY_MS",
  journalMaxBytes: "JOURNAL_MAX_BYTES",
  lockTimeoutMs: "LOCK_TIMEOUT_MS",
  maxHeaderBytes: "MAX_HEADER_BYTES",
  maxSyncsPerKernel: "MAX_SYNCS_PER_KERNEL",
  maxKernels: "MAX_KERNELS",
  errorsPerMinute: "ERRORS_PER_MINUTE",
  readCacheBytes: "READ_CACHE_BYTES",
  compactMinGarbageBytes: "COMPACT_MIN_GARBAGE_BYTES",
};

/**
 * @example const { maxTransfer } = readLimits(env);
 */
export function readLimits(env: Env): Limits {
  const limits = { maxDatabaseBytes: MAX_DATABASE_BYTES } as Limits;
  for (const [key, name] of Object.entries(VARS) as [keyof typeof VARS, keyof Env][]) {
    const value = Number(env[name]);
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new Error(
        `wrangler.toml var ${name} must be a positive integer, got ${String(env[name])}`,
      );
    }
    limits[key] = value;
  }
  if (limits.maxTransfer % 65536 !== 0) {
    // Every page size divides a multiple of the largest one, so max_transfer stays a page multiple.
    throw new Error("wrangler.toml var MAX_TRANSFER must be a multiple of 65536");
  }
  if (limits.maxTransfer > MAX_TRANSFER_LIMIT) {
    throw new Error(
      `wrangler.toml var MAX_TRANSFER must not exceed ${MAX_TRANSFER_LIMIT} (a frame's pages are ` +
        "one SQL value, and the platform allows 2 MB per value)",
    );
  }
  return limits;
}

/**
 * The `max_size` an object of this page size announces: MAX_SIZE, or less when its page index
 * could not hold that many pages within MAX_DATABASE_BYTES, so the announced size can be filled.
 *
 * @example maxSizeFor(limits, 512); // 85,333,332,992: 512-byte pages cap an object near 85 GB
 */
export function maxSizeFor(limits: Limits, pageSize: number): number {
  const pages = Math.floor(limits.maxDatabaseBytes / SQLITE_BYTES_PER_PAGE);
  return Math.min(limits.maxSize, pages * pageSize);
}
