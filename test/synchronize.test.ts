/**
 * memory_object_synchronize (docs/protocol.md §6): when each flag combination completes, what the
 * completion carries, how one kernel's overlapping requests are ordered and how kernels stay
 * independent. R2 puts are slowed or failed with the bucket wrappers, so "completes before R2"
 * and "completes only after R2" can be told apart.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { KERN_INVALID_ARGUMENT, KERN_MEMORY_ERROR } from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { call, stat } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;

/** Completions (not errors) the kernel received for message `id`. */

/** Position of the completion of `id` among everything the kernel received. */
function indexOfCompletion(kernel: TestKernel, id: number): number {
  return kernel.received.findIndex(
    (m) => m.type === "memory_object_synchronize_completed" && m.reply_to === id,
  );
}

async function segmentKeysInR2(object: string): Promise<string[]> {
  const listed = await env.PAGES.list({ prefix: `${object}/segments/` });
  return listed.objects.map((o) => o.key);
}

describe("SYNCHRONOUS", () => {
  it("completes only once the segment holding the pages is in R2", async () => {
    const object = "sync-synchronous";
    const control = await wrapObjectBucket(object, { delayMs: 600 });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(7)));
    await kernel.ack(kernel.dataReturn(PAGE, pageOf(8)));

    const sync = kernel.synchronize(0, 2 * PAGE, 0x2);
    let writtenAtCompletion: string[] | null = null;
    const completion = kernel.completion(sync).then((m) => {
      writtenAtCompletion = [...control.written];
      return m;
    });
    await kernel.ack(sync);
    // The write starts at once (well before the 300 ms idle flush) but has not resolved, and
    // nothing was completed meanwhile.
    await waitFor(() => control.attempts >= 1, "the write to start", 150);
    await expectQuiet(kernel);
    expect(control.written).toEqual([]);
    expect(kernel.completions(sync)).toEqual([]);
    expect(await segmentKeysInR2(object)).toEqual([]);

    const done = await completion;
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: 2 * PAGE,
      mid: 1,
    });
    expect(writtenAtCompletion).not.toBeNull();
    expect(writtenAtCompletion!.length).toBeGreaterThanOrEqual(1);
    const keys = await segmentKeysInR2(object);
    for (const key of writtenAtCompletion!) expect(keys).toContain(key);
    // The segment in R2 holds the pages' bytes.
    const segment = await env.PAGES.get(writtenAtCompletion![0]!);
    const bytes = new Uint8Array(await segment!.arrayBuffer());
    expect(bytes.byteLength).toBe(2 * PAGE);
    expect(bytes.subarray(0, PAGE).every((b) => b === 7)).toBe(true);
    expect(bytes.subarray(PAGE).every((b) => b === 8)).toBe(true);
    expect((await stat(object)).journal_pages).toBe(0);
    kernel.close();
  });

  it("reports a persistent R2 failure as KERN_MEMORY_ERROR and never completes", async () => {
    const object = "sync-synchronous-failing";
    const control = await wrapObjectBucket(object, { failing: true });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(1)));
    const sync = kernel.synchronize(0, PAGE, 0x2);
    const answer = await kernel.completion(sync);
    expect(answer).toMatchObject({ type: "error", reply_to: sync, kern_return: KERN_MEMORY_ERROR });
    expect(control.attempts).toBeGreaterThanOrEqual(3);
    await expectQuiet(kernel);
    expect(kernel.completions(sync)).toEqual([]);
    expect(await segmentKeysInR2(object)).toEqual([]);
    kernel.close();
  });

  it("after a failed round, a new request starts the write at once, not at the retry timer", async () => {
    const object = "sync-synchronous-after-failure";
    const control = await wrapObjectBucket(object, { failing: true });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(1)));
    const failed = kernel.synchronize(0, PAGE, 0x2);
    expect(await kernel.completion(failed)).toMatchObject({ type: "error", reply_to: failed });
    control.failing = false;
    // The failure backoff is 10 s; the idle flush is 300 ms away only after a new return, and
    // there is none: only a write started by the request itself completes it this soon.
    const retried = kernel.synchronize(0, PAGE, 0x2);
    expect(await kernel.completion(retried, 3_000)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: retried,
    });
    expect(await segmentKeysInR2(object)).toHaveLength(1);
    kernel.close();
  });
});

