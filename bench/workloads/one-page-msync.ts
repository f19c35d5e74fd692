/**
 * W2: the latency of one dirty page + SYNCHRONOUS msync, against baseline (b).
 */
import { PageCache, VM_SYNC_SYNCHRONOUS } from "../../client";
import { BenchSocket } from "../baselines";
import { connect, finish } from "../session";
import { PAGE, freshObject } from "../settings";
import { elapsed } from "../timing";

interface Latencies {
  edgepager: number[];
  baseline: number[];
}

/**
 * W2: `samples` times, one dirty page written and msynced SYNCHRONOUS, against baseline (b): the
 * page over a WebSocket into a Durable Object that puts it to R2. Alternates in rounds of 10.
 */
export async function onePageSync(url: string, samples: number, warmups: number) {
  const object = freshObject("w2");
  const connection = await connect(url, object);
  const cache = new PageCache(connection);
  const socket = await BenchSocket.open(url, "page", freshObject("w2-baseline"));
  const page = new Uint8Array(PAGE);
  const result: Latencies = { edgepager: [], baseline: [] };
  let n = 0;
  const edgepagerOnce = async () => {
    page.fill(n++ % 251);
    const start = performance.now();
    await cache.write(0, page);
    await cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS);
    return elapsed(start);
  };
  const baselineOnce = async () => {
    page.fill(n++ % 251);
    const start = performance.now();
    await socket.putPage(0, page);
    return elapsed(start);
  };
  for (let i = 0; i < warmups; i++) {
    await edgepagerOnce();
    await baselineOnce();
  }
  for (let round = 0; result.edgepager.length < samples; round++) {
    const count = Math.min(10, samples - result.edgepager.length);
    const first = round % 2 === 0 ? "edgepager" : "baseline";
    for (const which of [first, first === "edgepager" ? "baseline" : "edgepager"]) {
      for (let i = 0; i < count; i++) {
        if (which === "edgepager") result.edgepager.push(await edgepagerOnce());
        else result.baseline.push(await baselineOnce());
      }
    }
  }
  socket.close();
  await finish(url, connection, object);
  return result;
}
