/**
 * The servers `npm run bench` measures, all on loopback:
 *
 * - `startBenchHarness`: one wrangler test harness (`createTestHarness`) running edgepager
 *   (./wrangler.toml, the primary Worker) and the bench-only Worker (bench/wrangler.toml), whose
 *   route `*\/bench/*` sends the baselines' paths to it. One entry, one workerd: edgepager and
 *   its baselines share the runtime and the machine's noise.
 * - `startInspectedDev`: `wrangler dev` as a child process with an inspector port, for the memory
 *   workload (the test harness has no inspector). `Inspector` samples the isolate's heap over
 *   the Chrome DevTools protocol while a workload runs.
 *
 * Starting and stopping `wrangler dev` is tools/wrangler-dev.ts, shared with the Node tests.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createTestHarness, type TestHarness } from "wrangler";
import { QUIET_ENV, startWranglerDev } from "../tools/wrangler-dev";

Object.assign(process.env, QUIET_ENV);

export interface BenchHarness {
  /** The shared entry: `/v1/...` reaches edgepager, `/bench/...` the bench Worker. */
  url: string;
  server: TestHarness;
  close(): Promise<void>;
}

/** edgepager with its own wrangler.toml vars (no test overrides) beside the bench Worker. */
export async function startBenchHarness(): Promise<BenchHarness> {
  const server = createTestHarness({
    workers: [{ configPath: "./wrangler.toml" }, { configPath: "./bench/wrangler.toml" }],
  });
  const { url } = await server.listen();
  const base = url.toString().replace(/\/$/, "");
  const probe = await fetch(`${base}/bench/none`);
  if (probe.status !== 404 || (await probe.text()) !== "not found") {
    await server.close();
    throw new Error("the bench Worker's route */bench/* did not reach bench/worker.ts");
  }
  return { url: base, server, close: () => server.close() };
}

export interface InspectedDev {
  url: string;
  /** The DevTools WebSocket of the Worker's isolate (wrangler's inspector proxy). */
  inspectorUrl: string;
  /** The pids of the workerd processes under the child, for their resident memory. */
  workerdPids(): number[];
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `wrangler dev` on loopback with state under `persistTo` and an inspector port, and
 * resolves once it answers `GET /`. `v8Flags` reach workerd through miniflare's
 * MINIFLARE_WORKERD_V8_FLAGS. The child leads its own process group, so `stop` ends workerd
 * with it.
 */
export async function startInspectedDev(options: {
  persistTo: string;
  v8Flags?: string;
  /** Called with each line the child prints (workerd's V8 traces come out on stdout). */
  onLine?: (line: string) => void;
  timeoutMs?: number;
}): Promise<InspectedDev> {
  const { persistTo, v8Flags = "", onLine, timeoutMs = 90_000 } = options;
  const dev = await startWranglerDev({
    persistTo,
    env: { MINIFLARE_WORKERD_V8_FLAGS: v8Flags },
    onLine,
    timeoutMs,
  });
  return {
    url: dev.url,
    inspectorUrl: `ws://127.0.0.1:${dev.inspectorPort}/ws`,
    workerdPids: () => descendants(dev.child.pid!).filter((pid) => commandOf(pid) === "workerd"),
    output: dev.output,
    stop: dev.stop,
  };
}

/** Every process below `root`, from /proc (Linux only; empty elsewhere). */
function descendants(root: number): number[] {
  const parents = new Map<number, number>();
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        // The command may hold spaces and parentheses: the fields after the last ")" are fixed.
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        parents.set(Number(entry), Number(fields[1]));
      } catch {
        // Exited meanwhile.
      }
    }
  } catch {
    return [];
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [pid, ppid] of parents) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** VmHWM (peak resident set) and VmRSS of a process, in bytes; null where /proc has none. */
export function residentMemory(pid: number): { peak: number; now: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field: string) => Number(status.match(new RegExp(`${field}:\\s+(\\d+) kB`))?.[1]);
    return { peak: kib("VmHWM") * 1024, now: kib("VmRSS") * 1024 };
  } catch {
    return null;
  }
}

/** The isolate's memory right after one garbage collection, from V8's `--trace-gc-verbose`. */
export interface GcRecord {
  /** V8's own clock, ms since the isolate started. */
  atMs: number;
  kind: string;
  reason: string;
  /** `GcTrace.phase` when the line arrived. */
  phase: string;
  /** JS heap before and after the collection, bytes. */
  heapBefore: number;
  heapAfter: number;
  /**
   * ArrayBuffer backing stores still allocated when it ended. They are freed after the
   * collection that found them dead, so this is about what was allocated before it.
   */
  backingStore: number;
}

