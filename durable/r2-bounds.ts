/**
 * How many R2 calls one request or one alarm of an object may make. Each R2 call is a subrequest
 * of the invocation that makes it, and the platform caps subrequests per invocation (1,000 on
 * the plans this service is sized for; docs/limits.md). Every path that calls R2 in a loop is
 * bounded by one of these, so no layout of the data, however fragmented, can pass the cap:
 *
 * - an HTTP read: at most R2_READS_PER_REQUEST ranged gets (it is refused up front otherwise);
 * - a kernel's data_request: one get per segment of a frame's pages;
 * - the alarm: a flush puts at most JOURNAL_MAX_BYTES / SEGMENT_TARGET_BYTES segments (32), each
 *   tried FLUSH_MAX_ATTEMPTS times (5) with a delete after a failed try: 320; two sweeps of
 *   SWEEP_DELETE_CALLS deletes: 16; a compaction of COMPACT_MAX_SEGMENTS gets, a put and a
 *   delete: 66; an orphan scan of ORPHAN_LIST_CALLS lists and as many deletes: 32; the
 *   directory entry's refresh after the flush (durable/manifest.ts): 1. In all 435.
 * - a request that creates or deletes the object: one put or delete of its directory entry.
 */

/** Ranged gets one HTTP read may make (one per segment per piece it streams). */
export const R2_READS_PER_REQUEST = 256;

/** Delete calls (1,000 keys each, R2's maximum) one sweep may make. */
export const SWEEP_DELETE_CALLS = 8;

/** R2's maximum keys per delete call. */
export const KEYS_PER_DELETE = 1000;

/** Segments one compaction round reads (one ranged get each). */
export const COMPACT_MAX_SEGMENTS = 64;

/** List calls (1,000 keys each) one orphan scan may make; the next scan resumes after them. */
export const ORPHAN_LIST_CALLS = 16;
