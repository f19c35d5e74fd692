/**
 * Ordering (docs/protocol.md §3, docs/architecture.md §3): messages take effect in seqno order even while earlier
 * ones wait on R2, so the last return of a page wins and each read sees the version of its seqno;
 * every message that reaches the object, rejected frames and HTTP requests included, consumes
 * exactly one seqno, and the answers carry them.
 */
import { describe, expect, it } from "vitest";
import {
  CLOSE_NORMAL,
  VM_SYNC_ASYNCHRONOUS as ASYNC,
  VM_SYNC_SYNCHRONOUS as SYNC,
} from "../schema";
import { wrapObjectBucket } from "./helpers/buckets";
import { call, putPages, readPages, stat, synchronize } from "./helpers/http";
import { TestKernel, pageOf, settle, type Received } from "./helpers/kernel";

/** A page's bytes for version `v` (below 256): any two versions of one page differ. */
function version(v: number, page = 0, size = 4096): Uint8Array {
  return new Uint8Array(size).map((_, i) => (v * 7 + page * 3 + (i % 5)) % 256);
}

function same(actual: Uint8Array | undefined, expected: Uint8Array): boolean {
  if (!actual || actual.byteLength !== expected.byteLength) return false;
  return actual.every((b, i) => b === expected[i]);
}

/** The answers that carry the seqno of a request: everything but outbox messages. */
function replies(kernel: TestKernel): Received[] {
  return kernel.received.filter((m) => typeof m.seqno === "number" && m.mid === undefined);
}

