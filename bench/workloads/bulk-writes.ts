/**
 * W1, W1b and W5: bulk writes through `PageCache`, one page per frame, and many objects at once,
 * against R2 puts over HTTP (baseline (a)).
 */
import { KernelConnection, PageCache, VM_SYNC_SYNCHRONOUS } from "../../client";
import { putOnce } from "../baselines";
import { connect, finish } from "../session";
import { PAGE, freshObject } from "../settings";
import { elapsed } from "../timing";

/** W1: `PageCache.write` of all bytes, then `msync` SYNCHRONOUS until its completion, in ms. */
export async function writeThroughCache(url: string, object: string, data: Uint8Array) {
  const connection = await connect(url, object);
  const cache = new PageCache(connection);
  const start = performance.now();
  await cache.write(0, data);
  const done = await cache.msync(0, data.byteLength, VM_SYNC_SYNCHRONOUS);
  const ms = elapsed(start);
  if (done.length !== data.byteLength) throw new Error(`W1: completion for ${done.length} bytes`);
  await finish(url, connection, object);
  return ms;
}

/**
 * W1b: one `data_return` per page, then SYNCHRONOUS. Unbatched, each is its own frame; batched
 * (docs/protocol.md §11), the client packs the returns of one turn into frames of up to
 * max_transfer, so the client's backpressure is consulted once per MiB instead of per page (an
 * await between two returns would end the turn and so the batch).
 */
export async function writePagePerFrame(
  url: string,
  object: string,
  data: Uint8Array,
  batch: boolean,
) {
  const connection = await connect(url, object, "bench", { batch });
  const start = performance.now();
  await returnPagePerFrame(connection, data, batch ? (1 << 20) / PAGE : 1);
  const ms = elapsed(start);
  await finish(url, connection, object);
  return ms;
}

export async function returnPagePerFrame(
  connection: KernelConnection,
  data: Uint8Array,
  pagesPerCapacityCheck = 1,
) {
  const acks: Promise<unknown>[] = [];
  for (let offset = 0, page = 0; offset < data.byteLength; offset += PAGE, page++) {
    if (page % pagesPerCapacityCheck === 0) await connection.capacity();
    acks.push(connection.dataReturn(offset, data.subarray(offset, offset + PAGE)));
  }
  const completion = connection.synchronize(0, data.byteLength, VM_SYNC_SYNCHRONOUS);
  await Promise.all(acks);
  await completion;
}

/** Baseline (a), timed: one R2 put of the bytes over HTTP. */
export async function timedPut(url: string, data: Uint8Array<ArrayBuffer>): Promise<number> {
  const start = performance.now();
  await putOnce(url, data);
  return elapsed(start);
}

/**
 * W5: `objects` objects at once, each W1 at `data` bytes; connections opened first. Returns the
 * time until the last completion.
 */
export async function writeManyObjects(url: string, count: number, data: Uint8Array) {
  const names = Array.from({ length: count }, () => freshObject("w5"));
  const connections = await Promise.all(names.map((name) => connect(url, name)));
  const start = performance.now();
  await Promise.all(
    connections.map(async (connection) => {
      const cache = new PageCache(connection);
      await cache.write(0, data);
      await cache.msync(0, data.byteLength, VM_SYNC_SYNCHRONOUS);
    }),
  );
  const ms = elapsed(start);
  await Promise.all(connections.map((connection, i) => finish(url, connection, names[i]!)));
  return ms;
}

/** Baseline for W5: `count` R2 puts of `data` over HTTP at once. */
export async function putMany(
  url: string,
  count: number,
  data: Uint8Array<ArrayBuffer>,
): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: count }, () => putOnce(url, data)));
  return elapsed(start);
}
