// PageCache's reads and the object size (docs/protocol.md §13) against the real Worker, counted on
// the wire: read-ahead turns sequential page reads into one request per run; clean pages stay
// under maxCleanBytes, least recently used going first; pages past the known size are zeros
// without a request; setSize shrinks and grows through a commit; bad options throw naming them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient, KernelConnection, PageCache, VM_SYNC_SYNCHRONOUS } from "../../client";
import {
  newWireLog,
  recordingWebSocket,
  startHarness,
  type Harness,
  type WireLog,
} from "./harness";
import { firstDifference, pattern } from "./kernels";

const PAGE = 4096;
const KiB = 1024;
const MiB = 1024 * KiB;
const REQUEST = "memory_object_data_request";

let harness: Harness;
let http: HttpClient;
beforeAll(async () => {
  harness = await startHarness();
  http = new HttpClient(harness.url);
});
afterAll(async () => {
  await harness?.close();
});

async function connect(object: string, kernel = "k") {
  const log = newWireLog();
  const connection = await KernelConnection.connect({
    url: harness.url,
    object,
    kernel,
    pageSize: PAGE,
    WebSocket: recordingWebSocket(log),
  });
  return { connection, log };
}

function requests(log: WireLog) {
  return log.sent.filter((m) => m.header.type === REQUEST);
}

describe("read-ahead", () => {
  const object = "cache-read-ahead";
  const bytes = pattern(1, 0, 2 * MiB);
  beforeAll(async () => {
    await http.write(object, 0, bytes);
  });

  it.each([
    ["the default (1 MiB)", 2, undefined],
    ["readAheadBytes 64 KiB", 32, 64 * KiB],
  ])(
    "with %s, 512 sequential page reads make %i requests",
    async (_name, expected, readAheadBytes) => {
      const { connection, log } = await connect(object);
      const cache = new PageCache(connection, { readAheadBytes });
      for (let page = 0; page < 512; page++) {
        const read = await cache.read(page * PAGE, PAGE);
        expect(firstDifference(read, bytes.subarray(page * PAGE, (page + 1) * PAGE))).toBe(-1);
      }
      console.log(`read-ahead ${readAheadBytes ?? "default"}: ${requests(log).length} requests`);
      expect(requests(log)).toHaveLength(expected);
      connection.close();
    },
  );

  it("sends the requests of one read as one frame, each at most max_transfer", async () => {
    const { connection, log } = await connect(object);
    const cache = new PageCache(connection, { maxCleanBytes: 4 * MiB });
    const read = await cache.read(0, 2 * MiB);
    expect(firstDifference(read, bytes)).toBe(-1);
    const sent = requests(log);
    expect(sent.map((m) => m.header.length)).toEqual([MiB, MiB]);
    expect(new Set(sent.map((m) => m.frame)).size).toBe(1);
    connection.close();
  });
});

describe("the clean cache", () => {
  it("stays under maxCleanBytes, the least recently used page going first", async () => {
    const object = "cache-bounded";
    const bytes = pattern(2, 0, 2 * MiB);
    await http.write(object, 0, bytes);
    const { connection, log } = await connect(object);
    const cache = new PageCache(connection, { maxCleanBytes: 64 * KiB });
    let most = 0;
    for (let offset = 0; offset < bytes.length; offset += 16 * KiB) {
      const read = await cache.read(offset, 16 * KiB);
      expect(firstDifference(read, bytes.subarray(offset, offset + 16 * KiB))).toBe(-1);
      most = Math.max(most, cache.stats.cleanBytes);
    }
    expect(most).toBeLessThanOrEqual(64 * KiB);
    expect(cache.stats.cached).toBeLessThanOrEqual(16);
    // The most recent pages are there; the first ones were evicted.
    const before = requests(log).length;
    await cache.read(bytes.length - PAGE, PAGE);
    expect(requests(log)).toHaveLength(before);
    await cache.read(0, PAGE);
    expect(requests(log)).toHaveLength(before + 1);
    connection.close();
  });

  it("never evicts dirty pages", async () => {
    const { connection } = await connect("cache-dirty-kept");
    const cache = new PageCache(connection, { maxCleanBytes: 0 });
    await cache.write(0, pattern(3, 0, 8 * PAGE));
    await cache.read(16 * PAGE, 8 * PAGE);
    expect(cache.stats).toMatchObject({ cached: 8, dirty: 8, cleanBytes: 0 });
    await cache.commit();
    expect(cache.stats).toMatchObject({ cached: 0, dirty: 0 });
    expect(firstDifference(await cache.read(0, 8 * PAGE), pattern(3, 0, 8 * PAGE))).toBe(-1);
    connection.close();
  });
});

