// Atomic groups (docs/protocol.md §12) through the client against the real Worker, checked on the
// wire: a PageCache commit is one frame and one group; its pages are invisible to other kernels and
// to HTTP until its synchronize; a socket dropped between the grouped returns and the synchronize
// resumes naming the group in open_groups and the commit completes with the right bytes; a commit
// or msync given up before it left is never sent, not even after a reconnect.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CallAbortedError,
  HttpClient,
  KernReturnError,
  KernelConnection,
  PageCache,
  VM_SYNC_SYNCHRONOUS,
  type KernelOptions,
} from "../../client";
import { startHarness, within, type Harness, type WireLog } from "./harness";
import { firstDifference, pattern } from "./kernels";
import { newWireLog, recordingWebSocket } from "./harness";
import { waitFor } from "../helpers/wait";

const PAGE = 4096;
const RETURN = "memory_object_data_return";
const SYNC = "memory_object_synchronize";

let harness: Harness;
let http: HttpClient;
beforeAll(async () => {
  harness = await startHarness();
  http = new HttpClient(harness.url);
});
afterAll(async () => {
  await harness?.close();
});

/**
 * Holds back, on the first socket only, every frame `hold` picks until `release()`: so a test can
 * look at the object between a commit's grouped returns and its synchronize, or drop the socket
 * there. Frames are logged when they really leave.
 */
function gatedWebSocket(log: WireLog, hold: (data: unknown) => boolean) {
  const held: { socket: WebSocket; data: string | Uint8Array }[] = [];
  let releasing = false;
  const Recording = recordingWebSocket(log);
  class Gated extends Recording {
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      if (!releasing && log.sockets.indexOf(this) === 0 && hold(data)) {
        held.push({ socket: this, data: data as string | Uint8Array });
      } else super.send(data);
    }
  }
  const release = () => {
    releasing = true;
    for (const { socket, data } of held.splice(0)) socket.send(data);
    releasing = false;
  };
  return { WebSocket: Gated as unknown as typeof WebSocket, held, release };
}

/** A text frame holding a synchronize that commits a group. */
function isGroupCommit(data: unknown): boolean {
  return typeof data === "string" && data.includes(`"${SYNC}"`) && data.includes('"group"');
}

async function connect(
  object: string,
  options: Partial<KernelOptions> & { log?: WireLog } = {},
): Promise<{ connection: KernelConnection; cache: PageCache; log: WireLog }> {
  const log = options.log ?? newWireLog();
  const connection = await KernelConnection.connect({
    url: harness.url,
    object,
    kernel: "writer",
    pageSize: PAGE,
    backoff: { initialMs: 50, maxMs: 200 },
    WebSocket: recordingWebSocket(log),
    ...options,
  });
  return { connection, cache: new PageCache(connection), log };
}

/** Messages sent from index `from` on, as [frame, type, group] (the `received` reports left out). */
function sentSince(log: WireLog, from: number) {
  return log.sent
    .filter((m) => m.frame >= from && m.header.type !== "received")
    .map((m) => ({ frame: m.frame, type: m.header.type, group: m.header.group as unknown }));
}