describe("the last return of a page wins", () => {
  it("many returns of one page, then a read", async () => {
    const name = "ord-last";
    const { kernel } = await TestKernel.open(name, "k1");
    const count = 40;
    const ids: number[] = [];
    for (let v = 1; v <= count; v++) ids.push(kernel.dataReturn(4096, version(v)));
    const request = kernel.dataRequest(4096, 4096);
    const supply = await kernel.answer(request);
    expect(supply.type).toBe("memory_object_data_supply");
    expect(same(supply.payload, version(count))).toBe(true);
    for (const id of ids) await kernel.ack(id);
    expect(same(await readPages(name, 4096, 4096), version(count))).toBe(true);

    // Overlapping multi-page returns: each page shows its newest version.
    kernel.dataReturn(0, new Uint8Array([...version(50, 0), ...version(50, 1), ...version(50, 2)]));
    kernel.dataReturn(4096, version(51, 1));
    kernel.dataReturn(8192, new Uint8Array([...version(52, 2), ...version(52, 3)]));
    const mixed = await kernel.answer(kernel.dataRequest(0, 4 * 4096));
    expect(
      same(
        mixed.payload,
        new Uint8Array([
          ...version(50, 0),
          ...version(51, 1),
          ...version(52, 2),
          ...version(52, 3),
        ]),
      ),
    ).toBe(true);
    kernel.close();
  });

  it("returns from two kernels: the higher seqno wins", async () => {
    const name = "ord-two-kernels";
    const { kernel: a } = await TestKernel.open(name, "a");
    const { kernel: b } = await TestKernel.open(name, "b");
    const seqnos: number[] = [];
    for (let v = 1; v <= 10; v++) {
      const k = v % 2 === 0 ? a : b;
      seqnos.push((await k.ack(k.dataReturn(0, version(v)))).seqno);
    }
    expect([...seqnos].sort((x, y) => x - y)).toEqual(seqnos);
    expect(same(await readPages(name, 0, 4096), version(10))).toBe(true);
    const supply = await a.answer(a.dataRequest(0, 4096));
    expect(same(supply.payload, version(10))).toBe(true);
    a.close();
    b.close();
  });

  it("with slow R2 puts and flushes in between, every read sees the version of its seqno", async () => {
    const name = "ord-slow";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { delayMs: 40 });
    const count = 30;
    const reads: { id: number; v: number }[] = [];
    const syncs: number[] = [];
    for (let v = 1; v <= count; v++) {
      // Two pages per return, so a segment holds several pages and slots matter.
      kernel.dataReturn(0, new Uint8Array([...version(v, 0), ...version(v, 1)]));
      if (v % 4 === 0) syncs.push(kernel.synchronize(0, 8192, SYNC));
      if (v % 7 === 0) syncs.push(kernel.synchronize(4096, 4096, ASYNC));
      reads.push({ id: kernel.dataRequest(0, 8192), v });
      // Let flushes start and finish between some of the returns.
      if (v % 3 === 0) await settle(25);
    }
    for (const { id, v } of reads) {
      const supply = await kernel.answer(id);
      expect(supply.type, `read after version ${v}`).toBe("memory_object_data_supply");
      expect(
        same(supply.payload, new Uint8Array([...version(v, 0), ...version(v, 1)])),
        `read after version ${v}`,
      ).toBe(true);
    }
    for (const id of syncs) {
      expect(await kernel.completion(id)).toMatchObject({
        type: "memory_object_synchronize_completed",
        reply_to: id,
      });
    }
    expect(control.written.length).toBeGreaterThan(1);
    const latest = new Uint8Array([...version(count, 0), ...version(count, 1)]);
    expect(same(await readPages(name, 0, 8192), latest)).toBe(true);

    // One more flush takes whatever the journal still holds; then it is read back from R2.
    await kernel.completion(kernel.synchronize(0, 8192, SYNC));
    expect(await stat(name)).toMatchObject({ journal_pages: 0, syncs: 0, pages: 2 });
    const fromR2 = await kernel.answer(kernel.dataRequest(0, 8192));
    expect(same(fromR2.payload, latest)).toBe(true);
    expect(same(await readPages(name, 0, 8192), latest)).toBe(true);
    kernel.close();
  });

  it("a return that arrives while its page's older version is being written is kept", async () => {
    const name = "ord-overtake";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { delayMs: 200 });
    await kernel.ack(kernel.dataReturn(0, version(1)));
    const first = kernel.synchronize(0, 4096, SYNC);
    await kernel.ack(first);
    // The put of version 1 is under way; version 2 arrives and a second request waits for it.
    await kernel.ack(kernel.dataReturn(0, version(2)));
    const second = kernel.synchronize(0, 4096, SYNC);
    await kernel.ack(second);
    const during = await kernel.answer(kernel.dataRequest(0, 4096));
    expect(same(during.payload, version(2))).toBe(true);

    await kernel.completion(first);
    // Version 1 is in R2; version 2 must still be what a read returns.
    expect(same(await readPages(name, 0, 4096), version(2))).toBe(true);
    const completedSecond = await kernel.completion(second);
    expect(completedSecond.type).toBe("memory_object_synchronize_completed");
    expect(control.written).toHaveLength(2);
    expect(await stat(name)).toMatchObject({ journal_pages: 0 });
    const after = await kernel.answer(kernel.dataRequest(0, 4096));
    expect(same(after.payload, version(2))).toBe(true);
    kernel.close();
  });
});

