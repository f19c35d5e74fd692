/**
 * W7: two kernels alternately incrementing one 64-bit counter on one page of a coherent object
 * (docs/protocol.md §10), each increment a `PageCache.update`. The page's writer changes at every
 * step, so every increment is one handoff: the kernel whose turn it is asks for write access, the
 * manager has the other kernel flush the page, and supplies it. Timed per handoff, with the counts
 * that do not depend on speed: frames both ways, lock requests, messages numbered.
 */
import { PageCache } from "../../client";
import { connect, finish } from "../session";
import { PAGE, freshObject } from "../settings";
import { FrameCounter, countersOf } from "../sqlite-fixtures";
import { elapsed } from "../timing";

export interface Handoffs {
  handoffs: number;
  /** Each handoff's time: the call of `update` until its return is acked. */
  latencies: number[];
  elapsedMs: number;
  perSecond: number;
  /** Frames both kernels sent, and received, per handoff. */
  framesSentPerHandoff: number;
  framesReceivedPerHandoff: number;
  /** Lock requests both kernels were sent, per handoff (one: the flush of the other kernel). */
  lockRequestsPerHandoff: number;
  /** Messages the manager numbered per handoff (its seqno's advance, docs/protocol.md §2). */
  seqnosPerHandoff: number;
  /** The counter at the end; warm-ups plus handoffs if no increment was lost or doubled. */
  finalValue: bigint;
  errors: string[];
}

/** Adds one to the little-endian 64-bit counter at the start of `bytes`. */
function increment(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setBigUint64(0, view.getBigUint64(0, true) + 1n, true);
  return bytes;
}

/**
 * `warmups` untimed increments, then `handoffs` timed ones, the two kernels taking turns (one
 * after the other, never at once: each waits for the other's increment to be acked).
 */
export async function coherentHandoffs(
  url: string,
  handoffs: number,
  warmups: number,
): Promise<Handoffs> {
  const object = freshObject("w7");
  const frames = new FrameCounter();
  const errors: string[] = [];
  const connections = [];
  for (const kernel of ["k0", "k1"]) {
    const connection = await connect(url, object, kernel, {
      coherent: true,
      WebSocket: frames.WebSocket,
    });
    connection.on("error", (error) => errors.push(`${kernel}: ${error.message}`));
    connections.push(connection);
  }
  let lockRequests = 0;
  for (const connection of connections) connection.on("lock_request", () => lockRequests++);
  const caches = connections.map((connection) => new PageCache(connection));
  const step = async (i: number) => {
    await caches[i % 2]!.update(0, PAGE, increment);
  };
  for (let i = 0; i < warmups; i++) await step(i);

  const before = { ...frames, lockRequests, seqno: (await countersOf(url, object)).seqno };
  const latencies: number[] = [];
  const start = performance.now();
  for (let i = warmups; i < warmups + handoffs; i++) {
    const began = performance.now();
    try {
      await step(i);
    } catch (error) {
      errors.push(`handoff ${i - warmups}: ${String(error)}`);
    }
    latencies.push(elapsed(began));
  }
  const elapsedMs = elapsed(start);
  const after = { ...frames, lockRequests, seqno: (await countersOf(url, object)).seqno };

  const last = await caches[0]!.read(0, 8);
  const finalValue = new DataView(last.buffer, last.byteOffset).getBigUint64(0, true);
  for (const cache of caches) cache.detach();
  await finish(url, connections[1]!, object, true);
  await finish(url, connections[0]!, object);
  const per = (count: number) => count / handoffs;
  return {
    handoffs,
    latencies,
    elapsedMs,
    perSecond: (handoffs * 1000) / elapsedMs,
    framesSentPerHandoff: per(after.sent - before.sent),
    framesReceivedPerHandoff: per(after.received - before.received),
    lockRequestsPerHandoff: per(after.lockRequests - before.lockRequests),
    seqnosPerHandoff: per(after.seqno - before.seqno),
    finalValue,
    errors,
  };
}
