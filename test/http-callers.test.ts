/**
 * HTTP synchronize requests per caller (issue 10, item 3): kernel `http` is everyone's, so its
 * budget of MAX_SYNCS_PER_KERNEL outstanding requests and its order are per caller (the Worker
 * names the token, or the client's address when authentication is off); a request whose caller
 * went away is withdrawn (its row, its lock requests, its slot), and so is every HTTP request a
 * restart finds (its caller's connection ended with the instance). R2 puts never settle here, so
 * SYNCHRONOUS requests stay outstanding as long as a test needs.
 */
import { env } from "cloudflare:workers";
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import {
  VM_SYNC_ASYNCHRONOUS as ASYNCHRONOUS,
  VM_SYNC_INVALIDATE as INVALIDATE,
  VM_SYNC_SYNCHRONOUS as SYNCHRONOUS,
  signToken,
  type Grant,
} from "../schema";
import app from "../worker/index";
import { objectStub, stallObjectBucket } from "./helpers/buckets";
import { BASE, call, putPages, stat } from "./helpers/http";
import { inspect } from "./helpers/inspect";
import { TestKernel, pageOf } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

const PAGE = 4096;
const LIMIT = 4;

/** A small MAX_SYNCS_PER_KERNEL, and lock requests that wait a minute, in the running instance. */
async function tighten(object: string): Promise<void> {
  await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
    instance.pager.testHooks.limits.maxSyncsPerKernel = LIMIT;
    instance.pager.testHooks.limits.lockTimeoutMs = 60_000;
  });
}

function body(offset: number, length: number, syncFlags: number): string {
  return JSON.stringify({ offset, length, sync_flags: syncFlags });
}

/** A synchronize from the client at `address` (authentication is off in these tests). */
function synchronizeFrom(
  address: string,
  object: string,
  offset: number,
  syncFlags: number,
  signal?: AbortSignal,
): Promise<Response> {
  return call(`/v1/objects/${object}/synchronize`, {
    method: "POST",
    headers: { "cf-connecting-ip": address },
    body: body(offset, PAGE, syncFlags),
    signal,
  });
}

/** `count` requests of `address` outstanding: dirty pages 0.. under stalled puts. */
async function holdSlots(object: string, address: string, count: number, flags = SYNCHRONOUS) {
  const controllers: AbortController[] = [];
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const controller = new AbortController();
    controllers.push(controller);
    pending.push(
      synchronizeFrom(address, object, i * PAGE, flags, controller.signal).catch(() => {}),
    );
  }
  await waitFor(async () => (await stat(object)).syncs === count, `${count} outstanding`);
  return { controllers, pending };
}

describe("HTTP synchronize budgets are per caller", () => {
  it("one client address filling its budget leaves another's untouched (auth off)", async () => {
    const object = "http-callers-ip";
    expect((await putPages(object, 0, pageOf(1, 8 * PAGE))).status).toBe(200);
    await stallObjectBucket(object);
    await tighten(object);
    const { controllers, pending } = await holdSlots(object, "192.0.2.1", LIMIT);

    const refused = await synchronizeFrom("192.0.2.1", object, 6 * PAGE, ASYNCHRONOUS);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({
      error: { code: "too_many_syncs", message: expect.stringMatching(/MAX_SYNCS_PER_KERNEL/) },
    });
    // Another address, and a client with no address at all, each have their own allowance.
    const other = await synchronizeFrom("192.0.2.2", object, 6 * PAGE, ASYNCHRONOUS);
    expect(other.status).toBe(200);
    expect(await other.json()).toMatchObject({ type: "memory_object_synchronize_completed" });
    const anonymous = await call(`/v1/objects/${object}/synchronize`, {
      method: "POST",
      body: body(6 * PAGE, PAGE, ASYNCHRONOUS),
    });
    expect(anonymous.status).toBe(200);
    // Nor does another caller queue behind the first's overlapping request: callers are
    // independent, like kernels.
    const overlapping = await synchronizeFrom("192.0.2.2", object, 0, ASYNCHRONOUS);
    expect(overlapping.status).toBe(200);
    expect((await stat(object)).syncs).toBe(LIMIT);

    for (const controller of controllers) controller.abort();
    await Promise.all(pending);
  });

  it("one token filling its budget leaves another token's untouched (auth on)", async () => {
    const object = "auth-http-callers";
    const secured = { ...env, AUTH_SECRET: "a test secret", REQUIRE_AUTH: "true" } as Env;
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const tokenOf = (grant: Partial<Grant>) =>
      signToken("a test secret", { object: "auth-*", rights: ["read", "write"], exp, ...grant });
    const [first, second] = [await tokenOf({}), await tokenOf({ object: "auth-http-*" })];
    const send = async (token: string, offset: number, flags: number) =>
      app.fetch(
        new Request(`${BASE}/v1/objects/${object}/synchronize`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
          body: body(offset, PAGE, flags),
        }),
        secured,
      );
    expect((await putPages(object, 0, pageOf(1, 8 * PAGE))).status).toBe(200);
    await stallObjectBucket(object);
    await tighten(object);
    // Left waiting (puts never settle): aborting a call made to the app itself, not through
    // the runtime, surfaces in its error boundary.
    for (let i = 0; i < LIMIT; i++) void send(first, i * PAGE, SYNCHRONOUS);
    await waitFor(async () => (await stat(object)).syncs === LIMIT, `${LIMIT} outstanding`);

    expect((await send(first, 6 * PAGE, ASYNCHRONOUS)).status).toBe(429);
    const other = await send(second, 6 * PAGE, ASYNCHRONOUS);
    expect(other.status).toBe(200);
    expect(await other.json()).toMatchObject({ type: "memory_object_synchronize_completed" });
  });
});

