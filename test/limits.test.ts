// The configurable bounds of docs/security.md, each crossed once: a clear error naming the limit,
// nothing changed, the socket still usable. Defaults from wrangler.toml.
import { describe, expect, it } from "vitest";
import { KERN_INVALID_ARGUMENT, KERN_RESOURCE_SHORTAGE } from "../schema";
import { stat } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";
import { stallObjectBucket } from "./helpers/buckets";

describe("limits", () => {
  it("refuses a message whose JSON exceeds MAX_HEADER_BYTES (64 KiB)", async () => {
    const { kernel } = await TestKernel.open("limit-header", "k1");
    kernel.send({
      type: "memory_object_data_request",
      id: 2,
      offset: 0,
      length: 4096,
      desired_access: 1,
      pad: "x".repeat(70_000),
    });
    expect(await kernel.next((m) => m.type === "error")).toMatchObject({
      kern_return: KERN_INVALID_ARGUMENT,
      code: "too_large",
      message: expect.stringMatching(/MAX_HEADER_BYTES/),
    });
    expect((await kernel.answer(kernel.dataRequest(0, 4096))).type).toBe(
      "memory_object_data_unavailable",
    );
    kernel.close();
  });

  it("refuses a frame larger than a header and max_transfer, whatever its type", async () => {
    const { kernel } = await TestKernel.open("limit-frame", "k1");
    // A synchronize carries no pages; a 2 MiB payload on it is garbage, refused before parsing.
    kernel.sendBinary(
      { type: "memory_object_synchronize", id: 2, offset: 0, length: 4096, sync_flags: 1 },
      new Uint8Array(2 * 1024 * 1024),
    );
    expect(await kernel.next((m) => m.type === "error")).toMatchObject({
      kern_return: KERN_INVALID_ARGUMENT,
      code: "too_large",
      message: expect.stringMatching(/max_transfer/),
    });
    expect(kernel.all("memory_object_synchronize_completed")).toEqual([]);
    expect((await kernel.answer(kernel.synchronize(0, 4096, 0x1))).type).toBe("ack");
    kernel.close();
  });

  it("refuses a synchronize beyond MAX_SYNCS_PER_KERNEL (256) outstanding", async () => {
    const object = "limit-syncs";
    const { kernel } = await TestKernel.open(object, "k1");
    await stallObjectBucket(object);
    await kernel.ack(kernel.dataReturn(0, pageOf(1)));
    let last = 0;
    for (let i = 0; i < 256; i++) last = kernel.synchronize(0, 4096, 0x2);
    await kernel.ack(last);
    const refused = kernel.synchronize(0, 4096, 0x2);
    expect(await kernel.answer(refused)).toMatchObject({
      type: "error",
      kern_return: KERN_RESOURCE_SHORTAGE,
      code: "too_many_syncs",
      message: expect.stringMatching(/MAX_SYNCS_PER_KERNEL/),
    });
    expect((await stat(object)).syncs).toBe(256);
    // Another kernel has its own allowance.
    const { kernel: other } = await TestKernel.open(object, "k2");
    expect((await other.answer(other.synchronize(8192, 4096, 0x1))).type).toBe("ack");
    kernel.close();
    other.close();
  });

  it("refuses a new kernel beyond MAX_KERNELS (64), but not a known one", async () => {
    const object = "limit-kernels";
    const kernels: TestKernel[] = [];
    for (let i = 0; i < 64; i++) kernels.push((await TestKernel.open(object, `k${i}`)).kernel);
    const { ready: refused } = await TestKernel.open(object, "k64");
    expect(refused).toMatchObject({
      type: "error",
      kern_return: KERN_RESOURCE_SHORTAGE,
      code: "too_many_kernels",
    });
    expect((await stat(object)).kernels).toHaveLength(64);
    const { ready: known } = await TestKernel.open(object, "k0", { id: 50 });
    expect(known.type).toBe("memory_object_ready");
    for (const k of kernels) k.close();
  });
});
