// A kernel asks for a coherent object with KernelConnection's `coherent` option (see
// docs/protocol.md §10): the first writer's init fixes the mode; another mode is refused.
import { afterAll, beforeAll, expect, it } from "vitest";
import { KernelConnection } from "../../client";
import { startHarness, type Harness } from "./harness";

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(() => harness?.close());

it("asks for the mode at init; the other mode is refused, no mode is welcome", async () => {
  const connect = (kernel: string, coherent?: boolean) =>
    KernelConnection.connect({
      url: harness.url,
      object: "client-mode",
      kernel,
      connectTimeoutMs: 10_000,
      ...(coherent !== undefined && { coherent }),
    });
  const first = await connect("k1", true);
  expect(first.ready?.coherent).toBe(true);
  await expect(connect("k2", false)).rejects.toThrow(
    /mode_mismatch|differs from the object's mode/,
  );
  const third = await connect("k3");
  expect(third.ready?.coherent).toBe(true);
  first.close();
  third.close();
});
