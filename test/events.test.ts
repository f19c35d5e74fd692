/**
 * The event stream of one object (`GET /v1/objects/{name}/events`, durable/observers.ts): it
 * starts with the status, then tells, in seqno order, every message and its outcome, flushes,
 * completions, lock requests and kernels coming and going. A slow observer loses events and is
 * told how many; at most 8 observe one object; a read token suffices, and it changes nothing the
 * object does.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { VM_SYNC_INVALIDATE, VM_SYNC_SYNCHRONOUS, signToken } from "../schema";
import app from "../worker/index";
import { call, putPages, stat } from "./helpers/http";
import { TestKernel, pageOf } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";

type Event = Record<string, any> & { type: string; at: number };

/** An observer: the events read so far, and a way to wait for more. */
class Observer {
  readonly events: Event[] = [];
  private buffer = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();
  private reading: Promise<void> | null = null;

  constructor(response: Response) {
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    this.reader = response.body!.getReader();
  }

  static async open(object: string): Promise<Observer> {
    return new Observer(await call(`/v1/objects/${object}/events`));
  }

  /** Reads until `match` has been seen (`count` times). */
  async until(match: (e: Event) => boolean, count = 1): Promise<Event[]> {
    await waitFor(async () => {
      if (this.events.filter(match).length >= count) return true;
      await this.readSome();
      return this.events.filter(match).length >= count;
    }, "an event");
    return this.events.filter(match);
  }

  /** One chunk from the stream, parsed into events. */
  private readSome(): Promise<void> {
    this.reading ??= this.reader.read().then(({ value, done }) => {
      this.reading = null;
      if (done || !value) return;
      this.buffer += this.decoder.decode(value, { stream: true });
      const frames = this.buffer.split("\n\n");
      this.buffer = frames.pop()!;
      for (const frame of frames) {
        expect(frame.startsWith("data: ")).toBe(true);
        this.events.push(JSON.parse(frame.slice("data: ".length)) as Event);
      }
    });
    return this.reading;
  }

  close(): Promise<void> {
    return this.reader.cancel();
  }

  /** Whether the stream ends with no more events. */
  async ended(): Promise<boolean> {
    await this.reading;
    const { done } = await this.reader.read();
    return done;
  }
}

