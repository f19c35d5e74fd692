/**
 * VM_SYNC_INVALIDATE (docs/protocol.md §6.6): before the requester's completion, every other kernel
 * that may cache the range flushes it (lock_request → lock_completed), or is marked stale when it
 * is disconnected or silent, and then resumes with `flush: true`.
 */
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  MEMORY_OBJECT_RETURN_DIRTY,
  VM_PROT_NO_CHANGE,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
} from "../schema";
import { objectStub, wrapObjectBucket } from "./helpers/buckets";
import { stat } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf, settle, type Received } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;
/** LOCK_TIMEOUT_MS in vitest.config.ts. */
const LOCK_TIMEOUT_MS = 400;

const isLockRequest = (m: Received) => m.type === "memory_object_lock_request";

/** Makes `kernel` cache a range the way the protocol tracks it: by a data_request answered. */
async function cache(kernel: TestKernel, offset: number, length: number): Promise<Received> {
  const answer = await kernel.answer(kernel.dataRequest(offset, length));
  expect(["memory_object_data_supply", "memory_object_data_unavailable"]).toContain(answer.type);
  return answer;
}

/** Waits until the object sees the kernel as disconnected. */
async function untilDisconnected(object: string, kernel: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const status = await stat(object);
    const entry = (status.kernels as { kernel: string; connected: boolean }[]).find(
      (k) => k.kernel === kernel,
    );
    if (entry && !entry.connected) return;
    await settle(20);
  }
  throw new Error(`${kernel} still connected to ${object}`);
}

describe("INVALIDATE with another kernel caching the range", () => {
  it("asks it to flush and completes only after its lock_completed", async () => {
    const object = "inval-answered";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await a.ack(a.dataReturn(0, pageOf(1, 2 * PAGE)));
    await cache(b, 0, 2 * PAGE);
    // The requester's own cached copy is not its business to flush.
    await cache(a, 0, 2 * PAGE);

    const sync = a.synchronize(100, 5000, VM_SYNC_INVALIDATE);
    const lock = await b.next(isLockRequest, 1_000);
    expect(lock).toMatchObject({
      type: "memory_object_lock_request",
      mid: 1,
      should_return: MEMORY_OBJECT_RETURN_DIRTY,
      should_flush: true,
      lock_value: VM_PROT_NO_CHANGE,
    });
    expect(Number.isSafeInteger(lock.lock_id) && lock.lock_id > 0).toBe(true);
    // The lock covers the whole synchronized range.
    expect(lock.offset).toBeLessThanOrEqual(100);
    expect(lock.offset + lock.length).toBeGreaterThanOrEqual(5100);
    await a.ack(sync);
    await expectQuiet(a);
    expect(a.completions(sync)).toEqual([]);
    expect(a.all("memory_object_lock_request")).toEqual([]);
    expect((await stat(object)).syncs).toBe(1);

    const answered = b.lockCompleted(lock);
    expect(await b.ack(answered)).toMatchObject({ type: "ack", id: answered });
    expect(await a.completion(sync, LOCK_TIMEOUT_MS)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 100,
      length: 5000,
      mid: 1,
    });
    expect(b.all("memory_object_lock_request")).toHaveLength(1);

    // B answered in time, so it is not stale: its resume does not flush.
    const { ready } = await TestKernel.open(object, "kB", { receivedMid: lock.mid, id: 100 });
    expect(ready).toMatchObject({ type: "memory_object_ready", flush: false });
    a.close();
  });

  it("does not ask again once the kernel flushed the range", async () => {
    const object = "inval-flushed-since";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    const first = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    const lock = await b.next(isLockRequest, 1_000);
    await b.ack(b.lockCompleted(lock));
    await a.completion(first, LOCK_TIMEOUT_MS);

    const second = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    expect(await a.completion(second, LOCK_TIMEOUT_MS)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: second,
      mid: 2,
    });
    await expectQuiet(b);
    expect(b.all("memory_object_lock_request")).toHaveLength(1);
    a.close();
    b.close();
  });

  it("with SYNCHRONOUS (0x6) waits for both the lock and R2", async () => {
    const object = "inval-synchronous";
    const control = await wrapObjectBucket(object, { delayMs: 600 });
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    await a.ack(a.dataReturn(0, pageOf(7)));
    const sync = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE | VM_SYNC_SYNCHRONOUS);
    const lock = await b.next(isLockRequest, 1_000);
    expect(lock).toMatchObject({
      should_return: MEMORY_OBJECT_RETURN_DIRTY,
      should_flush: true,
      lock_value: VM_PROT_NO_CHANGE,
    });
    await b.ack(b.lockCompleted(lock));
    await expectQuiet(a);
    // The lock is settled but the page is not in R2 yet.
    expect(control.written).toEqual([]);
    expect(a.completions(sync)).toEqual([]);
    let writtenAtCompletion: string[] = [];
    const done = await a.completion(sync).then((m) => {
      writtenAtCompletion = [...control.written];
      return m;
    });
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: PAGE,
    });
    expect(writtenAtCompletion.length).toBeGreaterThanOrEqual(1);
    a.close();
    b.close();
  });

  it("completes after the lock timeout when the kernel stays silent; it then resumes with flush", async () => {
    const object = "inval-silent";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, 2 * PAGE);
    const asked = Date.now();
    const sync = a.synchronize(PAGE, PAGE, VM_SYNC_INVALIDATE);
    const lock = await b.next(isLockRequest, 1_000);
    expect(lock).toMatchObject({
      should_return: MEMORY_OBJECT_RETURN_DIRTY,
      should_flush: true,
      lock_value: VM_PROT_NO_CHANGE,
      mid: 1,
    });
    await expectQuiet(a);
    expect(a.completions(sync)).toEqual([]);
    expect(await a.completion(sync, 5_000)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: PAGE,
      length: PAGE,
    });
    // Not before the timeout: the lock's deadline starts when the object takes the request.
    expect(Date.now() - asked).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS);

    const { kernel: resumed, ready } = await TestKernel.open(object, "kB", {
      receivedMid: lock.mid,
      id: 100,
    });
    expect(ready).toMatchObject({ type: "memory_object_ready", kernel: "kB", flush: true });
    await expectQuiet(resumed);
    expect(resumed.all("memory_object_lock_request")).toEqual([]);
    // The mark is cleared by that ready: the next resume does not flush again.
    const { ready: later } = await TestKernel.open(object, "kB", {
      receivedMid: lock.mid,
      id: 101,
    });
    expect(later.flush).toBe(false);
    a.close();
  });

  it("a late lock_completed after the timeout changes nothing and is acked", async () => {
    const object = "inval-late-answer";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    const sync = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    const lock = await b.next(isLockRequest, 1_000);
    await a.completion(sync, 5_000);
    const late = b.lockCompleted(lock);
    expect(await b.answer(late)).toMatchObject({ type: "ack", id: late });
    await expectQuiet(a);
    expect(a.completions(sync)).toHaveLength(1);
    // Still stale: the timeout marked it, only a ready with flush clears that.
    const { ready } = await TestKernel.open(object, "kB", { receivedMid: lock.mid, id: 100 });
    expect(ready.flush).toBe(true);
    a.close();
  });
});