describe("an HTTP synchronize whose caller went away", () => {
  it("is withdrawn: no slot, no row, no lock request waiting or queued", async () => {
    const object = "http-callers-abort";
    // k2 caches pages 0-3, so an INVALIDATE of them sends it lock requests (it never answers).
    const { kernel: k2 } = await TestKernel.open(object, "k2");
    expect((await k2.answer(k2.dataRequest(0, 4 * PAGE))).type).toBe(
      "memory_object_data_unavailable",
    );
    expect((await putPages(object, 0, pageOf(1, 8 * PAGE))).status).toBe(200);
    await stallObjectBucket(object);
    await tighten(object);
    const { controllers, pending } = await holdSlots(
      object,
      "198.51.100.7",
      LIMIT,
      SYNCHRONOUS | INVALIDATE,
    );
    await waitFor(
      () => k2.all("memory_object_lock_request").length === LIMIT,
      "a lock request per synchronize",
    );
    expect(await inspect(object, (view) => view.locks())).toHaveLength(LIMIT);
    expect((await synchronizeFrom("198.51.100.7", object, 6 * PAGE, ASYNCHRONOUS)).status).toBe(
      429,
    );

    for (const controller of controllers) controller.abort();
    await Promise.all(pending);
    await waitFor(async () => (await stat(object)).syncs === 0, "the requests to be withdrawn");
    // Their lock requests went too: nothing waits on k2, and none stays in its outbox to be
    // sent again at its next init.
    const left = await inspect(object, (view) => ({ locks: view.locks(), outbox: view.outbox() }));
    expect(left.locks).toEqual([]);
    expect(left.outbox.filter((row) => row.kernel === "k2")).toEqual([]);
    expect((await call(`/v1/objects/${object}/syncs`).then((r) => r.json())) as object).toEqual({
      syncs: [],
    });
    // The caller has its budget back.
    const again = await synchronizeFrom("198.51.100.7", object, 6 * PAGE, ASYNCHRONOUS);
    expect(again.status).toBe(200);
    // k2, which had received them, may still answer one: acked, and nothing else happens.
    const lock = k2.all("memory_object_lock_request")[0]!;
    const answered = k2.takeId();
    k2.send({
      type: "memory_object_lock_completed",
      id: answered,
      lock_id: lock.lock_id,
      offset: lock.offset,
      length: lock.length,
    });
    expect((await k2.answer(answered)).type).toBe("ack");
    expect((await stat(object)).syncs).toBe(0);
    k2.close();
  });
});

describe("HTTP synchronizes a restart finds", () => {
  it("are withdrawn: their callers' connections ended with the instance", async () => {
    const object = "http-callers-restart";
    const { kernel: k2 } = await TestKernel.open(object, "k2");
    expect((await k2.answer(k2.dataRequest(0, PAGE))).type).toBe("memory_object_data_unavailable");
    // What an instance that stopped while an HTTP INVALIDATE waited leaves (an in-flight request
    // would hold the eviction): the request, counted, waiting for a lock request to k2 (a
    // minute), which went through k2's outbox.
    await runInDurableObject(objectStub(object), (instance: MemoryObject, state) => {
      const sql = state.storage.sql;
      instance.pager.transact(() => {
        sql.exec(
          `INSERT INTO syncs (seqno, kernel, caller, id, offset, length, first_page, end_page,
             sync_flags, since, active, level, waiting_r2)
           VALUES (1000, 'http', 'ip:203.0.113.9', 1000, 0, 4096, 0, 1, 6, '', 1, 0, 0)`,
        );
        sql.exec(`INSERT INTO sync_levels VALUES ('http', 'ip:203.0.113.9', 0, 1)`);
        sql.exec(`INSERT INTO sync_totals VALUES ('http', 1)`);
        sql.exec(
          `INSERT INTO locks (lock_id, sync_seqno, kernel, first_page, end_page, deadline)
           VALUES (77, 1000, 'k2', 0, 1, ?)`,
          Date.now() + 60_000,
        );
        instance.pager.postToOutbox("k2", {
          type: "memory_object_lock_request",
          lock_id: 77,
          offset: 0,
          length: PAGE,
          should_return: 1,
          should_flush: true,
          lock_value: 8,
        });
      });
    });
    await k2.next((m) => m.type === "memory_object_lock_request");
    expect((await stat(object)).syncs).toBe(1);

    await evictDurableObject(objectStub(object));

    expect((await stat(object)).syncs).toBe(0);
    const requests = await inspect(object, (view) => ({
      syncs: view.count("syncs"),
      locks: view.count("locks"),
      syncLevels: view.count("sync_levels"),
      syncTotals: view.count("sync_totals"),
      outbox: view.outbox(),
    }));
    expect(requests).toMatchObject({ syncs: 0, locks: 0, syncLevels: 0, syncTotals: 0 });
    // The lock request is not sent again at k2's next init.
    expect(requests.outbox.filter((row) => row.kernel === "k2")).toEqual([]);
    // The caller may synchronize again at once.
    const again = await synchronizeFrom("203.0.113.9", object, 0, ASYNCHRONOUS);
    expect(again.status).toBe(200);
    k2.close();
  });
});
