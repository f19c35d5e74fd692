/**
 * The workloads of `npm run bench`, each timed against its baseline in the same run (README
 * "Benchmarks"). Every function returns plain figures; bench/run.ts prints and records them.
 * Connections are opened before the clock starts; times are wall-clock from Node.
 */
import {
  HttpClient,
  KernelConnection,
  PageCache,
  VM_SYNC_ASYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS,
} from "../client";
import { seededRandom } from "../tools/random";
import { within } from "../tools/wrangler-dev";
import { BenchSocket, putOnce } from "./baselines";
import { mkdirSync, writeFileSync } from "node:fs";
import {
  GcTrace,
  Inspector,
  residentMemory,
  startInspectedDev,
  summarizeProfile,
  type GcRecord,
  type HeapSample,
  type ProfileLine,
} from "./servers";

export const PAGE = 4096;
export const MiB = 1 << 20;
/** How long one step of the memory workload may take before it counts as a hang. */
const WAIT_MS = 120_000;

export interface Sizes {
  warmups: number;
  /** Timed repetitions of W1 and W1b. */
  reps: number;
  w1Bytes: number;
  w2Samples: number;
  w3Messages: number;
  w4Rounds: number;
  w5Objects: number;
  w5Reps: number;
  w6Bytes: number;
}

export const FULL: Sizes = {
  warmups: 1,
  reps: 5,
  w1Bytes: 16 * MiB,
  w2Samples: 200,
  w3Messages: 3000,
  w4Rounds: 20,
  w5Objects: 64,
  w5Reps: 3,
  w6Bytes: 256 * MiB,
};

export const QUICK: Sizes = {
  warmups: 1,
  reps: 2,
  w1Bytes: 16 * MiB,
  w2Samples: 50,
  w3Messages: 600,
  w4Rounds: 5,
  w5Objects: 64,
  w5Reps: 1,
  w6Bytes: 32 * MiB,
};

/** Each run's objects get fresh names, so a rerun against a persisted server starts empty. */
const RUN = Date.now().toString(36);
let objects = 0;
export function freshObject(workload: string): string {
  return `bench-${RUN}-${workload}-${objects++}`;
}

// --- statistics ------------------------------------------------------------------------------

/** The middle value, or the mean of the two middle ones. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Bytes where page i is filled with (seed + i) % 251, so a misplaced page shows. */
export function pattern(bytes: number, seed = 0): Uint8Array<ArrayBuffer> {
  const data = new Uint8Array(bytes);
  for (let i = 0; i * PAGE < bytes; i++) data.fill((seed + i) % 251, i * PAGE, (i + 1) * PAGE);
  return data;
}

async function connect(url: string, object: string, kernel = "bench"): Promise<KernelConnection> {
  return KernelConnection.connect({ url, object, kernel, connectTimeoutMs: 30_000 });
}

/** Ends the kernel (the manager forgets it) and, unless kept, deletes the object's pages. */
async function finish(url: string, connection: KernelConnection, object: string, keep = false) {
  await connection.terminate().catch(() => connection.close());
  if (!keep) await new HttpClient(url).remove(object);
}

function elapsed(start: number): number {
  return performance.now() - start;
}

// --- W1, W1b, W5: bulk writes ----------------------------------------------------------------

/** W1: `PageCache.write` of all bytes, then `msync` SYNCHRONOUS until its completion, in ms. */
export async function writeThroughCache(url: string, object: string, data: Uint8Array) {
  const connection = await connect(url, object);
  const cache = new PageCache(connection);
  const start = performance.now();
  await cache.write(0, data);
  const done = await cache.msync(0, data.byteLength, VM_SYNC_SYNCHRONOUS);
  const ms = elapsed(start);
  if (done.length !== data.byteLength) throw new Error(`W1: completion for ${done.length} bytes`);
  await finish(url, connection, object);
  return ms;
}

/** W1b: one data_return frame per page (with the client's backpressure), then SYNCHRONOUS. */
export async function writePagePerFrame(url: string, object: string, data: Uint8Array) {
  const connection = await connect(url, object);
  const start = performance.now();
  await returnPagePerFrame(connection, data);
  const ms = elapsed(start);
  await finish(url, connection, object);
  return ms;
}

