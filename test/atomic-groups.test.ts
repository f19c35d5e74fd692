/**
 * Atomic groups (docs/protocol.md §12) over raw frames: grouped returns and set_sizes are acked
 * when staged and seen by nobody (the same kernel, another kernel, HTTP) until the synchronize
 * that commits them, which applies them in the order sent; an abandoned group is discarded at the
 * kernel's next init unless it names it in `open_groups`, and at terminate; a dropped socket
 * resumes and commits; an eviction loses nothing staged; resends are not staged twice; a refusal
 * for room discards the group and keeps refusing it until its synchronize.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  KERN_RESOURCE_SHORTAGE,
  MAX_OPEN_GROUPS,
  VM_SYNC_ASYNCHRONOUS as ASYNC,
  VM_SYNC_SYNCHRONOUS as SYNC,
} from "../schema";
import type { MemoryObject } from "../durable/memory-object";
import { objectStub } from "./helpers/buckets";
import { readPages, stat } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf, type InitOptions } from "./helpers/kernel";

const PAGE = 4096;

/** Sends a dirty data_return of `data` at `offset` staged in `group`; returns its id. */
function stage(k: TestKernel, offset: number, data: Uint8Array, group: number, id = k.takeId()) {
  k.sendBinary({ ...k.returnOf(offset, data, id), group }, data);
  return id;
}

/** Sends the synchronize that commits `group`; returns its id. */
function commit(k: TestKernel, offset: number, length: number, group: number, flags = ASYNC) {
  const id = k.takeId();
  k.send({ ...k.synchronizeOf(offset, length, flags, id), group });
  return id;
}

async function open(object: string, kernel = "k1", options: InitOptions = {}) {
  const { kernel: k, ready } = await TestKernel.open(object, kernel, options);
  expect(ready.type).toBe("memory_object_ready");
  return k;
}

/** The first byte of each page of [0, pages) as HTTP reads it. */
async function firstBytes(object: string, pages: number): Promise<number[]> {
  const bytes = await readPages(object, 0, pages * PAGE);
  return Array.from({ length: pages }, (_, i) => bytes[i * PAGE]!);
}

