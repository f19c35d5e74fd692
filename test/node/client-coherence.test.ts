// PageCache on a coherent object (docs/protocol.md §10) against the real Worker: a write is seen by
// another kernel's next read without any msync; a write to a page a read demoted unlocks it
// first; two caches updating one page at once lose no update; a lock request touching an
// update's range is answered only after the update's return is acked; and a kernel that departs
// with dirty pages loses them (docs/protocol.md §10.5). The same frame by frame against a
// manager the test plays is test/node/client-coherence-frames.test.ts.
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, KernelConnection, PageCache, VM_PROT_WRITE } from "../../client";
import {
  newWireLog,
  recordingWebSocket,
  seededRandom,
  startHarness,
  within,
  type Harness,
} from "./harness";
import { waitFor } from "../helpers/wait";

const PAGE = 4096;

let harness: Harness;
let http: HttpClient;
beforeAll(async () => {
  harness = await startHarness();
  http = new HttpClient(harness.url);
});
afterAll(async () => {
  await harness?.close();
});

async function kernel(object: string, name: string) {
  const log = newWireLog();
  const connection = await KernelConnection.connect({
    url: harness.url,
    object,
    kernel: name,
    pageSize: PAGE,
    coherent: true,
    backoff: { initialMs: 20, maxMs: 200 },
    WebSocket: recordingWebSocket(log),
  });
  expect(connection.ready?.coherent).toBe(true);
  return { connection, cache: new PageCache(connection), log };
}

const filled = (value: number, length = PAGE) => new Uint8Array(length).fill(value);
const u64 = (bytes: Uint8Array) =>
  Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
function increment(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(u64(bytes) + 1), true);
  return out;
}

it("a write by one kernel is seen by another's next read, and over HTTP, without msync", async () => {
  const object = "coherence-write-read";
  const a = await kernel(object, "a");
  const b = await kernel(object, "b");
  expect((await b.cache.read(0, PAGE))[0]).toBe(0); // b caches page 0 as a reader
  await a.cache.write(0, filled(1));
  expect(
    a.log.sent.find((m) => m.header.type === "memory_object_data_request")?.header,
  ).toMatchObject({ offset: 0, length: PAGE, desired_access: 3 });
  // b was asked to flush its copy before a became the writer: its next read asks again.
  expect((await b.cache.read(0, PAGE))[0]).toBe(1);
  expect((await http.read(object, 0, PAGE))[0]).toBe(1);
  await a.cache.write(100, filled(2, 10));
  expect((await b.cache.read(100, 1))[0]).toBe(2);
  expect((await http.read(object, 100, 1))[0]).toBe(2);
  // No msync and no synchronize anywhere: the bytes moved through demotions and flushes.
  for (const { log } of [a, b]) {
    expect(log.sent.filter((m) => m.header.type === "memory_object_synchronize")).toHaveLength(0);
  }
  a.connection.close();
  b.connection.close();
});

it("a write to a page a read demoted unlocks it first, and the reader then sees it", async () => {
  const object = "coherence-unlock";
  const a = await kernel(object, "a");
  const b = await kernel(object, "b");
  await a.cache.write(0, filled(1));
  expect((await b.cache.read(0, PAGE))[0]).toBe(1); // a is demoted: read-only
  const demote = a.log.received.find((m) => m.header.type === "memory_object_lock_request");
  expect(demote?.header).toMatchObject({ should_flush: false, lock_value: VM_PROT_WRITE });
  await a.cache.write(0, filled(3));
  const unlock = a.log.sent.find((m) => m.header.type === "memory_object_data_unlock");
  expect(unlock?.header).toMatchObject({ offset: 0, length: PAGE, desired_access: VM_PROT_WRITE });
  expect(a.log.sent.filter((m) => m.header.type === "memory_object_data_request")).toHaveLength(1);
  expect((await b.cache.read(0, PAGE))[0]).toBe(3);
  a.connection.close();
  b.connection.close();
});

it("two caches updating one page at once lose no update", async () => {
  const object = "coherence-update-race";
  const kernels = [await kernel(object, "a"), await kernel(object, "b")];
  const EACH = 40;
  const results = await within(
    Promise.all(
      kernels.map(async ({ cache }) => {
        const seen: number[] = [];
        for (let i = 0; i < EACH; i++) seen.push(u64(await cache.update(8, 8, increment)));
        return seen;
      }),
    ),
    30_000,
    "the updates",
  );
  // Every value from 1 to 2 × EACH was produced exactly once, by one kernel or the other.
  expect(results.flat().sort((x, y) => x - y)).toEqual(
    Array.from({ length: 2 * EACH }, (_, i) => i + 1),
  );
  expect(u64(await http.read(object, 8, 8))).toBe(2 * EACH);
  for (const { connection } of kernels) connection.close();
});

