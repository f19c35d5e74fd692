import { describe, expect, it } from "vitest";
import { TestKernel, pageOf } from "./helpers/kernel";
import { putPages, readPages, stat, synchronize } from "./helpers/http";

describe("round trip over the socket", () => {
  it("returns pages, synchronizes, and reads them back", async () => {
    const { kernel, ready } = await TestKernel.open("rt-socket", "k1");
    expect(ready).toMatchObject({
      type: "memory_object_ready",
      object: "rt-socket",
      kernel: "k1",
      page_size: 4096,
      max_transfer: 1048576,
      last_id: 0,
      flush: false,
    });
    const data = new Uint8Array(8192).map((_, i) => i % 251);
    const returned = kernel.dataReturn(4096, data);
    expect(await kernel.ack(returned)).toMatchObject({ type: "ack", id: returned });
    const sync = kernel.synchronize(4096, 8192, 2);
    const done = await kernel.completion(sync);
    expect(done).toMatchObject({
      type: "memory_object_synchronize_completed",
      reply_to: sync,
      offset: 4096,
      length: 8192,
      mid: 1,
    });
    const request = kernel.dataRequest(0, 16384);
    const supply = await kernel.answer(request);
    expect(supply.type).toBe("memory_object_data_supply");
    expect(supply).toMatchObject({ offset: 0, length: 16384, precious: false });
    expect(supply.payload!.byteLength).toBe(16384);
    expect(supply.payload!.subarray(0, 4096).every((b) => b === 0)).toBe(true);
    expect([...supply.payload!.subarray(4096, 12288)]).toEqual([...data]);
    expect(supply.payload!.subarray(12288).every((b) => b === 0)).toBe(true);
    kernel.close();
  });

  it("answers data_unavailable for a never-written range", async () => {
    const { kernel } = await TestKernel.open("rt-empty", "k1");
    const request = kernel.dataRequest(1 << 20, 8192);
    expect(await kernel.answer(request)).toMatchObject({
      type: "memory_object_data_unavailable",
      reply_to: request,
      offset: 1 << 20,
      length: 8192,
    });
    kernel.close();
  });

  it("reads pages that reached R2 after the journal was flushed", async () => {
    const { kernel } = await TestKernel.open("rt-r2", "k1");
    kernel.dataReturn(0, pageOf(3));
    await kernel.completion(kernel.synchronize(0, 4096, 2));
    expect((await stat("rt-r2")).journal_pages).toBe(0);
    const supply = await kernel.answer(kernel.dataRequest(0, 4096));
    expect(supply.payload!.every((b: number) => b === 3)).toBe(true);
    kernel.close();
  });
});

describe("round trip over HTTP", () => {
  it("puts pages, synchronizes, reads any byte range back", async () => {
    const body = new Uint8Array(3 * 4096).map((_, i) => (i * 7) % 256);
    const put = await putPages("rt-http", 4096, body);
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ offset: 4096, length: body.byteLength, seqno: 0 });
    const sync = await synchronize("rt-http", 0, 5 * 4096, 2);
    expect(await sync.json()).toEqual({
      type: "memory_object_synchronize_completed",
      offset: 0,
      length: 5 * 4096,
      seqno: 1,
    });
    const bytes = await readPages("rt-http", 4000, 5000);
    const expected = new Uint8Array(5000);
    expected.set(body.subarray(0, 5000 - 96), 96);
    expect([...bytes]).toEqual([...expected]);
    const status = await stat("rt-http");
    expect(status).toMatchObject({
      object: "rt-http",
      page_size: 4096,
      pages: 3,
      bytes: 12288,
      journal_pages: 0,
      syncs: 0,
    });
  });

  it("reads a never-written object as zeros", async () => {
    const bytes = await readPages("rt-http-empty", 123, 1000);
    expect(bytes.byteLength).toBe(1000);
    expect(bytes.every((b) => b === 0)).toBe(true);
  });
});

describe("long HTTP reads", () => {
  it("streams a multi-MiB range from R2 and the journal, unaligned, byte for byte", async () => {
    const object = "rt-http-long";
    const size = 3 * 1024 * 1024;
    const body = new Uint8Array(size).map((_, i) => (i * 13 + (i >> 12)) % 256);
    expect((await putPages(object, 0, body)).status).toBe(200);
    expect((await synchronize(object, 0, size, 2)).status).toBe(200);
    // A newer page in the journal, in the middle of the second MiB.
    const fresh = new Uint8Array(4096).fill(0xee);
    await putPages(object, 1536 * 1024, fresh);
    body.set(fresh, 1536 * 1024);
    const offset = 1000;
    const length = size - 3000;
    const bytes = await readPages(object, offset, length);
    expect(bytes.byteLength).toBe(length);
    expect(Buffer.from(bytes).equals(Buffer.from(body.subarray(offset, offset + length)))).toBe(
      true,
    );
  });
});