describe("a group's staged returns", () => {
  it("are acked, and invisible to the kernel itself, to another kernel and to HTTP until the commit", async () => {
    const object = "group-invisible";
    const writer = await open(object, "writer");
    const reader = await open(object, "reader");
    const ids = [stage(writer, 0, pageOf(1), 7), stage(writer, PAGE, pageOf(2), 7)];
    for (const id of ids) expect(await writer.answer(id)).toMatchObject({ type: "ack", id });

    // Nobody's read sees a staged page: the kernel's own, another kernel's, HTTP's.
    const own = writer.dataRequest(0, 2 * PAGE);
    expect(await writer.answer(own)).toMatchObject({ type: "memory_object_data_unavailable" });
    const other = reader.dataRequest(0, 2 * PAGE);
    expect(await reader.answer(other)).toMatchObject({ type: "memory_object_data_unavailable" });
    expect(await firstBytes(object, 2)).toEqual([0, 0]);
    expect(await stat(object)).toMatchObject({ pages: 0, size: 0, journal_pages: 0 });

    const sync = commit(writer, 0, 2 * PAGE, 7);
    const completion = await writer.completion(sync);
    expect(completion).toMatchObject({ type: "memory_object_synchronize_completed" });
    // At the commit's seqno, all of the group at once.
    expect(await firstBytes(object, 2)).toEqual([1, 2]);
    expect(await stat(object)).toMatchObject({ pages: 2, size: 2 * PAGE });
    const after = reader.dataRequest(0, 2 * PAGE);
    const supply = await reader.answer(after);
    expect(supply).toMatchObject({
      type: "memory_object_data_supply",
      seqno: completion.seqno + 3,
    });
    expect([supply.payload![0], supply.payload![PAGE]]).toEqual([1, 2]);
    writer.close();
    reader.close();
  });

  it("apply in the order sent: a page staged twice keeps its later bytes, a set_size cuts what came before it", async () => {
    const object = "group-order";
    const k = await open(object);
    stage(k, 0, pageOf(1), 3);
    stage(k, 0, pageOf(9), 3);
    stage(k, PAGE, pageOf(2), 3);
    stage(k, 2 * PAGE, pageOf(3), 3);
    // Cuts page 2 (staged before it) and half of page 1; page 3 comes after it.
    k.send({ type: "memory_object_set_size", id: k.takeId(), size: PAGE + 100, group: 3 });
    const last = stage(k, 3 * PAGE, pageOf(4), 3);
    await k.ack(last);
    await k.completion(commit(k, 0, 4 * PAGE, 3, SYNC));
    const bytes = await readPages(object, 0, 4 * PAGE);
    expect(bytes[0]).toBe(9);
    expect(bytes[PAGE + 99]).toBe(2);
    expect(bytes[PAGE + 100]).toBe(0);
    expect(bytes[2 * PAGE]).toBe(0);
    expect(bytes[3 * PAGE]).toBe(4);
    // The set_size, then the later return raised it to its end.
    expect(await stat(object)).toMatchObject({ size: 4 * PAGE, pages: 3 });
    k.close();
  });

  it("in one batch with their synchronize are one frame and one commit", async () => {
    const object = "group-batch";
    const { kernel: k } = await TestKernel.open(object, "k1", { batch: true });
    const pages = [pageOf(5), pageOf(6)];
    const returns = pages.map((page, i) => ({ ...k.returnOf(i * PAGE, page), group: 1 }));
    const sync = { ...k.synchronizeOf(0, 2 * PAGE, SYNC), group: 1 };
    k.sendBatch([...returns, sync], pages);
    expect(await k.completion(sync.id)).toMatchObject({
      type: "memory_object_synchronize_completed",
    });
    expect(await firstBytes(object, 2)).toEqual([5, 6]);
    k.close();
  });

  it("a synchronize naming a group with nothing staged commits nothing and completes as usual", async () => {
    const k = await open("group-empty");
    const id = commit(k, 0, PAGE, 42, SYNC);
    expect(await k.completion(id)).toMatchObject({ type: "memory_object_synchronize_completed" });
    expect(await stat("group-empty")).toMatchObject({ pages: 0 });
    k.close();
  });

  it("a group's number may be used again once committed", async () => {
    const object = "group-reuse";
    const k = await open(object);
    stage(k, 0, pageOf(1), 1);
    await k.completion(commit(k, 0, PAGE, 1));
    stage(k, PAGE, pageOf(2), 1);
    await k.completion(commit(k, 0, 2 * PAGE, 1));
    expect(await firstBytes(object, 2)).toEqual([1, 2]);
    k.close();
  });

  it("of different kernels with the same number are different groups", async () => {
    const object = "group-per-kernel";
    const a = await open(object, "a");
    const b = await open(object, "b");
    stage(a, 0, pageOf(1), 1);
    await b.ack(stage(b, PAGE, pageOf(2), 1));
    await a.completion(commit(a, 0, 2 * PAGE, 1));
    expect(await firstBytes(object, 2)).toEqual([1, 0]);
    await b.completion(commit(b, 0, 2 * PAGE, 1));
    expect(await firstBytes(object, 2)).toEqual([1, 2]);
    a.close();
    b.close();
  });
});

