/**
 * W4: 32 kernels on one object, msync latency against W2's p50; W4 coherent: the same on a
 * coherent object (docs/protocol.md §10), where each write first makes its kernel the writer of
 * the pages it writes.
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
  /** How long each `cache.write` took: on a coherent object, getting write access first. */
  writeLatencies: number[];
  /** Lock requests the kernels were sent (a coherent object's flushes and demotions). */
  lockRequests: number;
  errors: string[];
  elapsedMs: number;
}

/**
 * W4: `kernels` kernels on one object, each `rounds` times writing 1 to 4 pages somewhere in a
 * shared 512-page region and msyncing them (3 in 4 SYNCHRONOUS, else ASYNCHRONOUS). Counts every
 * error: a rejected call, an `error` event, a completion for another range.
 */
export async function manyKernels(url: string, kernels: number, rounds: number, coherent = false) {
  const object = freshObject(coherent ? "w4c" : "w4");
  const opened = await openKernels(url, object, kernels, coherent);
  const result = await writeAndMsync(opened, rounds);
  await closeKernels(url, object, opened);
  return result;
}

/** The kernels of W4, connected, with their errors collected. */
export interface OpenKernels {
  connections: KernelConnection[];
  errors: string[];
}

export async function openKernels(
  url: string,
  object: string,
  kernels: number,
  coherent?: boolean,
) {
  const errors: string[] = [];
  const connections = await Promise.all(
    Array.from({ length: kernels }, (_, k) => connect(url, object, `k${k}`, { coherent })),
  );
  connections.forEach((connection, k) =>
    connection.on("error", (error) => errors.push(`k${k}: ${error.message}`)),
  );
  return { connections, errors } as OpenKernels;
}

/** W4's timed part: every kernel's rounds at once; latencies of each msync. */
export async function writeAndMsync({ connections, errors }: OpenKernels, rounds: number) {
  const latencies: number[] = [];
  const writeLatencies: number[] = [];
  let lockRequests = 0;
  const counting = connections.map((connection) =>
    connection.on("lock_request", () => lockRequests++),
  );
  const start = performance.now();
  // Every cache answers lock requests until every kernel is done: on a coherent object a kernel
  // done early still holds its pages, and another's write must have them flushed
  // (docs/protocol.md §10.4); a detached cache would leave it waiting for the lock timeout.
  const caches = connections.map((connection) => new PageCache(connection));
  await Promise.all(
    caches.map(async (cache, k) => {
      const random = seededRandom(k + 1);
      for (let round = 0; round < rounds; round++) {
        const first = Math.floor(random() * 508);
        const count = 1 + Math.floor(random() * 4);
        const flags = random() < 0.75 ? VM_SYNC_SYNCHRONOUS : VM_SYNC_ASYNCHRONOUS;
        try {
          const writing = performance.now();
          await cache.write(first * PAGE, pattern(count * PAGE, k * 1000 + round));
          writeLatencies.push(elapsed(writing));
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
  for (const cache of caches) cache.detach();
  for (const stop of counting) stop();
  const elapsedMs = elapsed(start);
  return {
    kernels: connections.length,
    msyncs: latencies.length,
    latencies,
    writeLatencies,
    lockRequests,
    errors,
    elapsedMs,
  } as ManyKernels;
}

export async function closeKernels(url: string, object: string, { connections }: OpenKernels) {
  for (const connection of connections) await connection.terminate().catch(() => {});
  await new HttpClient(url).remove(object);
}