describe("ASYNCHRONOUS", () => {
  it("completes without waiting for R2 (puts failing)", async () => {
    const object = "sync-async-failing";
    const control = await wrapObjectBucket(object, { failing: true });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(2)));
    const sync = kernel.synchronize(0, PAGE, 0x1);
    const done = await kernel.completion(sync, 2_000);
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: PAGE,
      mid: 1,
    });
    expect(control.written).toEqual([]);
    const status = await stat(object);
    expect(status.journal_pages).toBeGreaterThan(0);
    expect(status.syncs).toBe(0);
    kernel.close();
  });

  it("completes while a slow R2 write is still under way", async () => {
    const object = "sync-async-slow";
    const control = await wrapObjectBucket(object, { delayMs: 5_000 });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(2)));
    const sync = kernel.synchronize(0, PAGE, 0x1);
    expect(await kernel.completion(sync, 1_000)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
    });
    expect(control.written).toEqual([]);
    expect((await stat(object)).journal_pages).toBe(1);
    kernel.close();
  });
});

describe("flags and ranges", () => {
  it("completes INVALIDATE alone at once when no other kernel caches the range", async () => {
    const object = "sync-invalidate-alone";
    const control = await wrapObjectBucket(object, { delayMs: 5_000 });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(4)));
    const sync = kernel.synchronize(0, PAGE, 0x4);
    expect(await kernel.completion(sync, 1_000)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: PAGE,
    });
    expect(control.written).toEqual([]);
    kernel.close();
  });

  it("completes a zero length at once, echoing offset and length", async () => {
    const object = "sync-zero-length";
    const control = await wrapObjectBucket(object, { delayMs: 5_000 });
    const { kernel } = await TestKernel.open(object, "k1");
    // A dirty page right where the zero-length range points: rounding it outward would wait.
    await kernel.ack(kernel.dataReturn(3 * PAGE, pageOf(9)));
    const sync = kernel.synchronize(3 * PAGE + 57, 0, 0x2);
    const done = await kernel.completion(sync, 1_000);
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 3 * PAGE + 57,
      length: 0,
    });
    expect(control.written).toEqual([]);
    kernel.close();
  });

  it("rejects SYNCHRONOUS with ASYNCHRONOUS (0x3) as KERN_INVALID_ARGUMENT, no completion", async () => {
    const { kernel } = await TestKernel.open("sync-flags-both", "k1");
    const sync = kernel.synchronize(0, PAGE, 0x3);
    const answer = await kernel.answer(sync);
    expect(answer).toMatchObject({
      type: "error",
      reply_to: sync,
      kern_return: KERN_INVALID_ARGUMENT,
    });
    await expectQuiet(kernel);
    expect(kernel.completions(sync)).toEqual([]);
    expect(kernel.received.filter((m) => m.type === "ack" && m.id === sync)).toEqual([]);
    expect((await stat("sync-flags-both")).syncs).toBe(0);
    // Not applied: the kernel's last_id did not move.
    expect((await stat("sync-flags-both")).kernels).toEqual([
      { kernel: "k1", connected: true, last_id: 0, stale: false },
    ]);
    kernel.close();
  });

  it("rejects an undefined bit (0x80, also with 0x2) as KERN_INVALID_ARGUMENT", async () => {
    const { kernel } = await TestKernel.open("sync-flags-undefined", "k1");
    const bad = kernel.synchronize(0, PAGE, 0x80);
    const badWithSync = kernel.synchronize(0, PAGE, 0x82);
    const badHigh = kernel.synchronize(0, PAGE, 0x100);
    for (const id of [bad, badWithSync, badHigh]) {
      expect(await kernel.answer(id)).toMatchObject({
        type: "error",
        reply_to: id,
        kern_return: KERN_INVALID_ARGUMENT,
      });
    }
    await expectQuiet(kernel);
    for (const id of [bad, badWithSync, badHigh]) expect(kernel.completions(id)).toEqual([]);
    kernel.close();
  });

  it("accepts the kernel-local bits (0x08|0x10|0x20|0x40), alone and with SYNCHRONOUS", async () => {
    const object = "sync-flags-local";
    const control = await wrapObjectBucket(object, { delayMs: 300 });
    const { kernel } = await TestKernel.open(object, "k1");
    const ids: number[] = [];
    for (const bit of [0x08, 0x10, 0x20, 0x40, 0x78]) {
      const id = kernel.synchronize(0, PAGE, bit);
      ids.push(id);
      expect(await kernel.completion(id)).toMatchObject({
        type: "memory_object_synchronize_completed",
        reply_to: id,
        offset: 0,
        length: PAGE,
      });
    }
    // With SYNCHRONOUS the local bits change nothing: it still waits for R2.
    await kernel.ack(kernel.dataReturn(0, pageOf(5)));
    const sync = kernel.synchronize(0, PAGE, 0x7a);
    let writtenAtCompletion: string[] = [];
    const done = await kernel.completion(sync).then((m) => {
      writtenAtCompletion = [...control.written];
      return m;
    });
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: PAGE,
      mid: ids.length + 1,
    });
    expect(writtenAtCompletion.length).toBeGreaterThanOrEqual(1);
    kernel.close();
  });

  it("echoes an unaligned offset and length exactly", async () => {
    const object = "sync-unaligned";
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(6, 2 * PAGE)));
    for (const flags of [0x2, 0x1, 0x4, 0x0]) {
      const id = kernel.synchronize(100, 5000, flags);
      const done = await kernel.completion(id);
      expect(done.type).toBe("memory_object_synchronize_completed");
      expect(done.offset).toBe(100);
      expect(done.length).toBe(5000);
    }
    // The SYNCHRONOUS one covered both touched pages (bytes 100..5099 span pages 0 and 1).
    expect((await stat(object)).journal_pages).toBe(0);
    kernel.close();
  });

  it("makes durable every page the unaligned range touches, rounded outward", async () => {
    const object = "sync-unaligned-rounding";
    const control = await wrapObjectBucket(object, { delayMs: 400 });
    const { kernel } = await TestKernel.open(object, "k1");
    // Only the second page the range touches is dirty.
    await kernel.ack(kernel.dataReturn(PAGE, pageOf(6)));
    const sync = kernel.synchronize(100, 5000, 0x2);
    await kernel.ack(sync);
    await expectQuiet(kernel);
    expect(kernel.completions(sync)).toEqual([]);
    let writtenAtCompletion: string[] = [];
    await kernel.completion(sync).then(() => {
      writtenAtCompletion = [...control.written];
    });
    expect(writtenAtCompletion.length).toBeGreaterThanOrEqual(1);
    kernel.close();
  });
});