describe("the object size", () => {
  it("makes no request for pages wholly past it, nor for a partial write there", async () => {
    const object = "cache-past-size";
    await http.write(object, 0, pattern(4, 0, 2 * PAGE));
    const { connection, log } = await connect(object);
    const cache = new PageCache(connection);
    expect(cache.size).toBe(2 * PAGE);

    const read = await cache.read(0, 16 * PAGE);
    expect(firstDifference(read.subarray(0, 2 * PAGE), pattern(4, 0, 2 * PAGE))).toBe(-1);
    expect(read.subarray(2 * PAGE).every((b) => b === 0)).toBe(true);
    // One request, clipped at the size.
    expect(requests(log).map((m) => m.header.length)).toEqual([2 * PAGE]);

    expect((await cache.read(32 * PAGE, 4 * PAGE)).every((b) => b === 0)).toBe(true);
    await cache.write(40 * PAGE + 100, new Uint8Array(10).fill(9));
    expect(requests(log)).toHaveLength(1);
    expect(cache.size).toBe(40 * PAGE + 110);
    await cache.commit();
    // The manager's size: the end of the page returned. Writes send no size of their own: a
    // set_size could cut what another kernel wrote past it (docs/client.md).
    expect((await http.stat(object)).size).toBe(41 * PAGE);
    connection.close();
  });

  it("setSize shrinks and grows: here at once, at the manager with the commit", async () => {
    const object = "cache-set-size";
    const { connection, log } = await connect(object);
    const cache = new PageCache(connection);
    await cache.write(0, pattern(5, 0, 4 * PAGE));
    await cache.commit();
    expect((await http.stat(object)).size).toBe(4 * PAGE);

    await cache.setSize(PAGE + 100);
    expect(cache.size).toBe(PAGE + 100);
    const local = await cache.read(0, 4 * PAGE);
    expect(firstDifference(local.subarray(0, PAGE + 100), pattern(5, 0, PAGE + 100))).toBe(-1);
    expect(local.subarray(PAGE + 100).every((b) => b === 0)).toBe(true);
    // Not sent yet: the manager still has the old size.
    expect((await http.stat(object)).size).toBe(4 * PAGE);

    const from = log.sent.length;
    await cache.commit({ syncFlags: VM_SYNC_SYNCHRONOUS });
    const sent = log.sent.slice(from).filter((m) => m.header.type !== "received");
    expect(sent.map((m) => [m.header.type, m.header.size])).toEqual([
      ["memory_object_set_size", PAGE + 100],
      ["memory_object_synchronize", undefined],
    ]);
    expect(sent.every((m) => m.header.group === sent[0]!.header.group)).toBe(true);
    expect((await http.stat(object)).size).toBe(PAGE + 100);
    const shrunk = await http.read(object, 0, 4 * PAGE);
    expect(firstDifference(shrunk, local)).toBe(-1);

    // Grow, then a write inside: zeros between, the write's bytes, the size set exactly.
    await cache.setSize(6 * PAGE + 1);
    await cache.write(5 * PAGE, pattern(5, 5, 10));
    await cache.commit();
    expect((await http.stat(object)).size).toBe(6 * PAGE + 1);
    const grown = await http.read(object, 0, 7 * PAGE);
    expect(firstDifference(grown.subarray(0, 4 * PAGE), local)).toBe(-1);
    expect(firstDifference(grown.subarray(5 * PAGE, 5 * PAGE + 10), pattern(5, 5, 10))).toBe(-1);
    expect(grown.subarray(4 * PAGE, 5 * PAGE).every((b) => b === 0)).toBe(true);

    // Another kernel learns it from its ready; one told by HTTP takes it with noteSize.
    const other = await connect(object, "other");
    const otherCache = new PageCache(other.connection);
    expect(otherCache.size).toBe(6 * PAGE + 1);
    expect(await http.setSize(object, 2 * PAGE)).toMatchObject({ object, size: 2 * PAGE });
    otherCache.noteSize(2 * PAGE);
    expect(otherCache.size).toBe(2 * PAGE);
    expect((await otherCache.read(2 * PAGE, 4 * PAGE)).every((b) => b === 0)).toBe(true);
    expect(requests(other.log)).toHaveLength(0);
    other.connection.close();
    connection.close();
  });
});

describe("options", () => {
  it("bad values throw naming the option", async () => {
    const { connection } = await connect("cache-options");
    for (const name of ["maxCleanBytes", "readAheadBytes", "maxGroupBytes"]) {
      for (const bad of [-1, 1.5, "1", Number.NaN]) {
        expect(() => new PageCache(connection, { [name]: bad })).toThrow(name);
      }
    }
    const cache = new PageCache(connection);
    await expect(cache.read(0, 1, { timeoutMs: -1 })).rejects.toThrow("timeoutMs");
    await expect(cache.read(0, 1, { timeoutMs: "5" as never })).rejects.toThrow("timeoutMs");
    await expect(cache.write(0, new Uint8Array(1), { signal: {} as never })).rejects.toThrow(
      "signal",
    );
    await expect(cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS, { timeoutMs: -1 })).rejects.toThrow(
      "timeoutMs",
    );
    await expect(cache.commit({ syncFlags: -1 })).rejects.toThrow("syncFlags");
    await expect(cache.commit({ timeoutMs: Number.NaN })).rejects.toThrow("timeoutMs");
    await expect(cache.setSize(-1)).rejects.toThrow("size");
    await expect(cache.setSize(2 ** 50)).rejects.toThrow("max_size");
    expect(() => cache.noteSize(1.5)).toThrow("size");
    await expect(connection.dataReturn(0, new Uint8Array(PAGE), { group: 0 })).rejects.toThrow(
      "group",
    );
    await expect(connection.synchronize(0, PAGE, 2, { group: -1 })).rejects.toThrow("group");
    await expect(connection.setSize(-5)).rejects.toThrow("size");
    await expect(connection.dataRequest(0, PAGE, 1, { timeoutMs: -1 })).rejects.toThrow(
      "timeoutMs",
    );
    const aborted = AbortSignal.abort();
    await expect(connection.dataRequest(0, PAGE, 1, { signal: aborted })).rejects.toMatchObject({
      name: "AbortError",
      call: "dataRequest",
    });
    connection.close();
  });
});
