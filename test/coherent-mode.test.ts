/**
 * The mode of an object (docs/protocol.md §10): coherent or not, fixed with the page size by the
 * first init of a writer (`coherent: true`) or the first HTTP write (`?coherent=1`), reported by
 * ready and status; a later init or write naming the other mode is refused, one naming none is
 * welcome.
 */
import { describe, expect, it } from "vitest";
import { KERN_INVALID_ARGUMENT } from "../schema";
import { call, putPages, stat } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";

describe("the mode", () => {
  it("is fixed by the first init of a writer, and reported by ready and status", async () => {
    const object = "mode-init";
    const k = await TestKernel.connect(object, "k1");
    expect(await k.init({ coherent: true })).toMatchObject({
      type: "memory_object_ready",
      coherent: true,
    });
    expect(await stat(object)).toMatchObject({ coherent: true, page_size: 4096 });

    const other = await TestKernel.connect(object, "k2");
    expect(await other.init({ coherent: false })).toMatchObject({
      type: "error",
      kern_return: KERN_INVALID_ARGUMENT,
      code: "mode_mismatch",
      message: expect.stringContaining(
        "coherent (false) differs from the object's mode (coherent)",
      ),
    });
    // Without the field either mode is welcome.
    const { ready } = await TestKernel.open(object, "k3");
    expect(ready).toMatchObject({ type: "memory_object_ready", coherent: true });
    for (const kernel of [k, other]) kernel.close();
  });

  it("is off by default, for kernels and HTTP alike", async () => {
    const { kernel, ready } = await TestKernel.open("mode-default", "k1");
    expect(ready.coherent).toBe(false);
    expect(await stat("mode-default")).toMatchObject({ coherent: false });
    kernel.close();
  });

  it("is fixed by the first HTTP write with ?coherent=1; a later write naming the other mode gets 409", async () => {
    const object = "mode-http";
    expect((await putPages(object, 0, pageOf(1), "&coherent=1")).status).toBe(200);
    expect(await stat(object)).toMatchObject({ coherent: true });
    const refused = await putPages(object, 0, pageOf(2), "&coherent=0");
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      "mode_mismatch",
    );
    expect((await putPages(object, 0, pageOf(3))).status).toBe(200);
    const bad = await putPages(object, 0, pageOf(3), "&coherent=yes");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
      /^coherent must be 1 \(coherent\) or 0 \(not\)/,
    );
  });

  it("is fixed by a PATCH of a fresh object too", async () => {
    const object = "mode-patch";
    const response = await call(`/v1/objects/${object}?coherent=1`, {
      method: "PATCH",
      body: JSON.stringify({ size: 8192 }),
    });
    expect(response.status).toBe(200);
    expect(await stat(object)).toMatchObject({ coherent: true, size: 8192 });
  });
});