describe("ordering", () => {
  it("serializes one kernel's overlapping requests; a non-overlapping one may pass", async () => {
    const object = "sync-same-kernel";
    await wrapObjectBucket(object, { delayMs: 800 });
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(1, 2 * PAGE)));
    const first = kernel.synchronize(0, 2 * PAGE, 0x2);
    const overlapping = kernel.synchronize(PAGE + 10, 100, 0x1);
    const disjoint = kernel.synchronize(16 * PAGE, PAGE, 0x1);
    const firstAck = await kernel.ack(first);
    const overlappingAck = await kernel.ack(overlapping);

    expect(await kernel.completion(disjoint, 500)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: disjoint,
      mid: 1,
    });
    await expectQuiet(kernel);
    expect(kernel.completions(first)).toEqual([]);
    expect(kernel.completions(overlapping)).toEqual([]);

    const response = await call(`/v1/objects/${object}/syncs`);
    expect(response.status).toBe(200);
    const { syncs } = (await response.json()) as { syncs: Record<string, unknown>[] };
    expect(syncs).toEqual([
      {
        kernel: "k1",
        id: first,
        seqno: firstAck.seqno,
        offset: 0,
        length: 2 * PAGE,
        sync_flags: 0x2,
        since: expect.any(String),
      },
      {
        kernel: "k1",
        id: overlapping,
        seqno: overlappingAck.seqno,
        offset: PAGE + 10,
        length: 100,
        sync_flags: 0x1,
        since: expect.any(String),
      },
    ]);
    expect(Number.isNaN(Date.parse(syncs[0]!.since as string))).toBe(false);
    expect((await stat(object)).syncs).toBe(2);

    const second = await kernel.completion(overlapping);
    const firstDone = kernel.completions(first);
    expect(firstDone).toHaveLength(1);
    expect(indexOfCompletion(kernel, first)).toBeLessThan(indexOfCompletion(kernel, overlapping));
    expect(firstDone[0]).toMatchObject({ offset: 0, length: 2 * PAGE, mid: 2 });
    expect(second).toMatchObject({ offset: PAGE + 10, length: 100, mid: 3 });
    expect((await stat(object)).syncs).toBe(0);
    kernel.close();
  });

  it("keeps kernels independent: another kernel's overlapping ASYNCHRONOUS does not wait", async () => {
    const object = "sync-two-kernels";
    await wrapObjectBucket(object, { delayMs: 800 });
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await a.ack(a.dataReturn(0, pageOf(1)));
    const slow = a.synchronize(0, PAGE, 0x2);
    await a.ack(slow);
    const fast = b.synchronize(0, PAGE, 0x1);
    expect(await b.completion(fast, 500)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: fast,
      offset: 0,
      length: PAGE,
      mid: 1,
    });
    expect(a.completions(slow)).toEqual([]);
    expect(await a.completion(slow)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: slow,
      mid: 1,
    });
    // The completion went to the requesting kernel only.
    expect(b.all("memory_object_synchronize_completed")).toHaveLength(1);
    a.close();
    b.close();
  });
});

