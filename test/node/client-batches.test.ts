// Batches end to end (docs/protocol.md §11), through the client against the real Worker, counted
// on the wire: what a kernel sends in one turn leaves as one frame within the bounds, replies
// arrive batched and are unpacked, a kernel that does not ask sends one frame per message as
// before, and a reconnect in the middle of batched traffic resends, batched, exactly once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpClient, VM_SYNC_ASYNCHRONOUS, VM_SYNC_SYNCHRONOUS } from "../../client";
import { FAST_VARS, startHarness, within, type Harness } from "./harness";
import { TrackedKernel, firstDifference, pattern } from "./kernels";
import { waitFor } from "../helpers/wait";

const PAGE = 4096;
/** A small max_transfer (two 64 KiB units), so a write that passes it stays small. */
const MAX_TRANSFER = 128 * 1024;

let harness: Harness;
beforeAll(async () => {
  harness = await startHarness({ ...FAST_VARS, MAX_TRANSFER: String(MAX_TRANSFER) });
});
afterAll(async () => {
  await harness?.close();
});

function connect(object: string, batch?: boolean): Promise<TrackedKernel> {
  return TrackedKernel.connect({ url: harness.url, object, kernel: "k", pageSize: PAGE, batch });
}

/**
 * The frames sent from index `from` on that carried data_returns or synchronizes, each as the
 * types of its messages and its payload bytes. Left out: the `received` reports the client sends
 * on a timer of its own after completions arrive.
 */
function framesOfSyncs(kernel: TrackedKernel, from: number) {
  const frames = new Map<number, { types: string[]; payloadBytes: number }>();
  for (const message of kernel.log.sent) {
    if (message.frame < from || message.header.type === "received") continue;
    const frame = frames.get(message.frame) ?? { types: [], payloadBytes: 0 };
    frame.types.push(message.header.type);
    frame.payloadBytes += message.payload?.byteLength ?? 0;
    frames.set(message.frame, frame);
  }
  return [...frames.values()];
}

const RETURN = "memory_object_data_return";
const SYNC = "memory_object_synchronize";

