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
}

const VARS: Record<keyof Limits, keyof Env> = {
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
  const limits = {} as Limits;
  for (const [key, name] of Object.entries(VARS) as [keyof Limits, keyof Env][]) {
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
  return limits;
}