describe("seqnos", () => {
  it("one per frame, rejected ones included, increasing in send order on a socket", async () => {
    const name = "ord-seqnos";
    // Frames before init are rejected and consume seqnos too.
    const kernel = await TestKernel.connect(name, "k1");
    kernel.send("not json at all");
    const early = kernel.dataRequest(0, 4096);
    const ready = await kernel.init();
    const beforeInit = kernel.received.filter((m) => m.type === "error");
    expect(beforeInit.map((m) => [m.reply_to, m.seqno, m.code])).toEqual([
      [null, 0, "bad_json"],
      [early, 1, "not_initialized"],
    ]);
    expect(ready.seqno).toBe(2);

    // Each step sends one frame; `id` finds its answer, "null" marks a frame answered with an
    // error whose reply_to is null (those arrive in order), "none" one that has no answer.
    type Step = { send: () => void; answer: number | "null" | "none" };
    const steps: Step[] = [];
    const withId = (make: (id: number) => void) => {
      const id = kernel.takeId();
      steps.push({ send: () => make(id), answer: id });
    };
    const garbage = (send: () => void) => steps.push({ send, answer: "null" });

    withId((id) => kernel.dataReturn(0, pageOf(1), id));
    garbage(() => kernel.send("{{{"));
    withId((id) => kernel.dataRequest(0, 4096, id));
    withId((id) => kernel.synchronize(0, 4096, ASYNC, id));
    garbage(() => kernel.send("{}"));
    withId((id) => kernel.dataReturn(100, pageOf(2), id)); // misaligned: error with reply_to
    garbage(() => kernel.socket.send(new Uint8Array([0, 0])));
    withId((id) => kernel.dataRequest(1 << 20, 4096, id)); // never written: unavailable
    withId((id) =>
      kernel.send({ type: "memory_object_init", id, page_size: 4096, received_mid: 0 }),
    );
    steps.push({
      send: () => kernel.send({ type: "received", id: kernel.takeId(), mid: 0 }),
      answer: "none",
    });
    withId((id) => kernel.send({ type: "memory_object_frobnicate", id }));
    withId((id) => kernel.dataReturn(8192, pageOf(3), id));
    withId((id) => kernel.synchronize(0, 4096, 3, id)); // SYNCHRONOUS|ASYNCHRONOUS: error
    withId((id) => kernel.synchronize(0, 12288, SYNC, id));
    withId((id) => kernel.dataRequest(0, 12288, id));

    for (const step of steps) step.send();
    const answered = steps.filter((step) => step.answer !== "none").length;
    const base = replies(kernel).length;
    await kernel.next(() => replies(kernel).length >= base + answered);
    // The last frame is a data_request: it is the probe (see `TestKernel.probe`). Once its
    // answer is here, so is every reply to the frames before it, and any extra one would show.
    const lastRead = steps[steps.length - 1]!.answer as number;
    await kernel.next((m) => m.reply_to === lastRead);
    const nullErrors = replies(kernel)
      .slice(base)
      .filter((m) => m.type === "error" && m.reply_to === null);
    const answers: Received[] = [];
    for (const step of steps) {
      if (step.answer === "none") continue;
      if (step.answer === "null") {
        answers.push(nullErrors.shift()!);
        continue;
      }
      const id = step.answer;
      answers.push(
        await kernel.next(
          (m) => m.mid === undefined && (m.reply_to === id || (m.type === "ack" && m.id === id)),
        ),
      );
    }
    expect(nullErrors).toEqual([]);
    const expected = steps.flatMap((step, i) =>
      step.answer === "none" ? [] : [ready.seqno + 1 + i],
    );
    expect(answers.map((m) => m.seqno)).toEqual(expected);
    expect(answers.map((m) => m.type)).toEqual([
      "ack",
      "error",
      "memory_object_data_supply",
      "ack",
      "error",
      "error",
      "error",
      "memory_object_data_unavailable",
      "error",
      "error",
      "ack",
      "error",
      "ack",
      "memory_object_data_supply",
    ]);
    expect(replies(kernel)).toHaveLength(base + answered);

    // As they arrived: no seqno twice, and acks and errors (answered at once) in increasing order.
    const all = replies(kernel);
    expect(new Set(all.map((m) => m.seqno)).size).toBe(all.length);
    const immediate = all.filter((m) => m.type === "ack" || m.type === "error").map((m) => m.seqno);
    expect(immediate).toEqual([...immediate].sort((x, y) => x - y));
    // The completions carry the seqnos of their requests.
    await kernel.next(
      (m) => m.type === "memory_object_synchronize_completed" && m.length === 12288,
    );
    for (const completion of kernel.all("memory_object_synchronize_completed")) {
      const ack = kernel.received.find((m) => m.type === "ack" && m.id === completion.reply_to);
      expect(completion.seqno).toBe(ack!.seqno);
    }
    expect(kernel.all("memory_object_synchronize_completed")).toHaveLength(2);
    // The next seqno to be given is the one after the last frame.
    expect((await stat(name)).seqno).toBe(ready.seqno + steps.length + 2);
    kernel.close();
  });

  it("HTTP requests take seqnos between the socket's frames", async () => {
    const name = "ord-http";
    const { kernel, ready } = await TestKernel.open(name, "k1");
    let next = ready.seqno + 1;
    const expectSeqno = (actual: number) => expect(actual).toBe(next++);

    expectSeqno((await kernel.ack(kernel.dataReturn(0, pageOf(1)))).seqno);
    const status = await stat(name); // takes one, reports the next
    next++;
    expect(status.seqno).toBe(next);
    const put = await putPages(name, 4096, pageOf(2));
    expectSeqno(((await put.json()) as { seqno: number }).seqno);
    expectSeqno((await kernel.ack(kernel.dataReturn(8192, pageOf(3)))).seqno);
    expect((await readPages(name, 0, 3 * 4096)).byteLength).toBe(3 * 4096); // takes one
    next++;
    const sync = await synchronize(name, 0, 3 * 4096, SYNC);
    expectSeqno(((await sync.json()) as { seqno: number }).seqno);
    const bad = await putPages(name, 100, pageOf(4)); // misaligned: rejected, still takes one
    expect(bad.status).toBe(400);
    next++;
    const badSync = await call(`/v1/objects/${name}/synchronize`, { method: "POST", body: "nope" });
    expect(badSync.status).toBe(400);
    next++;
    expect((await call(`/v1/objects/${name}/syncs`)).status).toBe(200);
    next++;
    expectSeqno((await kernel.answer(kernel.dataRequest(0, 4096))).seqno);
    kernel.send("garbage");
    expectSeqno((await kernel.next((m) => m.type === "error" && m.reply_to === null)).seqno);
    const last = await stat(name);
    next++;
    expect(last.seqno).toBe(next);
    // The page written over HTTP between the socket's returns is where it belongs.
    const supply = await kernel.answer(kernel.dataRequest(4096, 4096));
    expect(supply.payload!.every((b: number) => b === 2)).toBe(true);
    kernel.close();
  });

  it("HTTP and socket returns to one page: the later seqno wins", async () => {
    const name = "ord-http-page";
    const { kernel } = await TestKernel.open(name, "k1");
    const control = await wrapObjectBucket(name, { delayMs: 30 });
    for (let v = 1; v <= 12; v++) {
      if (v % 2 === 0) {
        const put = await putPages(name, 0, version(v));
        expect(put.status).toBe(200);
      } else {
        await kernel.ack(kernel.dataReturn(0, version(v)));
      }
      if (v % 4 === 0) void synchronize(name, 0, 4096, SYNC);
    }
    expect(same(await readPages(name, 0, 4096), version(12))).toBe(true);
    await (await synchronize(name, 0, 4096, SYNC)).json();
    expect(control.written.length).toBeGreaterThanOrEqual(1);
    expect(same(await readPages(name, 0, 4096), version(12))).toBe(true);
    kernel.close();
  });
});