describe("abandoned groups", () => {
  it("are discarded at the kernel's next init unless named in open_groups", async () => {
    const object = "group-abandoned";
    const k = await open(object);
    await k.ack(stage(k, 0, pageOf(1), 1));
    await k.ack(stage(k, PAGE, pageOf(2), 2));
    k.close();
    // It resumes holding group 2 only: group 1 is gone, never applied.
    const again = await open(object, "k1", { openGroups: [2] });
    again.setNextId(100);
    await again.completion(commit(again, 0, 2 * PAGE, 1));
    expect(await firstBytes(object, 2)).toEqual([0, 0]);
    await again.completion(commit(again, 0, 2 * PAGE, 2));
    expect(await firstBytes(object, 2)).toEqual([0, 2]);
    again.close();
  });

  it("are discarded at terminate", async () => {
    const object = "group-terminate";
    const k = await open(object);
    await k.ack(stage(k, 0, pageOf(1), 1));
    const bye = k.takeId();
    k.send({ type: "memory_object_terminate", id: bye });
    await k.ack(bye);
    const again = await open(object, "k1", { openGroups: [1] });
    await again.completion(commit(again, 0, PAGE, 1));
    expect(await firstBytes(object, 1)).toEqual([0]);
    again.close();
  });

  it("a grouped return after a terminate in the same batch leaves no group behind", async () => {
    const object = "group-after-terminate";
    const { kernel: k } = await TestKernel.open(object, "k1", { batch: true });
    const bye = k.takeId();
    const lateId = k.takeId();
    const late = { ...k.returnOf(0, pageOf(1), lateId), group: 9 };
    k.sendBatch([{ type: "memory_object_terminate", id: bye }, late], [pageOf(1)]);
    expect(await k.answer(lateId)).toMatchObject({ type: "error", code: "bad_frame" });
    // The same kernel again, naming the group: nothing of it exists, its synchronize completes.
    const again = await open(object, "k1", { openGroups: [9] });
    expect(await again.completion(commit(again, 0, PAGE, 9))).toMatchObject({
      type: "memory_object_synchronize_completed",
    });
    expect(await firstBytes(object, 1)).toEqual([0]);
    again.close();
  });

  it("survive a dropped socket and an eviction, and commit after the kernel resumes", async () => {
    const object = "group-resume";
    const k = await open(object);
    await k.ack(stage(k, 0, pageOf(1), 5));
    const lastStaged = stage(k, PAGE, pageOf(2), 5);
    await k.ack(lastStaged);
    k.close();
    await evictDurableObject(objectStub(object));
    expect(await firstBytes(object, 2)).toEqual([0, 0]);
    const again = await open(object, "k1", { openGroups: [5] });
    again.setNextId(lastStaged + 1);
    await again.completion(commit(again, 0, 2 * PAGE, 5, SYNC));
    expect(await firstBytes(object, 2)).toEqual([1, 2]);
    again.close();
  });

  it("staged messages count as applied: a resend after a reconnect is acked again, not staged twice", async () => {
    const object = "group-resend";
    const k = await open(object);
    const id = stage(k, 0, pageOf(1), 1);
    const original = await k.ack(id);
    k.close();
    const again = await open(object, "k1", { openGroups: [1] });
    const ready = again.received.find((m) => m.type === "memory_object_ready")!;
    expect(ready.last_id).toBe(id);
    // The resend carries other bytes: were it staged again, they would win at the commit.
    stage(again, 0, pageOf(9), 1, id);
    expect(await again.ack(id)).toEqual(original);
    again.setNextId(id + 1);
    await again.completion(commit(again, 0, PAGE, 1));
    expect(await firstBytes(object, 1)).toEqual([1]);
    again.close();
  });
});

