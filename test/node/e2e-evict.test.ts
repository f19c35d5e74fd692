// End to end, through the client only: the object's Durable Object is evicted while SYNCHRONOUS
// msyncs are outstanding, once with its sockets hibernated (kernels stay connected) and once
// with them closed (kernels reconnect and resume). Each request must complete exactly once
// (docs/protocol.md §3 outbox, docs/protocol.md §6.7), and the bytes must all be there.
//
// Half of the requests are SYNCHRONOUS | INVALIDATE and wait on a lock request to a kernel that
// caches the pages and answers only after the eviction, so they are outstanding for sure when it
// happens; the plain SYNCHRONOUS ones are usually still flushing to R2.
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  HttpClient,
  KernelConnection,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
  type LockRequestMessage,
} from "../../client";
import { FAST_VARS, startHarness, within, type Harness } from "./harness";
import { waitFor } from "../helpers/wait";
import { TrackedKernel, firstDifference, pattern } from "./kernels";

const PAGE = 4096;
const WRITERS = 4;
const PAGES_EACH = 16;
/** Per writer: four msyncs of four pages, INVALIDATE ones first. */
const FLAGS = [
  VM_SYNC_SYNCHRONOUS | VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS | VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS,
];
const LOCKS = WRITERS * FLAGS.filter((f) => f & VM_SYNC_INVALIDATE).length;

let harness: Harness;
beforeAll(async () => {
  // A long lock timeout: the INVALIDATE requests complete by the holder's answer, not by expiry.
  harness = await startHarness({ ...FAST_VARS, LOCK_TIMEOUT_MS: "20000" });
});
afterAll(async () => {
  await harness?.close();
});

it.each(["hibernate", "close"] as const)(
  "evicting the object (webSockets: %s) with SYNCHRONOUS msyncs outstanding: each completes once",
  async (webSockets) => {
    const object = `e2e-evict-${webSockets}`;
    const total = WRITERS * PAGES_EACH * PAGE;

    // The holder caches every page (a data_request) and answers lock requests only when told.
    const holder = await KernelConnection.connect({
      url: harness.url,
      object,
      kernel: "holder",
      pageSize: PAGE,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    const locks: LockRequestMessage[] = [];
    holder.on("lock_request", (lock) => locks.push(lock));
    expect((await holder.dataRequest(0, total)).data).toBeNull();

    const writers: TrackedKernel[] = [];
    for (let w = 0; w < WRITERS; w++) {
      writers.push(
        await TrackedKernel.connect({ url: harness.url, object, kernel: `w${w}`, pageSize: PAGE }),
      );
    }
    const expected = new Uint8Array(total);
    for (const [w, writer] of writers.entries()) {
      const bytes = pattern(w, 1, PAGES_EACH * PAGE);
      await writer.cache.write(w * PAGES_EACH * PAGE, bytes);
      expected.set(bytes, w * PAGES_EACH * PAGE);
      const quarter = (PAGES_EACH / FLAGS.length) * PAGE;
      FLAGS.forEach((flags, q) =>
        writer.msync(w * PAGES_EACH * PAGE + q * quarter, quarter, flags),
      );
    }

    // Every INVALIDATE request has started (its lock request reached the holder): evict now.
    await waitFor(() => locks.length === LOCKS, "the lock requests to reach the holder");
    const completedBefore = writers.reduce((n, w) => n + w.events.length, 0);
    await harness.evict(object, webSockets);
    const outstanding = WRITERS * FLAGS.length - completedBefore;
    expect(outstanding).toBeGreaterThanOrEqual(LOCKS);

    // The plain SYNCHRONOUS requests finish on their own (a flush after the restart) ...
    const plain = writers.flatMap((w) => w.msyncs.filter((m) => !(m.flags & VM_SYNC_INVALIDATE)));
    await within(Promise.all(plain.map((m) => m.done)), 15_000, "the SYNCHRONOUS msyncs");
    // ... the INVALIDATE ones once the holder answers, which reaches the restarted object.
    for (const lock of locks) void holder.lockCompleted(lock.lock_id, lock.offset, lock.length);
    await within(Promise.all(writers.map((w) => w.settled())), 15_000, "the INVALIDATE msyncs");
    console.log(
      `evict (${webSockets}): ${outstanding} of ${WRITERS * FLAGS.length} msyncs outstanding at the eviction`,
    );

    for (const writer of writers) {
      writer.expectEachCompletionOnce();
      // Hibernation keeps the sockets; closing them makes every kernel reconnect.
      if (webSockets === "hibernate") expect(writer.log.sockets).toHaveLength(1);
      else expect(writer.readyCount).toBeGreaterThanOrEqual(2);
    }
    // Each lock request took effect at the holder once, though it may have been resent.
    expect(locks).toHaveLength(LOCKS);
    expect(new Set(locks.map((l) => l.mid)).size).toBe(LOCKS);

    const http = new HttpClient(harness.url);
    expect(firstDifference(await http.read(object, 0, total), expected)).toBe(-1);
    const status = await http.stat(object);
    expect(status.syncs).toBe(0);
    expect(status.journal_pages).toBe(0);
    expect(status.pages).toBe(WRITERS * PAGES_EACH);
    for (const writer of writers) writer.close();
    holder.close();
  },
);
