/**
 * Batches (docs/protocol.md §11) over raw frames: a kernel that asked for them sends several
 * messages in one frame, text or binary; the batch is one ordered step (consecutive seqnos, one
 * transaction, each message in a savepoint of its own) and its replies leave as one frame. Bad
 * messages, unparseable frames, oversized payloads and resends inside a batch; a kernel that did
 * not ask sees no change; the choice survives hibernation; a supply read from R2 keeps later
 * replies behind it.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  KERN_INVALID_ARGUMENT,
  MAX_BATCH_MESSAGES,
  VM_SYNC_ASYNCHRONOUS as ASYNC,
  VM_SYNC_SYNCHRONOUS as SYNC,
} from "../schema";
import type { MemoryObject } from "../durable/memory-object";
import { objectStub } from "./helpers/buckets";
import { readPages, stat } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf, type Received } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

/** Opens a kernel that asks for batches; checks that the ready says they are on. */
async function openBatching(object: string, kernel = "k1"): Promise<TestKernel> {
  const { kernel: k, ready } = await TestKernel.open(object, kernel, { batch: true });
  expect(ready).toMatchObject({ type: "memory_object_ready", batch: true });
  return k;
}

/** What arrived since `since`, without payloads. */
function since(k: TestKernel, from: number): Received[] {
  return k.received.slice(from).map(({ payload: _payload, ...rest }) => rest as Received);
}

describe("asking for batches", () => {
  it("ready answers batch: true when asked, false when not", async () => {
    const { kernel: plain, ready } = await TestKernel.open("batch-ask", "plain");
    expect(ready.batch).toBe(false);
    const asked = await openBatching("batch-ask", "asked");
    const { kernel: declined, ready: no } = await TestKernel.open("batch-ask", "no", {
      batch: false,
    });
    expect(no.batch).toBe(false);
    // The ready goes in a frame of its own: it is what tells the kernel batches are on.
    expect(asked.frames).toEqual([{ batch: false, messages: 1 }]);
    for (const k of [plain, asked, declined]) k.close();
  });

  it("a batch that is not a boolean is refused like any bad field", async () => {
    const k = await TestKernel.connect("batch-ask-bad", "k1");
    k.send({ type: "memory_object_init", id: 1, page_size: 4096, received_mid: 0, batch: 1 });
    expect(await k.answer(1)).toMatchObject({
      type: "error",
      code: "bad_field",
      message: expect.stringMatching(/^batch /),
    });
    k.close();
  });
});

describe("a text batch", () => {
  it("of 64 synchronizes gets consecutive seqnos, and its acks and completions in one frame", async () => {
    const object = "batch-64-syncs";
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const before = k.received.length;
    const framesBefore = k.frames.length;
    const syncs = Array.from({ length: 64 }, (_, i) => k.synchronizeOf(i * 4096, 4096, ASYNC));
    k.sendBatch(syncs);
    for (const { id } of syncs) await k.completion(id);
    // One frame: every ack, each followed by its completion (clean ranges complete at once).
    expect(k.frames.slice(framesBefore)).toEqual([{ batch: true, messages: 128 }]);
    const replies = since(k, before);
    syncs.forEach(({ id, offset }, i) => {
      expect(replies[2 * i]).toEqual({ type: "ack", id, seqno: first + i });
      expect(replies[2 * i + 1]).toMatchObject({
        type: "memory_object_synchronize_completed",
        reply_to: id,
        seqno: first + i,
        offset,
        length: 4096,
      });
    });
    // The 64, then the stat itself (an HTTP request takes a seqno too).
    expect((await stat(object)).seqno).toBe(first + 64 + 1);
    k.close();
  });

  it("of MAX_BATCH_MESSAGES messages is taken; replies over the bounds split into frames", async () => {
    const object = "batch-most";
    const k = await openBatching(object);
    const framesBefore = k.frames.length;
    const syncs = Array.from({ length: MAX_BATCH_MESSAGES }, () => k.synchronizeOf(0, 0, ASYNC));
    k.sendBatch(syncs);
    for (const { id } of syncs) await k.completion(id);
    // 512 replies: at most MAX_BATCH_MESSAGES to a frame.
    const frames = k.frames.slice(framesBefore);
    expect(frames.every((f) => f.batch && f.messages <= MAX_BATCH_MESSAGES)).toBe(true);
    expect(frames.reduce((sum, f) => sum + f.messages, 0)).toBe(2 * MAX_BATCH_MESSAGES);
    k.close();
  });
});

