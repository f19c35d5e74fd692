// End to end, through the client only: eight kernels (each a KernelConnection and a PageCache)
// share one object on the real Worker, writing and msyncing overlapping ranges at once. Every
// completion must arrive exactly once, and the object must end up holding, page by page, the
// data_return the manager acked with the highest seqno (docs/protocol.md §3, docs/protocol.md §6).
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, VM_SYNC_ASYNCHRONOUS, VM_SYNC_SYNCHRONOUS } from "../../client";
import { seededRandom, startHarness, within, type Harness } from "./harness";
import { TrackedKernel, firstDifference, pattern } from "./kernels";

const OBJECT = "e2e-eight-kernels";
const PAGE = 4096;
const PAGES = 24;
const KERNELS = 8;
const ROUNDS = 20;

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness?.close();
});

it("eight kernels writing and msyncing overlapping ranges: each completion once, newest bytes win", async () => {
  const kernels: TrackedKernel[] = [];
  for (let k = 0; k < KERNELS; k++) {
    kernels.push(
      await TrackedKernel.connect({
        url: harness.url,
        object: OBJECT,
        kernel: `k${k}`,
        pageSize: PAGE,
      }),
    );
  }

  await within(Promise.all(kernels.map((kernel, k) => runKernel(kernel, k))), 60_000, "the run");

  for (const kernel of kernels) {
    kernel.expectEachCompletionOnce();
    // No socket dropped here, so the wire carried each completion exactly once too.
    const wireMids = kernel.log.received
      .filter((f) => f.header.type === "memory_object_synchronize_completed")
      .map((f) => f.header.mid as number);
    expect(wireMids).toHaveLength(kernel.msyncs.length);
    expect(kernel.log.sockets).toHaveLength(1);
  }

  // Page by page, the data_return acked with the highest seqno, from what the wire carried.
  const expected = new Uint8Array(PAGES * PAGE);
  const newest = new Map<number, number>();
  const seqnos = new Set<number>();
  let returns = 0;
  for (const kernel of kernels) {
    const acks = new Map<number, number[]>();
    for (const frame of kernel.log.received) {
      if (frame.header.type !== "ack") continue;
      acks.set(frame.header.id, [...(acks.get(frame.header.id) ?? []), frame.header.seqno]);
    }
    for (const frame of kernel.log.sent) {
      if (frame.header.type !== "memory_object_data_return") continue;
      returns++;
      const acked = acks.get(frame.header.id) ?? [];
      expect(acked, `acks of ${kernel.name} id ${frame.header.id}`).toHaveLength(1);
      const seqno = acked[0]!;
      expect(seqnos.has(seqno), `seqno ${seqno} given twice`).toBe(false);
      seqnos.add(seqno);
      const firstPage = frame.header.offset / PAGE;
      for (let i = 0; i < frame.header.length / PAGE; i++) {
        if ((newest.get(firstPage + i) ?? -1) > seqno) continue;
        newest.set(firstPage + i, seqno);
        expected.set(frame.payload!.subarray(i * PAGE, (i + 1) * PAGE), (firstPage + i) * PAGE);
      }
    }
  }
  expect(returns).toBeGreaterThan(KERNELS * 8);

  const http = new HttpClient(harness.url);
  const stored = await http.read(OBJECT, 0, PAGES * PAGE);
  expect(firstDifference(stored, expected)).toBe(-1);
  const status = await http.stat(OBJECT);
  expect(status.pages).toBe(newest.size);
  expect(status.syncs).toBe(0);
  // Every kernel's last msync was SYNCHRONOUS over the whole object, after all its returns.
  expect(status.journal_pages).toBe(0);
  for (const kernel of kernels) {
    const known = status.kernels.find((s) => s.kernel === kernel.name);
    expect(known?.last_id).toBe(kernel.lastStateChangingId());
  }

  for (const kernel of kernels) kernel.close();
});

/** One kernel's part: writes (some partial pages) and msyncs in flight while it goes on. */
async function runKernel(kernel: TrackedKernel, k: number): Promise<void> {
  const random = seededRandom(4242 + k);
  for (let round = 0; round < ROUNDS; round++) {
    // Mostly whole pages; every third write starts and ends inside a page (a fault, then a merge).
    const partial = round % 3 === 2;
    const firstPage = Math.floor(random() * (PAGES - 3));
    const pages = 1 + Math.floor(random() * 3);
    const offset = firstPage * PAGE + (partial ? 100 + k : 0);
    const length = pages * PAGE - (partial ? 300 : 0);
    await kernel.cache.write(offset, pattern(k, round, length));
    if (random() < 0.7) {
      // An msync over a range around the write, overlapping other kernels' ranges.
      const from = Math.max(0, firstPage - Math.floor(random() * 2)) * PAGE;
      const to = Math.min(PAGES, firstPage + pages + Math.floor(random() * 2)) * PAGE;
      kernel.msync(from, to - from, random() < 0.5 ? VM_SYNC_SYNCHRONOUS : VM_SYNC_ASYNCHRONOUS);
    }
    // Pace the kernels so their frames interleave at the manager.
    await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 4)));
  }
  kernel.msync(0, PAGES * PAGE, VM_SYNC_SYNCHRONOUS);
  await kernel.settled();
}
