/**
 * R2 puts that fail after writing (found by test/torture.test.ts): the object is in R2 but the put
 * rejects. The manager must treat the segment as failed: a retry writes a new key (never rewrite
 * a key, docs/architecture.md §4), the index never points at the failed one, and the SYNCHRONOUS completion
 * comes only after a put that resolved.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { objectStub } from "./helpers/buckets";
import { ensureFaultyBucket, newFaultyBucket } from "./helpers/faulty-bucket";
import { waitFor } from "./helpers/wait";
import { readPages } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";
import { PAGE_INDEX } from "./helpers/page-index";

const SYNC = 2;

it("retries a put that wrote and then failed under a new key, and indexes only that one", async () => {
  const name = "faults-after-write";
  const { kernel } = await TestKernel.open(name, "k1");
  const faulty = newFaultyBucket({
    seed: 1,
    fail: 0,
    failAfterWrite: 0,
    delay: 0,
    maxDelayMs: 1,
    script: ["failAfterWrite", "none"],
  });
  await ensureFaultyBucket(name, faulty);
  await kernel.ack(kernel.dataReturn(0, pageOf(0x5a)));
  const sync = kernel.synchronize(0, 4096, SYNC);

  expect(await kernel.completion(sync)).toMatchObject({
    type: "memory_object_synchronize_completed",
    reply_to: sync,
  });
  const { bucket } = faulty;
  expect(bucket.faults.failAfterWrite).toBe(1);
  expect(bucket.attempts).toBe(2);
  expect(bucket.rewrites).toBe(0);
  const [failed] = [...bucket.failedAfterWrite];
  const [written] = [...bucket.cleanKeys];
  expect(written).not.toBe(failed);
  // The failed put's object was written, but nothing refers to it, and the flusher deletes it.
  await waitFor(async () => (await env.PAGES.head(failed!)) === null, "the orphan to be deleted");
  const index = await runInDurableObject(objectStub(name), (_i: MemoryObject, state) =>
    state.storage.sql.exec<{ segment: string }>(`SELECT segment FROM ${PAGE_INDEX}`).toArray(),
  );
  expect(index).toEqual([{ segment: written }]);
  expect((await readPages(name, 0, 4096)).every((b) => b === 0x5a)).toBe(true);
  kernel.close();
});