describe("a binary batch", () => {
  it("of data_returns and a SYNCHRONOUS synchronize is one step: acks in one frame, pages stored", async () => {
    const object = "batch-binary";
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const pages = [1, 2, 3, 4].map((byte) => pageOf(byte));
    const returns = pages.map((page, i) => k.returnOf(i * 4096, page));
    const sync = k.synchronizeOf(0, 4 * 4096, SYNC);
    const framesBefore = k.frames.length;
    k.sendBatch([...returns, sync], pages);
    const completion = await k.completion(sync.id);
    expect(completion).toMatchObject({
      type: "memory_object_synchronize_completed",
      seqno: first + 4,
    });
    // The acks left together once the step committed; the completion later, after the R2 put.
    expect(k.frames.slice(framesBefore)).toEqual([
      { batch: true, messages: 5 },
      { batch: false, messages: 1 },
    ]);
    for (const [i, { id }] of [...returns, sync].entries()) {
      expect(await k.ack(id as number)).toMatchObject({ seqno: first + i });
    }
    const stored = await readPages(object, 0, 4 * 4096);
    pages.forEach((page, i) => {
      expect(stored.subarray(i * 4096, (i + 1) * 4096)).toEqual(page);
    });
    k.close();
  });
});

describe("a bad message in a batch", () => {
  it("gets its own error and seqno; the rest is applied, nothing of it", async () => {
    const object = "batch-bad-middle";
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const good = [pageOf(1), pageOf(3)];
    const a = k.returnOf(0, good[0]!);
    // Misaligned: refused by its handler's checks.
    const bad = { ...k.returnOf(4097, pageOf(2)) };
    const c = k.returnOf(8192, good[1]!);
    k.sendBatch([a, bad, c], [good[0]!, pageOf(2), good[1]!]);
    expect(await k.ack(a.id as number)).toMatchObject({ seqno: first });
    expect(await k.answer(bad.id as number)).toMatchObject({
      type: "error",
      seqno: first + 1,
      kern_return: KERN_INVALID_ARGUMENT,
      code: "bad_field",
    });
    expect(await k.ack(c.id as number)).toMatchObject({ seqno: first + 2 });
    // In order, in one frame.
    expect(k.frames.at(-1)).toEqual({ batch: true, messages: 3 });
    const stored = await readPages(object, 0, 3 * 4096);
    expect(stored.subarray(0, 4096)).toEqual(good[0]);
    expect(stored.subarray(4096, 8192)).toEqual(new Uint8Array(4096));
    expect(stored.subarray(8192)).toEqual(good[1]);
    k.close();
  });

  it("that fails after changing state rolls back alone (a savepoint of the batch's transaction)", async () => {
    const object = "batch-savepoint";
    const k = await openBatching(object);
    k.close();
    const outcomes = await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      const pager = instance.pager;
      return pager.admitEach(3, {
        ordered: (seqno, index) => {
          pager.registerKernel(`sp${index}`, true);
          pager.recordApplied(`sp${index}`, 7, seqno);
          if (index === 1) throw new Error("fails after writing");
          return `applied ${seqno}`;
        },
        failed: (error) => `failed ${error.seqno}`,
      });
    });
    const status = await stat(object);
    // The three, then the stat itself.
    const first = (status.seqno as number) - 4;
    expect(outcomes).toEqual([`applied ${first}`, `failed ${first + 1}`, `applied ${first + 2}`]);
    const kernels = status.kernels.map((x: { kernel: string }) => x.kernel);
    expect(kernels).toContain("sp0");
    expect(kernels).not.toContain("sp1");
    expect(kernels).toContain("sp2");
  });

  it("init inside a batch is refused for that message; the rest proceeds", async () => {
    const object = "batch-init-inside";
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const s1 = k.synchronizeOf(0, 0, ASYNC);
    const init = { type: "memory_object_init", id: k.takeId(), page_size: 4096, received_mid: 0 };
    const s2 = k.synchronizeOf(0, 0, ASYNC);
    k.sendBatch([s1, init, s2]);
    expect(await k.answer(init.id)).toMatchObject({
      type: "error",
      seqno: first + 1,
      code: "bad_frame",
      message: expect.stringMatching(/memory_object_init may not be inside a batch/),
    });
    expect(await k.ack(s1.id)).toMatchObject({ seqno: first });
    expect(await k.ack(s2.id)).toMatchObject({ seqno: first + 2 });
    k.close();
  });

  it("an entry that is not an object is that message's error", async () => {
    const object = "batch-not-object";
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const s = k.synchronizeOf(0, 0, ASYNC);
    const before = k.received.length;
    k.sendBatch([42, s]);
    await k.ack(s.id);
    expect(since(k, before)[0]).toMatchObject({
      type: "error",
      reply_to: null,
      seqno: first,
      code: "bad_json",
    });
    k.close();
  });
});

