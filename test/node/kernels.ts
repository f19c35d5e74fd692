/**
 * Kernels for the end-to-end tests: a `KernelConnection` with a `PageCache`, a wire log of every
 * frame, and a record of each msync and completion, with the exactly-once checks of
 * docs/protocol.md §3 and docs/protocol.md §6.7 that every scenario makes.
 */
import { expect } from "vitest";
import {
  KernelConnection,
  PageCache,
  type KernelOptions,
  type SynchronizeCompletedMessage,
} from "../../client";
import { newWireLog, recordingWebSocket, type WireLog } from "./harness";

export interface MsyncRecord {
  offset: number;
  length: number;
  flags: number;
  /** Every value its promise resolved with (a promise settles once: this checks the wiring). */
  resolved: SynchronizeCompletedMessage[];
  done: Promise<void>;
}

export class TrackedKernel {
  readonly cache: PageCache;
  /** The `completion` events, in arrival order. */
  readonly events: SynchronizeCompletedMessage[] = [];
  readonly msyncs: MsyncRecord[] = [];
  /** How many times the connection reached `memory_object_ready`. */
  readyCount = 1;

  private constructor(
    readonly name: string,
    readonly connection: KernelConnection,
    readonly log: WireLog,
  ) {
    this.cache = new PageCache(connection);
    connection.on("completion", (completion) => this.events.push(completion));
    connection.on("connected", () => this.readyCount++);
  }

  static async connect(
    options: Omit<KernelOptions, "WebSocket"> & { log?: WireLog },
  ): Promise<TrackedKernel> {
    const log = options.log ?? newWireLog();
    const connection = await KernelConnection.connect({
      backoff: { initialMs: 50, maxMs: 500 },
      ...options,
      WebSocket: recordingWebSocket(log),
    });
    return new TrackedKernel(options.kernel, connection, log);
  }

  /** Starts an msync and records it; await `settled()` for all of them. */
  msync(offset: number, length: number, flags: number): MsyncRecord {
    const record: MsyncRecord = { offset, length, flags, resolved: [], done: Promise.resolve() };
    record.done = this.cache.msync(offset, length, flags).then((completion) => {
      record.resolved.push(completion);
    });
    this.msyncs.push(record);
    return record;
  }

  settled(): Promise<void> {
    return Promise.all(this.msyncs.map((m) => m.done)).then(() => undefined);
  }

  /** The highest id of a state-changing message this kernel sent. */
  lastStateChangingId(): number {
    const ids = this.log.sent
      .filter((frame) => STATE_CHANGING.has(frame.header.type))
      .map((frame) => frame.header.id as number);
    return Math.max(0, ...ids);
  }

  /** State-changing ids sent on more than one socket: resent after a reconnect. */
  resentIds(): number[] {
    const sockets = new Map<number, Set<number>>();
    for (const frame of this.log.sent) {
      if (!STATE_CHANGING.has(frame.header.type)) continue;
      const id = frame.header.id as number;
      sockets.set(id, (sockets.get(id) ?? new Set()).add(frame.socket));
    }
    return [...sockets].filter(([, on]) => on.size > 1).map(([id]) => id);
  }

  /** Completions that arrived on a later socket than the one their synchronize first went on. */
  completionsAcrossDrop(): number {
    const sentOn = new Map<number, number>();
    for (const frame of this.log.sent) {
      if (frame.header.type !== "memory_object_synchronize") continue;
      if (!sentOn.has(frame.header.id)) sentOn.set(frame.header.id, frame.socket);
    }
    const firstArrival = new Map<number, number>();
    for (const frame of this.log.received) {
      if (frame.header.type !== "memory_object_synchronize_completed") continue;
      if (!firstArrival.has(frame.header.reply_to))
        firstArrival.set(frame.header.reply_to, frame.socket);
    }
    return [...firstArrival].filter(([id, socket]) => socket > (sentOn.get(id) ?? socket)).length;
  }

  /**
   * Each msync resolved once with its own range; each completion event came once, with mids
   * 1..n and a distinct request each; and the manager never gave one request two mids (a
   * redelivered mid is fine: the client drops it).
   */
  expectEachCompletionOnce(): void {
    for (const msync of this.msyncs) {
      expect(msync.resolved, `${this.name} msync ${msync.offset}+${msync.length}`).toHaveLength(1);
      expect(msync.resolved[0]).toMatchObject({ offset: msync.offset, length: msync.length });
    }
    expect(this.events, `${this.name} completion events`).toHaveLength(this.msyncs.length);
    expect(this.events.map((e) => e.mid).sort((a, b) => a - b)).toEqual(
      this.events.map((_, i) => i + 1),
    );
    expect(new Set(this.events.map((e) => e.reply_to)).size).toBe(this.events.length);
    const midsOf = new Map<number, Set<number>>();
    for (const frame of this.log.received) {
      if (frame.header.type !== "memory_object_synchronize_completed") continue;
      const replyTo = frame.header.reply_to as number;
      midsOf.set(replyTo, (midsOf.get(replyTo) ?? new Set()).add(frame.header.mid as number));
    }
    for (const [replyTo, mids] of midsOf) {
      expect([...mids], `${this.name}: mids completing request ${replyTo}`).toHaveLength(1);
    }
  }

  close(): void {
    this.connection.close();
  }
}

const STATE_CHANGING = new Set([
  "memory_object_data_return",
  "memory_object_synchronize",
  "memory_object_lock_completed",
  "memory_object_terminate",
]);

/** `length` bytes that differ by kernel, version and position. */
export function pattern(seed: number, version: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seed * 37 + version * 11 + i * 3 + 1) & 0xff;
  return bytes;
}

/** The first index where two byte arrays differ, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
