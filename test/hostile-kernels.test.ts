/**
 * What a token holder cannot do to the others on an object (docs/security.md): a read token
 * cannot fix a new object's page size; kernels that left and hold nothing are reclaimed, and
 * read-only kernels have a budget of their own, so readers never lock writers out; a kernel's
 * outbox is bounded; a socket does not outlive its token. Sockets connect straight to the object
 * with the grant the Worker would have verified.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readerBudget } from "../durable/kernel-budget";
import type { MemoryObject } from "../durable/memory-object";
import { OUTBOX_MAX_PER_KERNEL } from "../durable/outbox";
import {
  CLOSE_POLICY_VIOLATION,
  CLOSE_TOKEN_EXPIRED,
  KERN_RESOURCE_SHORTAGE,
  VM_SYNC_INVALIDATE,
  VM_SYNC_SYNCHRONOUS,
} from "../schema";
import { objectStub } from "./helpers/buckets";
import { putPages, stat } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const MAX_KERNELS = 64; // wrangler.toml
const HOUR = 3600;
const READ = { rights: ["read"], exp: Date.now() / 1000 + HOUR };
const WRITE = { rights: ["read", "write"], exp: Date.now() / 1000 + HOUR };

async function openWith(
  object: string,
  kernel: string,
  grant: { rights: string[]; exp: number; caller?: string },
  pageSize = 4096,
) {
  const k = await TestKernel.connectWithGrant(object, kernel, grant);
  return { kernel: k, ready: await k.init({ pageSize }) };
}

function closeAll(kernels: TestKernel[]): Promise<void> {
  for (const k of kernels) k.close();
  return waitFor(() => kernels.every((k) => k.closed !== null), "the sockets to close");
}

describe("the page size of a new object", () => {
  it("is not fixed by a read-only init, which is answered with the size it asked", async () => {
    const object = "hostile-reader-size";
    const { kernel: reader, ready } = await openWith(object, "r1", READ, 65536);
    expect(ready).toMatchObject({ type: "memory_object_ready", page_size: 65536 });
    expect((await stat(object)).page_size).toBeNull();
    // A writer fixes it, with the size it needs, and writes.
    const { kernel: writer, ready: writerReady } = await openWith(object, "w1", WRITE, 4096);
    expect(writerReady).toMatchObject({ type: "memory_object_ready", page_size: 4096 });
    expect((await stat(object)).page_size).toBe(4096);
    expect((await writer.ack(writer.dataReturn(0, pageOf(3)))).type).toBe("ack");
    expect((await putPages(object, 4096, pageOf(4))).status).toBe(200);
    reader.close();
    writer.close();
  });
});

describe("kernel budgets", () => {
  it("gives read-only kernels their own budget: readers never take a writer's place", async () => {
    const object = "hostile-reader-budget";
    const budget = readerBudget(MAX_KERNELS);
    const readers: TestKernel[] = [];
    for (let i = 0; i < budget; i++) readers.push((await openWith(object, `r${i}`, READ)).kernel);
    const { ready: refused } = await openWith(object, "r-extra", READ);
    expect(refused).toMatchObject({
      type: "error",
      kern_return: KERN_RESOURCE_SHORTAGE,
      code: "too_many_kernels",
      message: expect.stringMatching(/read-only/),
    });
    const { kernel: writer, ready } = await openWith(object, "w0", WRITE);
    expect(ready.type).toBe("memory_object_ready");
    writer.close();
    await closeAll(readers);
  });

  it("reclaims a disconnected kernel that holds nothing, oldest first, when its kind is full", async () => {
    const object = "hostile-reclaim";
    const budget = readerBudget(MAX_KERNELS);
    const readers: TestKernel[] = [];
    for (let i = 0; i < budget; i++) readers.push((await openWith(object, `r${i}`, READ)).kernel);
    // The oldest reader has an outbox message it never reported received: it must survive.
    const unlock = readers[0]!.takeId();
    readers[0]!.send({
      type: "memory_object_data_unlock",
      id: unlock,
      offset: 0,
      length: 4096,
      desired_access: 1,
    });
    await readers[0]!.next((m) => m.type === "memory_object_lock_request");
    await closeAll(readers);

    const { kernel: late, ready } = await openWith(object, "r-late", READ);
    expect(ready).toMatchObject({ type: "memory_object_ready", flush: true });
    const known = (await stat(object)).kernels.map((k: { kernel: string }) => k.kernel);
    expect(known).toContain("r0"); // held an outbox message
    expect(known).not.toContain("r1"); // the oldest that held nothing
    expect(known).toContain("r-late");
    expect(known).toHaveLength(budget);
    // Once the object has let a kernel go, a kernel it does not know is told to flush.
    const { kernel: returning, ready: back } = await openWith(object, "r1", READ);
    expect(back).toMatchObject({ type: "memory_object_ready", flush: true, last_id: 0 });
    returning.close();
    late.close();
  });

  it("never reclaims a connected kernel, or one with an outstanding synchronize", async () => {
    const object = "hostile-no-reclaim";
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.testHooks.limits.maxKernels = 2;
    });
    const { kernel: busy } = await openWith(object, "w-busy", WRITE);
    await busy.ack(busy.dataReturn(0, pageOf(1)));
    // An INVALIDATE that waits on a lock request to the connected kernel below stays outstanding.
    const { kernel: holder } = await openWith(object, "w-holder", WRITE);
    await holder.answer(holder.dataRequest(0, 4096));
    await busy.ack(busy.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS | VM_SYNC_INVALIDATE));
    await busy.close();
    await waitFor(() => busy.closed !== null, "the socket to close");
    const { ready } = await openWith(object, "w-new", WRITE);
    expect(ready).toMatchObject({ type: "error", code: "too_many_kernels" });
    holder.close();
  });
});

describe("the outbox", () => {
  it(`holds at most ${OUTBOX_MAX_PER_KERNEL} unreceived messages a kernel; received ones make room`, async () => {
    const object = "hostile-outbox";
    const { kernel } = await openWith(object, "r1", READ);
    const unlock = () => {
      const id = kernel.takeId();
      kernel.send({
        type: "memory_object_data_unlock",
        id,
        offset: 0,
        length: 4096,
        desired_access: 1,
      });
      return id;
    };
    for (let i = 0; i < OUTBOX_MAX_PER_KERNEL; i++) unlock();
    await waitFor(
      () => kernel.all("memory_object_lock_request").length === OUTBOX_MAX_PER_KERNEL,
      "every lock request",
    );
    const refused = unlock();
    expect(await kernel.next((m) => m.type === "error" && m.reply_to === refused)).toMatchObject({
      kern_return: KERN_RESOURCE_SHORTAGE,
      code: "outbox_full",
    });
    const last = Math.max(...kernel.all("memory_object_lock_request").map((m) => m.mid));
    kernel.send({ type: "received", id: kernel.takeId(), mid: last });
    const accepted = unlock();
    await kernel.next((m) => m.type === "memory_object_lock_request" && m.mid === last + 1);
    expect(kernel.received.some((m) => m.type === "error" && m.reply_to === accepted)).toBe(false);
    kernel.close();
  });
});

describe("a socket whose token expires", () => {
  it("is closed at the expiry, without a message, and its kernel treated as departed", async () => {
    const object = "hostile-expiry";
    const { kernel: writer } = await openWith(object, "w1", WRITE);
    await writer.ack(writer.dataReturn(0, pageOf(2)));
    const soon = { rights: ["read"], exp: Date.now() / 1000 + 1 };
    const { kernel: reader } = await openWith(object, "r1", soon);
    await reader.answer(reader.dataRequest(0, 4096));
    await waitFor(() => reader.closed !== null, "the expired socket to be closed", 5_000);
    expect(reader.closed!.code).toBe(CLOSE_TOKEN_EXPIRED);
    // Departed: an INVALIDATE does not wait for it; its next init must flush.
    const sync = writer.synchronize(0, 4096, VM_SYNC_INVALIDATE);
    expect((await writer.completion(sync)).type).toBe("memory_object_synchronize_completed");
    const { ready } = await openWith(object, "r1", READ);
    expect(ready).toMatchObject({ type: "memory_object_ready", flush: true });
    writer.close();
  });

  it("answers a message after the expiry with the reason, then closes", async () => {
    const object = "hostile-expiry-message";
    const { kernel } = await openWith(object, "r1", {
      rights: ["read"],
      exp: Date.now() / 1000 + 0.5,
    });
    // Past the expiry: a deadline passes only with time.
    await new Promise((resolve) => setTimeout(resolve, 600));
    if (kernel.closed === null) {
      const id = kernel.dataRequest(0, 4096);
      expect(await kernel.next((m) => m.type === "error" && m.reply_to === id)).toMatchObject({
        code: "unauthorized",
      });
    }
    await waitFor(() => kernel.closed !== null, "the socket to close");
    expect(kernel.closed!.code).toBe(CLOSE_TOKEN_EXPIRED);
  });
});

/** ERRORS_PER_MINUTE in wrangler.toml: what one socket may err. */
const PER_SOCKET = 100;