async function returnPagePerFrame(connection: KernelConnection, data: Uint8Array) {
  const acks: Promise<unknown>[] = [];
  for (let offset = 0; offset < data.byteLength; offset += PAGE) {
    await connection.capacity();
    acks.push(connection.dataReturn(offset, data.subarray(offset, offset + PAGE)));
  }
  const completion = connection.synchronize(0, data.byteLength, VM_SYNC_SYNCHRONOUS);
  await Promise.all(acks);
  await completion;
}

export interface PairedTimes {
  edgepager: number[];
  baseline: number[];
}

/** Runs `edgepager` and `baseline` alternately (which goes first alternates too). */
export async function paired(
  warmups: number,
  reps: number,
  edgepager: () => Promise<number>,
  baseline: () => Promise<number>,
  progress: (line: string) => void,
): Promise<PairedTimes> {
  const times: PairedTimes = { edgepager: [], baseline: [] };
  for (let rep = 0; rep < warmups + reps; rep++) {
    const order = rep % 2 === 0 ? ["baseline", "edgepager"] : ["edgepager", "baseline"];
    const round: Record<string, number> = {};
    for (const which of order) {
      round[which] = which === "edgepager" ? await edgepager() : await baseline();
    }
    const label = rep < warmups ? "warm-up" : `rep ${rep - warmups + 1}/${reps}`;
    progress(`${label}: edgepager ${ms(round.edgepager!)}, baseline ${ms(round.baseline!)}`);
    if (rep < warmups) continue;
    times.edgepager.push(round.edgepager!);
    times.baseline.push(round.baseline!);
  }
  return times;
}

/** Baseline (a), timed: one R2 put of the bytes over HTTP. */
export async function timedPut(url: string, data: Uint8Array<ArrayBuffer>): Promise<number> {
  const start = performance.now();
  await putOnce(url, data);
  return elapsed(start);
}

/**
 * W5: `objects` objects at once, each W1 at `data` bytes; connections opened first. Returns the
 * time until the last completion.
 */
export async function writeManyObjects(url: string, count: number, data: Uint8Array) {
  const names = Array.from({ length: count }, () => freshObject("w5"));
  const connections = await Promise.all(names.map((name) => connect(url, name)));
  const start = performance.now();
  await Promise.all(
    connections.map(async (connection) => {
      const cache = new PageCache(connection);
      await cache.write(0, data);
      await cache.msync(0, data.byteLength, VM_SYNC_SYNCHRONOUS);
    }),
  );
  const ms = elapsed(start);
  await Promise.all(connections.map((connection, i) => finish(url, connection, names[i]!)));
  return ms;
}

/** Baseline for W5: `count` R2 puts of `data` over HTTP at once. */
export async function putMany(
  url: string,
  count: number,
  data: Uint8Array<ArrayBuffer>,
): Promise<number> {
  const start = performance.now();
  await Promise.all(Array.from({ length: count }, () => putOnce(url, data)));
  return elapsed(start);
}

// --- W2: one dirty page, SYNCHRONOUS ---------------------------------------------------------

export interface Latencies {
  edgepager: number[];
  baseline: number[];
}

/**
 * W2: `samples` times, one dirty page written and msynced SYNCHRONOUS, against baseline (b): the
 * page over a WebSocket into a Durable Object that puts it to R2. Alternates in rounds of 10.
 */