describe("refusals", () => {
  it("a grouped return that does not fit discards its group, and its later messages and synchronize are refused", async () => {
    const object = "group-full";
    const k = await open(object);
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.testHooks.limits.journalMaxBytes = 3 * PAGE;
    });
    await k.ack(stage(k, 0, pageOf(1), 1));
    await k.ack(stage(k, PAGE, pageOf(2), 1));
    // Three pages would fit, four do not: staged pages count against the journal's room.
    const tooMany = stage(k, 2 * PAGE, new Uint8Array(2 * PAGE).fill(3), 1);
    expect(await k.answer(tooMany)).toMatchObject({
      type: "error",
      kern_return: KERN_RESOURCE_SHORTAGE,
      code: "journal_full",
      message: expect.stringContaining("atomic group 1 is discarded"),
    });
    // Discarded: its room is free again (another group fits three pages now).
    await k.ack(stage(k, 0, new Uint8Array(3 * PAGE).fill(8), 2));
    const later = stage(k, 3 * PAGE, pageOf(4), 1);
    expect(await k.answer(later)).toMatchObject({ type: "error", code: "group_discarded" });
    const sync = commit(k, 0, 4 * PAGE, 1);
    expect(await k.answer(sync)).toMatchObject({
      type: "error",
      kern_return: KERN_RESOURCE_SHORTAGE,
      code: "group_discarded",
    });
    expect(await firstBytes(object, 4)).toEqual([0, 0, 0, 0]);
    // After its synchronize the number is free: group 1 stages and commits again.
    // SYNCHRONOUS: its pages leave the journal for R2, which makes room again.
    await k.completion(commit(k, 0, 3 * PAGE, 2, SYNC));
    await k.ack(stage(k, 3 * PAGE, pageOf(4), 1));
    await k.completion(commit(k, 3 * PAGE, PAGE, 1));
    expect(await firstBytes(object, 4)).toEqual([8, 8, 8, 4]);
    k.close();
  });

  it("any refused grouped message discards its group: a commit in one batch cannot apply without it", async () => {
    const object = "group-refused-in-batch";
    const { kernel: k } = await TestKernel.open(object, "k1", { batch: true });
    const good = pageOf(1);
    const first = k.returnOf(0, good);
    const misaligned = k.takeId();
    const returns = [
      { ...first, group: 4 },
      // Misaligned: refused for its field, not for room.
      { ...k.returnOf(PAGE + 1, good, misaligned), group: 4 },
    ];
    const sync = { ...k.synchronizeOf(0, 2 * PAGE, ASYNC), group: 4 };
    k.sendBatch([...returns, sync], [good, good]);
    expect(await k.answer(misaligned)).toMatchObject({
      type: "error",
      code: "bad_field",
      message: expect.stringContaining("atomic group 4 is discarded"),
    });
    expect(await k.answer(sync.id)).toMatchObject({ type: "error", code: "group_discarded" });
    expect(await firstBytes(object, 2)).toEqual([0, 0]);
    expect(await stat(object)).toMatchObject({ pages: 0 });
    k.close();
  });

  it("a kernel may have MAX_OPEN_GROUPS open groups, and is refused one more", async () => {
    const object = "group-too-many";
    const k = await open(object);
    let last = 0;
    for (let group = 1; group <= MAX_OPEN_GROUPS; group++) last = stage(k, 0, pageOf(1), group);
    await k.ack(last);
    const one = stage(k, 0, pageOf(1), MAX_OPEN_GROUPS + 1);
    expect(await k.answer(one)).toMatchObject({ type: "error", code: "too_many_groups" });
    // A refusal for a limit, not for room: the open groups are untouched.
    await k.completion(commit(k, 0, PAGE, MAX_OPEN_GROUPS));
    expect(await firstBytes(object, 1)).toEqual([1]);
    k.close();
  });

  it("group, open_groups and set_size are checked like any field", async () => {
    const k = await TestKernel.connect("group-bad-fields", "k1");
    k.send({
      type: "memory_object_init",
      id: 1,
      page_size: PAGE,
      received_mid: 0,
      open_groups: [0],
    });
    expect(await k.answer(1)).toMatchObject({
      type: "error",
      code: "bad_field",
      message: expect.stringMatching(/^open_groups /),
    });
    const ready = await k.init({ id: 2 });
    expect(ready.type).toBe("memory_object_ready");
    k.sendBinary({ ...k.returnOf(0, pageOf(1), 3), group: "1" }, pageOf(1));
    expect(await k.answer(3)).toMatchObject({ code: "bad_field", message: /^group / });
    k.send({ type: "memory_object_set_size", id: 4, size: -1 });
    expect(await k.answer(4)).toMatchObject({ code: "bad_field", message: /^size / });
    await expectQuiet(k);
    k.close();
  });
});
