/**
 * R2 puts that fail after writing (found by test/torture.test.ts): the object is in R2 but the put
 * rejects. The manager must treat the segment as failed: a retry writes a new key (never rewrite
 * a key, docs/architecture.md §4), the index never points at the failed one, and the SYNCHRONOUS completion
 * comes only after a put that resolved.
 */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { VM_SYNC_SYNCHRONOUS as SYNC } from "../schema";
import { seededFaults, wrapObjectBucket } from "./helpers/buckets";
import { waitFor } from "./helpers/wait";
import { readPages } from "./helpers/http";
import { pageIndex } from "./helpers/inspect";
import { TestKernel, pageOf } from "./helpers/kernel";

it("retries a put that wrote and then failed under a new key, and indexes only that one", async () => {
  const name = "faults-after-write";
  const { kernel } = await TestKernel.open(name, "k1");
  const faults = seededFaults({
    seed: 1,
    fail: 0,
    failAfterWrite: 0,
    delay: 0,
    maxDelayMs: 1,
    script: ["failAfterWrite", "none"],
  });
  const bucket = await wrapObjectBucket(name, { putFault: faults.decide });
  await kernel.ack(kernel.dataReturn(0, pageOf(0x5a)));
  const sync = kernel.synchronize(0, 4096, SYNC);

  expect(await kernel.completion(sync)).toMatchObject({
    type: "memory_object_synchronize_completed",
    reply_to: sync,
  });
  expect(faults.injected.failAfterWrite).toBe(1);
  expect(bucket.attempts).toBe(2);
  expect(bucket.rewrites).toBe(0);
  const [failed] = [...bucket.failedAfterWrite];
  const [written] = bucket.written;
  expect(written).not.toBe(failed);
  // The failed put's object was written, but nothing refers to it, and the flusher deletes it.
  await waitFor(async () => (await env.PAGES.head(failed!)) === null, "the orphan to be deleted");
  const index = (await pageIndex(name)).map(({ segment }) => ({ segment }));
  expect(index).toEqual([{ segment: written }]);
  expect((await readPages(name, 0, 4096)).every((b) => b === 0x5a)).toBe(true);
  kernel.close();
});
