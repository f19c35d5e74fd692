/**
 * Linearizability on real kernels (docs/protocol.md §10.8): kernels reading and writing single
 * pages through their page caches, and HTTP reading and writing beside them, record a history
 * with real call and return times, and the checker (test/helpers/linearizability.ts) judges it.
 * One workload runs both ways: on a coherent object every seed's history must be linearizable;
 * on an object without coherence the same workload must be caught (kernels keep stale copies).
 *
 * When an operation takes effect, and so the interval recorded for it:
 *
 * - `cache.write` resolving: on a coherent object the kernel is then the page's writer with the
 *   bytes in its cache, and anyone else who reads or writes the page must first have the manager
 *   demote or flush it, which returns the dirty page (docs/protocol.md §10.3 and
 *   docs/protocol.md §10.4). No msync is needed for others to see it; some writes add one anyway,
 *   and their interval runs to its end.
 * - `cache.update`: an atomic read-modify-write, recorded as a read of what `fn` saw and a write
 *   of what it returned, each spanning the whole call (an atomic pair placed at one instant is
 *   also a valid order of the two alone, so this only checks less than atomicity, never more).
 * - `cache.read` resolving, served from the cache when the page is held there.
 * - HTTP: a `PUT …/pages` when it answers, a `GET …/pages` when its bytes arrive
 *   (docs/protocol.md §10.7).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, KernelConnection, PageCache, VM_SYNC_ASYNCHRONOUS } from "../../client";
import {
  HistoryRecorder,
  checkLinearizability,
  type LinearizabilityResult,
} from "../helpers/linearizability";
import { seededRandom, startHarness, type Harness } from "./harness";

const PAGE = 4096;
const PAGES = 3;
const KERNELS = 4;
/** Operations each kernel, and HTTP, runs one after another. */
const OPERATIONS = 40;
const COHERENT_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const INCOHERENT_SEEDS = [1, 2, 3];

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
 * Every kernel and HTTP run `OPERATIONS` random single-page operations each, all at once, and the
 * history of them all is checked. What each does is fixed by the seed; how they interleave is not.
 */
async function runWorkload(
  coherent: boolean,
  seed: number,
): Promise<{ result: LinearizabilityResult; recorded: number; lockRequests: number }> {
  const object = `history-${coherent ? "coherent" : "incoherent"}-${seed}`;
  const http = new HttpClient(harness.url);
  const kernels = await Promise.all(
    Array.from({ length: KERNELS }, async (_, i) => {
      const connection = await KernelConnection.connect({
        url: harness.url,
        object,
        kernel: `k${i}`,
        coherent,
      });
      return { name: `k${i}`, connection, cache: new PageCache(connection) };
    }),
  );
  // Every page exists (as zeros) before the history starts, so HTTP reads are never past the end.
  await http.write(object, 0, new Uint8Array(PAGES * PAGE));
  const history = new HistoryRecorder();
  let nextValue = 1;
  // Lock requests the kernels were sent: a coherent run must have moved pages between them.
  let lockRequests = 0;
  for (const { connection } of kernels) connection.on("lock_request", () => lockRequests++);

  const kernelOperations = async (
    { name, cache }: (typeof kernels)[number],
    random: () => number,
  ) => {
    for (let i = 0; i < OPERATIONS; i++) {
      const page = Math.floor(random() * PAGES);
      const choice = random();
      if (choice < 0.45) {
        const done = history.read(name, page);
        done(valueOf(await cache.read(page * PAGE, PAGE)));
      } else if (choice < 0.7) {
        const value = nextValue++;
        const done = history.write(name, page, value);
        await cache.write(page * PAGE, pageWith(value));
        done();
      } else if (choice < 0.8) {
        const value = nextValue++;
        const done = history.write(name, page, value);
        await cache.write(page * PAGE, pageWith(value));
        await cache.msync(page * PAGE, PAGE, VM_SYNC_ASYNCHRONOUS);
        done();
      } else {
        const value = nextValue++;
        const read = history.read(name, page);
        const done = history.write(name, page, value);
        let seen = -1;
        await cache.update(page * PAGE, PAGE, (bytes) => {
          seen = valueOf(bytes);
          return pageWith(value);
        });
        read(seen);
        done();
      }
    }
  };

  const httpOperations = async (random: () => number) => {
    for (let i = 0; i < OPERATIONS; i++) {
      const page = Math.floor(random() * PAGES);
      if (random() < 0.5) {
        const done = history.read("http", page);
        done(valueOf(await http.read(object, page * PAGE, PAGE)));
      } else {
        const value = nextValue++;
        const done = history.write("http", page, value);
        await http.write(object, page * PAGE, pageWith(value));
        done();
      }
    }
  };

  try {
    await Promise.all([
      ...kernels.map((kernel, i) => kernelOperations(kernel, seededRandom(seed * 100 + i))),
      httpOperations(seededRandom(seed * 100 + KERNELS)),
    ]);
  } finally {
    for (const { connection } of kernels) connection.close();
  }
  const result = checkLinearizability(history.operations);
  return { result, recorded: history.operations.length, lockRequests };
}

it(
  "finds kernels and HTTP on a coherent object linearizable, seed after seed",
  { timeout: 60_000 },
  async () => {
    for (const seed of COHERENT_SEEDS) {
      const { result, recorded, lockRequests } = await runWorkload(true, seed);
      if (!result.ok) console.log(`[coherent, seed ${seed}] ${result.explanation}`);
      expect(result, `seed ${seed}`).toMatchObject({ ok: true, operations: recorded });
      expect(recorded).toBeGreaterThanOrEqual((KERNELS + 1) * OPERATIONS);
      expect(lockRequests, `seed ${seed}`).toBeGreaterThan(OPERATIONS);
    }
  },
);

it("catches the same workload on an object without coherence", { timeout: 30_000 }, async () => {
  for (const seed of INCOHERENT_SEEDS) {
    const { result } = await runWorkload(false, seed);
    expect(result, `seed ${seed}`).toMatchObject({ ok: false, verdict: "violation" });
    if (!result.ok)
      console.log(`[coherence off, seed ${seed}] ${result.explanation.split("\n")[0]}`);
  }
});