/**
 * Reads workerd's `--trace-gc --trace-gc-verbose` output: one record per collection, per isolate.
 * V8 collects when allocation demands it, also in the middle of a long run of events, where the
 * inspector cannot answer; so these records see the busy stretches the poller misses. Lines
 * start with `[pid:isolate]`; the Worker's isolate is the one whose collections were forced by
 * our `gc()` (reason "testing").
 */
export class GcTrace {
  private readonly byIsolate = new Map<string, GcRecord[]>();
  /** A label each new record takes, e.g. the workload's phase. */
  phase = "";

  feed(line: string): void {
    const prefix = /^\[\d+:(0x[0-9a-f]+)\]\s+(.*)$/.exec(line);
    if (!prefix) return;
    const [, isolate, rest] = prefix as unknown as [string, string, string];
    const records = this.byIsolate.get(isolate) ?? [];
    this.byIsolate.set(isolate, records);
    const collection =
      /^([\d.]+) ms: (.+?) ([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, .*\) ([^;]*);/.exec(rest);
    if (collection) {
      const [, at, kind, before, after, reason] = collection as unknown as string[];
      records.push({
        atMs: Number(at),
        kind: kind!,
        reason: reason!.trim(),
        phase: this.phase,
        heapBefore: Number(before) * 2 ** 20, // V8 prints MB as 2^20 bytes
        heapAfter: Number(after) * 2 ** 20,
        backingStore: 0,
      });
      return;
    }
    const last = records[records.length - 1];
    const backing = /^Backing store memory:\s+(\d+) KB/.exec(rest);
    if (last && backing) last.backingStore = Number(backing[1]) * 1024;
  }

  /** The collections of the isolate where `gc()` was called most often; [] if none. */
  forcedIsolate(): GcRecord[] {
    let best: GcRecord[] = [];
    let most = 0;
    for (const records of this.byIsolate.values()) {
      const forced = records.filter((r) => r.reason === "testing").length;
      if (forced > most) [best, most] = [records, forced];
    }
    return best;
  }
}

/** One `Runtime.getHeapUsage` answer, in bytes, with when it was taken. */
export interface HeapSample {
  atMs: number;
  /** `Inspector.phase` when it was taken. */
  phase: string;
  /** Taken right after two forced full GCs: only what is still referenced. */
  live: boolean;
  /** The V8 JS heap in use (objects, strings, and garbage not yet collected unless `live`). */
  usedSize: number;
  /** ArrayBuffer backing stores outside the JS heap: page bytes live here. */
  backingStorageSize: number;
  /** Memory of the runtime's C++ objects on the embedder heap (cppgc). */
  embedderHeapUsedSize: number;
}

/**
 * The DevTools connection to the Worker isolate: heap samples and CPU profiles.
 *
 * Samples the Worker isolate's heap over the DevTools protocol. In workerd a Worker's Durable
 * Objects run in the Worker's own isolate, so each figure is the object's heap plus the
 * Worker's: an upper bound for the object alone.
 *
 * Each tick takes two samples: as found (garbage included: V8 collects ArrayBuffers only once
 * their external memory passes its own threshold, so this mostly measures V8's GC schedule), and
 * after `gc(); gc()` evaluated in the isolate (it takes two full collections to free the backing
 * stores), the live set. `gc` exists only when workerd runs with `--expose-gc`
 * (MINIFLARE_WORKERD_V8_FLAGS); without it the poller takes the first kind only.
 */
export class Inspector {
  readonly samples: HeapSample[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, (message: InspectorAnswer) => void>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> = Promise.resolve();
  private readonly started = performance.now();
  private contextId: number | null = null;
  canCollect = false;
  /** A label each new sample takes, e.g. the workload's phase. */
  phase = "";
  /** Commands that timed out. */
  unanswered = 0;

  private constructor(private readonly socket: WebSocket) {
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data)) as InspectorAnswer & {
        method?: string;
        params?: { context?: { id: number } };
      };
      if (message.method === "Runtime.executionContextCreated" && message.params?.context) {
        this.contextId = message.params.context.id;
      }
      if (message.id === undefined) return; // other events
      const answer = this.pending.get(message.id);
      this.pending.delete(message.id);
      answer?.(message);
    });
  }

  static async connect(inspectorUrl: string): Promise<Inspector> {
    // The inspector proxy wants an Origin on loopback; Node's WebSocket (undici) takes headers.
    const Socket = WebSocket as unknown as new (url: string, init: object) => WebSocket;
    const socket = new Socket(inspectorUrl, { headers: { Origin: "http://127.0.0.1" } });
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new Error("inspector unreachable")), {
        once: true,
      });
    });
    const poller = new Inspector(socket);
    await poller.call("Runtime.enable"); // announces the Worker's execution context
    for (let i = 0; i < 50 && poller.contextId === null; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const probe = await poller.evaluate("typeof gc");
    poller.canCollect = probe.result?.result?.value === "function";
    return poller;
  }

  /** One DevTools command; an answer that does not come within `timeoutMs` becomes an error. */
  call(method: string, params: object = {}, timeoutMs = 30_000): Promise<InspectorAnswer> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.unanswered++;
        resolve({ error: { message: `${method}: no answer within ${timeoutMs} ms` } });
      }, timeoutMs);
      this.pending.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }

  private evaluate(expression: string): Promise<InspectorAnswer> {
    if (this.contextId === null) return Promise.resolve({ error: { message: "no context" } });
    return this.call("Runtime.evaluate", { expression, contextId: this.contextId });
  }

  /** One sample as found and, when `gc` is exposed, one of the live set after collecting. */
  async sample(): Promise<void> {
    await this.usage(false);
    if (!this.canCollect) return;
    await this.evaluate("gc(); gc()");
    await this.usage(true);
  }

  private async usage(live: boolean): Promise<void> {
    const answer = await this.call("Runtime.getHeapUsage");
    if (!answer.result) return;
    const usage = answer.result;
    this.samples.push({
      atMs: performance.now() - this.started,
      phase: this.phase,
      live,
      usedSize: usage.usedSize ?? 0,
      backingStorageSize: usage.backingStorageSize ?? 0,
      embedderHeapUsedSize: usage.embedderHeapUsedSize ?? 0,
    });
  }

  /** Samples every `intervalMs` (one tick at a time) until `stop`. */
  start(intervalMs: number): void {
    const tick = () => {
      this.running = this.sample().then(() => {
        if (this.timer !== null) this.timer = setTimeout(tick, intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops sampling; resolves once the tick under way has finished. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /**
   * Runs `work` under V8's sampling CPU profiler (one sample per `intervalUs` of the isolate's
   * thread) and returns the profile, loadable in DevTools as a .cpuprofile.
   */
  async profile(work: () => Promise<void>, intervalUs = 250): Promise<CpuProfile> {
    await this.call("Profiler.enable");
    await this.call("Profiler.setSamplingInterval", { interval: intervalUs });
    await this.call("Profiler.start");
    const failure = await work().then(
      () => null,
      (error: unknown) => error ?? new Error("the profiled work failed"),
    );
    const answer = await this.call("Profiler.stop", {}, 120_000);
    if (failure) throw failure;
    if (!answer.result) throw new Error(answer.error?.message ?? "Profiler.stop failed");
    return answer.result.profile as CpuProfile;
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.socket.close();
  }
}

interface InspectorAnswer {
  id?: number;
  result?: any;
  error?: { message: string };
}

/** The parts of a DevTools `Profiler.Profile` that `summarizeProfile` reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileLine {
  /** `name (file:line)`, or V8's `(idle)`, `(program)`, `(garbage collector)`. */
  function: string;
  selfMs: number;
  /** Including what it called. */
  totalMs: number;
}

/**
 * Self and total time per function (summed over every call site), from the samples: each
 * sample's time is the delta to the next one. Sorted by self time.
 */
export function summarizeProfile(profile: CpuProfile): {
  wallMs: number;
  busyMs: number;
  lines: ProfileLine[];
} {
  const parent = new Map<number, number>();
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  const label = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const file = url.split("/").pop();
    const name = functionName || "(anonymous)";
    return file ? `${name} (${file}:${lineNumber + 1})` : name;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const name = label(id);
    self.set(name, (self.get(name) ?? 0) + ms);
    if (name !== "(idle)") busy += ms;
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = label(at);
      if (seen.has(frame)) continue;
      seen.add(frame);
      total.set(frame, (total.get(frame) ?? 0) + ms);
    }
  });
  const lines = [...self.entries()]
    .map(([name, selfMs]) => ({ function: name, selfMs, totalMs: total.get(name) ?? selfMs }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return { wallMs: (profile.endTime - profile.startTime) / 1000, busyMs: busy, lines };
}
