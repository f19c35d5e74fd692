// The client reads any range, however fragmented: the object refuses a read that would need more
// R2 calls than one request may make (422 `too_fragmented`, docs/limits.md), and `HttpClient.read`
// reads such a range in halves instead. Here a range of 300 pages lies in 300 one-page segments
// (a SYNCHRONOUS synchronize per page); the idle flush and upkeep are kept out of the test's time
// (a long FLUSH_DELAY_MS), so compaction does not merge them first.
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, KernReturnError, VM_SYNC_SYNCHRONOUS } from "../../client";
import { FAST_VARS, startHarness, type Harness } from "./harness";

const OBJECT = "fragmented-client";
const PAGE = 4096;
const PAGES = 300;

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ ...FAST_VARS, FLUSH_DELAY_MS: "600000" });
});
afterAll(async () => {
  await harness?.close();
});

it("reads a range spread over 300 segments, which one request may not read", async () => {
  const http = new HttpClient(harness.url);
  const expected = new Uint8Array(PAGES * PAGE);
  for (let page = 0; page < PAGES; page++) {
    const bytes = new Uint8Array(PAGE).fill((page * 7) % 251);
    expected.set(bytes, page * PAGE);
    await http.write(OBJECT, page * PAGE, bytes);
    await http.synchronize(OBJECT, page * PAGE, PAGE, VM_SYNC_SYNCHRONOUS);
  }
  // One request for the whole range is refused before any byte is sent...
  const refused = await fetch(
    `${harness.url}v1/objects/${OBJECT}/pages?offset=0&length=${PAGES * PAGE}`,
  );
  expect(refused.status).toBe(422);
  expect(await refused.json()).toMatchObject({ error: { code: "too_fragmented" } });
  // ...and the client reads it in halves.
  const bytes = await http.read(OBJECT, 0, PAGES * PAGE);
  expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
  // Other errors are not retried.
  await expect(http.read(OBJECT, 2 ** 50, PAGE)).rejects.toBeInstanceOf(KernReturnError);
});
