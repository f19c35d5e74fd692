/**
 * W4: 32 kernels on one object, msync latency against W2's p50.
 */
import {
  HttpClient,
  KernelConnection,
  PageCache,
  VM_SYNC_ASYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS,
} from "../../client";
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
  const opened = await openKernels(url, object, kernels);
  const result = await writeAndMsync(opened, rounds);
  await closeKernels(url, object, opened);
  return result;
}

/** The kernels of W4, connected, with their errors collected. */
export interface OpenKernels {
  connections: KernelConnection[];
  errors: string[];
}

export async function openKernels(url: string, object: string, kernels: number) {
  const errors: string[] = [];
  const connections = await Promise.all(
    Array.from({ length: kernels }, (_, k) => connect(url, object, `k${k}`)),
  );
  connections.forEach((connection, k) =>
    connection.on("error", (error) => errors.push(`k${k}: ${error.message}`)),
  );
  return { connections, errors } as OpenKernels;
}

/** W4's timed part: every kernel's rounds at once; latencies of each msync. */
export async function writeAndMsync({ connections, errors }: OpenKernels, rounds: number) {
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
      cache.detach();
    }),
  );
  const elapsedMs = elapsed(start);
  return {
    kernels: connections.length,
    msyncs: latencies.length,
    latencies,
    errors,
    elapsedMs,
  } as ManyKernels;
}

export async function closeKernels(url: string, object: string, { connections }: OpenKernels) {
  for (const connection of connections) await connection.terminate().catch(() => {});
  await new HttpClient(url).remove(object);
}
