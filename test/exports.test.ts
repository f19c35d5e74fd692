// The Worker module's public surface (CONTRIBUTING.md §8): its default handler and the Durable Object.
import { expect, it } from "vitest";

it("exports exactly the Worker and the MemoryObject class", async () => {
  const worker = await import("../worker");
  expect(Object.keys(worker).sort()).toEqual(["MemoryObject", "default"]);
});