describe("INVALIDATE and kernels that go away", () => {
  it("withdraws the lock request of a kernel that timed out: it resumes with flush only", async () => {
    const object = "inval-withdrawn";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    const sync = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    await b.next(isLockRequest, 1_000);
    await a.completion(sync, 5_000);
    b.close();
    // A resume that reports nothing received gets no stale lock request again.
    const { kernel: resumed, ready } = await TestKernel.open(object, "kB", { id: 100 });
    expect(ready.flush).toBe(true);
    await expectQuiet(resumed);
    expect(resumed.all("memory_object_lock_request")).toEqual([]);
    a.close();
    resumed.close();
  });

  it("stops waiting on other kernels when the requester terminates", async () => {
    const object = "inval-requester-terminates";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    await b.next(isLockRequest, 1_000);
    const terminate = a.takeId();
    a.send({ type: "memory_object_terminate", id: terminate });
    await a.ack(terminate);
    // B never answers; with no request left waiting on it, the timeout must not mark it stale.
    // A deadline passes only with time, and no message stands for one that was dropped: wait
    // past it, then run the alarm that expires locks, so the expiry has certainly run.
    await settle(LOCK_TIMEOUT_MS);
    await runDurableObjectAlarm(objectStub(object));
    expect((await stat(object)).syncs).toBe(0);
    b.close();
    const { kernel: resumed, ready } = await TestKernel.open(object, "kB", {
      receivedMid: 1,
      id: 100,
    });
    expect(ready.flush).toBe(false);
    resumed.close();
  });

  it("a holder that terminates is not asked by the INVALIDATE queued behind the one it ends", async () => {
    // Found by `npm run fuzz`: the queued request started while the terminating kernel's cached
    // pages were still known, sent it a lock request, and waited on it until the lock timeout.
    const object = "inval-holder-terminates-queued";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    const first = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    await b.next(isLockRequest, 1_000);
    const queued = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    await a.ack(queued);
    const terminate = b.takeId();
    b.send({ type: "memory_object_terminate", id: terminate });
    await b.ack(terminate);
    // Both complete when B goes, well before the lock timeout, and nothing waits any more.
    for (const id of [first, queued]) {
      expect(await a.completion(id, LOCK_TIMEOUT_MS - 100)).toMatchObject({ reply_to: id });
    }
    expect((await stat(object)).syncs).toBe(0);
    expect(b.all("memory_object_lock_request")).toHaveLength(1);
    a.close();
  });
});

