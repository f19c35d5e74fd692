/**
 * W4: 32 kernels on one object, msync latency against W2's p50.
 */
import { HttpClient, PageCache, VM_SYNC_ASYNCHRONOUS, VM_SYNC_SYNCHRONOUS } from "../../client";
import { seededRandom } from "../../tools/random";
import { connect, pattern } from "../session";
import { PAGE, freshObject } from "../settings";
import { elapsed } from "../timing";

interface ManyKernels {
  kernels: number;
  msyncs: number;
  latencies: number[];
  errors: string[];
  elapsedMs: number;
}

/**
 * W4: `kernels` kernels on one object, each `rounds` times writing 1 to 4 pages somewhere in a
 * shared 512-page region and msyncing them (3 in 4 SYNCHRONOUS, else ASYNCHRONOUS). Counts every
 * error: a rejected call, an `error` event, a completion for another range.
 */
export async function manyKernels(url: string, kernels: number, rounds: number) {
  const object = freshObject("w4");
  const errors: string[] = [];
  const connections = await Promise.all(
    Array.from({ length: kernels }, (_, k) => connect(url, object, `k${k}`)),
  );
  connections.forEach((connection, k) =>
    connection.on("error", (error) => errors.push(`k${k}: ${error.message}`)),
  );
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    connections.map(async (connection, k) => {
      const cache = new PageCache(connection);
      const random = seededRandom(k + 1);
      for (let round = 0; round < rounds; round++) {
        const first = Math.floor(random() * 508);
        const count = 1 + Math.floor(random() * 4);
        const flags = random() < 0.75 ? VM_SYNC_SYNCHRONOUS : VM_SYNC_ASYNCHRONOUS;
        try {
          await cache.write(first * PAGE, pattern(count * PAGE, k * 1000 + round));
          const began = performance.now();
          const done = await cache.msync(first * PAGE, count * PAGE, flags);
          latencies.push(elapsed(began));
          if (done.offset !== first * PAGE || done.length !== count * PAGE) {
            errors.push(`k${k}: completion ${done.offset}+${done.length} for another range`);
          }
        } catch (error) {
          errors.push(`k${k} round ${round}: ${String(error)}`);
        }
      }
    }),
  );
  const elapsedMs = elapsed(start);
  for (const connection of connections) await connection.terminate().catch(() => {});
  await new HttpClient(url).remove(object);
  return { kernels, msyncs: latencies.length, latencies, errors, elapsedMs } as ManyKernels;
}
