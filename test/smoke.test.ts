import { exports } from "cloudflare:workers";
import { expect, it } from "vitest";

it("serves the API description", async () => {
  const response = await exports.default.fetch("http://edgepager.test/");
  expect(response.status).toBe(200);
  expect(await response.json()).toMatchObject({ service: "edgepager" });
});

it("writes, synchronizes and reads back over HTTP", async () => {
  const page = new Uint8Array(4096).fill(7);
  const put = await exports.default.fetch(
    "http://edgepager.test/v1/objects/smoke/pages?offset=8192",
    {
      method: "PUT",
      body: page,
    },
  );
  expect(await put.json()).toMatchObject({ offset: 8192, length: 4096 });
  const sync = await exports.default.fetch("http://edgepager.test/v1/objects/smoke/synchronize", {
    method: "POST",
    body: JSON.stringify({ offset: 0, length: 16384, sync_flags: 2 }),
  });
  expect(await sync.json()).toMatchObject({ type: "memory_object_synchronize_completed" });
  const read = await exports.default.fetch(
    "http://edgepager.test/v1/objects/smoke/pages?offset=4096&length=8192",
  );
  const bytes = new Uint8Array(await read.arrayBuffer());
  expect(bytes.slice(0, 4096).every((b) => b === 0)).toBe(true);
  expect(bytes.slice(4096).every((b) => b === 7)).toBe(true);
});
