/**
 * What one synchronize costs in SQLite, with few or many requests outstanding (issue 10): the
 * statements run and the rows read to admit one (one that starts and waits for R2, one queued
 * behind an overlapping one of its kernel, one complete on arrival) and to answer a status
 * request must not grow with the number outstanding. The figures are printed so they can be
 * quoted; the assertions bound them.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MemoryObject } from "../durable/memory-object";
import {
  VM_SYNC_ASYNCHRONOUS as ASYNCHRONOUS,
  VM_SYNC_SYNCHRONOUS as SYNCHRONOUS,
} from "../schema";
import { objectStub, stallObjectBucket } from "./helpers/buckets";
import { call, stat } from "./helpers/http";
import { TestKernel } from "./helpers/kernel";
import { meterObjectSql, type SqlMeter } from "./helpers/sql-meter";

const PAGE = 4096;
const KERNELS = 16;

interface Cost {
  statements: number;
  rowsRead: number;
}

/**
 * An object with `outstanding` SYNCHRONOUS requests waiting for R2 (puts never settle), spread
 * over 16 kernels, each kernel's on pages 0, 1, 2, … of a dirty range; returns kernel k0.
 */
async function objectWithOutstanding(object: string, outstanding: number) {
  const kernels: TestKernel[] = [];
  for (let k = 0; k < KERNELS; k++) kernels.push((await TestKernel.open(object, `k${k}`)).kernel);
  await stallObjectBucket(object);
  const perKernel = outstanding / KERNELS;
  await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
    instance.pager.testHooks.limits.maxSyncsPerKernel = perKernel + 16;
  });
  const k0 = kernels[0]!;
  // Pages 0..511 dirty (2 MiB, under the segment target: no flush until a request asks).
  for (let offset = 0; offset < 512 * PAGE; offset += 1 << 20) {
    await k0.ack(k0.dataReturn(offset, new Uint8Array(1 << 20).fill(1)));
  }
  for (const kernel of kernels) {
    let last = 0;
    for (let i = 0; i < perKernel; i++) last = kernel.synchronize(i * PAGE, PAGE, SYNCHRONOUS);
    await kernel.ack(last);
  }
  expect((await stat(object)).syncs).toBe(outstanding);
  return { k0, kernels };
}

async function measure(meter: SqlMeter, act: () => Promise<unknown>): Promise<Cost> {
  meter.reset();
  await act();
  return { statements: meter.statements(), rowsRead: meter.rowsRead() };
}

async function costs(object: string, outstanding: number) {
  const { k0, kernels } = await objectWithOutstanding(object, outstanding);
  const meter = await meterObjectSql(object);
  const worst = (list: Cost[]): Cost => ({
    statements: Math.max(...list.map((c) => c.statements)),
    rowsRead: Math.max(...list.map((c) => c.rowsRead)),
  });
  const starts: Cost[] = [];
  const queued: Cost[] = [];
  const onArrival: Cost[] = [];
  const status: Cost[] = [];
  for (let round = 0; round < 3; round++) {
    // A dirty page no request of k0 covers: starts, and waits for R2.
    starts.push(
      await measure(meter, () => k0.ack(k0.synchronize((300 + round) * PAGE, PAGE, SYNCHRONOUS))),
    );
    // Page 0, which k0's first request covers: queued behind it.
    queued.push(await measure(meter, () => k0.ack(k0.synchronize(0, PAGE, ASYNCHRONOUS))));
    // A page nothing covers: complete as it arrives.
    onArrival.push(
      await measure(meter, () =>
        k0.completion(k0.synchronize((1000 + round) * PAGE, PAGE, ASYNCHRONOUS)),
      ),
    );
    status.push(await measure(meter, () => call(`/v1/objects/${object}`).then((r) => r.json())));
  }
  const breakdown = meter.readsByStatement();
  await meter.stop();
  for (const kernel of kernels) kernel.close();
  return {
    starts: worst(starts),
    queued: worst(queued),
    onArrival: worst(onArrival),
    status: worst(status),
    breakdown,
  };
}

describe("synchronize admission cost", () => {
  it("is the same small bound at 16 and at 4,096 outstanding requests", async () => {
    const few = await costs("sync-costs-16", 16);
    const many = await costs("sync-costs-4096", 4096);
    for (const [name, r] of [
      ["16", few],
      ["4,096", many],
    ] as const) {
      console.log(
        `[sync-costs] ${name} outstanding: admission that starts ${JSON.stringify(r.starts)}, ` +
          `queued ${JSON.stringify(r.queued)}, complete on arrival ${JSON.stringify(r.onArrival)}; ` +
          `status ${JSON.stringify(r.status)}`,
      );
    }
    console.log("[sync-costs] rows read by statement at 4,096:", many.breakdown);
    for (const kind of ["starts", "queued", "onArrival", "status"] as const) {
      expect(many[kind], kind).toEqual(few[kind]);
      expect(many[kind].statements, kind).toBeLessThanOrEqual(20);
      expect(many[kind].rowsRead, kind).toBeLessThanOrEqual(40);
    }
  }, 600_000);
});
