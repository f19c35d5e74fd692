/**
 * The checker of coherent objects' tests (test/helpers/linearizability.ts) on real kernels, both
 * ways, before coherence itself is built (docs/protocol.md §10): kernels that read through their
 * page caches on an object without coherence keep stale copies, and the checker catches it;
 * the same kernels reading from the manager each time (their caches bypassed) give a history it
 * finds linearizable.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { KernelConnection, PageCache, VM_SYNC_ASYNCHRONOUS } from "../../client";
import { HistoryRecorder, checkLinearizability } from "../helpers/linearizability";
import { seededRandom, startHarness, type Harness } from "./harness";

const PAGE = 4096;
const PAGES = 3;
const KERNELS = 3;

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(() => harness?.close());

/** The value a page holds: its first four bytes. */
function valueOf(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
}

function pageWith(value: number): Uint8Array {
  const bytes = new Uint8Array(PAGE);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/**
 * Rounds in which every kernel does one random operation at once: a write of a fresh value
 * (written and msynced), or a read, through its cache or straight from the manager.
 */
async function runHistory(object: string, readThroughCache: boolean, seed: number) {
  const random = seededRandom(seed);
  const kernels = await Promise.all(
    Array.from({ length: KERNELS }, async (_, i) => {
      const connection = await KernelConnection.connect({
        url: harness.url,
        object,
        kernel: `k${i}`,
      });
      return { name: `k${i}`, connection, cache: new PageCache(connection) };
    }),
  );
  const history = new HistoryRecorder();
  let nextValue = 1;
  for (let round = 0; round < 40; round++) {
    await Promise.all(
      kernels.map(async ({ name, connection, cache }) => {
        const page = Math.floor(random() * PAGES);
        if (random() < 0.4) {
          const value = nextValue++;
          const done = history.write(name, page, value);
          await cache.write(page * PAGE, pageWith(value));
          await cache.msync(page * PAGE, PAGE, VM_SYNC_ASYNCHRONOUS);
          done();
          return;
        }
        const done = history.read(name, page);
        const bytes = readThroughCache
          ? await cache.read(page * PAGE, PAGE)
          : ((await connection.dataRequest(page * PAGE, PAGE)).data ?? new Uint8Array(PAGE));
        done(valueOf(bytes));
      }),
    );
  }
  for (const { connection } of kernels) connection.close();
  return checkLinearizability(history.operations);
}

it("catches kernels that keep stale copies on an object without coherence", async () => {
  const result = await runHistory("history-cached", true, 11);
  expect(result).toMatchObject({ ok: false, verdict: "violation" });
  if (!result.ok) console.log(`[coherence off] ${result.explanation.split("\n")[0]}`);
});

it("finds reads from the manager itself linearizable", async () => {
  const result = await runHistory("history-direct", false, 11);
  expect(result).toMatchObject({ ok: true });
});