it("updates of overlapping multi-page ranges by three kernels, between reads, neither deadlock nor lose an increment", async () => {
  const object = "coherence-update-ranges";
  const kernels = [await kernel(object, "a"), await kernel(object, "b"), await kernel(object, "c")];
  const random = seededRandom(3);
  const RANGES = [
    [0, 2],
    [1, 3],
    [0, 3],
    [2, 3],
  ] as const;
  /** Updates covering each page: each adds one to the counter at the start of every page. */
  const expected = [0, 0, 0];
  const plans = kernels.map(() =>
    Array.from({ length: 25 }, () => RANGES[Math.floor(random() * RANGES.length)]!),
  );
  for (const [first, end] of plans.flat()) for (let p = first; p < end; p++) expected[p]!++;
  await within(
    Promise.all(
      kernels.map(async ({ cache }, k) => {
        for (const [first, end] of plans[k]!) {
          // A read first now and then: the pages are then read-only here, and the update unlocks them.
          if (random() < 0.3) await cache.read(first * PAGE, (end - first) * PAGE);
          await cache.update(first * PAGE, (end - first) * PAGE, (bytes) => {
            for (let p = 0; p < end - first; p++) {
              const counter = new DataView(bytes.buffer, bytes.byteOffset + p * PAGE, 8);
              counter.setBigUint64(0, counter.getBigUint64(0, true) + 1n, true);
            }
            return bytes;
          });
        }
      }),
    ),
    30_000,
    "the updates",
  );
  const pages = await http.read(object, 0, 3 * PAGE);
  expect([0, 1, 2].map((p) => u64(pages.subarray(p * PAGE)))).toEqual(expected);
  expect(
    kernels.some(({ log }) => log.sent.some((m) => m.header.type === "memory_object_data_unlock")),
    "some update unlocked pages it had read",
  ).toBe(true);
  for (const { connection } of kernels) connection.close();
});

it("a lock request touching an update's range is answered only after the update's return is acked", async () => {
  const object = "coherence-update-defers";
  const a = await kernel(object, "a");
  const b = await kernel(object, "b");
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const update = a.cache.update(0, 8, async (bytes) => {
    await gate;
    return increment(bytes);
  });
  await waitFor(() => a.cache.stats.cached === 1, "a to hold the page");
  // b's read asks the manager, which asks a (the writer) to return and keep the page read-only.
  const read = b.cache.read(0, 8);
  await waitFor(
    () => a.log.received.some((m) => m.header.type === "memory_object_lock_request"),
    "the demotion to reach a",
  );
  const returnId = () =>
    a.log.sent.find((m) => m.header.type === "memory_object_data_return")?.header.id as number;
  /** How many messages a had sent when its return's ack arrived. */
  let sentAtAck = -1;
  a.log.onReceive = (frame) => {
    if (frame.header.type === "ack" && frame.header.id === returnId())
      sentAtAck = a.log.sent.length;
  };
  expect(
    a.log.sent.some((m) => m.header.type === "memory_object_lock_completed"),
    "a answers nothing while fn runs",
  ).toBe(false);
  open();
  expect(u64(await update)).toBe(1);
  expect(u64(await read)).toBe(1);
  const completed = a.log.sent.findIndex((m) => m.header.type === "memory_object_lock_completed");
  expect(sentAtAck).toBeGreaterThan(0);
  expect(completed, "lock_completed after the return's ack").toBeGreaterThanOrEqual(sentAtAck);
  a.connection.close();
  b.connection.close();
});

it("a kernel that departs with dirty pages loses them: its next ready flushes them", async () => {
  const object = "coherence-departure";
  const a = await kernel(object, "a");
  await a.cache.write(0, filled(1));
  await a.cache.msync(0, PAGE);
  await a.cache.write(0, filled(2));
  expect(a.cache.stats.dirty).toBe(1);
  let flushed = false;
  a.connection.on("flush", () => (flushed = true));
  a.log.sockets.at(-1)!.close(1000, "test: departs");
  await waitFor(() => flushed && a.connection.connected, "a to come back with flush: true");
  expect(a.cache.stats).toMatchObject({ cached: 0, dirty: 0 });
  // What it returned and synchronized stays; the write after it is gone, here and everywhere.
  expect((await a.cache.read(0, PAGE))[0]).toBe(1);
  expect((await http.read(object, 0, PAGE))[0]).toBe(1);
  a.connection.close();
});

it("a shrink unlocks the pages it cuts, so the manager takes it, and other kernels read zeros there", async () => {
  const object = "coherence-shrink";
  const a = await kernel(object, "a");
  await a.cache.write(0, filled(1, 3 * PAGE));
  await a.cache.commit();
  const b = await kernel(object, "b");
  expect((await b.cache.read(2 * PAGE, 1))[0]).toBe(1);
  await b.cache.setSize(PAGE + 10);
  await b.cache.commit();
  expect(
    b.log.sent.find((m) => m.header.type === "memory_object_data_unlock")?.header,
  ).toMatchObject({ offset: PAGE, length: 2 * PAGE, desired_access: VM_PROT_WRITE });
  expect((await http.stat(object)).size).toBe(PAGE + 10);
  // a was asked to flush the cut pages: it reads them again, cut.
  const read = await a.cache.read(PAGE, 2 * PAGE);
  expect([read[0], read[9], read[10], read[PAGE]]).toEqual([1, 1, 0, 0]);
  a.connection.close();
  b.connection.close();
});