export async function onePageSync(url: string, samples: number, warmups: number) {
  const object = freshObject("w2");
  const connection = await connect(url, object);
  const cache = new PageCache(connection);
  const socket = await BenchSocket.open(url, "page", freshObject("w2-baseline"));
  const page = new Uint8Array(PAGE);
  const result: Latencies = { edgepager: [], baseline: [] };
  let n = 0;
  const edgepagerOnce = async () => {
    page.fill(n++ % 251);
    const start = performance.now();
    await cache.write(0, page);
    await cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS);
    return elapsed(start);
  };
  const baselineOnce = async () => {
    page.fill(n++ % 251);
    const start = performance.now();
    await socket.putPage(0, page);
    return elapsed(start);
  };
  for (let i = 0; i < warmups; i++) {
    await edgepagerOnce();
    await baselineOnce();
  }
  for (let round = 0; result.edgepager.length < samples; round++) {
    const count = Math.min(10, samples - result.edgepager.length);
    const first = round % 2 === 0 ? "edgepager" : "baseline";
    for (const which of [first, first === "edgepager" ? "baseline" : "edgepager"]) {
      for (let i = 0; i < count; i++) {
        if (which === "edgepager") result.edgepager.push(await edgepagerOnce());
        else result.baseline.push(await baselineOnce());
      }
    }
  }
  socket.close();
  await finish(url, connection, object);
  return result;
}

// --- W3: ASYNCHRONOUS synchronize of clean ranges --------------------------------------------

/** How many requests each side keeps in flight in W3 (below MAX_SYNCS_PER_KERNEL, 256). */
export const W3_WINDOW = 64;

/**
 * Runs `total` requests with `W3_WINDOW` in flight, worker w always on page w (so one kernel's
 * outstanding synchronize requests never overlap, docs/protocol.md §6.8); returns requests per second.
 */
async function windowed(total: number, send: (offset: number) => Promise<unknown>) {
  let started = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: W3_WINDOW }, async (_, worker) => {
      while (started < total) {
        started++;
        await send(worker * PAGE);
      }
    }),
  );
  return total / (elapsed(start) / 1000);
}

/**
 * W3 against baseline (c), and the protocol floor (d) for reference, in rotating order; message
 * rates in requests per second.
 */
export async function asyncSyncRate(url: string, messages: number, reps: number) {
  const object = freshObject("w3");
  const connection = await connect(url, object);
  const echoSocket = await BenchSocket.open(url, "echo", freshObject("w3-echo"));
  const floorSocket = await BenchSocket.open(url, "floor", freshObject("w3-floor"));
  const runners = {
    edgepager: (offset: number) => connection.synchronize(offset, PAGE, VM_SYNC_ASYNCHRONOUS),
    baseline: (offset: number) => echoSocket.echo(offset, PAGE, VM_SYNC_ASYNCHRONOUS),
    floor: (offset: number) => floorSocket.echo(offset, PAGE, VM_SYNC_ASYNCHRONOUS),
  };
  const order = Object.keys(runners) as (keyof typeof runners)[];
  for (const name of order) await windowed(Math.min(500, messages), runners[name]); // warm-up
  const rates = { edgepager: [] as number[], baseline: [] as number[], floor: [] as number[] };
  for (let rep = 0; rep < reps; rep++) {
    // Each rep starts with a different one, so no side always runs first or last.
    for (let i = 0; i < order.length; i++) {
      const name = order[(rep + i) % order.length]!;
      rates[name].push(await windowed(messages, runners[name]));
    }
  }
  echoSocket.close();
  floorSocket.close();
  await finish(url, connection, object);
  return rates;
}

// --- W4: 32 kernels on one object ------------------------------------------------------------

export interface ManyKernels {
  kernels: number;
  msyncs: number;
  latencies: number[];
  errors: string[];
  elapsedMs: number;
}

/**
 * W4: `kernels` kernels on one object, each `rounds` times writing 1 to 4 pages somewhere in a
 * shared 512-page region and msyncing them (3 in 4 SYNCHRONOUS, else ASYNCHRONOUS). Counts every
 * error: a rejected call, an `error` event, a completion for another range.
 */
