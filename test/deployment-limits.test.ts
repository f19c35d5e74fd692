/**
 * Limits that follow from the platform's (docs/limits.md) rather than from a var: a MAX_TRANSFER
 * that would bind a frame past the 2 MB per SQL value is refused at start-up, and `max_size` is
 * what the object's database can index within its share of the 10 GB per object; a socket's
 * attachment stays within the 2,048 bytes hibernation keeps.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_DATABASE_BYTES, SQLITE_BYTES_PER_PAGE, readLimits } from "../durable/limits";
import { KERN_INVALID_ADDRESS } from "../schema";
import { objectStub } from "./helpers/buckets";
import { stat } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";

describe("start-up checks", () => {
  it("refuses a MAX_TRANSFER above 1 MiB, naming the var and the reason", () => {
    expect(() => readLimits({ ...env, MAX_TRANSFER: "2097152" } as Env)).toThrow(
      /MAX_TRANSFER must not exceed 1048576 .*2 MB per value/,
    );
    expect(readLimits(env).maxTransfer).toBe(1048576);
  });
});

describe("socket attachments", () => {
  it("stay far under the platform's 2,048 bytes, even with the longest kernel id", async () => {
    const kernelId = "k".repeat(64);
    const { kernel } = await TestKernel.open("attachment-size", kernelId);
    const sizes = await runInDurableObject(objectStub("attachment-size"), (_i, state) =>
      state.getWebSockets().map((ws) => JSON.stringify(ws.deserializeAttachment()).length),
    );
    expect(sizes).toHaveLength(1);
    expect(sizes[0]).toBeLessThan(256);
    kernel.close();
  });
});

describe("max_size", () => {
  const indexable = (pageSize: number) =>
    Math.floor(MAX_DATABASE_BYTES / SQLITE_BYTES_PER_PAGE) * pageSize;

  it("is what the page index can hold: about 85 GB at 512-byte pages, 683 GB at 4 KiB", async () => {
    for (const [pageSize, expected] of [
      [512, 85_333_332_992],
      [4096, 682_666_663_936],
    ] as const) {
      expect(indexable(pageSize)).toBe(expected);
      const object = `max-size-${pageSize}`;
      const { kernel, ready } = await TestKernel.open(object, "k1", { pageSize });
      expect(ready.max_size).toBe(expected);
      expect((await stat(object)).max_size).toBe(expected);
      kernel.close();
    }
  });

  it("is MAX_SIZE (1 TiB) once the page index can hold that much (64 KiB pages)", async () => {
    const { kernel, ready } = await TestKernel.open("max-size-65536", "k1", { pageSize: 65536 });
    expect(indexable(65536)).toBeGreaterThan(2 ** 40);
    expect(ready.max_size).toBe(2 ** 40);
    kernel.close();
  });

  it("refuses a write past it with KERN_INVALID_ADDRESS", async () => {
    const { kernel } = await TestKernel.open("max-size-past", "k1", { pageSize: 512 });
    const id = kernel.dataReturn(indexable(512), new Uint8Array(512));
    expect(await kernel.next((m) => m.type === "error" && m.reply_to === id)).toMatchObject({
      kern_return: KERN_INVALID_ADDRESS,
      code: "out_of_range",
    });
    kernel.close();
  });
});