describe("a batch that cannot be parsed", () => {
  it.each([
    ["an empty array", (k: TestKernel) => k.sendBatch([])],
    ["an empty binary array", (k: TestKernel) => k.sendBatch([], [])],
    [
      "payloads short of the lengths",
      (k: TestKernel) => k.sendBatch([k.returnOf(0, pageOf(1))], [new Uint8Array(100)]),
    ],
    [
      "more than MAX_BATCH_MESSAGES",
      (k: TestKernel) =>
        k.sendBatch(Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => k.synchronizeOf(0, 0, 1))),
    ],
  ])("%s: one error, one seqno", async (_name, send) => {
    const object = `batch-unparseable-${_name.replaceAll(" ", "-")}`;
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const before = k.received.length;
    send(k);
    const answer = await k.probe();
    expect(since(k, before)).toEqual([
      expect.objectContaining({
        type: "error",
        reply_to: null,
        seqno: first,
        code: "bad_frame",
      }),
      expect.objectContaining({ seqno: first + 1, reply_to: answer.reply_to }),
    ]);
    // The frame, the probe, then the stat itself.
    expect((await stat(object)).seqno).toBe(first + 2 + 1);
    k.close();
  });
});

describe("a batch whose payloads pass max_transfer", () => {
  it("gets one error per message, each with its seqno, and nothing is applied", async () => {
    const object = "batch-oversized";
    const k = await openBatching(object);
    const first = (await stat(object)).seqno as number;
    const half = new Uint8Array(512 * 1024).fill(7);
    const returns = [
      k.returnOf(0, half),
      k.returnOf(512 * 1024, half),
      k.returnOf(1 << 20, pageOf(1)),
    ];
    const sync = k.synchronizeOf(0, 0, ASYNC);
    k.sendBatch([...returns, sync], [half, half, pageOf(1)]);
    for (const [i, { id }] of [...returns, sync].entries()) {
      expect(await k.answer(id as number)).toMatchObject({
        type: "error",
        seqno: first + i,
        code: "too_large",
        message: expect.stringMatching(/over max_transfer/),
      });
    }
    expect((await stat(object)).pages).toBe(0);
    k.close();
  });
});

describe("resends inside a batch", () => {
  it("are acked with their original seqno, not applied again", async () => {
    const object = "batch-resend";
    const k = await openBatching(object);
    const firstPage = pageOf(1);
    const r1 = k.returnOf(0, firstPage);
    const r2 = k.returnOf(4096, pageOf(2));
    k.sendBatch([r1, r2], [firstPage, pageOf(2)]);
    const original = await k.ack(r2.id as number);
    await k.ack(r1.id as number);
    const before = k.received.length;
    // The kernel did not see the acks (say): it resends both, with other bytes, and a new one.
    const r3 = k.returnOf(8192, pageOf(3));
    k.sendBatch(
      [{ ...r1, offset: 0 }, { ...r2, offset: 4096 }, r3],
      [pageOf(9), pageOf(9), pageOf(3)],
    );
    await k.ack(r3.id as number);
    const acks = since(k, before).filter((m) => m.type === "ack");
    expect(acks.map((m) => m.id)).toEqual([r1.id, r2.id, r3.id]);
    // The last applied id names its original seqno.
    expect(acks[1]!.seqno).toBe(original.seqno);
    const stored = await readPages(object, 0, 3 * 4096);
    expect(stored.subarray(0, 4096)).toEqual(firstPage);
    expect(stored.subarray(4096, 8192)).toEqual(pageOf(2));
    expect(stored.subarray(8192)).toEqual(pageOf(3));
    k.close();
  });
});

describe("a kernel that did not ask for batches", () => {
  it("sending an array gets today's error, one seqno", async () => {
    const object = "batch-not-asked";
    const { kernel: k } = await TestKernel.open(object, "k1");
    const first = (await stat(object)).seqno as number;
    const s = k.synchronizeOf(0, 0, ASYNC);
    const before = k.received.length;
    k.sendBatch([s]);
    const answer = await k.probe();
    expect(since(k, before)).toEqual([
      expect.objectContaining({
        type: "error",
        reply_to: null,
        seqno: first,
        code: "bad_json",
        message: "message must be a JSON object",
      }),
      expect.objectContaining({ seqno: first + 1, reply_to: answer.reply_to }),
    ]);
    // Its replies stay one message per frame, even those of one step.
    expect(k.frames.every((f) => !f.batch && f.messages === 1)).toBe(true);
    k.close();
  });

  it("gets its replies one frame each, even those that leave together", async () => {
    const object = "batch-not-asked-replies";
    const { kernel: k } = await TestKernel.open(object, "k1");
    const id = k.synchronize(0, 0, ASYNC);
    await k.completion(id);
    await expectQuiet(k);
    expect(k.frames.every((f) => !f.batch && f.messages === 1)).toBe(true);
    expect(k.frames.length).toBe(k.received.length);
    k.close();
  });
});