/**
 * Sends PER_SOCKET bad frames per socket, a new socket each round under `kernelOf(round)`, until
 * the object closes one; returns the errors answered and the round it closed in (1008 checked).
 */
async function errUntilClosed(
  object: string,
  kernelOf: (round: number) => string,
  grant: { rights: string[]; exp: number; caller?: string },
): Promise<{ answered: number; round: number }> {
  let answered = 0;
  for (let round = 0; round < 10; round++) {
    const kernel = await TestKernel.connectWithGrant(object, kernelOf(round), grant);
    for (let i = 0; i < PER_SOCKET; i++) kernel.send("not json");
    await waitFor(
      () => kernel.all("error").length === PER_SOCKET || kernel.closed !== null,
      "the errors",
    );
    answered += kernel.all("error").length;
    if (kernel.closed !== null) {
      expect(kernel.closed.code).toBe(CLOSE_POLICY_VIOLATION);
      return { answered, round };
    }
  }
  throw new Error("no socket was closed");
}

describe("errors across sockets", () => {
  it("are bounded per kernel id: new sockets do not buy a fresh budget", async () => {
    const object = "hostile-errors";
    // Each socket stays under the per-socket limit, then a new one replaces it.
    const { answered } = await errUntilClosed(object, () => "noisy", READ);
    expect(answered).toBe(2 * PER_SOCKET + 1);
    // For the rest of the minute the kernel id cannot open another socket...
    await expect(TestKernel.connectWithGrant(object, "noisy", READ)).rejects.toThrow(
      /429.*too_many_errors/,
    );
    // ...and other kernels are not affected.
    const { ready } = await openWith(object, "quiet", READ);
    expect(ready.type).toBe("memory_object_ready");
  });
});

describe("errors of one token", () => {
  it("are bounded across its kernel ids: new ids do not buy fresh errors", async () => {
    const object = "hostile-token-errors";
    const noisy = { ...READ, caller: "token:noisy" };
    // Each kernel id stays under its own limits; the token's are what stop it.
    const { answered, round } = await errUntilClosed(object, (r) => `noisy-${r}`, noisy);
    expect(answered).toBe(4 * PER_SOCKET + 1);
    await expect(TestKernel.connectWithGrant(object, `noisy-${round + 1}`, noisy)).rejects.toThrow(
      /429.*too_many_errors/,
    );
    // Another token is not affected.
    const { ready } = await openWith(object, "quiet", { ...READ, caller: "token:quiet" });
    expect(ready.type).toBe("memory_object_ready");
  });
});
