/**
 * `npm run bench [-- --quick]`: edgepager against baselines measured in the same run
 * (bench/README.md). Starts edgepager and the bench-only Worker in one wrangler test harness, runs
 * W1-W5, W3 with 4 observers of its event stream, W4 on a coherent object, W7 (coherent handoffs) and the SQLite workloads W8-W10 there and W6 (memory) on `wrangler dev` with an
 * inspector, prints a table of absolute figures and ratios, and writes bench/results.json and
 * bench/results.svg. `--only=W2,W6` runs some workloads (and those whose figures they need) and
 * writes nothing; `--profile` prints where the isolate's time goes instead.
 *
 * Nothing here asserts a timing: the figures depend on the machine and its load. Targets are
 * reported as met or not. The speed-independent counts are asserted in
 * test/bench-counts.test.ts, inside `npm test`.
 *
 * Built by esbuild into node_modules/.cache (as the CLI is built) and run on the repo's Node 22.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, platform, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { renderSvg } from "./chart";
import { startBenchHarness } from "./servers";
import { profileWorkloads } from "./profile";
import type { Row, Target } from "./rows";
import { FULL, MiB, QUICK, freshObject } from "./settings";
import { pattern } from "./session";
import { median, ms, percentile } from "./statistics";
import { paired } from "./timing";
import { asyncSyncRate, W3_WINDOW } from "./workloads/async-sync-rate";
import { OBSERVERS, observedSyncRate } from "./workloads/observed-sync-rate";
import { coherentHandoffs } from "./workloads/coherent-handoffs";
import {
  putMany,
  timedPut,
  writeManyObjects,
  writePagePerFrame,
  writeThroughCache,
} from "./workloads/bulk-writes";
import { manyKernels } from "./workloads/many-kernels";
import { memoryUnderStream } from "./workloads/memory";
import { onePageSync } from "./workloads/one-page-msync";
import { buildDatabase, removeDatabase } from "./sqlite-fixtures";
import { coldScans } from "./workloads/sqlite-cold-scan";
import { insertTransactions, type CommitOptions } from "./workloads/sqlite-commits";
import { smallTransactions } from "./workloads/sqlite-small-transactions";

const quick = process.argv.includes("--quick");
/** `--only=W2,W6` runs just those workloads (for working on one); the default runs all. */
const only = process.argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice("--only=".length)
  .split(",");
/** What a workload needs run before it: its baseline comes from another workload. */
const NEEDS: Record<string, string[]> = {
  W2: ["W4", "W4c", "W7", "W8", "W8b"],
  W3: ["W3o"], // W3o measures its own unwatched W3; W3's rows are printed beside it
  W8: ["W8b"],
};
const runs = (id: string) =>
  !only || only.includes(id) || (NEEDS[id] ?? []).some((later) => only.includes(later));
const sizes = quick ? QUICK : FULL;
const log = (line: string) => console.log(`  ${line}`);

function meets(target: Target, figure: number): boolean {
  return target.op === "<=" ? figure <= target.value : figure >= target.value;
}