describe("the event stream", () => {
  it("starts with the status, then tells every message, flush and completion in seqno order", async () => {
    const object = "events-order";
    expect((await putPages(object, 0, pageOf(1))).status).toBe(200);
    const observer = await Observer.open(object);
    const [hello] = await observer.until((e) => e.type === "hello");
    expect(hello!.status).toMatchObject({ object, pages: 1, page_size: 4096 });

    const { kernel } = await TestKernel.open(object, "k1");
    const returned = kernel.dataReturn(4096, pageOf(2));
    await kernel.ack(returned);
    const synced = kernel.synchronize(0, 8192, VM_SYNC_SYNCHRONOUS);
    await kernel.completion(synced);
    kernel.send("not json");
    await kernel.next((m) => m.type === "error");
    await observer.until((e) => e.type === "completion");
    await observer.until((e) => e.type === "message" && e.outcome === "bad_json");

    const kinds = observer.events.map((e) => e.type);
    expect(kinds[0]).toBe("hello");
    expect(observer.events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "kernel", kernel: "k1", connected: true }),
        expect.objectContaining({
          type: "message",
          kernel: "k1",
          message: "memory_object_data_return",
          id: returned,
          offset: 4096,
          length: 4096,
          outcome: "ok",
        }),
        expect.objectContaining({ type: "flush", pages: 2, bytes: expect.any(Number) }),
        expect.objectContaining({ type: "completion", kernel: "k1", id: synced, offset: 0 }),
      ]),
    );
    // Messages in seqno order, each once, none before the status's seqno.
    const seqnos = observer.events.filter((e) => e.type === "message").map((e) => e.seqno);
    expect(seqnos).toEqual([...seqnos].sort((a, b) => a - b));
    expect(new Set(seqnos).size).toBe(seqnos.length);
    expect(seqnos[0]).toBeGreaterThanOrEqual(hello!.status.seqno);
    // The completion comes after the flush that made it due, and after its synchronize.
    expect(kinds.indexOf("flush")).toBeLessThan(kinds.indexOf("completion"));
    const syncMessage = observer.events.findIndex(
      (e) => e.type === "message" && e.id === synced && e.message === "memory_object_synchronize",
    );
    expect(syncMessage).toBeGreaterThan(0);
    expect(syncMessage).toBeLessThan(kinds.indexOf("completion"));

    kernel.close();
    await observer.until((e) => e.type === "kernel" && e.connected === false);
    await observer.close();
  });

  it("tells a message before what it caused, even a completion in its own step", async () => {
    const object = "events-first";
    const observer = await Observer.open(object);
    const { kernel } = await TestKernel.open(object, "k1");
    // Nothing to wait for: the synchronize completes in the step that takes it.
    const synced = kernel.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS);
    await kernel.completion(synced);
    await observer.until((e) => e.type === "completion");
    const types = observer.events.map((e) => `${e.type}:${e.message ?? ""}`);
    expect(types.indexOf("message:memory_object_synchronize")).toBeLessThan(
      types.indexOf("completion:"),
    );
    kernel.close();
    await observer.close();
  });

  it("tells lock requests and HTTP messages", async () => {
    const object = "events-locks";
    const observer = await Observer.open(object);
    const { kernel: a } = await TestKernel.open(object, "kA");
    const { kernel: b } = await TestKernel.open(object, "kB");
    await b.answer(b.dataRequest(0, 4096));
    a.synchronize(0, 4096, VM_SYNC_INVALIDATE);
    const lock = await b.next((m) => m.type === "memory_object_lock_request");
    await observer.until(
      (e) => e.type === "lock_request" && e.kernel === "kB" && e.lock_id === lock.lock_id,
    );
    // A message comes before what it caused: the INVALIDATE before its lock request.
    const invalidate = observer.events.findIndex(
      (e) => e.type === "message" && e.message === "memory_object_synchronize",
    );
    const lockEvent = observer.events.findIndex((e) => e.type === "lock_request");
    expect(invalidate).toBeGreaterThan(0);
    expect(invalidate).toBeLessThan(lockEvent);
    expect((await putPages(object, 8192, pageOf(3))).status).toBe(200);
    const [put] = await observer.until((e) => e.type === "message" && e.kernel === "http");
    expect(put).toMatchObject({ message: "pages PUT", offset: 8192, length: 4096, outcome: "ok" });
    for (const k of [a, b]) k.close();
    await observer.close();
  });

  it("a slow observer loses events and is told how many; the others lose none", async () => {
    const object = "events-slow";
    const slow = await Observer.open(object);
    const keen = await Observer.open(object);
    await slow.until((e) => e.type === "hello");
    const { kernel } = await TestKernel.open(object, "k1", { batch: true });
    // 1,500 messages in batches while the slow one reads nothing: more than its queue holds.
    const ids: number[] = [];
    for (let batch = 0; batch < 15; batch++) {
      const messages = Array.from({ length: 100 }, () => {
        const id = kernel.takeId();
        ids.push(id);
        return {
          type: "memory_object_data_request",
          id,
          offset: 0,
          length: 4096,
          desired_access: 1,
        };
      });
      kernel.sendBatch(messages);
      await keen.until((e) => e.type === "message" && e.id === ids.at(-1));
    }
    await kernel.answer(ids.at(-1)!);
    const requests = (e: Event) =>
      e.type === "message" && e.message === "memory_object_data_request";
    expect(keen.events.filter(requests)).toHaveLength(1500);
    expect(keen.events.some((e) => e.type === "lost")).toBe(false);
    // The slow one now reads: what fitted its queue, a `lost` count, then what came after.
    const [lost] = await slow.until((e) => e.type === "lost");
    const { kernel: late } = await TestKernel.open(object, "k2");
    await slow.until((e) => e.type === "kernel" && e.kernel === "k2");
    const seen = slow.events.filter((e) => e.type !== "hello" && e.type !== "lost").length;
    const keenSeen = keen.events.filter((e) => e.type !== "hello").length;
    await keen.until((e) => e.type === "kernel" && e.kernel === "k2");
    expect(lost!.count).toBeGreaterThan(0);
    expect(seen + lost!.count).toBe(keen.events.filter((e) => e.type !== "hello").length);
    expect(keenSeen).toBeGreaterThan(1024);
    for (const k of [kernel, late]) k.close();
    await slow.close();
    await keen.close();
  });

  it("tells a deletion, then ends", async () => {
    const object = "events-deleted";
    expect((await putPages(object, 0, pageOf(1))).status).toBe(200);
    const observer = await Observer.open(object);
    await observer.until((e) => e.type === "hello");
    expect((await call(`/v1/objects/${object}`, { method: "DELETE" })).status).toBe(200);
    await observer.until((e) => e.type === "deleted");
    expect(await observer.ended()).toBe(true);
  });

  it("takes at most 8 observers; a closed one frees its place", async () => {
    const object = "events-bound";
    const observers = await Promise.all(Array.from({ length: 8 }, () => Observer.open(object)));
    const refused = await call(`/v1/objects/${object}/events`);
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      "too_many_observers",
    );
    await observers[0]!.close();
    await waitFor(async () => {
      const again = await call(`/v1/objects/${object}/events`);
      if (again.status === 200) await again.body!.cancel();
      return again.status === 200;
    }, "a place to free up");
    for (const observer of observers.slice(1)) await observer.close();
  });

  it("needs only a read token, given as a header or as access_token", async () => {
    const SECRET = "a test secret, not a real one";
    const secured = { ...env, AUTH_SECRET: SECRET, REQUIRE_AUTH: "true" } as Env;
    const token = (rights: ("read" | "write")[]) =>
      signToken(SECRET, { object: "events-*", rights, exp: Math.floor(Date.now() / 1000) + 60 });
    const open = (init: RequestInit, query = "") =>
      app.fetch(
        new Request(`http://edgepager.test/v1/objects/events-auth/events${query}`, init),
        secured,
      );
    const byHeader = await open({ headers: { authorization: `Bearer ${await token(["read"])}` } });
    expect(byHeader.status).toBe(200);
    await byHeader.body!.cancel();
    const byQuery = await open({}, `?access_token=${await token(["read"])}`);
    expect(byQuery.status).toBe(200);
    await byQuery.body!.cancel();
    expect(
      (await open({ headers: { authorization: `Bearer ${await token(["write"])}` } })).status,
    ).toBe(403);
    expect((await open({})).status).toBe(401);
  });

  it("changes nothing the object does: the same messages give the same status", async () => {
    const run = async (object: string, watched: boolean) => {
      const observers = watched
        ? await Promise.all([1, 2, 3, 4].map(() => Observer.open(object)))
        : [];
      const { kernel } = await TestKernel.open(object, "k1");
      await kernel.ack(kernel.dataReturn(0, pageOf(4)));
      await kernel.completion(kernel.synchronize(0, 4096, VM_SYNC_SYNCHRONOUS));
      kernel.close();
      for (const observer of observers) await observer.close();
      const { seqno, pages, journal_pages, syncs } = await stat(object);
      return { seqno, pages, journal_pages, syncs };
    };
    const plain = await run("events-none", false);
    const watched = await run("events-four", true);
    // Opening a stream is a request that reaches the object: four more seqnos, nothing else.
    expect(watched).toEqual({ ...plain, seqno: plain.seqno + 4 });
  });
});
