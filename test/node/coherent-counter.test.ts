// The counter (docs/protocol.md §10): 8 kernels, each its own KernelConnection and PageCache with
// batches on, share one coherent object and each run 200 atomic increments of one 64-bit
// little-endian counter at offset 0 through `PageCache.update`, while the test drops their
// sockets and evicts the object at random moments. An update whose return was refused
// (fenced, docs/protocol.md §10.6) or whose pages went with a departure (docs/protocol.md §10.5)
// runs again; one whose return was acked, on the socket or by the ready's last_id after a
// reconnect, never does. So the counter ends at exactly 1,600, every value from 1 to 1,600 was
// produced by exactly one update, and each kernel's update resolved exactly 200 times.
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, KernelConnection, PageCache } from "../../client";
import {
  newWireLog,
  recordingWebSocket,
  seededRandom,
  startHarness,
  within,
  type Harness,
  type WireLog,
} from "./harness";

const PAGE = 4096;
const KERNELS = 8;
const EACH = 200;
const SEED = 14;
/**
 * Random drops and evictions at most (the returns lost or cut come on top): on a slow machine
 * the run takes longer, and without a cap it would then also be disrupted more, and longer still.
 */
const MAX_DISRUPTIONS = 200;

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness?.close();
});

const u64 = (bytes: Uint8Array) =>
  Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));

interface Counter {
  name: string;
  connection: KernelConnection;
  cache: PageCache;
  log: WireLog;
  /** The value each resolved update produced. */
  resolved: number[];
  /** Times fn ran: more than the updates when some had to run again. */
  runs: number;
}

/**
 * Drops aimed at an update's riskiest moment, its data_return: `lost` loses the frame and closes
 * the socket (the manager sees the departure first; the resent return is fenced and fn runs
 * again); `after` closes it right behind the frame (the return is applied first; the ready's
 * last_id acks it and fn does not run again).
 */
interface ReturnChaos {
  lost: () => boolean;
  after: () => boolean;
  count: { lost: number; after: number };
}

function chaoticWebSocket(log: WireLog, chaos: ReturnChaos | null): typeof WebSocket {
  const Recording = recordingWebSocket(log);
  return class extends Recording {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      const carriesReturn = () => {
        const text = typeof data === "string" ? data : new TextDecoder().decode(data as Uint8Array);
        return text.includes('"memory_object_data_return"');
      };
      if (chaos && carriesReturn()) {
        if (chaos.lost()) {
          chaos.count.lost++;
          this.close(1000, "test: frame lost");
          return;
        }
        if (chaos.after()) {
          chaos.count.after++;
          super.send(data);
          this.close(1000, "test: dropped after a return");
          return;
        }
      }
      super.send(data);
    }
  };
}

async function counterKernel(
  object: string,
  name: string,
  chaos: ReturnChaos | null = null,
): Promise<Counter> {
  const log = newWireLog();
  const connection = await KernelConnection.connect({
    url: harness.url,
    object,
    kernel: name,
    pageSize: PAGE,
    coherent: true,
    batch: true,
    backoff: { initialMs: 10, maxMs: 200 },
    WebSocket: chaoticWebSocket(log, chaos),
  });
  expect(connection.ready).toMatchObject({ coherent: true, batch: true });
  return { name, connection, cache: new PageCache(connection), log, resolved: [], runs: 0 };
}

it("8 kernels × 200 atomic increments, sockets dropped and the object evicted at random: exactly 1,600", async () => {
  const object = "coherent-counter";
  const random = seededRandom(SEED);
  const chaos: ReturnChaos = {
    lost: () => random() < 0.03,
    after: () => random() < 0.03,
    count: { lost: 0, after: 0 },
  };
  const kernels: Counter[] = [];
  for (let k = 0; k < KERNELS; k++) kernels.push(await counterKernel(object, `k${k}`, chaos));

  let running = true;
  const disruptions = { drops: 0, evictions: 0 };
  const disrupt = (async () => {
    while (running && disruptions.drops + disruptions.evictions < MAX_DISRUPTIONS) {
      await new Promise((resolve) => setTimeout(resolve, 30 + random() * 150));
      if (!running) break;
      if (random() < 0.75) {
        // The network goes under one kernel: the manager sees it depart.
        const socket = kernels[Math.floor(random() * KERNELS)]!.log.sockets.at(-1)!;
        if (socket.readyState === WebSocket.OPEN) {
          socket.close(1000, "test: drop");
          disruptions.drops++;
        }
      } else {
        // The object's memory goes; with "close" every socket with it. Right after another
        // eviction, before any kernel came back, there is no instance to evict: skip it.
        const evicted = await harness
          .evict(object, random() < 0.5 ? "close" : "hibernate")
          .then(() => true)
          .catch((error: Error) => {
            if (/not currently running/.test(error.message)) return false;
            throw error;
          });
        if (evicted) disruptions.evictions++;
      }
    }
  })();

  const started = Date.now();
  const increments = Promise.all(
    kernels.map(async (kernel) => {
      for (let i = 0; i < EACH; i++) {
        const after = await kernel.cache.update(0, 8, async (bytes) => {
          kernel.runs++;
          // Now and then fn takes a while, so a random drop can land while it runs.
          if (random() < 0.1) await new Promise((resolve) => setTimeout(resolve, 2));
          const out = new Uint8Array(8);
          new DataView(out.buffer).setBigUint64(0, BigInt(u64(bytes) + 1), true);
          return out;
        });
        kernel.resolved.push(u64(after));
      }
    }),
  );
  try {
    // About 15-30 s alone; the suite runs three files at once on two cores.
    await within(increments, 100_000, "every kernel's 200 increments");
  } finally {
    running = false;
    await disrupt;
  }
  const runs = kernels.reduce((sum, k) => sum + k.runs, 0);
  const sockets = kernels.reduce((sum, k) => sum + k.log.sockets.length, 0);
  console.log(
    `counter: ${KERNELS * EACH} increments in ${Date.now() - started} ms; ` +
      `${disruptions.drops} drops, ${disruptions.evictions} evictions, ${sockets} sockets, ` +
      `${chaos.count.lost} returns lost with their socket, ${chaos.count.after} sockets dropped right after a return; ` +
      `fn ran ${runs} times (${runs - KERNELS * EACH} again after a fence or a departure)`,
  );
  expect(disruptions.drops + disruptions.evictions).toBeGreaterThan(0);
  expect(chaos.count.lost, "some returns were lost, so fencing was exercised").toBeGreaterThan(0);
  expect(runs, "some updates ran fn again").toBeGreaterThan(KERNELS * EACH);

  for (const kernel of kernels) {
    expect(kernel.resolved, `${kernel.name}'s updates`).toHaveLength(EACH);
    // Its own increments come one after another: each sees a higher counter than the last.
    expect(kernel.resolved).toEqual([...kernel.resolved].sort((a, b) => a - b));
  }
  // Every value produced once: no increment lost, none applied twice.
  expect(kernels.flatMap((k) => k.resolved).sort((a, b) => a - b)).toEqual(
    Array.from({ length: KERNELS * EACH }, (_, i) => i + 1),
  );
  for (const kernel of kernels) kernel.connection.close();

  const http = new HttpClient(harness.url);
  expect(u64(await http.read(object, 0, 8))).toBe(KERNELS * EACH);
  const fresh = await counterKernel(object, "fresh");
  expect(u64(await fresh.cache.read(0, 8))).toBe(KERNELS * EACH);
  fresh.connection.close();
}, 110_000);
