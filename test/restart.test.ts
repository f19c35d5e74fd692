/**
 * Restarts, reconnects and resends (docs/protocol.md §3, docs/architecture.md §6): outstanding SYNCHRONOUS
 * requests survive an eviction and complete exactly once; a resuming kernel learns `last_id`
 * and gets the outbox again above `received_mid`; resent messages are re-acked, not re-applied;
 * terminate forgets a kernel; a second socket of a kernel replaces the first.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { CLOSE_NORMAL, CLOSE_REPLACED, VM_SYNC_SYNCHRONOUS as SYNC } from "../schema";
import { objectStub, stallObjectBucket } from "./helpers/buckets";
import { countRows } from "./helpers/inspect";
import { readPages, stat } from "./helpers/http";
import { TestKernel, expectQuiet, pageOf, settle, type Received } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

function outboxMessages(kernel: TestKernel): Received[] {
  return kernel.received.filter((m) => m.mid !== undefined);
}

function patterned(bytes: number, seed: number): Uint8Array {
  return new Uint8Array(bytes).map((_, i) => (i * 31 + seed) % 256);
}

/**
 * Opens `kernel`, returns two pages and asks three SYNCHRONOUS requests (two disjoint, one
 * overlapping both, so queued behind them) while R2 puts never settle, so all three wait.
 */
async function outstandingSyncs(name: string, kernelId: string) {
  const { kernel } = await TestKernel.open(name, kernelId);
  const stall = await stallObjectBucket(name);
  const first = patterned(4096, 1);
  const second = patterned(4096, 2);
  await kernel.ack(kernel.dataReturn(0, first));
  await kernel.ack(kernel.dataReturn(4096, second));
  const syncs = [
    kernel.synchronize(0, 4096, SYNC),
    kernel.synchronize(4096, 4096, SYNC),
    kernel.synchronize(0, 8192, SYNC),
  ];
  for (const id of syncs) await kernel.ack(id);
  await waitFor(() => stall.attempts >= 1, "a put to start");
  // The idle-flush alarm would wait on the stalled put, and an eviction waits for a running alarm:
  // move it out of the test's way. The trigger after the eviction is the test's to choose.
  await runInDurableObject(objectStub(name), (_instance, state) =>
    state.storage.setAlarm(Date.now() + 60_000),
  );
  const status = await stat(name);
  expect(status).toMatchObject({ syncs: 3, journal_pages: 2 });
  expect(await countRows(name, "journal")).toBe(2);
  expect(outboxMessages(kernel)).toEqual([]);
  return { kernel, syncs, data: [first, second], nextSeqno: status.seqno as number };
}

describe("eviction with outstanding SYNCHRONOUS requests", () => {
  for (const trigger of ["alarm", "message"] as const) {
    it(`completes each exactly once on the socket that stayed open (woken by ${trigger})`, async () => {
      const name = `rs-stay-${trigger}`;
      const { kernel, syncs, data } = await outstandingSyncs(name, "k1");

      await evictDurableObject(objectStub(name));
      // No probe here: any message would wake the new instance, and what wakes it is the
      // test's to choose (below). A moment for a close or a stray message to show.
      await settle(20);
      expect(kernel.closed).toBeNull();
      expect(outboxMessages(kernel)).toEqual([]);

      // The new instance has the real bucket again; waking it must finish the work.
      let probe: number | null = null;
      if (trigger === "alarm") await runDurableObjectAlarm(objectStub(name));
      else probe = kernel.dataRequest(0, 8192);
      for (const id of syncs) {
        expect(await kernel.completion(id)).toMatchObject({
          type: "memory_object_synchronize_completed",
          reply_to: id,
        });
      }
      if (probe !== null) {
        const supply = await kernel.answer(probe);
        expect([...supply.payload!]).toEqual([...data[0]!, ...data[1]!]);
      }
      await expectQuiet(kernel);
      for (const id of syncs) expect(kernel.completions(id)).toHaveLength(1);
      expect(kernel.all("error")).toEqual([]);
      const mids = outboxMessages(kernel).map((m) => m.mid);
      expect(mids).toEqual([1, 2, 3]);
      expect(kernel.completions(syncs[2]!)[0]).toMatchObject({ offset: 0, length: 8192 });

      // Data intact, now in R2.
      expect(await stat(name)).toMatchObject({ syncs: 0, journal_pages: 0, pages: 2 });
      const supply = await kernel.answer(kernel.dataRequest(0, 8192));
      expect([...supply.payload!]).toEqual([...data[0]!, ...data[1]!]);
      expect([...(await readPages(name, 0, 8192))]).toEqual([...data[0]!, ...data[1]!]);
      kernel.close();
    });
  }

  it("completes each exactly once for a kernel that reconnects", async () => {
    const name = "rs-reconnect";
    const { kernel, syncs, data, nextSeqno } = await outstandingSyncs(name, "k1");
    await evictDurableObject(objectStub(name), { webSockets: "close" });
    await waitFor(() => kernel.closed !== null, "the old socket to close");

    const { kernel: resumed, ready } = await TestKernel.open(name, "k1", {
      receivedMid: 0,
      id: 100,
    });
    // The seqno counter survived too: the init is the next message.
    expect(ready).toMatchObject({
      type: "memory_object_ready",
      last_id: syncs[2],
      seqno: nextSeqno,
    });
    for (const id of syncs) await resumed.completion(id);
    await expectQuiet(resumed);
    for (const id of syncs) expect(resumed.completions(id)).toHaveLength(1);
    // Everything the manager sent on its own initiative came after ready.
    expect(resumed.received[0]!.type).toBe("memory_object_ready");
    expect(outboxMessages(resumed).map((m) => m.mid)).toEqual([1, 2, 3]);

    expect(await stat(name)).toMatchObject({ syncs: 0, journal_pages: 0 });
    const supply = await resumed.answer(resumed.dataRequest(0, 8192));
    expect([...supply.payload!]).toEqual([...data[0]!, ...data[1]!]);

    // Once received, they are not sent again, not even after another eviction.
    resumed.setNextId(101);
    resumed.send({ type: "received", id: resumed.takeId(), mid: 3 });
    await resumed.answer(resumed.dataRequest(0, 4096));
    resumed.close();
    await evictDurableObject(objectStub(name));
    const { kernel: again } = await TestKernel.open(name, "k1", { receivedMid: 0, id: 200 });
    await expectQuiet(again);
    expect(outboxMessages(again)).toEqual([]);
    again.close();
  });
});

