/**
 * What an msync costs, counted rather than timed (issue 12): SQLite commits (top-level
 * transactionSync calls, test/helpers/sql-meter.ts) and R2 operations between the first frame of
 * an msync and its completion. These counts do not depend on the machine's speed, so they are
 * asserted; the benchmarks (bench/README.md) time what they cost.
 */
import { describe, expect, it } from "vitest";
import {
  VM_SYNC_ASYNCHRONOUS as ASYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS as SYNCHRONOUS,
} from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { stat } from "./helpers/http";
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

  it("costs one R2 put and two commits when batched, and one frame each way before the completion", async () => {
    const object = "costs-msync-batched";
    const { kernel } = await TestKernel.open(object, "k1", { batch: true });
    const bucket = await wrapObjectBucket(object);
    const meter = await meterObjectSql(object);
    const framesBefore = kernel.frames.length;

    // What PageCache.msync sends for one dirty page: its return and its synchronize, one frame.
    const page = new Uint8Array(PAGE).fill(7);
    const ret = kernel.returnOf(0, page);
    const sync = kernel.synchronizeOf(0, PAGE, SYNCHRONOUS);
    kernel.sendBatch([ret, sync], [page]);
    await kernel.completion(sync.id);

    // The batch's commit (journal row, request, acks), then the flush's after the one put.
    expect({ puts: bucket.attempts, reads: bucket.reads, commits: meter.commits() }).toEqual({
      puts: 1,
      reads: 0,
      commits: 2,
    });
    // The alarm learns of new deadlines as they are set: no step asks for the earliest of all.
    expect(meter.countsByStatement()["SELECT min(deadline) AS at FROM locks"]).toBeUndefined();
    // Received: the two acks in one frame, then the completion.
    expect(kernel.frames.slice(framesBefore)).toEqual([
      { batch: true, messages: 2 },
      { batch: false, messages: 1 },
    ]);
    await meter.stop();
  });
});

describe("64 ASYNCHRONOUS synchronize requests", () => {
  it("cost one commit and one frame of replies when batched, 64 of each unbatched", async () => {
    const costs: Record<string, { commits: number; framesIn: number; replies: number }> = {};
    for (const batch of [false, true]) {
      const object = `costs-64-syncs-${batch ? "batched" : "unbatched"}`;
      const { kernel } = await TestKernel.open(object, "k1", { batch });
      const meter = await meterObjectSql(object);
      const framesBefore = kernel.frames.length;
      const requests = Array.from({ length: 64 }, (_, i) =>
        kernel.synchronizeOf(i * PAGE, PAGE, ASYNCHRONOUS),
      );
      if (batch) kernel.sendBatch(requests);
      else for (const request of requests) kernel.send(request);
      for (const request of requests) await kernel.completion(request.id);
      const frames = kernel.frames.slice(framesBefore);
      costs[batch ? "batched" : "unbatched"] = {
        commits: meter.commits(),
        framesIn: frames.length,
        replies: frames.reduce((sum, frame) => sum + frame.messages, 0),
      };
      await meter.stop();
    }
    // Clean pages: each request completes on arrival, in the step that admits it (an ack and a
    // completion each).
    expect(costs).toEqual({
      unbatched: { commits: 64, framesIn: 128, replies: 128 },
      batched: { commits: 1, framesIn: 1, replies: 128 },
    });
  });
});

describe("a batch of 64 one-page returns", () => {
  it("reads and writes its kernel's applied id once, not once per return, in two statements a return", async () => {
    const object = "costs-64-returns";
    const { kernel } = await TestKernel.open(object, "k1", { batch: true });
    const meter = await meterObjectSql(object);
    const pages = Array.from({ length: 64 }, (_, i) => new Uint8Array(PAGE).fill(i + 1));
    const returns = pages.map((page, i) => kernel.returnOf(i * PAGE, page));
    kernel.sendBatch(returns, pages);
    await kernel.ack(returns.at(-1)!.id as number);
    const counts = meter.countsByStatement();
    expect({
      reads: counts["SELECT * FROM kernels WHERE kernel = ?"],
      writes: counts["UPDATE kernels SET last_id = ?, last_seqno = ? WHERE kernel = ?"],
      commits: meter.commits(),
      savepoints: meter.savepoints(),
    }).toEqual({ reads: 1, writes: 1, commits: 1, savepoints: 0 });
    // Per return: its journal row (which also says whether the page is new) and, for a new
    // page, the stored-page counter; the kernel's row, the seqno and the step's own bookkeeping
    // once per batch.
    expect(meter.statements()).toBeLessThanOrEqual(2 * 64 + 8);
    // And a resend of the batch is acked again, with the original seqnos, applying nothing.
    const acks = kernel.all("ack").length;
    kernel.sendBatch(returns, pages);
    await kernel.next(
      (m) =>
        m.type === "ack" && m.id === returns.at(-1)!.id && kernel.all("ack").length === acks + 64,
    );
    const resent = kernel.all("ack").slice(acks);
    const first = kernel.all("ack").slice(acks - 64, acks);
    expect(resent.at(-1)!.seqno).toBe(first.at(-1)!.seqno);
    await meter.stop();
  });
});

describe("a batch with a bad message", () => {
  it("runs again with a savepoint per message, so only the bad one is undone", async () => {
    const object = "costs-batch-bad-message";
    const { kernel } = await TestKernel.open(object, "k1", { batch: true });
    const meter = await meterObjectSql(object);
    const pages = Array.from({ length: 8 }, (_, i) => new Uint8Array(PAGE).fill(i + 1));
    const returns = pages.map((page, i) => kernel.returnOf(i * PAGE, page));
    // The fifth return lies about its length: refused, the others applied.
    const bad: Record<string, unknown> = { ...returns[4]!, length: 3 };
    kernel.sendBatch(
      [...returns.slice(0, 4), bad, ...returns.slice(5)],
      [...pages.slice(0, 4), new Uint8Array(3), ...pages.slice(5)],
    );
    await kernel.ack(returns.at(-1)!.id as number);
    expect(await kernel.answer(bad.id as number)).toMatchObject({ type: "error" });
    // Two transactions: the first round, without savepoints, rolled back at the bad message;
    // the careful round gave each of the 8 its own, and only the bad one's rolled back.
    expect({ commits: meter.commits(), savepoints: meter.savepoints() }).toEqual({
      commits: 2,
      savepoints: 8,
    });
    expect((await stat(object)).pages).toBe(7);
    await meter.stop();
  });
});