describe("completions", () => {
  it("each carries a fresh mid and arrives exactly once, also across a resume", async () => {
    const object = "sync-mids";
    const { kernel } = await TestKernel.open(object, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(3)));
    const ids = [
      kernel.synchronize(0, PAGE, 0x2),
      kernel.synchronize(PAGE, PAGE, 0x1),
      kernel.synchronize(0, 0, 0x0),
    ];
    // A rejected one takes no mid.
    const rejected = kernel.synchronize(0, PAGE, 0x3);
    ids.push(kernel.synchronize(2 * PAGE, 10, 0x4), kernel.synchronize(0, PAGE, 0x1));
    for (const id of ids) await kernel.completion(id);
    expect((await kernel.answer(rejected)).type).toBe("error");
    await expectQuiet(kernel);
    const completions = kernel.all("memory_object_synchronize_completed");
    expect(completions.map((m) => m.mid)).toEqual([1, 2, 3, 4, 5]);
    expect(completions.map((m) => m.reply_to).sort((x, y) => x - y)).toEqual(ids);
    for (const id of ids) expect(kernel.completions(id)).toHaveLength(1);
    // Acks come exactly once too.
    for (const id of ids)
      expect(kernel.received.filter((m) => m.type === "ack" && m.id === id)).toHaveLength(1);

    // A resume that reports fewer gets exactly the rest, in mid order, with the same mids.
    const { kernel: resumed, ready } = await TestKernel.open(object, "k1", {
      receivedMid: 3,
      id: 100,
    });
    expect(ready).toMatchObject({ type: "memory_object_ready", last_id: ids[ids.length - 1] });
    await resumed.next((m) => m.mid === 5);
    await expectQuiet(resumed);
    const resent = resumed.all("memory_object_synchronize_completed");
    expect(resent.map((m) => m.mid)).toEqual([4, 5]);
    expect(resent.map((m) => m.reply_to)).toEqual(completions.slice(3).map((m) => m.reply_to));
    // One that reports everything received gets nothing again.
    const { kernel: again } = await TestKernel.open(object, "k1", { receivedMid: 5, id: 101 });
    await expectQuiet(again);
    expect(again.all("memory_object_synchronize_completed")).toEqual([]);
    // A new request continues the numbering.
    again.setNextId(200);
    const later = again.synchronize(0, PAGE, 0x1);
    expect(await again.completion(later)).toMatchObject({ mid: 6, reply_to: later });
    again.close();
  });
});
