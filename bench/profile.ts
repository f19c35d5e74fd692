/**
 * `npm run bench -- --profile`: W1, W1b, W2 and W3 (smaller) under V8's CPU profiler of the Worker
 * isolate, to see where the time goes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { KernelConnection, PageCache, VM_SYNC_ASYNCHRONOUS, VM_SYNC_SYNCHRONOUS } from "../client";
import { Inspector, startInspectedDev, summarizeProfile, type ProfileLine } from "./servers";
import { connect, finish, pattern } from "./session";
import { MiB, PAGE, freshObject } from "./settings";
import { returnPagePerFrame } from "./workloads/bulk-writes";
import { windowed } from "./workloads/async-sync-rate";
import { closeKernels, openKernels, writeAndMsync } from "./workloads/many-kernels";

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
 * Runs W1, W1b, W2, W3 and W4 (smaller) on `wrangler dev` under V8's CPU profiler of the Worker isolate,
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
    await profiled(id, what, units, unit, () => work(connection));
    await finish(dev.url, connection, object);
  };
  const profiled = async (
    id: string,
    what: string,
    units: number,
    unit: string,
    work: () => Promise<void>,
  ) => {
    await work(); // warm-up, unprofiled
    const profile = await inspector.profile(work);
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
    await run(
      "W1b",
      "4 MiB as 1,024 one-page returns, batched, + SYNCHRONOUS",
      1024,
      "return",
      (c) => returnPagePerFrame(c, data, (1 << 20) / PAGE),
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
    const w4Object = freshObject("profile-W4");
    const w4 = await openKernels(dev.url, w4Object, 32);
    await profiled("W4", "32 kernels x 5 rounds of writes + msync", 160, "msync", async () => {
      const { errors } = await writeAndMsync(w4, 5);
      if (errors.length > 0) throw new Error(`W4 under the profiler: ${errors[0]}`);
    });
    await closeKernels(dev.url, w4Object, w4);
    return results;
  } finally {
    inspector.close();
    await dev.stop();
  }
}