describe("with batches", () => {
  it("asks in init and gets batch: true in the ready", async () => {
    const kernel = await connect("batches-handshake");
    expect(kernel.log.sent[0]!.header).toMatchObject({ type: "memory_object_init", batch: true });
    expect(kernel.connection.ready?.batch).toBe(true);
    kernel.close();
  });

  it("sends one msync of a few dirty pages (three runs) as exactly one frame, and completes", async () => {
    const object = "batches-msync";
    const kernel = await connect(object);
    for (const page of [0, 2, 4]) await kernel.cache.write(page * PAGE, pattern(1, page, PAGE));
    const from = kernel.log.sentFrames.length;
    const completion = await kernel.cache.msync(0, 5 * PAGE, VM_SYNC_SYNCHRONOUS);
    expect(completion).toMatchObject({ offset: 0, length: 5 * PAGE });

    const frames = framesOfSyncs(kernel, from);
    console.log(
      `msync of 3 dirty runs: ${frames.length} frame(s) sent, of ${frames.map((f) => f.types.length)} messages`,
    );
    expect(frames).toEqual([{ types: [RETURN, RETURN, RETURN, SYNC], payloadBytes: 3 * PAGE }]);
    expect(kernel.log.sentFrames.slice(from)).toHaveLength(1);
    expect(kernel.log.sentFrames[from]!.binary).toBe(true);
    const stored = await new HttpClient(harness.url).read(object, 0, 5 * PAGE);
    for (const page of [0, 2, 4]) {
      const bytes = stored.subarray(page * PAGE, (page + 1) * PAGE);
      expect(firstDifference(bytes, pattern(1, page, PAGE))).toBe(-1);
    }
    kernel.close();
  });

  it("reports a completion received in the next msync's frame, not in a frame of its own", async () => {
    const kernel = await connect("batches-received-rides");
    const from = kernel.log.sentFrames.length;
    for (let round = 0; round < 5; round++) {
      await kernel.cache.write(0, pattern(3, round, PAGE));
      await kernel.cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS);
    }
    // Each msync after the first carries `received` for the completion before it, last in its
    // frame; the manager so drops each outbox entry in the step of the next msync.
    const frames = new Map<number, string[]>();
    for (const message of kernel.log.sent) {
      if (message.frame < from) continue;
      frames.set(message.frame, [...(frames.get(message.frame) ?? []), message.header.type]);
    }
    expect([...frames.values()]).toEqual([
      [RETURN, SYNC],
      ...Array.from({ length: 4 }, () => [RETURN, SYNC, "received"]),
    ]);
    // With nothing more to send, the last one goes alone, on the client's timer.
    await waitFor(() => kernel.log.sentFrames.length === from + 6, "the last received");
    expect(kernel.log.sent.at(-1)!.header).toMatchObject({ type: "received", mid: 5 });
    kernel.close();
  });

  it("sends 64 synchronizes issued in one turn as one frame; all complete; replies come batched", async () => {
    const kernel = await connect("batches-64-syncs");
    await kernel.cache.write(0, pattern(2, 0, PAGE));
    await kernel.cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS);
    const sentFrom = kernel.log.sentFrames.length;
    const receivedFrom = kernel.log.receivedFrames.length;
    const receivedMessagesFrom = kernel.log.received.length;

    const completions = await within(
      Promise.all(
        Array.from({ length: 64 }, () =>
          kernel.connection.synchronize(0, PAGE, VM_SYNC_ASYNCHRONOUS),
        ),
      ),
      20_000,
      "64 completions",
    );
    expect(completions).toHaveLength(64);
    expect(new Set(completions.map((c) => c.reply_to)).size).toBe(64);

    const frames = framesOfSyncs(kernel, sentFrom);
    const receivedFrames = kernel.log.receivedFrames.length - receivedFrom;
    const receivedMessages = kernel.log.received.length - receivedMessagesFrom;
    console.log(
      `64 synchronizes in one turn: ${frames.length} frame(s) sent; ` +
        `${receivedMessages} replies received in ${receivedFrames} frame(s)`,
    );
    expect(frames).toEqual([{ types: Array(64).fill(SYNC), payloadBytes: 0 }]);
    // 64 acks and 64 completions arrived in fewer frames than messages, and were all handled.
    expect(receivedMessages).toBeGreaterThanOrEqual(128);
    expect(receivedFrames).toBeLessThan(receivedMessages);
    expect(kernel.log.receivedFrames.slice(receivedFrom).some((f) => f.messages > 1)).toBe(true);
    kernel.close();
  });

  it("splits a write bigger than max_transfer into frames of at most max_transfer payload bytes", async () => {
    const object = "batches-big-write";
    const kernel = await connect(object);
    expect(kernel.connection.ready?.max_transfer).toBe(MAX_TRANSFER);
    const bytes = pattern(3, 0, (5 * MAX_TRANSFER) / 2);
    await kernel.cache.write(0, bytes);
    const from = kernel.log.sentFrames.length;
    await kernel.cache.msync(0, bytes.byteLength, VM_SYNC_SYNCHRONOUS);

    const frames = framesOfSyncs(kernel, from);
    console.log(
      `msync of ${bytes.byteLength / 1024} KiB, max_transfer ${MAX_TRANSFER / 1024} KiB: ` +
        `${frames.length} frames of ${frames.map((f) => f.types.length).join(", ")} messages`,
    );
    // Two full runs alone, then the half run with the synchronize.
    expect(frames).toEqual([
      { types: [RETURN], payloadBytes: MAX_TRANSFER },
      { types: [RETURN], payloadBytes: MAX_TRANSFER },
      { types: [RETURN, SYNC], payloadBytes: MAX_TRANSFER / 2 },
    ]);
    const stored = await new HttpClient(harness.url).read(object, 0, bytes.byteLength);
    expect(firstDifference(stored, bytes)).toBe(-1);
    kernel.close();
  });
});