describe("terminate", () => {
  it("closes the socket only after every answer before it, a data_supply being read included", async () => {
    // Found by `npm run fuzz`: the socket closed while the supply was still being read, and the
    // supply and the terminate's ack (queued behind it) were never sent.
    const name = "ord-terminate-after-read";
    const { kernel } = await TestKernel.open(name, "k1");
    await kernel.ack(kernel.dataReturn(0, version(1)));
    await kernel.completion(kernel.synchronize(0, 4096, SYNC));
    // The page is in R2 now, and reading it takes a while.
    await wrapObjectBucket(name, { readDelayMs: 200 });
    const request = kernel.dataRequest(0, 4096);
    const terminate = kernel.takeId();
    kernel.send({ type: "memory_object_terminate", id: terminate });
    await kernel.ack(terminate);
    const answers = replies(kernel).map((m) => m.type);
    expect(answers.slice(-2)).toEqual(["memory_object_data_supply", "ack"]);
    expect(same(kernel.all("memory_object_data_supply")[0]!.payload, version(1))).toBe(true);
    expect(kernel.all("memory_object_data_supply")[0]!.reply_to).toBe(request);
    for (let i = 0; i < 100 && !kernel.closed; i++) await settle(10);
    expect(kernel.closed?.code).toBe(CLOSE_NORMAL);
  });
});
