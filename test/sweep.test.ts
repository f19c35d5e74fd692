// Garbage (docs/architecture.md §4): a segment whose every page has a newer copy in a later segment is
// deleted from R2 and forgotten (by the alarm after a flush); one that still holds a live page
// stays; a read planned before a segment died still reads it, and the segment goes at a sweep
// after that read. `maintain` sweeps at a chosen moment, as the alarm would.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import { VM_SYNC_SYNCHRONOUS as SYNC } from "../schema";
import { maintain, objectStub, wrapObjectBucket } from "./helpers/buckets";
import { call, putPages, readPages, synchronize } from "./helpers/http";
import { segments } from "./helpers/inspect";
import { TestKernel } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;

function pages(count: number, value: number): Uint8Array {
  return new Uint8Array(count * PAGE).fill(value);
}

async function segmentsInR2(object: string): Promise<string[]> {
  const listed = await env.PAGES.list({ prefix: `${object}/segments/` });
  return listed.objects.map((o) => o.key).sort();
}

async function segmentRows(object: string): Promise<{ key: string; live: number }[]> {
  return (await segments(object)).map(({ key, live }) => ({ key, live }));
}

/** Writes `data` at `offset` over HTTP and waits for it to be in R2. */
async function writeDurably(object: string, offset: number, data: Uint8Array): Promise<void> {
  expect((await putPages(object, offset, data)).status).toBe(200);
  expect((await synchronize(object, offset, data.byteLength, SYNC)).status).toBe(200);
}

describe("dead segments", () => {
  it("go from R2 and the index once every page has a newer copy; partly live ones stay", async () => {
    const object = "sweep-dead";
    await writeDurably(object, 0, pages(3, 1)); // segment A: pages 0-2
    await writeDurably(object, 3 * PAGE, pages(3, 2)); // segment B: pages 3-5
    const [a, b] = await segmentsInR2(object);
    expect(a && b).toBeTruthy();

    await writeDurably(object, 0, pages(4, 3)); // C: pages 0-3, A dead, B keeps 4 and 5
    await waitFor(async () => (await segmentsInR2(object)).length === 2, "A to be deleted");
    const left = await segmentsInR2(object);
    expect(left).not.toContain(a);
    expect(left).toContain(b);
    const rows = await segmentRows(object);
    expect(rows.map((row) => row.key)).toEqual(left);
    expect(rows.find((row) => row.key === b)?.live).toBe(2);

    const expected = new Uint8Array([...pages(4, 3), ...pages(2, 2)]);
    expect(Buffer.from(await readPages(object, 0, 6 * PAGE)).equals(Buffer.from(expected))).toBe(
      true,
    );
  });

  it("wait for the reads planned before they died", async () => {
    const object = "sweep-pinned";
    const { kernel } = await TestKernel.open(object, "k1");
    await writeDurably(object, 0, pages(2, 7));
    const [old] = await segmentsInR2(object);
    const control = await wrapObjectBucket(object, { readDelayMs: 400 });

    // Planned at its seqno (version 7); its R2 read is slow.
    const read = kernel.dataRequest(0, 2 * PAGE);
    await writeDurably(object, 0, pages(2, 8)); // the old segment is dead now, but being read
    await maintain(object);
    expect(await segmentsInR2(object)).toContain(old);

    const supply = await kernel.answer(read);
    expect(supply.type).toBe("memory_object_data_supply");
    expect(Buffer.from(supply.payload!).equals(Buffer.from(pages(2, 7)))).toBe(true);
    expect(control.reads).toBe(1);

    // The read is over: the next sweep deletes it.
    await maintain(object);
    expect(await segmentsInR2(object)).not.toContain(old);
    expect((await segmentRows(object)).map((row) => row.key)).not.toContain(old);
    kernel.close();
  });

  it("wait for HTTP reads too, until the last piece is streamed", async () => {
    const object = "sweep-pinned-http";
    const size = 2 * 1024 * 1024 + PAGE; // three 1 MiB pieces
    const v1 = new Uint8Array(size).map((_, i) => (i >> 12) % 251);
    await writeDurably(object, 0, v1);
    const before = await segmentsInR2(object);
    const control = await wrapObjectBucket(object, { readDelayMs: 100 });
    const answered = call(`/v1/objects/${object}/pages?offset=0&length=${size}`);
    await writeDurably(object, 0, new Uint8Array(size).fill(9)); // every old segment dead
    const response = await answered; // the first piece is read; the others are not yet
    await maintain(object); // a sweep while the rest of the body is still to be read
    expect(await segmentsInR2(object)).toEqual(expect.arrayContaining(before));
    expect(Buffer.from(await response.arrayBuffer()).equals(Buffer.from(v1))).toBe(true);
    expect(control.reads).toBeGreaterThanOrEqual(3);

    await maintain(object);
    expect((await segmentsInR2(object)).filter((key) => before.includes(key))).toEqual([]);
  });

  it("a failed delete leaves the row, and the next sweep deletes it", async () => {
    const object = "sweep-retry";
    await writeDurably(object, 0, pages(1, 1));
    const [old] = await segmentsInR2(object);
    const control = await wrapObjectBucket(object, { deletesFailing: true });
    await writeDurably(object, 0, pages(1, 2));
    await maintain(object);
    expect(control.deleteAttempts).toBeGreaterThan(0);
    expect(await segmentsInR2(object)).toContain(old);
    expect((await segmentRows(object)).find((row) => row.key === old)?.live).toBe(0);

    control.deletesFailing = false;
    await maintain(object);
    expect(await segmentsInR2(object)).not.toContain(old);
    expect((await segmentRows(object)).map((row) => row.key)).not.toContain(old);
  });

  it("orphans (objects under the prefix no row names) go once an hour old; named ones stay", async () => {
    const object = "sweep-orphans";
    await writeDurably(object, 0, pages(2, 4));
    const [named] = await segmentsInR2(object);
    const orphans = [
      `${object}/segments/0000000000000001-left-by-a-deploy`,
      `${object}/segments/x`,
    ];
    for (const key of orphans) await env.PAGES.put(key, pages(1, 0));
    const scan = (minAgeMs?: number) =>
      runInDurableObject(objectStub(object), (instance: MemoryObject) =>
        instance.pager.testHooks.sweepOrphans(minAgeMs),
      );
    const due = () =>
      runInDurableObject(objectStub(object), (instance: MemoryObject) =>
        instance.pager.testHooks.orphanScanDue(),
      );

    await maintain(object); // the day's scan (here or at an earlier alarm): too young to be sure
    expect(await due()).toBe(false);
    expect(await segmentsInR2(object)).toEqual([...orphans, named!].sort());

    await scan(0);
    expect(await segmentsInR2(object)).toEqual([named]);
    const back = await readPages(object, 0, 2 * PAGE);
    expect(Buffer.from(back).equals(Buffer.from(pages(2, 4)))).toBe(true);
  });
});