describe("resume", () => {
  it("reports the highest applied id as last_id", async () => {
    const name = "rs-last-id";
    const { kernel, ready } = await TestKernel.open(name, "k1");
    expect(ready.last_id).toBe(0);
    kernel.setNextId(10);
    await kernel.ack(kernel.dataReturn(0, pageOf(1))); // 10
    kernel.dataRequest(0, 4096); // 11: not state-changing, so not applied
    await kernel.completion(kernel.synchronize(0, 4096, SYNC)); // 12
    const rejected = kernel.dataReturn(100, pageOf(2)); // 13: misaligned, answered with error
    expect(await kernel.answer(rejected)).toMatchObject({ type: "error", reply_to: rejected });
    kernel.dataRequest(0, 4096); // 14
    await kernel.answer(14);
    kernel.close();

    const { kernel: resumed, ready: again } = await TestKernel.open(name, "k1", {
      receivedMid: 1,
      id: 15,
    });
    expect(again.last_id).toBe(12);
    const listed = (await stat(name)).kernels.find((k: { kernel: string }) => k.kernel === "k1");
    expect(listed).toMatchObject({ last_id: 12, connected: true });
    resumed.close();
  });

  it("resends the outbox above received_mid, in mid order, after ready", async () => {
    const name = "rs-outbox";
    const { kernel } = await TestKernel.open(name, "k1");
    await kernel.ack(kernel.dataReturn(0, pageOf(1, 4 * 4096)));
    const syncs = [0, 1, 2, 3].map((page) => kernel.synchronize(page * 4096, 4096, SYNC));
    for (const id of syncs) await kernel.completion(id);
    const midOf = new Map(outboxMessages(kernel).map((m) => [m.reply_to, m.mid]));
    expect([...midOf.values()].sort()).toEqual([1, 2, 3, 4]);
    kernel.close();
    await evictDurableObject(objectStub(name));

    // received_mid 2: mids 3 and 4 come again, in order, after ready; 1 and 2 do not.
    const { kernel: resumed, ready } = await TestKernel.open(name, "k1", {
      receivedMid: 2,
      id: 50,
    });
    await resumed.next((m) => m.mid === 4);
    await expectQuiet(resumed);
    const resent = outboxMessages(resumed);
    expect(resent.map((m) => m.mid)).toEqual([3, 4]);
    expect(resumed.received.indexOf(ready)).toBeLessThan(resumed.received.indexOf(resent[0]!));
    for (const message of resent) {
      expect(message.type).toBe("memory_object_synchronize_completed");
      expect(midOf.get(message.reply_to)).toBe(message.mid);
    }
    resumed.close();

    // Still received_mid 2: 3 and 4 again (nothing dropped them); then `received` drops them.
    const { kernel: third } = await TestKernel.open(name, "k1", { receivedMid: 2, id: 60 });
    await third.next((m) => m.mid === 4);
    expect(outboxMessages(third).map((m) => m.mid)).toEqual([3, 4]);
    third.send({ type: "received", id: 61, mid: 4 });
    await third.answer(third.dataRequest(0, 4096, 62));
    third.close();

    const { kernel: fourth } = await TestKernel.open(name, "k1", { receivedMid: 0, id: 70 });
    await expectQuiet(fourth);
    expect(outboxMessages(fourth)).toEqual([]);
    // Mids go on from where they were.
    await fourth.ack(fourth.dataReturn(0, pageOf(2), 72));
    expect(await fourth.completion(fourth.synchronize(0, 4096, SYNC, 73))).toMatchObject({
      mid: 5,
    });
    fourth.close();
  });

  it("re-acks resent state-changing messages without applying them again", async () => {
    const name = "rs-duplicates";
    const { kernel } = await TestKernel.open(name, "k1");
    const first = patterned(4096, 3);
    const second = patterned(4096, 4);
    const returnA = kernel.dataReturn(0, first);
    const sync = kernel.synchronize(0, 4096, SYNC);
    const returnB = kernel.dataReturn(4096, second);
    await kernel.completion(sync);
    const ackB = await kernel.ack(returnB);
    kernel.close();
    await evictDurableObject(objectStub(name));

    const { kernel: resumed, ready } = await TestKernel.open(name, "k1", {
      receivedMid: 1,
      id: returnB + 1,
    });
    expect(ready.last_id).toBe(returnB);
    // The kernel did not see the acks, so it resends all three, with other bytes.
    resumed.dataReturn(0, pageOf(0xee), returnA);
    resumed.synchronize(0, 4096, SYNC, sync);
    resumed.dataReturn(4096, pageOf(0xee), returnB);
    expect(await resumed.ack(returnA)).toMatchObject({ type: "ack", id: returnA });
    expect(await resumed.ack(sync)).toMatchObject({ type: "ack", id: sync });
    // The last applied id is acked with its original seqno.
    expect(await resumed.ack(returnB)).toEqual({
      type: "ack",
      id: returnB,
      seqno: ackB.seqno,
      payload: undefined,
    });
    await expectQuiet(resumed);
    expect(resumed.completions(sync)).toEqual([]);
    expect(resumed.all("error")).toEqual([]);
    expect((await stat(name)).syncs).toBe(0);
    const supply = await resumed.answer(resumed.dataRequest(0, 8192));
    expect([...supply.payload!]).toEqual([...first, ...second]);

    // The same on a socket that stays: a repeated id is acked once more and changes nothing.
    resumed.dataReturn(0, pageOf(0xdd), returnB);
    await waitFor(() => resumed.all("ack").filter((m) => m.id === returnB).length === 2, "re-ack");
    expect([...(await readPages(name, 0, 8192))]).toEqual([...first, ...second]);

    // A new id is applied.
    resumed.setNextId(returnB + 2);
    const fresh = resumed.dataReturn(0, pageOf(0x11));
    await resumed.ack(fresh);
    expect((await readPages(name, 0, 4096)).every((b) => b === 0x11)).toBe(true);
    resumed.close();
  });
});

