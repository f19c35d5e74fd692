/**
 * W6: the Worker isolate's memory while 256 MiB stream in and out of one object.
 */
import { PageCache, VM_SYNC_SYNCHRONOUS } from "../../client";
import { within } from "../../tools/wrangler-dev";
import { GcTrace, Inspector, residentMemory, startInspectedDev, type HeapSample } from "../servers";
import { connect, finish, pattern } from "../session";
import { MiB, PAGE, freshObject } from "../settings";
import { elapsed } from "../timing";

/** How long one step of the memory workload may take before it counts as a hang. */
const WAIT_MS = 120_000;
export interface MemoryFigures {
  bytes: number;
  method: string;
  /** Whether `gc` was exposed, so live samples were taken. */
  collected: boolean;
  /** Ticks of the poller (each one sample as found and one of the live set). */
  ticks: number;
  /** Inspector commands that got no answer (each a lost sample). */
  unanswered: number;
  /** Peaks of the polled live set (after `gc(); gc()`): the figure held against the target. */
  live: HeapPeaks;
  /** Peaks of polled samples as found between forced collections: garbage included. */
  asFound: HeapPeaks;
  /** Collections of the isolate V8 traced (forced ones included). */
  gcs: number;
  /**
   * The most the isolate held allocated, garbage included: the larger of the polled samples as
   * found and, at each traced collection, the JS heap before it plus the backing stores it
   * reports (V8 frees ArrayBuffers only after the collection, so they are the ones before it).
   */
  allocatedPeak: number;
  idleLive: number;
  /** The polled live peak while writing, and while reading; null where no tick fell. */
  writeLivePeak: number | null;
  readLivePeak: number | null;
  /** workerd's peak resident set (whole process: every isolate, SQLite, the local R2). */
  workerdPeakRss: number | null;
  writeMs: number;
  readMs: number;
  verified: boolean;
}

interface HeapPeaks {
  jsHeap: number;
  arrayBuffers: number;
  embedder: number;
  /** The largest sum of the three in one sample. */
  total: number;
}

function total(sample: HeapSample): number {
  return sample.usedSize + sample.backingStorageSize + sample.embedderHeapUsedSize;
}

function peaks(samples: HeapSample[]): HeapPeaks {
  const peak = (pick: (s: HeapSample) => number) => Math.max(0, ...samples.map(pick));
  return {
    jsHeap: peak((s) => s.usedSize),
    arrayBuffers: peak((s) => s.backingStorageSize),
    embedder: peak((s) => s.embedderHeapUsedSize),
    total: peak(total),
  };
}

/**
 * W6: `bytes` written through the client in 16 MiB chunks (write, then msync SYNCHRONOUS), then
 * read back with data_requests of 1 MiB, 8 in flight, while a poller samples the isolate's heap
 * every 100 ms, forcing two full GCs before each live sample. Runs on `wrangler dev` with an
 * inspector port and `--expose-gc` (the test harness has no inspector).
 */
export async function memoryUnderStream(
  bytes: number,
  persistTo: string,
  progress: (line: string) => void,
): Promise<MemoryFigures> {
  const trace = new GcTrace();
  const dev = await startInspectedDev({
    persistTo,
    v8Flags: "--expose-gc --trace-gc --trace-gc-verbose",
    onLine: (line) => trace.feed(line),
  });
  const poller = await Inspector.connect(dev.inspectorUrl);
  if (!poller.canCollect) progress("W6: gc is not exposed: only samples as found");
  try {
    await poller.sample();
    const idle = poller.samples.filter((s) => s.live === poller.canCollect).at(-1)!;
    const object = freshObject("w6");
    const connection = await connect(dev.url, object);
    poller.start(100);
    poller.phase = trace.phase = "write";
    const chunk = 16 * MiB;
    const writeStart = performance.now();
    for (let offset = 0; offset < bytes; offset += chunk) {
      const cache = new PageCache(connection);
      await cache.write(offset, pattern(chunk, offset / PAGE));
      await within(cache.msync(offset, chunk, VM_SYNC_SYNCHRONOUS), WAIT_MS, `msync at ${offset}`);
      cache.detach(); // dropped: the client keeps no more than one chunk
      if (((offset + chunk) / MiB) % 64 === 0) progress(`written ${(offset + chunk) / MiB} MiB`);
    }
    const writeMs = elapsed(writeStart);
    poller.phase = trace.phase = "read";
    const readStart = performance.now();
    let verified = true;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < bytes) {
          const offset = next;
          next += MiB;
          const reply = await within(
            connection.dataRequest(offset, MiB),
            WAIT_MS,
            `read at ${offset}`,
          );
          const data = reply.data ?? new Uint8Array(MiB);
          for (let at = 0; at < MiB; at += PAGE) {
            if (data[at] !== ((offset + at) / PAGE) % 251) verified = false;
          }
        }
      }),
    );
    const readMs = elapsed(readStart);
    progress(`read ${bytes / MiB} MiB back`);
    await within(poller.stop(), WAIT_MS, "the heap poller's last tick");
    trace.phase = "";
    await finish(dev.url, connection, object);
    const samples = poller.samples;
    const live = samples.filter((s) => s.live);
    const gcs = trace.forcedIsolate();
    const rss = dev
      .workerdPids()
      .map(residentMemory)
      .filter((r) => r !== null);
    const asFound = peaks(samples.filter((s) => !s.live));
    const phasePeak = (phase: string) => {
      const taken = live.filter((s) => s.phase === phase);
      return taken.length > 0 ? peaks(taken).total : null;
    };
    return {
      bytes,
      method:
        "the Worker isolate (which also runs the Durable Object) on wrangler dev with V8 flags " +
        "--expose-gc --trace-gc --trace-gc-verbose. Live: every 100 ms over the inspector, " +
        "`gc(); gc()` (two full collections free the ArrayBuffers) then Runtime.getHeapUsage, " +
        "usedSize + backingStorageSize + embedderHeapUsedSize. Allocated: the same without the " +
        "collections, and V8's trace of every collection (JS heap before + backing stores)",
      collected: poller.canCollect,
      ticks: live.length,
      unanswered: poller.unanswered,
      live: peaks(live),
      asFound,
      gcs: gcs.length,
      allocatedPeak: Math.max(asFound.total, ...gcs.map((r) => r.heapBefore + r.backingStore)),
      idleLive: total(idle),
      writeLivePeak: phasePeak("write"),
      readLivePeak: phasePeak("read"),
      workerdPeakRss: rss.length > 0 ? Math.max(...rss.map((r) => r.peak)) : null,
      writeMs,
      readMs,
      verified,
    };
  } finally {
    poller.close();
    await dev.stop();
  }
}
