/**
 * The object size (docs/protocol.md §13): 0 when created; writes past it (returns and HTTP)
 * raise it to their end; `memory_object_set_size` and `PATCH /v1/objects/{name}` set it. A
 * shrink drops the pages wholly past the size (read as never written, uncounted, their segments
 * freed) and zeroes the rest of the last page, whether that page is in the journal or only in
 * R2; growing adds zeros. Reported by ready and status; kept across restarts.
 */
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { KERN_INVALID_ADDRESS, VM_SYNC_SYNCHRONOUS as SYNC } from "../schema";
import { maintain, objectStub, wrapObjectBucket } from "./helpers/buckets";
import { call, putPages, readPages, stat } from "./helpers/http";
import { pageIndex, segments } from "./helpers/inspect";
import { TestKernel, pageOf } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;

function setSize(k: TestKernel, size: number): number {
  const id = k.takeId();
  k.send({ type: "memory_object_set_size", id, size });
  return id;
}

function patchSize(object: string, body: unknown, query = ""): Promise<Response> {
  return call(`/v1/objects/${object}${query}`, {
    method: "PATCH",
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("the size", () => {
  it("is 0 when created, raised by writes to their end, and reported by ready and status", async () => {
    const object = "size-raise";
    const { kernel: k, ready } = await TestKernel.open(object, "k1");
    expect(ready.size).toBe(0);
    await k.ack(k.dataReturn(2 * PAGE, pageOf(1)));
    expect((await stat(object)).size).toBe(3 * PAGE);
    // A write below the size leaves it.
    await k.ack(k.dataReturn(0, pageOf(2)));
    expect((await stat(object)).size).toBe(3 * PAGE);
    // HTTP writes raise it too.
    expect((await putPages(object, 4 * PAGE, pageOf(3))).status).toBe(200);
    expect((await stat(object)).size).toBe(5 * PAGE);
    k.close();
    await evictDurableObject(objectStub(object));
    const { kernel: again, ready: resumed } = await TestKernel.open(object, "k1");
    expect(resumed.size).toBe(5 * PAGE);
    again.close();
  });

  it("shrinks: pages wholly past it read as never written, uncounted; the last page's tail reads as zeros", async () => {
    const object = "size-shrink-journal";
    const { kernel: k } = await TestKernel.open(object, "k1");
    for (let page = 0; page < 4; page++) await k.ack(k.dataReturn(page * PAGE, pageOf(page + 1)));
    const id = setSize(k, PAGE + 100);
    expect(await k.ack(id)).toMatchObject({ type: "ack", id });
    expect(await stat(object)).toMatchObject({ size: PAGE + 100, pages: 2, journal_pages: 2 });
    const bytes = await readPages(object, 0, 4 * PAGE);
    expect(bytes[PAGE]).toBe(2);
    expect(bytes[PAGE + 99]).toBe(2);
    expect(bytes.subarray(PAGE + 100).every((b) => b === 0)).toBe(true);
    const gone = k.dataRequest(2 * PAGE, 2 * PAGE);
    expect(await k.answer(gone)).toMatchObject({ type: "memory_object_data_unavailable" });
    // Growing adds zeros: the cut bytes do not come back.
    await k.ack(setSize(k, 4 * PAGE));
    expect((await readPages(object, PAGE + 100, 10)).every((b) => b === 0)).toBe(true);
    expect(await stat(object)).toMatchObject({ size: 4 * PAGE, pages: 2 });
    k.close();
  });

  it("shrinks pages held only in R2: the index drops them, the cut page reads zeros past the size until rewritten, and dead segments are freed", async () => {
    const object = "size-shrink-r2";
    const { kernel: k } = await TestKernel.open(object, "k1");
    for (let page = 0; page < 4; page++) await k.ack(k.dataReturn(page * PAGE, pageOf(page + 1)));
    await k.completion(k.synchronize(0, 4 * PAGE, SYNC));
    expect(await stat(object)).toMatchObject({ journal_pages: 0, pages: 4 });
    await k.ack(setSize(k, 100));
    expect(await stat(object)).toMatchObject({ size: 100, pages: 1 });
    expect((await pageIndex(object)).map((row) => row.page)).toEqual([0]);
    let bytes = await readPages(object, 0, 2 * PAGE);
    expect(bytes[99]).toBe(1);
    expect(bytes.subarray(100).every((b) => b === 0)).toBe(true);
    // The cut survives a restart, and a kernel's read sees it too.
    await evictDurableObject(objectStub(object));
    const { kernel: again } = await TestKernel.open(object, "k1");
    again.setNextId(1000);
    const read = again.dataRequest(0, PAGE);
    const supply = await again.answer(read);
    expect(supply.payload![99]).toBe(1);
    expect(supply.payload!.subarray(100).every((b: number) => b === 0)).toBe(true);
    // A new version of the page is whole again.
    await again.ack(again.dataReturn(0, pageOf(7)));
    await again.completion(again.synchronize(0, PAGE, SYNC));
    bytes = await readPages(object, 0, PAGE);
    expect(bytes.every((b) => b === 7)).toBe(true);
    expect((await stat(object)).size).toBe(PAGE);
    // Nothing points at the first segment any more: the sweep deletes it.
    await maintain(object);
    const live = await segments(object);
    expect(live.every((s) => s.live > 0)).toBe(true);
    again.close();
  });

  it("while a flush of the dropped pages is in flight: the synchronize waiting on them completes, and the flush indexes none of them", async () => {
    const object = "size-shrink-racing-flush";
    const { kernel: k } = await TestKernel.open(object, "k1");
    for (let page = 0; page < 4; page++) await k.ack(k.dataReturn(page * PAGE, pageOf(page + 1)));
    const puts = await wrapObjectBucket(object, { delayMs: 300 });
    const sync = k.synchronize(0, 4 * PAGE, SYNC);
    await k.ack(sync);
    await waitFor(() => Promise.resolve(puts.attempts > 0), "the flush's put to start");
    await k.ack(setSize(k, 0));
    // Its pages are gone: nothing left to wait for.
    expect(await k.completion(sync)).toMatchObject({ type: "memory_object_synchronize_completed" });
    await waitFor(() => Promise.resolve(puts.written.length > 0), "the delayed put to resolve");
    expect(await stat(object)).toMatchObject({ size: 0, pages: 0, journal_pages: 0 });
    expect(await pageIndex(object)).toEqual([]);
    expect((await readPages(object, 0, 4 * PAGE)).every((b) => b === 0)).toBe(true);
    // The segment holds nothing live: the sweep deletes it.
    expect((await segments(object)).map((s) => s.live)).toEqual([0]);
    await maintain(object);
    expect(await segments(object)).toEqual([]);
    k.close();
  });

  it("over max_size is KERN_INVALID_ADDRESS and changes nothing", async () => {
    const object = "size-too-large";
    const { kernel: k, ready } = await TestKernel.open(object, "k1");
    await k.ack(k.dataReturn(0, pageOf(1)));
    const id = setSize(k, ready.max_size + 1);
    expect(await k.answer(id)).toMatchObject({
      type: "error",
      kern_return: KERN_INVALID_ADDRESS,
      code: "out_of_range",
      message: expect.stringMatching(/^size /),
    });
    expect((await stat(object)).size).toBe(PAGE);
    k.close();
  });

  it("needs the write right", async () => {
    const object = "size-read-only";
    const { kernel: k } = await TestKernel.open(object, "k1");
    k.close();
    const reader = await TestKernel.connectWithGrant(object, "reader", {
      rights: ["read"],
      exp: Date.now() / 1000 + 3600,
    });
    await reader.init();
    const id = setSize(reader, 0);
    expect(await reader.answer(id)).toMatchObject({ type: "error", code: "forbidden" });
    reader.close();
  });
});

describe("PATCH /v1/objects/{name}", () => {
  it("sets the size as kernel http, once durably recorded", async () => {
    const object = "size-patch";
    await putPages(object, 0, new Uint8Array(3 * PAGE).fill(5));
    const response = await patchSize(object, { size: PAGE });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({ object, size: PAGE, seqno: expect.any(Number) });
    expect(await stat(object)).toMatchObject({ size: PAGE, pages: 1 });
  });

  it("fixes a fresh object's page size, as a write does", async () => {
    const object = "size-patch-fresh";
    expect((await patchSize(object, { size: 10_000 }, "?page_size=8192")).status).toBe(200);
    expect(await stat(object)).toMatchObject({ page_size: 8192, size: 10_000, pages: 0 });
    const conflict = await patchSize(object, { size: 0 }, "?page_size=4096");
    expect(conflict.status).toBe(409);
  });

  it("refuses a bad body naming the field, and changes nothing", async () => {
    const object = "size-patch-bad";
    await putPages(object, 0, pageOf(1));
    for (const [body, code, field] of [
      ["not json", "bad_json", null],
      [{ size: -1 }, "bad_field", "size"],
      [{ size: "1" }, "bad_field", "size"],
      [{}, "bad_field", "size"],
    ] as const) {
      const response = await patchSize(object, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe(code);
      if (field) expect(error.message).toMatch(new RegExp(`^${field} `));
    }
    const tooLarge = await patchSize(object, { size: 2 ** 50 });
    expect(tooLarge.status).toBe(400);
    expect(((await tooLarge.json()) as { error: { code: string } }).error.code).toBe(
      "out_of_range",
    );
    expect((await stat(object)).size).toBe(PAGE);
  });
});
