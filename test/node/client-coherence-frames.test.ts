// PageCache on a coherent object (docs/protocol.md §10), frame by frame against a manager the test
// plays (test/node/scripted-manager.ts): what a write asks for, what a demotion or flush gets back,
// that an update holds lock requests touching its range until its return is acked and answers
// them in order, that a fenced update runs again and an acked one never does, and that a ready
// with flush: true drops dirty pages of a coherent object only. The same against the real
// manager is test/node/client-coherence.test.ts.
import { describe, expect, it } from "vitest";
import {
  KERN_PROTECTION_FAILURE,
  VM_PROT_NONE,
  VM_PROT_READ,
  VM_PROT_WRITE,
  VM_SYNC_SYNCHRONOUS,
} from "../../client";
import { MEMORY_OBJECT_RETURN_NONE } from "../../schema";
import { waitFor } from "../helpers/wait";
import { PAGE, ScriptedManager, counterPage, u64 } from "./scripted-manager";

/** Resolves when `promise` has settled, with whether it did (checked after the queued work ran). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
}

const increment = (bytes: Uint8Array) => counterPage(u64(bytes) + 1).subarray(0, 8);

describe("writes on a coherent object", () => {
  it("ask for missing pages with READ|WRITE, one request per run, and need nothing more once writer", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    const bytes = new Uint8Array(2 * PAGE).fill(7);
    const write = cache.write(PAGE / 2, bytes);
    const request = await manager.next("data_request");
    expect(request).toMatchObject({
      offset: 0,
      length: 3 * PAGE,
      desired_access: VM_PROT_READ | VM_PROT_WRITE,
    });
    manager.deliver(manager.supply(request.id, 0, new Uint8Array(3 * PAGE).fill(1)));
    await write;
    const read = await cache.read(0, 3 * PAGE);
    expect([
      read[0],
      read[PAGE / 2],
      read[2 * PAGE + PAGE / 2 - 1],
      read[2 * PAGE + PAGE / 2],
    ]).toEqual([1, 7, 7, 1]);
    await cache.write(PAGE, new Uint8Array(PAGE).fill(9));
    expect(manager.of("data_request")).toHaveLength(1);
    expect(manager.of("data_unlock")).toHaveLength(0);
    cache.connection.close();
  });

  it("return dirty pages to a demotion (kernel_copy true), keep them read-only, and unlock them before the next write", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    const write = cache.write(0, new Uint8Array(2 * PAGE).fill(5));
    const request = await manager.next("data_request");
    manager.deliver(manager.supply(request.id, 0, new Uint8Array(2 * PAGE)));
    await write;

    const demote = manager.lock(0, 2, { lock_value: VM_PROT_WRITE });
    manager.deliver(demote);
    const returned = await manager.next("data_return");
    expect(returned).toMatchObject({ offset: 0, length: 2 * PAGE, dirty: true, kernel_copy: true });
    expect(returned.payload![0]).toBe(5);
    expect(
      manager.completed(demote.message.lock_id),
      "lock_completed waits for the return's ack",
    ).toBeUndefined();
    manager.deliver(manager.ack(returned.id));
    await manager.next("lock_completed", (m) => m.lock_id === demote.message.lock_id);
    expect(cache.stats).toMatchObject({ cached: 2, dirty: 0 });

    // Read-only now: a read needs nothing, a write of page 1 unlocks exactly page 1.
    expect((await cache.read(PAGE, 1))[0]).toBe(5);
    const second = cache.write(PAGE, new Uint8Array([6]));
    const unlock = await manager.next("data_unlock");
    expect(unlock).toMatchObject({ offset: PAGE, length: PAGE, desired_access: VM_PROT_WRITE });
    // A demotion of that same range while the unlock waits is not its grant.
    const again = manager.lock(1, 2, { lock_value: VM_PROT_WRITE });
    manager.deliver(again);
    await manager.next("lock_completed", (m) => m.lock_id === again.message.lock_id);
    expect(await settled(second), "the write waits for the grant").toBe(false);
    manager.deliver(
      manager.lock(1, 2, { should_return: MEMORY_OBJECT_RETURN_NONE, lock_value: VM_PROT_NONE }),
    );
    await second;
    expect(cache.stats.dirty).toBe(1);
    expect(manager.of("data_request"), "no page was fetched again").toHaveLength(1);
    cache.connection.close();
  });

  it("flush: a page supplied and flushed in one frame is not cached after it", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    const read = cache.read(0, PAGE);
    const request = await manager.next("data_request");
    expect(request).toMatchObject({ desired_access: VM_PROT_READ, length: PAGE });
    const flush = manager.lock(0, 1, { should_flush: true });
    manager.deliver(
      manager.supply(request.id, 0, new Uint8Array(PAGE).fill(3), VM_PROT_WRITE),
      flush,
    );
    expect((await read)[0]).toBe(3);
    await manager.next("lock_completed", (m) => m.lock_id === flush.message.lock_id);
    expect(cache.stats.cached).toBe(0);
    cache.connection.close();
  });

  it("keep what they acquire until they are done, even with no clean cache (maxCleanBytes 0)", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect({ maxCleanBytes: 0 });
    const write = cache.write(10, new Uint8Array(3 * PAGE).fill(2));
    const request = await manager.next("data_request");
    manager.deliver(manager.supply(request.id, 0, new Uint8Array(4 * PAGE)));
    await write;
    const update = cache.update(5 * PAGE, 8, (bytes) => bytes.fill(1));
    const second = await manager.next("data_request", () => true, 1);
    manager.deliver(manager.supply(second.id, 5 * PAGE, new Uint8Array(PAGE)));
    const returned = await manager.next("data_return");
    manager.deliver(manager.ack(returned.id));
    expect((await update)[0]).toBe(1);
    expect(manager.of("data_request"), "each page asked for once").toHaveLength(2);
    expect(cache.stats).toMatchObject({ dirty: 4, cleanBytes: 0 });
    cache.connection.close();
  }, 10_000);

  it("read no page ahead by default, and read past the known size from the manager", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    const read = cache.read(5 * PAGE, 10);
    const request = await manager.next("data_request");
    expect(request).toMatchObject({ offset: 5 * PAGE, length: PAGE });
    manager.deliver(
      manager.supply(request.id, 5 * PAGE, new Uint8Array(PAGE).fill(4), VM_PROT_WRITE),
    );
    expect((await read)[0]).toBe(4);
    cache.connection.close();
  });
});

describe("update", () => {
  it("holds lock requests touching its range until its return is acked, then answers them in order", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const update = cache.update(0, 8, async (bytes) => {
      calls++;
      await released;
      return increment(bytes);
    });
    const request = await manager.next("data_request");
    expect(request).toMatchObject({ offset: 0, length: PAGE, desired_access: 3 });
    const flush = manager.lock(0, 1, { should_flush: true });
    const elsewhere = manager.lock(5, 6, { should_flush: true });
    const demote = manager.lock(0, 2, { lock_value: VM_PROT_WRITE });
    // The grant and a flush behind it in one frame: the update holds the page from the grant on.
    manager.deliver(manager.supply(request.id, 0, counterPage(41)), flush);
    manager.deliver(elsewhere);
    manager.deliver(demote);
    await manager.next("lock_completed", (m) => m.lock_id === elsewhere.message.lock_id);
    expect(calls).toBe(1);
    expect(manager.completed(flush.message.lock_id)).toBeUndefined();

    release();
    const returned = await manager.next("data_return");
    expect(returned).toMatchObject({ offset: 0, length: PAGE, dirty: true, kernel_copy: true });
    expect(u64(returned.payload!)).toBe(42);
    expect(manager.completed(flush.message.lock_id), "not before the ack").toBeUndefined();
    expect(manager.completed(demote.message.lock_id)).toBeUndefined();
    const acked = manager.sent.length;
    manager.deliver(manager.ack(returned.id));
    expect(u64(await update)).toBe(42);
    const first = await manager.next("lock_completed", (m) => m.lock_id === flush.message.lock_id);
    const second = await manager.next(
      "lock_completed",
      (m) => m.lock_id === demote.message.lock_id,
    );
    expect(manager.sent.indexOf(first)).toBeGreaterThanOrEqual(acked);
    expect(manager.sent.indexOf(first)).toBeLessThan(manager.sent.indexOf(second));
    // The flush answered after the ack found the page clean: nothing more returned.
    expect(manager.of("data_return")).toHaveLength(1);
    expect(cache.stats.cached).toBe(0);
    cache.connection.close();
  });

  it("fenced (KERN_PROTECTION_FAILURE): drops the page, takes it again and runs fn again", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    const seen: number[] = [];
    const update = cache.update(0, 8, (bytes) => {
      seen.push(u64(bytes));
      return increment(bytes);
    });
    const request = await manager.next("data_request");
    manager.deliver(manager.supply(request.id, 0, counterPage(10)));
    const refused = await manager.next("data_return");
    manager.deliver(manager.error(refused.id, KERN_PROTECTION_FAILURE, "not_writer"));
    const again = await manager.next("data_request", () => true, 1);
    expect(again).toMatchObject({ offset: 0, desired_access: 3 });
    manager.deliver(manager.supply(again.id, 0, counterPage(20)));
    const accepted = await manager.next("data_return", () => true, 1);
    expect(u64(accepted.payload!)).toBe(21);
    manager.deliver(manager.ack(accepted.id));
    expect(u64(await update)).toBe(21);
    expect(seen).toEqual([10, 20]);
    cache.connection.close();
  });

  it("acked across a reconnect (last_id covers it): resolves once and never runs fn again", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    let calls = 0;
    const update = cache.update(0, 8, (bytes) => {
      calls++;
      return increment(bytes);
    });
    const request = await manager.next("data_request");
    manager.deliver(manager.supply(request.id, 0, counterPage(1)));
    const returned = await manager.next("data_return");
    manager.ready = { last_id: returned.id, flush: true };
    manager.drop();
    expect(u64(await update)).toBe(2);
    expect(calls).toBe(1);
    expect(manager.of("data_return"), "not resent: the ready said it was applied").toHaveLength(1);
    expect(cache.stats.cached, "flush: true dropped the page").toBe(0);
    cache.connection.close();
  });

  it("on an object that is not coherent: takes turns with this cache's writes and returns its bytes", async () => {
    const manager = new ScriptedManager(false);
    const cache = await manager.connect();
    const updates = [cache.update(0, 8, increment), cache.update(0, 8, increment)];
    const write = cache.write(0, counterPage(100).subarray(0, 8));
    const third = cache.update(0, 8, increment);
    // The page is past the known size (0): zeros, no request.
    for (let i = 0; i < 3; i++) {
      const returned = await manager.next("data_return", () => true, i);
      manager.deliver(manager.ack(returned.id));
    }
    expect((await Promise.all([...updates, third])).map(u64)).toEqual([1, 2, 101]);
    await write;
    expect(manager.of("data_request")).toHaveLength(0);
    expect(manager.of("data_return").map((m) => m.kernel_copy)).toEqual([true, true, true]);
    cache.connection.close();
  });

  it("refuses bad arguments with a TypeError naming them", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    await expect(cache.update(-1, 8, increment)).rejects.toThrow(/update: offset/);
    await expect(cache.update(0, 0, increment)).rejects.toThrow(/update: length/);
    await expect(cache.update(0, 1.5, increment)).rejects.toThrow(/update: length/);
    await expect(cache.update(0, 8, "no" as never)).rejects.toThrow(/update: fn/);
    await expect(cache.update(0, 65 * PAGE, increment)).rejects.toThrow(/max_transfer/);
    await expect(cache.update(0, 8, increment, { timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
    const wrong = cache.update(0, 8, () => new Uint8Array(3));
    const request = await manager.next("data_request");
    manager.deliver(manager.supply(request.id, 0, new Uint8Array(PAGE)));
    await expect(wrong).rejects.toThrow(/update: fn must return a Uint8Array of 8 bytes/);
    expect(manager.of("data_return")).toHaveLength(0);
    cache.connection.close();
  });
});

describe("a shrink on a coherent object", () => {
  it("unlocks the pages it cuts first, and holds lock requests touching them until the commit is queued", async () => {
    const manager = new ScriptedManager(true);
    manager.ready = { size: 4 * PAGE };
    const cache = await manager.connect();
    await cache.setSize(PAGE + 10);
    const commit = cache.commit();
    commit.catch(() => {}); // never answered here: the connection closes at the end
    const unlock = await manager.next("data_unlock");
    expect(unlock).toMatchObject({ offset: PAGE, length: 3 * PAGE, desired_access: VM_PROT_WRITE });
    expect(manager.of("set_size"), "nothing before the grant").toHaveLength(0);
    // The grant and, right behind it, another kernel's write taking page 2 back.
    const grant = manager.lock(1, 4, {
      should_return: MEMORY_OBJECT_RETURN_NONE,
      lock_value: VM_PROT_NONE,
    });
    const flush = manager.lock(2, 3, { should_flush: true });
    manager.deliver(grant, flush);
    const answered = await manager.next(
      "lock_completed",
      (m) => m.lock_id === flush.message.lock_id,
    );
    const index = (m: object) => manager.sent.indexOf(m as never);
    const setSize = manager.of("set_size")[0]!;
    const synchronize = manager.of("synchronize")[0]!;
    expect(setSize).toMatchObject({ size: PAGE + 10 });
    expect(index(setSize)).toBeLessThan(index(answered));
    expect(index(synchronize), "the commit goes before the page is given up").toBeLessThan(
      index(answered),
    );
    cache.connection.close();
  });
});

describe("departures", () => {
  it.each([
    [true, 0],
    [false, 1],
  ])("coherent %s: a ready with flush: true leaves %i dirty pages", async (coherent, dirty) => {
    const manager = new ScriptedManager(coherent);
    const cache = await manager.connect();
    const write = cache.write(0, new Uint8Array(PAGE).fill(1));
    if (coherent) {
      const request = await manager.next("data_request");
      manager.deliver(manager.supply(request.id, 0, new Uint8Array(PAGE)));
    }
    await write;
    expect(cache.stats.dirty).toBe(1);
    manager.ready = { flush: true };
    const sockets = manager.sockets.length;
    manager.drop();
    await waitFor(
      () => manager.sockets.length > sockets && cache.connection.connected,
      "the reconnect",
    );
    expect(cache.stats.dirty).toBe(dirty);
    cache.connection.close();
  });

  it("a fenced msync drops the pages it returned instead of dirtying them again", async () => {
    const manager = new ScriptedManager(true);
    const cache = await manager.connect();
    const write = cache.write(0, new Uint8Array(PAGE).fill(1));
    const request = await manager.next("data_request");
    manager.deliver(manager.supply(request.id, 0, new Uint8Array(PAGE)));
    await write;
    const msync = cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS);
    const returned = await manager.next("data_return");
    expect(returned.kernel_copy).toBe(true);
    manager.deliver(manager.error(returned.id, KERN_PROTECTION_FAILURE, "not_writer"));
    await expect(msync).rejects.toMatchObject({ kernReturn: KERN_PROTECTION_FAILURE });
    expect(cache.stats).toMatchObject({ cached: 0, dirty: 0 });
    cache.connection.close();
  });
});