describe("batch mode across a restart", () => {
  it.each(["hibernate", "evict"] as const)(
    "survives %s: the socket's session keeps it",
    async (how) => {
      const object = `batch-survives-${how}`;
      const k = await openBatching(object);
      if (how === "hibernate") {
        await evictDurableObject(objectStub(object), { webSockets: "hibernate" });
      } else {
        await evictDurableObject(objectStub(object));
      }
      const syncs = [k.synchronizeOf(0, 0, ASYNC), k.synchronizeOf(0, 0, ASYNC)];
      const framesBefore = k.frames.length;
      k.sendBatch(syncs);
      for (const { id } of syncs) await k.completion(id);
      expect(k.frames.slice(framesBefore)).toEqual([{ batch: true, messages: 4 }]);
      k.close();
    },
  );
});

describe("outbox resends after ready", () => {
  it("leave as one batch frame after a plain ready", async () => {
    const object = "batch-outbox-resend";
    const k = await openBatching(object);
    const syncs = [0, 1, 2].map(() => k.synchronizeOf(0, 0, ASYNC));
    k.sendBatch(syncs);
    for (const { id } of syncs) await k.completion(id);
    // Not reported received: the completions stay in the outbox.
    k.close();
    await waitFor(async () => !(await stat(object)).kernels[0].connected, "k1 gone");
    const again = await TestKernel.connect(object, "k1");
    const ready = await again.init({ batch: true, receivedMid: 0 });
    expect(ready).toMatchObject({ batch: true, last_id: syncs[2]!.id });
    for (const { id } of syncs) await again.completion(id);
    expect(again.frames).toEqual([
      { batch: false, messages: 1 },
      { batch: true, messages: 3 },
    ]);
    expect(again.all("memory_object_synchronize_completed").map((m) => m.mid)).toEqual([1, 2, 3]);
    again.close();
  });
});

describe("a data_request inside a batch", () => {
  it("whose supply is read from R2 keeps the replies behind it in order, in one frame", async () => {
    const object = "batch-supply-order";
    const k = await openBatching(object);
    const page = pageOf(5);
    const ret = k.returnOf(0, page);
    const flush = k.synchronizeOf(0, 4096, SYNC);
    k.sendBatch([ret, flush], [page]);
    await k.completion(flush.id);
    await waitFor(async () => (await stat(object)).journal_pages === 0, "the page in R2");
    const before = k.received.length;
    const framesBefore = k.frames.length;
    const request = {
      type: "memory_object_data_request",
      id: k.takeId(),
      offset: 0,
      length: 4096,
      desired_access: 1,
    };
    const after = k.synchronizeOf(8192, 4096, ASYNC);
    k.sendBatch([request, after]);
    await k.completion(after.id);
    expect(since(k, before).map((m) => [m.type, m.reply_to ?? m.id])).toEqual([
      ["memory_object_data_supply", request.id],
      ["ack", after.id],
      ["memory_object_synchronize_completed", after.id],
    ]);
    expect(k.received[before]!.payload).toEqual(page);
    // Drained together once the supply was read: one binary batch.
    expect(k.frames.slice(framesBefore)).toEqual([{ batch: true, messages: 3 }]);
    k.close();
  });
});

describe("a terminate inside a batch", () => {
  it("ends what the batch applies: a message after it is refused, and the socket closes", async () => {
    const object = "batch-terminate-first";
    const k = await openBatching(object);
    const page = pageOf(7);
    const terminate = { type: "memory_object_terminate", id: k.takeId() };
    const ret = k.returnOf(0, page);
    k.sendBatch([terminate, ret], [page]);
    const ack = await k.ack(terminate.id);
    expect(await k.answer(ret.id as number)).toMatchObject({
      type: "error",
      seqno: ack.seqno + 1,
      code: "bad_frame",
      message: expect.stringMatching(/after memory_object_terminate/),
    });
    expect((await stat(object)).pages).toBe(0);
    expect((await stat(object)).kernels).toEqual([]);
  });
});