function row(fields: Omit<Row, "met">): Row {
  return { ...fields, met: fields.target ? meets(fields.target, fields.figure) : null };
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** What later workloads need from earlier ones. */
interface Shared {
  url: string;
  rows: Row[];
  /** W2's p50, the yardstick of W4, W4 coherent, W7 and W8. */
  w2p50?: number;
  /** W8's p50, the yardstick of W8b. */
  w8p50?: number;
  /** The 16 MiB database of W9 and W10, built once (`node:sqlite`) and removed at the end. */
  database?: { path: string; bytes: Uint8Array<ArrayBuffer> };
}

const WORKLOADS: [string, (shared: Shared) => Promise<void>][] = [
  ["W1", w1],
  ["W1b", w1b],
  ["W2", w2],
  ["W3", w3],
  ["W3o", w3o], // W3 with and without 4 observers; --only=W3o runs W3 too
  ["W4", w4], // needs W2's p50: --only=W4 runs W2 too
  ["W4c", w4c], // W4 on a coherent object; needs W2's p50 too
  ["W5", w5],
  ["W7", w7], // needs W2's p50: --only=W7 runs W2 too
  ["W8", w8], // needs W2's p50: --only=W8 runs W2 too
  ["W8b", w8b], // needs W8's p50: --only=W8b runs W2 and W8 too
  ["W9", w9],
  ["W10", w10],
];

async function main(): Promise<void> {
  if (process.argv.includes("--profile")) return profile();
  const began = Date.now();
  const rows: Row[] = [];
  const selected = WORKLOADS.filter(([id]) => runs(id));
  if (selected.length > 0) {
    console.log(`edgepager bench (${quick ? "quick" : "full"}): starting the harness`);
    const harness = await startBenchHarness();
    try {
      const shared: Shared = { url: harness.url, rows };
      try {
        for (const [, workload] of selected) await workload(shared);
      } finally {
        if (shared.database) removeDatabase(shared.database.path);
      }
    } finally {
      await harness.close();
    }
  }
  if (runs("W6")) await w6(rows);
  printTable(rows);
  const results = {
    mode: quick ? "quick" : "full",
    date: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - began) / 1000),
    machine: {
      cpu: cpus()[0]?.model ?? "unknown",
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      os: `${platform()} ${release()}`,
      node: process.version,
    },
    rows,
  };
  if (only) {
    console.log("--only: bench/results.json and bench/results.svg left as they were");
    return;
  }
  writeFileSync("bench/results.json", `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync("bench/results.svg", renderSvg(results));
  console.log(`wrote bench/results.json and bench/results.svg in ${results.durationSeconds} s`);
}

/** The W1 and W1b data, made once. */
let w1Bytes: Uint8Array<ArrayBuffer> | null = null;
function w1Data(): Uint8Array<ArrayBuffer> {
  return (w1Bytes ??= pattern(sizes.w1Bytes));
}

async function w1(shared: Shared): Promise<void> {
  console.log(`W1: ${mib(sizes.w1Bytes)} through PageCache + msync SYNCHRONOUS`);
  const w1 = await paired(
    sizes.warmups,
    sizes.reps,
    () => writeThroughCache(shared.url, freshObject("w1"), w1Data()),
    () => timedPut(shared.url, w1Data()),
    log,
  );
  const w1Ratio = median(w1.edgepager) / median(w1.baseline);
  shared.rows.push(
    row({
      id: "W1",
      title: `${sizes.w1Bytes / MiB} MiB via PageCache.write + msync SYNCHRONOUS`,
      edgepager: ms(median(w1.edgepager)),
      baseline: `(a) ${ms(median(w1.baseline))}`,
      figure: w1Ratio,
      figureLabel: "median time ÷ baseline (a)",
      target: { op: "<=", value: 2, of: "time ÷ baseline (a)" },
      data: { bytes: sizes.w1Bytes, ...w1 },
    }),
  );
}

async function w1b(shared: Shared): Promise<void> {
  await w1bRow(shared, false);
  await w1bRow(shared, true);
}

/** W1b one frame per page (reported), and batched (target: within 3× baseline (a)). */
async function w1bRow(shared: Shared, batch: boolean): Promise<void> {
  const how = batch ? "batched into frames of up to 1 MiB" : "one data_return frame per 4 KiB page";
  console.log(`W1b${batch ? " batched" : ""}: ${mib(sizes.w1Bytes)}, ${how}`);
  const times = await paired(
    sizes.warmups,
    Math.min(sizes.reps, 3),
    () => writePagePerFrame(shared.url, freshObject("w1b"), w1Data(), batch),
    () => timedPut(shared.url, w1Data()),
    log,
  );
  const returns = sizes.w1Bytes / 4096;
  shared.rows.push(
    row({
      id: batch ? "W1b batched" : "W1b",
      title: `${sizes.w1Bytes / MiB} MiB as ${returns} one-page returns + SYNCHRONOUS, ${batch ? "batched" : "a frame each"}`,
      edgepager: `${ms(median(times.edgepager))} (${((median(times.edgepager) * 1000) / returns).toFixed(0)} µs/return)`,
      baseline: `(a) ${ms(median(times.baseline))}`,
      figure: median(times.edgepager) / median(times.baseline),
      figureLabel: "median time ÷ baseline (a)",
      target: batch ? { op: "<=", value: 3, of: "median time ÷ baseline (a)" } : null,
      data: { bytes: sizes.w1Bytes, returns, batch, ...times },
    }),
  );
}

async function w2(shared: Shared): Promise<void> {
  console.log(`W2: one dirty page + SYNCHRONOUS, ${sizes.w2Samples} samples`);
  const w2 = await onePageSync(shared.url, sizes.w2Samples, 20);
  const w2p50 = percentile(w2.edgepager, 50);
  shared.w2p50 = w2p50;
  const w2p99 = percentile(w2.edgepager, 99);
  const b2p50 = percentile(w2.baseline, 50);
  const b2p99 = percentile(w2.baseline, 99);
  log(`edgepager p50 ${ms(w2p50)} p99 ${ms(w2p99)}; baseline p50 ${ms(b2p50)} p99 ${ms(b2p99)}`);
  shared.rows.push(
    row({
      id: "W2",
      title: "1 dirty page + msync SYNCHRONOUS (latency)",
      edgepager: `p50 ${ms(w2p50)}, p99 ${ms(w2p99)}`,
      baseline: `(b) p50 ${ms(b2p50)}, p99 ${ms(b2p99)}`,
      figure: w2p50 / b2p50,
      figureLabel: `p50 ÷ baseline (b) p50 (p99 ratio ${(w2p99 / b2p99).toFixed(2)})`,
      target: { op: "<=", value: 2, of: "p50 ÷ baseline (b) p50" },
      data: {
        p50: w2p50,
        p99: w2p99,
        baselineP50: b2p50,
        baselineP99: b2p99,
        p99Ratio: w2p99 / b2p99,
        ...w2,
      },
    }),
  );
}

async function w3(shared: Shared): Promise<void> {
  await w3Row(shared, false);
  await w3Row(shared, true);
}

/** W3 one frame per message (reported), and batched (target: at least baseline (c)'s rate). */
async function w3Row(shared: Shared, batch: boolean): Promise<void> {
  console.log(
    `W3${batch ? " batched" : ""}: ASYNCHRONOUS synchronize of clean ranges, ${sizes.w3Messages} x 3`,
  );
  const w3 = await asyncSyncRate(shared.url, sizes.w3Messages, 3, batch);
  const w3Rate = median(w3.edgepager);
  const echoRate = median(w3.baseline);
  const floorRate = median(w3.floor);
  log(
    `edgepager ${w3Rate.toFixed(0)}/s, echo ${echoRate.toFixed(0)}/s, ` +
      `protocol floor (d) ${floorRate.toFixed(0)}/s (edgepager ${(w3Rate / floorRate).toFixed(2)} of it)`,
  );
  shared.rows.push(
    row({
      id: batch ? "W3 batched" : "W3",
      title: `ASYNCHRONOUS synchronize of clean pages, ${W3_WINDOW} in flight, one object${batch ? ", batched" : ""}`,
      edgepager: `${w3Rate.toFixed(0)} syncs/s (${(w3Rate / floorRate).toFixed(2)} × floor (d) ${floorRate.toFixed(0)}/s)`,
      baseline: `(c) ${echoRate.toFixed(0)} echoes/s`,
      figure: w3Rate / echoRate,
      figureLabel: "rate ÷ baseline (c)",
      target: batch ? { op: ">=", value: 1, of: "rate ÷ baseline (c)" } : null,
      data: {
        messages: sizes.w3Messages,
        batch,
        window: W3_WINDOW,
        rates: w3,
        floorRatio: w3Rate / floorRate,
      },
    }),
  );
}

async function w3o(shared: Shared): Promise<void> {
  await w3oRow(shared, false);
  await w3oRow(shared, true);
}

/**
 * W3 observed: W3 on an object with 4 observers reading its event stream, against W3 on an
 * unwatched object in the same run (the ratio should be about 1: observers never slow the object).
 */
async function w3oRow(shared: Shared, batch: boolean): Promise<void> {
  const name = `W3${batch ? " batched" : ""} observed`;
  console.log(
    `${name}: W3 with ${OBSERVERS} observers of the event stream and without, ${sizes.w3Messages} x 3`,
  );
  const w3o = await observedSyncRate(shared.url, sizes.w3Messages, 3, batch);
  const observed = median(w3o.observed);
  const plain = median(w3o.plain);
  const perObserver = w3o.observers.map((o) => median(o.eventsPerSecond));
  const during = median(w3o.observers.flatMap((o) => o.shareDuringRun));
  const lost = w3o.observers.map((o) => o.lost);
  const misordered = w3o.observers.reduce((sum, o) => sum + o.outOfOrder, 0);
  const early = w3o.observers.reduce((sum, o) => sum + o.completionsBeforeMessage, 0);
  const expected = 2 * w3o.observedRequests;
  const short = w3o.observers.filter((o) => o.syncMessages + o.completions + o.lost < expected);
  const events =
    `each observer ${Math.min(...perObserver).toFixed(0)}-${Math.max(...perObserver).toFixed(0)} events/s, ` +
    `${(100 * during).toFixed(0)}% of them read during the run, lag p50 ${ms(median(w3o.lagMs))}, ` +
    `lost ${lost.join("/")}, ${misordered} out of order ` +
    `(${early} completions told before their own message)` +
    (short.length > 0 ? `, ${short.length} observers short of ${expected} events` : "");
  log(`observed ${observed.toFixed(0)}/s, plain ${plain.toFixed(0)}/s; ${events}`);
  for (const anomaly of w3o.observers[0]!.anomalies) log(`out of order: ${anomaly}`);
  log(`lost per timed run: ${w3o.observers.map((o) => o.lostPerRun.join("+")).join(", ")}`);
  shared.rows.push({
    id: name,
    title: `W3${batch ? " batched" : ""} with ${OBSERVERS} observers reading the event stream`,
    edgepager: `${observed.toFixed(0)} syncs/s; ${events}`,
    baseline: `W3${batch ? " batched" : ""} unwatched ${plain.toFixed(0)} syncs/s`,
    figure: observed / plain,
    figureLabel: "rate observed ÷ rate unwatched (about 1 expected)",
    target: null,
    met: misordered === 0 && short.length === 0 ? null : false,
    data: { messages: sizes.w3Messages, batch, window: W3_WINDOW, expected, ...w3o },
  });
}

async function w4(shared: Shared): Promise<void> {
  await w4Row(shared, false);
}

async function w4c(shared: Shared): Promise<void> {
  await w4Row(shared, true);
}

/**
 * W4, and W4 coherent: the same rounds on a coherent object, where each write first makes its
 * kernel the writer of its pages (its time is reported beside the msync's, which has the target).
 */
async function w4Row(shared: Shared, coherent: boolean): Promise<void> {
  const name = coherent ? "W4 coherent" : "W4";
  console.log(
    `${name}: 32 kernels on one ${coherent ? "coherent " : ""}object, ${sizes.w4Rounds} write + msync rounds each`,
  );
  const w4 = await manyKernels(shared.url, 32, sizes.w4Rounds, coherent);
  const w4p50 = percentile(w4.latencies, 50);
  const w4p99 = percentile(w4.latencies, 99);
  const writes =
    `write p50 ${ms(percentile(w4.writeLatencies, 50))}, p99 ${ms(percentile(w4.writeLatencies, 99))}, ` +
    `${(w4.lockRequests / w4.writeLatencies.length).toFixed(2)} lock requests per write`;
  log(`${w4.msyncs} msyncs in ${ms(w4.elapsedMs)}: p50 ${ms(w4p50)} p99 ${ms(w4p99)}; ${writes}`);
  for (const error of w4.errors.slice(0, 5)) log(`error: ${error}`);
  const w2p50 = shared.w2p50!;
  const w4Figure = w4p99 / w2p50;
  shared.rows.push({
    id: name,
    title: `32 kernels, one ${coherent ? "coherent " : ""}object, writes + msyncs (3/4 SYNCHRONOUS)`,
    edgepager:
      `p50 ${ms(w4p50)}, p99 ${ms(w4p99)}, ${w4.errors.length} errors` +
      (coherent ? `; ${writes}` : ""),
    baseline: `W2 p50 ${ms(w2p50)}`,
    figure: w4Figure,
    figureLabel: "msync p99 ÷ W2 p50",
    target: { op: "<=", value: 5, of: "p99 ÷ W2 p50, and 0 errors" },
    met: w4Figure <= 5 && w4.errors.length === 0,
    data: { p50: w4p50, p99: w4p99, ...w4 },
  });
}

async function w5(shared: Shared): Promise<void> {
  console.log(`W5: ${sizes.w5Objects} objects at once, 1 MiB each, vs one object`);
  const oneMiB = pattern(MiB);
  const w5One = await paired(
    sizes.warmups,
    sizes.reps,
    () => writeThroughCache(shared.url, freshObject("w5-one"), oneMiB),
    () => timedPut(shared.url, oneMiB),
    log,
  );
  const w5Many = await paired(
    0,
    sizes.w5Reps,
    () => writeManyObjects(shared.url, sizes.w5Objects, oneMiB),
    () => putMany(shared.url, sizes.w5Objects, oneMiB),
    log,
  );
  const n = sizes.w5Objects;
  const scaling = (n * median(w5One.edgepager)) / median(w5Many.edgepager);
  const baselineScaling = (n * median(w5One.baseline)) / median(w5Many.baseline);
  shared.rows.push(
    row({
      id: "W5",
      title: `${n} objects at once, W1 at 1 MiB each, vs 1 object`,
      edgepager: `1: ${ms(median(w5One.edgepager))}, ${n}: ${ms(median(w5Many.edgepager))} → ${scaling.toFixed(1)}x throughput`,
      baseline: `(a) 1: ${ms(median(w5One.baseline))}, ${n}: ${ms(median(w5Many.baseline))} → ${baselineScaling.toFixed(1)}x`,
      figure: scaling,
      figureLabel: `aggregate throughput, ${n} objects ÷ 1 (baseline (a): ${baselineScaling.toFixed(1)})`,
      target: null,
      data: { objects: n, one: w5One, many: w5Many, scaling, baselineScaling },
    }),
  );
}

async function w7(shared: Shared): Promise<void> {
  const n = sizes.w7Handoffs;
  console.log(`W7: two kernels alternately incrementing one coherent page, ${n} handoffs`);
  const w7 = await coherentHandoffs(shared.url, n, sizes.w7Warmups);
  const p50 = percentile(w7.latencies, 50);
  const p99 = percentile(w7.latencies, 99);
  const expected = BigInt(sizes.w7Warmups + n);
  const counts =
    `${w7.framesSentPerHandoff.toFixed(1)} frames out, ${w7.framesReceivedPerHandoff.toFixed(1)} in, ` +
    `${w7.lockRequestsPerHandoff.toFixed(2)} lock requests, ${w7.seqnosPerHandoff.toFixed(1)} messages numbered per handoff`;
  if (w7.finalValue !== expected) {
    w7.errors.push(`the counter is ${w7.finalValue} after ${expected} increments`);
  }
  log(`${w7.perSecond.toFixed(0)} handoffs/s, p50 ${ms(p50)} p99 ${ms(p99)}; ${counts}`);
  for (const error of w7.errors.slice(0, 5)) log(`error: ${error}`);
  const w2p50 = shared.w2p50!;
  const figure = p50 / w2p50;
  shared.rows.push({
    id: "W7",
    title: "2 kernels alternately incrementing one page of a coherent object (a handoff each)",
    edgepager:
      `${w7.perSecond.toFixed(0)} handoffs/s, p50 ${ms(p50)}, p99 ${ms(p99)}; ${counts}; ` +
      `${w7.errors.length} errors`,
    baseline: `W2 p50 ${ms(w2p50)}`,
    figure,
    figureLabel: "handoff p50 ÷ W2 p50",
    target: { op: "<=", value: 2, of: "handoff p50 ÷ W2 p50, and 0 errors" },
    met: figure <= 2 && w7.errors.length === 0,
    data: { p50, p99, yardstick: w2p50, ...w7, finalValue: Number(w7.finalValue) },
  });
}

async function w8(shared: Shared): Promise<void> {
  const w2p50 = shared.w2p50!;
  for (const durability of ["journal", "r2"] as const) {
    const result = await commitRow(shared, "W8", { durability, atomicCommits: true }, w2p50);
    if (durability === "journal") shared.w8p50 = result;
  }
}

async function w8b(shared: Shared): Promise<void> {
  await commitRow(shared, "W8b", { durability: "journal", atomicCommits: false }, shared.w8p50!);
}

/**
 * A row of W8 or W8b: 1-row INSERT transactions, p50 against `yardstick` (W2's p50 for W8, W8's
 * for W8b). Only W8 with the default durability has a target. Returns the p50.
 */
async function commitRow(
  shared: Shared,
  id: "W8" | "W8b",
  options: CommitOptions,
  yardstick: number,
): Promise<number> {
  const how = options.atomicCommits ? "atomic groups" : "a rollback journal per commit";
  const name = options.durability === "r2" ? `${id} r2` : id;
  console.log(`${name}: 1-row INSERT transactions, ${how}, durability "${options.durability}"`);
  const result = await insertTransactions(shared.url, sizes.w8Samples, sizes.w8Warmups, options);
  const p50 = percentile(result.latencies, 50);
  const p99 = percentile(result.latencies, 99);
  const counts =
    `${result.framesSentPerCommit.toFixed(1)} frames out, ${result.framesReceivedPerCommit.toFixed(1)} in, ` +
    `${result.seqnosPerCommit.toFixed(1)} messages numbered (+${result.journalSeqnosPerCommit.toFixed(1)} on the journal) per commit`;
  log(`p50 ${ms(p50)} p99 ${ms(p99)}; ${counts}`);
  const w8 = id === "W8";
  const target = w8 && options.durability === "journal";
  shared.rows.push(
    row({
      id: name,
      title:
        `1-row INSERT transactions, ${how}` +
        (options.durability === "r2" ? ', durability "r2"' : ""),
      edgepager: `p50 ${ms(p50)}, p99 ${ms(p99)}; ${counts}`,
      baseline: `${w8 ? "W2" : "W8"} p50 ${ms(yardstick)}`,
      figure: p50 / yardstick,
      figureLabel: `p50 ÷ ${w8 ? "W2" : "W8"} p50`,
      target: target ? { op: "<=", value: 1.5, of: "p50 ÷ W2 p50" } : null,
      data: { ...options, p50, p99, yardstick, ...result },
    }),
  );
  return p50;
}

/** The database of W9 and W10, built on first use. */
function database(shared: Shared): { path: string; bytes: Uint8Array<ArrayBuffer> } {
  return (shared.database ??= buildDatabase(sizes.sqliteBytes));
}

async function w9(shared: Shared): Promise<void> {
  const db = database(shared);
  console.log(
    `W9: cold open + full scan + integrity_check of a ${mib(db.bytes.byteLength)} database`,
  );
  const w9 = await coldScans(shared.url, db, 1, sizes.w9Reps, log);
  const total = median(w9.edgepager);
  const local = median(w9.baseline);
  shared.rows.push(
    row({
      id: "W9",
      title: `cold open + scan + integrity_check, ${mib(db.bytes.byteLength)} database, reader`,
      edgepager:
        `${ms(total)} (open ${ms(median(w9.openMs))} incl. loading SQLite ${ms(median(w9.loadSqliteMs))}, ` +
        `scan ${ms(median(w9.scanMs))}, check ${ms(median(w9.checkMs))}; ${w9.framesSent} frames out; ` +
        `again with every page held ${ms(median(w9.heldMs))})`,
      baseline: `local file, node:sqlite ${ms(local)}; R2 read in 1 MiB ranges ${ms(median(w9.r2ReadMs))}`,
      figure: total / local,
      figureLabel: "median time ÷ local file (node:sqlite)",
      target: { op: "<=", value: 2, of: "time ÷ local file" },
      data: { bytes: db.bytes.byteLength, ...w9 },
    }),
  );
}

async function w10(shared: Shared): Promise<void> {
  const db = database(shared);
  const n = sizes.w10Transactions;
  console.log(`W10: ${n} small transactions on a ${mib(db.bytes.byteLength)} database`);
  const w10 = await smallTransactions(shared.url, db.bytes, n, sizes.w10Puts, log);
  const putMs = median(w10.puts);
  const wholeFile = putMs * n;
  const counts =
    `${w10.framesSentPerTransaction.toFixed(1)} frames out, ` +
    `${w10.seqnosPerTransaction.toFixed(1)} messages numbered (+${w10.journalSeqnosPerTransaction.toFixed(1)} on the journal) per transaction`;
  log(`p50 ${ms(percentile(w10.latencies, 50))}; ${counts}`);
  shared.rows.push(
    row({
      id: "W10",
      title: `${n} small transactions on a ${mib(db.bytes.byteLength)} database`,
      edgepager: `${ms(w10.elapsedMs)} (p50 ${ms(percentile(w10.latencies, 50))}; ${counts})`,
      baseline: `(a) ${mib(db.bytes.byteLength)} put ${ms(putMs)} × ${n} = ${(wholeFile / 1000).toFixed(0)} s (extrapolated)`,
      figure: wholeFile / w10.elapsedMs,
      figureLabel: "times faster than a whole-file put per commit",
      target: { op: ">=", value: 10, of: "baseline ÷ time" },
      data: { bytes: db.bytes.byteLength, wholeFileMs: wholeFile, ...w10 },
    }),
  );
}

async function w6(rows: Row[]): Promise<void> {
  const shared = { rows };
  console.log(`W6: memory while ${mib(sizes.w6Bytes)} stream in and back out (wrangler dev)`);
  const state = mkdtempSync(join(tmpdir(), "edgepager-bench-"));
  try {
    const w6 = await memoryUnderStream(sizes.w6Bytes, state, log);
    const { live, asFound } = w6;
    log(
      `live peak ${mib(live.total)} (JS heap ${mib(live.jsHeap)}, ArrayBuffers ` +
        `${mib(live.arrayBuffers)}, embedder ${mib(live.embedder)}) in ${w6.ticks} ticks ` +
        `(${w6.unanswered} unanswered); ` +
        `allocated peak ${mib(w6.allocatedPeak)} (polled ${mib(asFound.total)}, ${w6.gcs} GCs ` +
        `traced); idle ${mib(w6.idleLive)}; in ${ms(w6.writeMs)}, out ${ms(w6.readMs)}; ` +
        `workerd peak RSS ${w6.workerdPeakRss ? mib(w6.workerdPeakRss) : "n/a"}; data ` +
        `${w6.verified ? "verified" : "WRONG"}`,
    );
    shared.rows.push(
      row({
        id: "W6",
        title: `Durable Object heap while ${sizes.w6Bytes / MiB} MiB stream in and out`,
        edgepager: `live peak ${mib(live.total)} (in ${w6.writeLivePeak === null ? "n/a" : mib(w6.writeLivePeak)}, out ${w6.readLivePeak === null ? "n/a" : mib(w6.readLivePeak)}); allocated incl. garbage ${mib(w6.allocatedPeak)}`,
        baseline: `idle ${mib(w6.idleLive)}`,
        figure: (w6.collected ? live.total : w6.allocatedPeak) / MiB,
        figureLabel: `${w6.collected ? "live" : "allocated (no gc)"} isolate heap + ArrayBuffers, MiB`,
        target: { op: "<=", value: 64, of: "MiB" },
        data: { ...w6 },
      }),
    );
    if (!w6.verified) rows[rows.length - 1]!.met = false;
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

/** `--profile`: where the isolate's time goes in W1, W1b, W2, W3 and W4; prints, records nothing. */
async function profile(): Promise<void> {
  console.log(
    "edgepager bench --profile: W1, W1b, W2, W3, W4 under the CPU profiler (wrangler dev)",
  );
  const state = mkdtempSync(join(tmpdir(), "edgepager-profile-"));
  try {
    for (const result of await profileWorkloads(state)) {
      const perUnit = (result.busyMs * 1000) / result.units;
      console.log(
        `\n${result.id}: ${result.what}: ${ms(result.wallMs)} wall, isolate busy ` +
          `${ms(result.busyMs)} (${((100 * result.busyMs) / result.wallMs).toFixed(0)}%), ` +
          `${perUnit.toFixed(0)} µs per ${result.unit}; profile in ${result.file}`,
      );
      console.log("   self ms  total ms  µs/" + result.unit.padEnd(8) + "function");
      for (const line of result.top) {
        console.log(
          `  ${line.selfMs.toFixed(1).padStart(8)} ${line.totalMs.toFixed(1).padStart(9)} ` +
            `${((line.selfMs * 1000) / result.units).toFixed(1).padStart(11)}  ${line.function}`,
        );
      }
    }
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

function printTable(rows: Row[]): void {
  const header = ["", "workload", "edgepager", "baseline (same run)", "figure", "target", "met"];
  const lines = rows.map((r) => [
    r.id,
    r.title,
    r.edgepager,
    r.baseline,
    `${r.figure.toFixed(2)} (${r.figureLabel})`,
    r.target ? `${r.target.op} ${r.target.value}` : "report",
    r.met === null ? "-" : r.met ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
  console.log();
  console.log(format(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const line of lines) console.log(format(line));
  console.log();
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
