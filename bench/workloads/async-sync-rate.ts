/**
 * W3: ASYNCHRONOUS synchronize requests of clean ranges per second, 64 in flight, against
 * baseline (c).
 */
import { VM_SYNC_ASYNCHRONOUS } from "../../client";
import { BenchSocket } from "../baselines";
import { connect, finish } from "../session";
import { PAGE, freshObject } from "../settings";
import { elapsed } from "../timing";

/** How many requests each side keeps in flight in W3 (below MAX_SYNCS_PER_KERNEL, 256). */
export const W3_WINDOW = 64;

/**
 * Runs `total` requests with `W3_WINDOW` in flight, worker w always on page w (so one kernel's
 * outstanding synchronize requests never overlap, docs/protocol.md §6.8); returns requests per second.
 */
export async function windowed(total: number, send: (offset: number) => Promise<unknown>) {
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: W3_WINDOW }, async (_, worker) => {
      while (started < total) {
        started++;
        await send(worker * PAGE);
      }
    }),
  );
  return total / (elapsed(start) / 1000);
}

/**
 * W3 against baseline (c), and the protocol floor (d) for reference, in rotating order; message
 * rates in requests per second.
 */
export async function asyncSyncRate(url: string, messages: number, reps: number, batch: boolean) {
  const object = freshObject("w3");
  const connection = await connect(url, object, "bench", { batch });
  const echoSocket = await BenchSocket.open(url, "echo", freshObject("w3-echo"));
  const floorSocket = await BenchSocket.open(url, "floor", freshObject("w3-floor"));
  const runners = {
    edgepager: (offset: number) => connection.synchronize(offset, PAGE, VM_SYNC_ASYNCHRONOUS),
    baseline: (offset: number) => echoSocket.echo(offset, PAGE, VM_SYNC_ASYNCHRONOUS),
    floor: (offset: number) => floorSocket.echo(offset, PAGE, VM_SYNC_ASYNCHRONOUS),
  };
  const order = Object.keys(runners) as (keyof typeof runners)[];
  for (const name of order) await windowed(Math.min(500, messages), runners[name]); // warm-up
  const rates = { edgepager: [] as number[], baseline: [] as number[], floor: [] as number[] };
  for (let rep = 0; rep < reps; rep++) {
    // Each rep starts with a different one, so no side always runs first or last.
    for (let i = 0; i < order.length; i++) {
      const name = order[(rep + i) % order.length]!;
      rates[name].push(await windowed(messages, runners[name]));
    }
  }
  echoSocket.close();
  floorSocket.close();
  await finish(url, connection, object);
  return rates;
}