describe("terminate and replaced sockets", () => {
  it("acks terminate, closes with 1000 and forgets the kernel", async () => {
    const name = "rs-terminate";
    const { kernel } = await TestKernel.open(name, "k1");
    const { kernel: other } = await TestKernel.open(name, "k2");
    await kernel.ack(kernel.dataReturn(0, pageOf(5)));
    await kernel.completion(kernel.synchronize(0, 4096, SYNC));
    // An outstanding request goes with the kernel.
    await stallObjectBucket(name);
    await kernel.ack(kernel.dataReturn(4096, pageOf(6)));
    await kernel.ack(kernel.synchronize(4096, 4096, SYNC));
    expect((await stat(name)).syncs).toBe(1);

    const terminate = kernel.takeId();
    kernel.send({ type: "memory_object_terminate", id: terminate });
    expect(await kernel.ack(terminate)).toMatchObject({ type: "ack", id: terminate });
    await waitFor(() => kernel.closed !== null, "the socket to close");
    expect(kernel.closed!.code).toBe(CLOSE_NORMAL);

    const status = await stat(name);
    expect(status.kernels.map((k: { kernel: string }) => k.kernel)).toEqual(["k2"]);
    expect(status.syncs).toBe(0);
    expect(await countRows(name, "outbox")).toBe(0);
    // The pages belong to the object, not the kernel.
    expect((await readPages(name, 0, 4096)).every((b) => b === 5)).toBe(true);

    // The id starts afresh: last_id 0, no outbox, mids from 1.
    const { kernel: fresh, ready } = await TestKernel.open(name, "k1");
    expect(ready).toMatchObject({ last_id: 0, flush: false });
    const sync = fresh.synchronize(8192, 0, SYNC);
    expect(await fresh.completion(sync)).toMatchObject({ mid: 1, reply_to: sync });
    expect(outboxMessages(fresh)).toHaveLength(1);
    fresh.close();
    other.close();
  });

  it("closes the older socket of a kernel with 4409 when a second one connects", async () => {
    const name = "rs-replace";
    const { kernel: older } = await TestKernel.open(name, "k1");
    const returned = older.dataReturn(0, pageOf(8));
    await older.ack(returned);
    const newer = await TestKernel.connect(name, "k1");
    await waitFor(() => older.closed !== null, "the older socket to close");
    expect(older.closed!.code).toBe(CLOSE_REPLACED);

    const ready = await newer.init({ id: 10 });
    expect(ready).toMatchObject({ type: "memory_object_ready", last_id: returned });
    newer.setNextId(11);
    const sync = newer.synchronize(0, 4096, SYNC);
    expect(await newer.completion(sync)).toMatchObject({ mid: 1 });
    expect((await stat(name)).kernels).toEqual([
      { kernel: "k1", connected: true, last_id: sync, stale: false },
    ]);
    expect(older.all("memory_object_synchronize_completed")).toEqual([]);
    newer.close();
  });
});
