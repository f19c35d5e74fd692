/**
 * The one R2 wrapper of the tests (CONTRIBUTING.md §10): the same scenario runs against a bucket
 * that fails, is slow, stalls, or fails by a seeded PRNG, and the wrapper counts what was asked
 * of R2. It wraps the real local bucket; only `put`, `get`, `delete` and `list` are changed. It
 * is installed in the segment store of a live MemoryObject (durable/segment-store.ts, the only
 * module that calls the bucket); an eviction drops it again, like any in-memory state, so
 * `ensureObjectBucket` puts it back. What it records lives in its control, shared by every
 * instance it was installed in.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import { seededRandom } from "../../tools/random";

/**
 * What happens to one put: it rejects before writing (`fail`), writes the object and then rejects
 * (`failAfterWrite`: the object IS in R2, but the put must count as failed), never settles
 * (`stall`, as when an instance is torn down mid-write; unlike a delay, a timer an eviction waits
 * for, it leaves nothing in flight), is delayed, or goes through (null).
 */
type PutFault = "fail" | "failAfterWrite" | "stall" | { delayMs: number } | null;

interface CleanPut {
  key: string;
  body: Uint8Array;
}

export interface BucketControl {
  /** While true, every put rejects. */
  failing: boolean;
  /** While true, every put never settles. */
  stalled: boolean;
  /** Added delay before each put, in ms. */
  delayMs: number;
  /** Added delay before each get (a read), in ms. */
  readDelayMs: number;
  /** While true, every delete rejects. */
  deletesFailing: boolean;
  /** Decides each put that the switches above let through (e.g. `seededFaults`); null: none. */
  putFault: ((key: string, body: Uint8Array) => PutFault) | null;
  /** Keep a copy of each resolved put's body in `clean` (the torture test checks them). */
  keepBodies: boolean;

  /** Puts attempted (including failed ones). */
  attempts: number;
  /** Keys whose put resolved, in the order they resolved: the object may rely on exactly these. */
  written: string[];
  /** With `keepBodies`: the puts that resolved, with their bytes, in order. */
  clean: CleanPut[];
  /** Keys written to R2 by a put that then rejected: the index must never point at one. */
  failedAfterWrite: Set<string>;
  /** Every key a put was attempted for. */
  attemptedKeys: Set<string>;
  /** Puts to a key already attempted: the object must never rewrite a key. */
  rewrites: number;
  /** Gets (ranged reads) asked of R2. */
  reads: number;
  /** Deletes attempted (including failed ones). */
  deleteAttempts: number;
  /** Lists asked of R2. */
  lists: number;
  /** Instances the wrapper was installed in. */
  installs: number;
}

export function newControl(options: Partial<BucketControl> = {}): BucketControl {
  return {
    failing: false,
    stalled: false,
    delayMs: 0,
    readDelayMs: 0,
    deletesFailing: false,
    putFault: null,
    keepBodies: false,
    attempts: 0,
    written: [],
    clean: [],
    failedAfterWrite: new Set(),
    attemptedKeys: new Set(),
    rewrites: 0,
    reads: 0,
    deleteAttempts: 0,
    lists: 0,
    installs: 0,
    ...options,
  };
}