export async function manyKernels(url: string, kernels: number, rounds: number) {
  const object = freshObject("w4");
  const errors: string[] = [];
  const connections = await Promise.all(
    Array.from({ length: kernels }, (_, k) => connect(url, object, `k${k}`)),
  );
  connections.forEach((connection, k) =>
    connection.on("error", (error) => errors.push(`k${k}: ${error.message}`)),
  );
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    connections.map(async (connection, k) => {
      const cache = new PageCache(connection);
      const random = seededRandom(k + 1);
      for (let round = 0; round < rounds; round++) {
        const first = Math.floor(random() * 508);
        const count = 1 + Math.floor(random() * 4);
        const flags = random() < 0.75 ? VM_SYNC_SYNCHRONOUS : VM_SYNC_ASYNCHRONOUS;
        try {
          await cache.write(first * PAGE, pattern(count * PAGE, k * 1000 + round));
          const began = performance.now();
          const done = await cache.msync(first * PAGE, count * PAGE, flags);
          latencies.push(elapsed(began));
          if (done.offset !== first * PAGE || done.length !== count * PAGE) {
            errors.push(`k${k}: completion ${done.offset}+${done.length} for another range`);
          }
        } catch (error) {
          errors.push(`k${k} round ${round}: ${String(error)}`);
        }
      }
    }),
  );
  const elapsedMs = elapsed(start);
  for (const connection of connections) await connection.terminate().catch(() => {});
  await new HttpClient(url).remove(object);
  return { kernels, msyncs: latencies.length, latencies, errors, elapsedMs } as ManyKernels;
}

// --- W6: memory while 256 MiB stream in and out ----------------------------------------------

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

export interface HeapPeaks {
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

// --- --profile: where the isolate's time goes ----------------------------------------------

export interface ProfiledWorkload {
  id: string;
  what: string;
  units: number;
  unit: string;
  wallMs: number;
  /** Time the isolate was not idle (running JS, native calls such as SQLite, GC). */
  busyMs: number;
  top: ProfileLine[];
  /** The .cpuprofile, for DevTools. */
  file: string;
}

const PROFILE_DIR = "node_modules/.cache/edgepager-bench";

/**
 * Runs W1, W1b, W2 and W3 (smaller) on `wrangler dev` under V8's CPU profiler of the Worker isolate,
 * which also runs the Durable Object. R2 and the WebSocket transport run elsewhere (the local R2
 * is another isolate); only this isolate's time shows.
 */
export async function profileWorkloads(persistTo: string): Promise<ProfiledWorkload[]> {
  const dev = await startInspectedDev({ persistTo });
  const inspector = await Inspector.connect(dev.inspectorUrl);
  mkdirSync(PROFILE_DIR, { recursive: true });
  const results: ProfiledWorkload[] = [];
  const run = async (
    id: string,
    what: string,
    units: number,
    unit: string,
    work: (connection: KernelConnection) => Promise<void>,
  ) => {
    const object = freshObject(`profile-${id}`);
    const connection = await connect(dev.url, object);
    await work(connection); // warm-up, unprofiled
    const profile = await inspector.profile(() => work(connection));
    await finish(dev.url, connection, object);
    const file = `${PROFILE_DIR}/${id}.cpuprofile`;
    writeFileSync(file, JSON.stringify(profile));
    const summary = summarizeProfile(profile);
    results.push({ id, what, units, unit, ...summary, top: summary.lines.slice(0, 15), file });
  };
  try {
    const data = pattern(4 * MiB);
    await run("W1", "16 MiB via PageCache.write + msync SYNCHRONOUS", 16, "MiB", async (c) => {
      const cache = new PageCache(c);
      await cache.write(0, pattern(16 * MiB));
      await cache.msync(0, 16 * MiB, VM_SYNC_SYNCHRONOUS);
      cache.detach();
    });
    await run("W1b", "4 MiB as 1,024 one-page frames + SYNCHRONOUS", 1024, "frame", (c) =>
      returnPagePerFrame(c, data),
    );
    await run("W2", "100 x (1 dirty page + msync SYNCHRONOUS)", 100, "msync", async (c) => {
      const cache = new PageCache(c);
      for (let i = 0; i < 100; i++) {
        await cache.write(0, pattern(PAGE, i));
        await cache.msync(0, PAGE, VM_SYNC_SYNCHRONOUS);
      }
    });
    await run("W3", "2,000 ASYNCHRONOUS synchronize, 64 in flight", 2000, "message", (c) =>
      windowed(2000, (offset) => c.synchronize(offset, PAGE, VM_SYNC_ASYNCHRONOUS)).then(() => {}),
    );
    return results;
  } finally {
    inspector.close();
    await dev.stop();
  }
}

export function ms(value: number): string {
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}