describe("PageCache.commit", () => {
  it("sends every dirty page and its synchronize as one frame and one group", async () => {
    const object = "groups-one-frame";
    const { connection, cache, log } = await connect(object);
    for (const page of [0, 1, 3, 7]) await cache.write(page * PAGE, pattern(1, page, PAGE));
    expect(cache.dirtyBytes).toBe(4 * PAGE);
    const from = log.sentFrames.length;
    const completion = await cache.commit();
    expect(completion).toMatchObject({ offset: 0, length: 8 * PAGE });

    const sent = sentSince(log, from);
    expect(sent.map((m) => m.type)).toEqual([RETURN, RETURN, RETURN, SYNC]);
    expect(new Set(sent.map((m) => m.frame)).size).toBe(1);
    const group = sent[0]!.group;
    expect(group).toEqual(expect.any(Number));
    expect(sent.every((m) => m.group === group)).toBe(true);
    expect(cache.dirtyBytes).toBe(0);
    expect(connection.groups).toEqual([]);

    const stored = await http.read(object, 0, 8 * PAGE);
    for (const page of [0, 1, 3, 7]) {
      const bytes = stored.subarray(page * PAGE, (page + 1) * PAGE);
      expect(firstDifference(bytes, pattern(1, page, PAGE))).toBe(-1);
    }
    // A second commit takes a fresh group number.
    await cache.write(0, pattern(2, 0, PAGE));
    const next = log.sent.length;
    await cache.commit();
    expect(log.sent[next]!.header.group).not.toBe(group);
    connection.close();
  });

  it("is invisible to another kernel and to HTTP until its synchronize commits it", async () => {
    const object = "groups-invisible";
    const log = newWireLog();
    const gate = gatedWebSocket(log, isGroupCommit);
    // Without batches, so the synchronize is a frame of its own the gate can hold.
    const { connection, cache } = await connect(object, {
      log,
      batch: false,
      WebSocket: gate.WebSocket,
    });
    const reader = await connect(object, { kernel: "reader" });
    await cache.write(0, pattern(3, 0, 2 * PAGE));
    const commit = cache.commit();
    const returns = () => log.sent.filter((m) => m.header.type === RETURN).map((m) => m.header.id);
    await waitFor(
      () =>
        returns().length === 1 &&
        log.received.some((m) => m.header.type === "ack" && m.header.id === returns()[0]),
      "the grouped return to be acked (staged)",
    );
    expect(gate.held).toHaveLength(1);

    expect(firstDifference(await http.read(object, 0, 2 * PAGE), new Uint8Array(2 * PAGE))).toBe(
      -1,
    );
    expect((await reader.connection.dataRequest(0, 2 * PAGE)).data).toBeNull();
    expect((await http.stat(object)).pages).toBe(0);

    gate.release();
    await within(commit, 10_000, "the commit");
    expect(firstDifference(await http.read(object, 0, 2 * PAGE), pattern(3, 0, 2 * PAGE))).toBe(-1);
    const reply = await reader.connection.dataRequest(0, 2 * PAGE);
    expect(firstDifference(reply.data!, pattern(3, 0, 2 * PAGE))).toBe(-1);
    connection.close();
    reader.connection.close();
  });

  it("survives a socket dropped after the grouped returns: resumes with open_groups and completes", async () => {
    const object = "groups-drop-mid-commit";
    const log = newWireLog();
    const gate = gatedWebSocket(log, isGroupCommit);
    const { connection, cache } = await connect(object, {
      log,
      batch: false,
      WebSocket: gate.WebSocket,
    });
    const bytes = pattern(4, 0, 3 * PAGE);
    await cache.write(PAGE, bytes);
    const commit = cache.commit({ syncFlags: VM_SYNC_SYNCHRONOUS });
    await waitFor(
      () =>
        log.received.filter((m) => m.header.type === "ack").length >= 1 && gate.held.length === 1,
      "the staged return's ack",
    );
    const group = log.sent.find((m) => m.header.type === RETURN)!.header.group as number;
    expect(connection.groups).toEqual([group]);
    // The synchronize never left the first socket: it goes on the next one, after the init.
    gate.held.splice(0);
    log.sockets[0]!.close(1000, "test: drop mid-commit");

    await within(commit, 10_000, "the commit after the resume");
    const init = log.sent.find((m) => m.socket === 1 && m.header.type === "memory_object_init");
    expect(init?.header.open_groups).toEqual([group]);
    const sync = log.sent.find((m) => m.header.type === SYNC)!;
    expect(sync).toMatchObject({ socket: 1, header: { group } });
    expect(firstDifference(await http.read(object, PAGE, 3 * PAGE), bytes)).toBe(-1);
    expect(connection.groups).toEqual([]);
    expect(cache.dirtyBytes).toBe(0);
    connection.close();
  });

  it("a kernel that uses no groups sends no open_groups", async () => {
    const { connection, log } = await connect("groups-none");
    expect(log.sent[0]!.header).not.toHaveProperty("open_groups");
    connection.close();
  });

  it("refuses a group over maxGroupBytes before sending anything; the pages stay dirty", async () => {
    const { connection, log } = await connect("groups-too-large");
    const cache = new PageCache(connection, { maxGroupBytes: PAGE });
    await cache.write(0, pattern(5, 0, 2 * PAGE));
    const from = log.sent.length;
    const refused = await cache.commit().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(KernReturnError);
    expect(refused).toMatchObject({ code: "group_too_large" });
    expect(log.sent.length).toBe(from);
    expect(cache.dirtyBytes).toBe(2 * PAGE);
    connection.close();
  });
});