/** The control a wrapped bucket reports to (how `ensureObjectBucket` knows its own wrapper). */
const CONTROL = Symbol("bucket-control");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function wrapBucket(bucket: R2Bucket, control: BucketControl): R2Bucket {
  const put = async (
    key: string,
    value: Parameters<R2Bucket["put"]>[1],
    options?: R2PutOptions,
  ) => {
    control.attempts++;
    if (control.attemptedKeys.has(key)) control.rewrites++;
    control.attemptedKeys.add(key);
    if (control.delayMs > 0) await sleep(control.delayMs);
    if (control.stalled) return new Promise<never>(() => {});
    if (control.failing) throw new Error("injected R2 failure");
    const fault = control.putFault?.(key, bytesOf(value)) ?? null;
    if (fault === "stall") return new Promise<never>(() => {});
    if (fault === "fail") throw new Error("injected R2 failure (nothing written)");
    if (fault === "failAfterWrite") {
      await bucket.put(key, value, options);
      control.failedAfterWrite.add(key);
      throw new Error("injected R2 failure (written, then rejected)");
    }
    if (fault !== null) await sleep(fault.delayMs);
    const body = control.keepBodies ? bytesOf(value).slice() : null;
    const result = await bucket.put(key, value, options);
    control.written.push(key);
    if (body) control.clean.push({ key, body });
    return result;
  };
  const get = async (key: string, options?: R2GetOptions) => {
    control.reads++;
    if (control.readDelayMs > 0) await sleep(control.readDelayMs);
    return bucket.get(key, options);
  };
  const remove = async (keys: string | string[]) => {
    control.deleteAttempts++;
    if (control.deletesFailing) throw new Error("injected delete failure");
    return bucket.delete(keys);
  };
  const list = async (options?: R2ListOptions) => {
    control.lists++;
    return bucket.list(options);
  };
  const changed: Record<PropertyKey, unknown> = { put, get, delete: remove, list };
  return new Proxy(bucket, {
    get(target, property) {
      if (property === CONTROL) return control;
      if (property in changed) return changed[property];
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export function objectStub(name: string) {
  return env.MEMORY_OBJECT.getByName(name);
}

/**
 * Installs a wrapper in the object's running instance (over whatever bucket it has) and returns
 * its control: pass options for a fresh one, or a control to install it again.
 *
 * @example const control = await wrapObjectBucket(name, { failing: true });
 */
export async function wrapObjectBucket(
  name: string,
  options: Partial<BucketControl> | BucketControl = {},
): Promise<BucketControl> {
  const control = isControl(options) ? options : newControl(options);
  await runInDurableObject(objectStub(name), (instance: MemoryObject) => {
    const hooks = instance.pager.testHooks;
    hooks.useBucket(wrapBucket(hooks.bucket(), control));
    control.installs++;
  });
  return control;
}

/** Puts never settle from now on in the object's running instance (see `PutFault`). */
export function stallObjectBucket(name: string): Promise<BucketControl> {
  return wrapObjectBucket(name, { stalled: true });
}

/**
 * Installs `control`'s wrapper in the object's running instance unless it is there already (the
 * first call, and after every eviction). Returns whether it had to install it.
 */
export async function ensureObjectBucket(
  name: string,
  control: BucketControl,
  /** Also run on each fresh instance (an eviction drops in-memory settings too). */
  onInstall?: (instance: MemoryObject) => void,
): Promise<boolean> {
  return runInDurableObject(objectStub(name), (instance: MemoryObject) => {
    const hooks = instance.pager.testHooks;
    if ((hooks.bucket() as R2Bucket & { [CONTROL]?: BucketControl })[CONTROL] === control) {
      return false;
    }
    onInstall?.(instance);
    hooks.useBucket(wrapBucket(hooks.bucket(), control));
    control.installs++;
    return true;
  });
}

type FaultKind = "fail" | "failAfterWrite" | "delay";

export interface FaultOptions {
  seed: number;
  /** Probability that a put rejects before writing anything. */
  fail: number;
  /** Probability that a put writes the object, then rejects. */
  failAfterWrite: number;
  /** Probability that a put is delayed by 1..maxDelayMs ms before it goes through. */
  delay: number;
  /** Keep it short: an eviction waits for a delayed put's timer. */
  maxDelayMs: number;
  /** Decisions for the first puts, in order, before the PRNG decides ("none": no fault). */
  script?: (FaultKind | "none")[];
}

/** Faults drawn by a seeded PRNG, for `BucketControl.putFault`, and what was drawn. */
export interface SeededFaults {
  /** While false, every put goes straight through (the numbers are still drawn). */
  enabled: boolean;
  /** Faults injected so far, by kind. */
  injected: Record<FaultKind, number>;
  decide(key: string, body: Uint8Array): PutFault;
}

/**
 * Each put, by the given probabilities, fails before writing, fails after writing, is delayed a
 * little, or goes through (for the torture test).
 *
 * @example const faults = seededFaults({ seed, fail: 0.1, failAfterWrite: 0.1, delay: 0.2, maxDelayMs: 15 });
 *          const control = newControl({ putFault: faults.decide });
 */
export function seededFaults(options: FaultOptions): SeededFaults {
  const random = seededRandom(options.seed);
  const script = [...(options.script ?? [])];
  const pick = (roll: number): FaultKind | "none" => {
    if (roll < options.fail) return "fail";
    if (roll < options.fail + options.failAfterWrite) return "failAfterWrite";
    if (roll < options.fail + options.failAfterWrite + options.delay) return "delay";
    return "none";
  };
  const seeded: SeededFaults = {
    enabled: true,
    injected: { fail: 0, failAfterWrite: 0, delay: 0 },
    decide() {
      // Draw every number for every put, so the sequence of decisions depends only on the seed
      // and the number of puts, not on whether faults are switched on.
      const roll = random();
      const delayMs = 1 + Math.floor(random() * options.maxDelayMs);
      const kind = script.shift() ?? pick(roll);
      if (!seeded.enabled || kind === "none") return null;
      seeded.injected[kind]++;
      return kind === "delay" ? { delayMs } : kind;
    },
  };
  return seeded;
}

function isControl(options: Partial<BucketControl> | BucketControl): options is BucketControl {
  return "attemptedKeys" in options && options.attemptedKeys instanceof Set;
}

function bytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === "string") return new TextEncoder().encode(value);
  return new Uint8Array(0);
}

/** Runs the object's sweep and compaction now (the alarm does it after flushes) and waits. */
export async function maintain(name: string): Promise<void> {
  await runInDurableObject(objectStub(name), (instance: MemoryObject) => instance.pager.maintain());
}