describe("INVALIDATE and kernels that need no lock request", () => {
  it("completes promptly when the caching kernel is disconnected, and marks it stale", async () => {
    const object = "inval-disconnected";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    b.close();
    await untilDisconnected(object, "kB");

    const sync = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    // Well before the lock timeout: nobody is waited for.
    expect(await a.completion(sync, LOCK_TIMEOUT_MS - 100)).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 0,
      length: PAGE,
    });

    const { kernel: resumed, ready } = await TestKernel.open(object, "kB", { id: 100 });
    expect(ready).toMatchObject({ type: "memory_object_ready", kernel: "kB", flush: true });
    await expectQuiet(resumed);
    // No lock request was queued for it.
    expect(resumed.all("memory_object_lock_request")).toEqual([]);
    a.close();
    resumed.close();
  });

  it("sends no lock request to kernels that never requested the range", async () => {
    const object = "inval-bystanders";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    const { kernel: c } = await TestKernel.open(object, "kC");
    const { kernel: d } = await TestKernel.open(object, "kD");
    await cache(b, 4 * PAGE, PAGE);
    // C caches a neighbouring range that does not overlap.
    await cache(c, 5 * PAGE, PAGE);
    // D never asked for anything.

    const sync = a.synchronize(4 * PAGE, PAGE, VM_SYNC_INVALIDATE);
    const lock = await b.next(isLockRequest, 1_000);
    await b.ack(b.lockCompleted(lock));
    await a.completion(sync, LOCK_TIMEOUT_MS);
    await expectQuiet(c);
    await expectQuiet(d);
    expect(c.all("memory_object_lock_request")).toEqual([]);
    expect(d.all("memory_object_lock_request")).toEqual([]);
    for (const name of ["kC", "kD"]) {
      const { ready } = await TestKernel.open(object, name, { id: 100 });
      expect(ready.flush).toBe(false);
    }
    a.close();
    b.close();
  });

  it("completes a zero-length INVALIDATE at once without lock requests", async () => {
    const object = "inval-zero-length";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, PAGE);
    const sync = a.synchronize(PAGE / 2, 0, VM_SYNC_INVALIDATE);
    expect(await a.completion(sync, LOCK_TIMEOUT_MS - 100)).toMatchObject({
      type: "memory_object_synchronize_completed",
      offset: PAGE / 2,
      length: 0,
    });
    await expectQuiet(b);
    expect(b.all("memory_object_lock_request")).toEqual([]);
    a.close();
    b.close();
  });

  it("completes a zero-length INVALIDATE inside another kernel's cached run at once", async () => {
    // Found by `npm run fuzz`: a point strictly inside a cached run [0, 4) matched the run, and
    // the other kernel was sent a lock request of length 0.
    const object = "inval-zero-length-inside";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await cache(b, 0, 4 * PAGE);
    const sync = a.synchronize(2 * PAGE + 100, 0, VM_SYNC_INVALIDATE);
    expect(await a.completion(sync, LOCK_TIMEOUT_MS - 100)).toMatchObject({
      type: "memory_object_synchronize_completed",
      offset: 2 * PAGE + 100,
      length: 0,
    });
    await expectQuiet(b);
    expect(b.all("memory_object_lock_request")).toEqual([]);
    a.close();
    b.close();
  });
});

describe("INVALIDATE and replies still being read", () => {
  it("never lets the lock request overtake a data_supply that is still reading R2", async () => {
    const object = "inval-overtake";
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    a.dataReturn(0, pageOf(1));
    await a.completion(a.synchronize(0, PAGE, VM_SYNC_SYNCHRONOUS));
    const control = await wrapObjectBucket(object, { readDelayMs: 300 });

    // B's read of the old version waits on R2 while A writes a new one and invalidates.
    const request = b.dataRequest(0, PAGE);
    await waitFor(() => control.reads >= 1, "B's read to reach R2");
    await a.ack(a.dataReturn(0, pageOf(2)));
    const sync = a.synchronize(0, PAGE, VM_SYNC_INVALIDATE);
    const lock = await b.next(isLockRequest, 2_000);
    const supplyAt = b.received.findIndex((m) => m.reply_to === request);
    const lockAt = b.received.indexOf(lock);
    expect(control.readDelayMs).toBe(300);
    expect(supplyAt).toBeGreaterThanOrEqual(0);
    expect(supplyAt).toBeLessThan(lockAt);
    expect(b.received[supplyAt]!.payload!.every((byte: number) => byte === 1)).toBe(true);

    b.lockCompleted(lock);
    expect(await a.completion(sync, LOCK_TIMEOUT_MS)).toMatchObject({ reply_to: sync });
    a.close();
    b.close();
  });
});
