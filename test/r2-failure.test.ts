/**
 * R2 writes that fail or are slow (docs/protocol.md §6.4, docs/protocol.md §6.9; docs/architecture.md §4): a SYNCHRONOUS request is
 * never completed for data whose put did not resolve; a put is retried; a persistent failure is an
 * `error` (KERN_MEMORY_ERROR) through the outbox; the returned pages stay readable from the journal.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  KERN_MEMORY_ERROR,
  VM_SYNC_ASYNCHRONOUS as ASYNC,
  VM_SYNC_SYNCHRONOUS as SYNC,
} from "../schema";
import { objectStub, wrapObjectBucket } from "./helpers/buckets";
import { readPages, stat, synchronize } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf, type Received } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const MAX_ATTEMPTS = 3; // FLUSH_MAX_ATTEMPTS in vitest.config.ts

/** Messages answering `id` through `reply_to` (acks carry `id` instead, so are not among them). */
function answersTo(kernel: TestKernel, id: number, type?: string): Received[] {
  return kernel.received.filter(
    (m) => m.reply_to === id && (type === undefined || m.type === type),
  );
}

function patterned(bytes: number, seed: number): Uint8Array {
  return new Uint8Array(bytes).map((_, i) => (i * 13 + seed) % 256);
}

describe("SYNCHRONOUS while R2 fails", () => {
  it("sends no completion while the put fails and completes once a retry succeeds", async () => {
    const name = "r2f-retry";
    const { kernel } = await TestKernel.open(name, "k1");
    // Each attempt takes 100 ms, so the retries can be watched one by one.
    const control = await wrapObjectBucket(name, { failing: true, delayMs: 100 });
    const returned = kernel.dataReturn(0, pageOf(7));
    await kernel.ack(returned);
    const sync = kernel.synchronize(0, 4096, SYNC);
    await kernel.ack(sync);

    // The first attempt failed and the second is under way: nothing may be completed yet.
    await waitFor(() => control.attempts >= 2, "a second put attempt");
    expect(control.attempts).toBeLessThan(MAX_ATTEMPTS);
    expect(control.written).toEqual([]);
    expect(answersTo(kernel, sync)).toEqual([]);
    expect((await stat(name)).syncs).toBe(1);

    control.failing = false;
    const done = await kernel.completion(sync);
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: 4096,
      mid: 1,
    });
    // The completion went out only after a put resolved.
    expect(control.written).toHaveLength(1);
    expect(kernel.all("error")).toEqual([]);
    const status = await stat(name);
    expect(status).toMatchObject({ journal_pages: 0, syncs: 0, pages: 1 });
    kernel.close();
  });

  it("reports a persistent failure as KERN_MEMORY_ERROR through the outbox, never a completion", async () => {
    const name = "r2f-persistent";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { failing: true });
    const data = patterned(8192, 5);
    await kernel.ack(kernel.dataReturn(4096, data));
    const sync = kernel.synchronize(4096, 8192, SYNC);
    const syncAck = await kernel.ack(sync);

    const failure = await kernel.completion(sync);
    expect(failure).toMatchObject({
      type: "error",
      reply_to: sync,
      seqno: syncAck.seqno,
      kern_return: KERN_MEMORY_ERROR,
      code: "storage_failed",
      mid: 1,
    });
    expect(control.attempts).toBeGreaterThanOrEqual(MAX_ATTEMPTS);
    expect(control.written).toEqual([]);
    const status = await stat(name);
    expect(status).toMatchObject({ journal_pages: 2, syncs: 0, pages: 2 });

    // The returned bytes stay readable, from the journal: over the socket and over HTTP.
    const supply = await kernel.answer(kernel.dataRequest(0, 4 * 4096));
    expect(supply.type).toBe("memory_object_data_supply");
    expect([...supply.payload!.subarray(4096, 12288)]).toEqual([...data]);
    expect(supply.payload!.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect([...(await readPages(name, 4096, 8192))]).toEqual([...data]);

    // R2 recovers and the alarm retries the flush: the pages reach R2, but the failed request
    // still gets no completion (nor a second error).
    control.failing = false;
    await runDurableObjectAlarm(objectStub(name));
    await waitFor(async () => (await stat(name)).journal_pages === 0, "the journal to drain");
    await expectQuiet(kernel);
    expect(answersTo(kernel, sync, "memory_object_synchronize_completed")).toEqual([]);
    expect(answersTo(kernel, sync, "error")).toHaveLength(1);
    expect([...(await readPages(name, 4096, 8192))]).toEqual([...data]);

    // A new request for the range completes normally, with the next mid.
    const again = kernel.synchronize(4096, 8192, SYNC);
    expect(await kernel.completion(again)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: again,
      mid: 2,
    });
    kernel.close();

    // The error sits in the outbox like a completion: resent after ready until received.
    const { kernel: resumed, ready } = await TestKernel.open(name, "k1", { receivedMid: 0 });
    expect(ready.last_id).toBe(again);
    const resent = await resumed.next((m) => m.mid === 2);
    const mids = resumed.received.filter((m) => m.mid !== undefined);
    expect(mids.map((m) => [m.type, m.mid, m.reply_to])).toEqual([
      ["error", 1, sync],
      ["memory_object_synchronize_completed", 2, again],
    ]);
    expect(resent.type).toBe("memory_object_synchronize_completed");
    resumed.close();
  });

  it("retries later for a request admitted while a failing flush ran", async () => {
    const name = "r2f-later";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { failing: true, delayMs: 20 });
    kernel.dataReturn(0, pageOf(1));
    const first = kernel.synchronize(0, 4096, SYNC);
    // Admitted while the first flush is failing: not part of it, so it must not fail with it.
    kernel.dataReturn(4096, pageOf(2));
    const second = kernel.synchronize(4096, 4096, SYNC);
    await kernel.ack(second);

    expect(await kernel.completion(first)).toMatchObject({ type: "error", code: "storage_failed" });
    control.failing = false;
    expect(answersTo(kernel, second)).toEqual([]);

    await runDurableObjectAlarm(objectStub(name));
    expect(await kernel.completion(second)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: second,
      offset: 4096,
      length: 4096,
    });
    await expectQuiet(kernel);
    expect(answersTo(kernel, first, "memory_object_synchronize_completed")).toEqual([]);
    expect(answersTo(kernel, second)).toHaveLength(1); // its completion, once
    expect(control.written.length).toBeGreaterThanOrEqual(1);
    const supply = await kernel.answer(kernel.dataRequest(0, 8192));
    expect(supply.payload!.subarray(0, 4096).every((b) => b === 1)).toBe(true);
    expect(supply.payload!.subarray(4096).every((b) => b === 2)).toBe(true);
    kernel.close();
  });

  it("completes ASYNCHRONOUS requests from the journal while R2 fails", async () => {
    const name = "r2f-async";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { failing: true });
    await kernel.ack(kernel.dataReturn(0, pageOf(9)));
    const sync = kernel.synchronize(0, 4096, ASYNC);
    expect(await kernel.completion(sync)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
    });
    expect(control.written).toEqual([]);
    kernel.close();
  });

  it("answers an HTTP synchronize with storage_failed when every put fails", async () => {
    const name = "r2f-http";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { failing: true });
    const data = patterned(4096, 77);
    await kernel.ack(kernel.dataReturn(0, data));
    kernel.close();
    const response = await synchronize(name, 0, 4096, SYNC);
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({
      error: { code: "storage_failed", kern_return: KERN_MEMORY_ERROR },
    });
    expect(control.written).toEqual([]);
    expect([...(await readPages(name, 0, 4096))]).toEqual([...data]);
  });
});

describe("SYNCHRONOUS while R2 is slow", () => {
  it("completes only after the put resolved", async () => {
    const name = "r2f-slow";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { delayMs: 250 });
    await kernel.ack(kernel.dataReturn(0, pageOf(4)));
    const sync = kernel.synchronize(0, 4096, SYNC);
    await kernel.ack(sync);
    await waitFor(() => control.attempts >= 1, "the put to start");
    await expectQuiet(kernel);
    expect(answersTo(kernel, sync)).toEqual([]);
    await kernel.completion(sync);
    expect(control.written).toHaveLength(1);
    kernel.close();
  });
});
