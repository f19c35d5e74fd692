// End to end, through the client only: a kernel's socket drops in the middle of a stream of
// writes and msyncs, closed by the client or by the manager (its Durable Object evicted with its
// sockets closed). The client reconnects and resends (docs/protocol.md §3): nothing is lost, nothing
// is applied twice, and every pending msync resolves once.
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpClient, VM_SYNC_ASYNCHRONOUS, VM_SYNC_SYNCHRONOUS } from "../../client";
import { startHarness, within, type Harness } from "./harness";
import { waitFor } from "../helpers/wait";
import { TrackedKernel, firstDifference, pattern } from "./kernels";

const PAGE = 4096;
/** Each kernel owns every second page of 2 × PAGES_EACH, so the final bytes are predictable. */
const PAGES_EACH = 8;
const DROP_AT = 16;
const OUTAGE_STEPS = 48;
const AFTER = 16;

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness?.close();
});

const drops = {
  /** The client's socket closes under it (as when the network goes): kernel a's only. */
  "the client": async (_object: string, kernels: TrackedKernel[]) => {
    kernels[0]!.log.sockets.at(-1)!.close(1000, "test: drop");
  },
  /** The manager goes away: its Durable Object is evicted and every socket closed. */
  "the server": (object: string) => harness.evict(object, "close"),
};

it.each(Object.keys(drops) as (keyof typeof drops)[])(
  "a socket closed by %s mid-stream: nothing lost, nothing applied twice, msyncs resolve once",
  async (by) => {
    const object = `e2e-drop-${by === "the client" ? "client" : "server"}`;
    const kernels = [
      await TrackedKernel.connect({ url: harness.url, object, kernel: "a", pageSize: PAGE }),
      await TrackedKernel.connect({ url: harness.url, object, kernel: "b", pageSize: PAGE }),
    ];
    /** What each page must hold in the end: the last write to it, in program order. */
    const expected = new Uint8Array(2 * PAGES_EACH * PAGE);
    let dropped: Promise<void> | null = null;
    let stepsSinceDrop = 0;
    let stepsAfterReconnect = 0;
    const [a] = kernels;
    const reconnected = () => a!.readyCount >= 2;
    let whenReconnected: Promise<void> | null = null;

    // Kernel a streams DROP_AT steps, drops, goes on through the outage (at most OUTAGE_STEPS,
    // then both kernels wait for the reconnect), then streams AFTER more steps; kernel b streams
    // alongside until a is done. Every fourth step msyncs the last four pages written (mixed
    // flags), without waiting for it.
    const stream = async (kernel: TrackedKernel, k: number) => {
      for (let step = 0; stepsAfterReconnect < AFTER; step++) {
        if (k === 0 && step === DROP_AT) dropped = drops[by](object, kernels);
        if (k === 0 && dropped) {
          if (reconnected()) stepsAfterReconnect++;
          else if (++stepsSinceDrop === OUTAGE_STEPS) {
            whenReconnected = waitFor(reconnected, "kernel a to reconnect");
          }
        }
        if (whenReconnected) await whenReconnected;
        const slot = step % PAGES_EACH;
        const bytes = pattern(k, step, PAGE);
        await kernel.cache.write((2 * slot + k) * PAGE, bytes);
        expected.set(bytes, (2 * slot + k) * PAGE);
        if (step % 4 === 3) {
          const flags = step % 8 === 3 ? VM_SYNC_SYNCHRONOUS : VM_SYNC_ASYNCHRONOUS;
          kernel.msync(2 * (slot - 3) * PAGE, 8 * PAGE, flags);
        }
        // Paced, so the stream spans the drop, the outage and the reconnect.
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
      kernel.msync(0, 2 * PAGES_EACH * PAGE, VM_SYNC_SYNCHRONOUS);
      await kernel.settled();
    };
    const started = Date.now();
    await within(Promise.all(kernels.map(stream)), 30_000, "every msync to resolve");
    await dropped;

    expect(a!.log.sockets.length, "kernel a reconnected").toBeGreaterThanOrEqual(2);
    expect(a!.readyCount).toBeGreaterThanOrEqual(2);
    // The stream really spanned the drop: returns went out on the first socket and on a later one.
    const returnSockets = new Set(
      a!.log.sent.filter((f) => f.header.type === "memory_object_data_return").map((f) => f.socket),
    );
    expect(returnSockets.has(0)).toBe(true);
    expect(Math.max(...returnSockets)).toBeGreaterThanOrEqual(1);
    console.log(
      `drop by ${by}: ${Date.now() - started} ms, ${a!.msyncs.length} + ${kernels[1]!.msyncs.length} msyncs, ` +
        `kernel a used ${a!.log.sockets.length} sockets, resent ${a!.resentIds().length} messages ` +
        `and got ${a!.completionsAcrossDrop()} completions of requests sent before the drop`,
    );

    const http = new HttpClient(harness.url);
    for (const kernel of kernels) kernel.expectEachCompletionOnce();
    expect(firstDifference(await http.read(object, 0, expected.length), expected)).toBe(-1);
    const status = await http.stat(object);
    expect(status.syncs).toBe(0);
    expect(status.pages).toBe(2 * PAGES_EACH);
    for (const kernel of kernels) {
      // Applied exactly up to the last message sent: no id skipped, none beyond.
      const known = status.kernels.find((s) => s.kernel === kernel.name);
      expect(known?.last_id).toBe(kernel.lastStateChangingId());
    }
    for (const kernel of kernels) kernel.close();
  },
);
