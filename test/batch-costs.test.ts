/**
 * What an msync costs, counted rather than timed (issue 12): SQLite commits (top-level
 * transactionSync calls, test/helpers/sql-meter.ts) and R2 operations between the first frame of
 * an msync and its completion. These counts do not depend on the machine's speed, so they are
 * asserted; the benchmarks (bench/README.md) time what they cost.
 */
import { describe, expect, it } from "vitest";
import { VM_SYNC_SYNCHRONOUS as SYNCHRONOUS } from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { TestKernel } from "./helpers/kernel";
import { meterObjectSql } from "./helpers/sql-meter";

const PAGE = 4096;

describe("one dirty page and a SYNCHRONOUS msync", () => {
  it("costs one R2 put and three commits when sent as two frames", async () => {
    const object = "costs-msync-unbatched";
    const { kernel } = await TestKernel.open(object, "k1");
    const bucket = await wrapObjectBucket(object);
    const meter = await meterObjectSql(object);

    kernel.dataReturn(0, new Uint8Array(PAGE).fill(7));
    const sync = kernel.synchronize(0, PAGE, SYNCHRONOUS);
    await kernel.completion(sync);

    // The return's commit, the synchronize's, and the flush's (the index points at the segment
    // and the completion enters the outbox).
    expect({ puts: bucket.attempts, reads: bucket.reads, commits: meter.commits() }).toEqual({
      puts: 1,
      reads: 0,
      commits: 3,
    });
    await meter.stop();
  });
});