describe("without batches (batch: false)", () => {
  it("inits as before and sends one frame per message", async () => {
    const kernel = await connect("batches-off", false);
    const init = kernel.log.sent[0]!.header;
    expect(Object.keys(init)).toEqual(["type", "id", "page_size", "received_mid"]);
    expect(kernel.connection.ready?.batch).not.toBe(true);

    for (const page of [0, 2, 4]) await kernel.cache.write(page * PAGE, pattern(4, page, PAGE));
    let from = kernel.log.sentFrames.length;
    await kernel.cache.msync(0, 5 * PAGE, VM_SYNC_SYNCHRONOUS);
    expect(framesOfSyncs(kernel, from).map((f) => f.types)).toEqual([
      [RETURN],
      [RETURN],
      [RETURN],
      [SYNC],
    ]);

    from = kernel.log.sentFrames.length;
    await Promise.all(
      Array.from({ length: 64 }, () =>
        kernel.connection.synchronize(0, PAGE, VM_SYNC_ASYNCHRONOUS),
      ),
    );
    const frames = framesOfSyncs(kernel, from);
    expect(frames).toHaveLength(64);
    expect(kernel.log.sentFrames.every((f) => f.messages === 1)).toBe(true);
    // Nothing batched arrives for a kernel that did not ask.
    expect(kernel.log.receivedFrames.every((f) => f.messages === 1)).toBe(true);
    console.log(`batch: false: 64 synchronizes in ${frames.length} frames`);
    kernel.close();
  });
});

it("a socket dropped in the middle of batched traffic: resent batched, applied and completed once", async () => {
  const object = "batches-drop";
  const kernel = await connect(object);
  const PAGES = 16;
  const expected = new Uint8Array(PAGES * PAGE);
  const writeAll = async (version: number) => {
    for (let page = 0; page < PAGES; page++) {
      const bytes = pattern(5, version * PAGES + page, PAGE);
      await kernel.cache.write(page * PAGE, bytes);
      expected.set(bytes, page * PAGE);
    }
  };

  // Batched msyncs in flight, then the drop right after their frame leaves.
  await writeAll(0);
  for (let i = 0; i < 4; i++) kernel.msync(i * 4 * PAGE, 4 * PAGE, VM_SYNC_SYNCHRONOUS);
  await new Promise((resolve) => setTimeout(resolve, 0));
  kernel.log.sockets[0]!.close(1000, "test: drop");
  // More, sent into the closing socket (lost on the way), then more while it is down (queued).
  await writeAll(1);
  for (let i = 0; i < 4; i++) kernel.msync(i * 4 * PAGE, 4 * PAGE, VM_SYNC_ASYNCHRONOUS);
  await waitFor(() => !kernel.connection.connected, "the socket to close");
  await writeAll(2);
  kernel.msync(0, PAGES * PAGE, VM_SYNC_SYNCHRONOUS);

  await waitFor(() => kernel.readyCount >= 2, "the kernel to reconnect");
  await within(kernel.settled(), 20_000, "every msync to resolve");

  kernel.expectEachCompletionOnce();
  const resentFrames = kernel.log.sentFrames.filter((f) => f.socket >= 1 && f.messages > 1);
  console.log(
    `drop: resent ${kernel.resentIds().length} messages; frames on the new socket: ` +
      kernel.log.sentFrames
        .filter((f) => f.socket >= 1)
        .map((f) => f.messages)
        .join(", "),
  );
  expect(kernel.resentIds().length, "messages resent").toBeGreaterThan(0);
  expect(resentFrames.length, "batched frames after the reconnect").toBeGreaterThan(0);
  const http = new HttpClient(harness.url);
  expect(firstDifference(await http.read(object, 0, expected.length), expected)).toBe(-1);
  const status = await http.stat(object);
  expect(status.syncs).toBe(0);
  expect(status.kernels.find((s) => s.kernel === "k")?.last_id).toBe(kernel.lastStateChangingId());
  kernel.close();
});