describe("a call given up before it left", () => {
  it("is never sent: a commit aborted in its own turn, and a commit and an msync aborted while disconnected, not after the reconnect either", async () => {
    const object = "groups-abort";
    const { connection, cache, log } = await connect(object, {
      backoff: { initialMs: 600, maxMs: 600 },
    });
    await cache.write(0, pattern(6, 0, PAGE));

    // Aborted in the turn it was called: its frame is taken back before the batch leaves.
    const now = new AbortController();
    const from = log.sent.length;
    const first = cache.commit({ signal: now.signal });
    now.abort();
    const error = await first.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallAbortedError);
    expect(error).toMatchObject({ name: "AbortError", call: "commit" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sentSince(log, from)).toEqual([]);
    expect(cache.dirtyBytes).toBe(PAGE);

    // While the socket is down, a commit and an msync queue; both are given up.
    log.sockets[0]!.close(1000, "test: drop");
    await waitFor(() => !connection.connected, "the drop");
    const later = new AbortController();
    const commit = cache.commit({ signal: later.signal });
    await cache.write(4 * PAGE, pattern(6, 4, PAGE));
    const msync = cache.msync(4 * PAGE, PAGE, VM_SYNC_SYNCHRONOUS, { signal: later.signal });
    later.abort();
    await expect(commit).rejects.toMatchObject({ name: "AbortError", call: "commit" });
    await expect(msync).rejects.toMatchObject({ name: "AbortError", call: "msync" });
    expect(connection.groups).toEqual([]);

    await within(connection.whenReady(), 10_000, "the reconnect");
    await new Promise((resolve) => setTimeout(resolve, 200));
    const afterDrop = log.sent.filter((m) => m.socket >= 1);
    expect(afterDrop.map((m) => m.header.type)).toEqual(["memory_object_init"]);
    expect(afterDrop[0]!.header).not.toHaveProperty("open_groups");
    expect((await http.stat(object)).pages).toBe(0);
    expect(cache.dirtyBytes).toBe(2 * PAGE);

    // Still dirty, so a later commit sends them.
    await cache.commit();
    const stored = await http.read(object, 0, 5 * PAGE);
    expect(firstDifference(stored.subarray(0, PAGE), pattern(6, 0, PAGE))).toBe(-1);
    expect(firstDifference(stored.subarray(4 * PAGE), pattern(6, 4, PAGE))).toBe(-1);
    connection.close();
  });

  it("times out with an AbortError naming the call", async () => {
    const { connection, cache, log } = await connect("groups-timeout", {
      backoff: { initialMs: 5000, maxMs: 5000 },
    });
    log.sockets[0]!.close(1000, "test: drop");
    await waitFor(() => !connection.connected, "the drop");
    await cache.write(0, pattern(7, 0, PAGE));
    const error = await cache.commit({ timeoutMs: 30 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "AbortError", call: "commit", timedOut: true });
    await expect(
      connection.dataRequest(0, PAGE, undefined, { timeoutMs: 10 }),
    ).rejects.toMatchObject({ call: "dataRequest", timedOut: true });
    expect(cache.dirtyBytes).toBe(PAGE);
    connection.close();
  });
});
