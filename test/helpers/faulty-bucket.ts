/**
 * A fault-injecting R2 wrapper driven by a seeded PRNG (CONTRIBUTING.md §10), for the torture test. Each
 * put, by the given probabilities, fails before writing, fails after writing (the object IS in R2
 * but the put rejects: the manager must treat it as failed, never point the index at it nor
 * complete on it), is delayed a little, or goes through. Reads are passed through untouched.
 *
 * Like `wrapObjectBucket`, it lives in one running MemoryObject instance: an eviction drops it, so
 * call `ensureFaultyBucket` again afterwards. The record it keeps (which keys were written cleanly,
 * with their bytes, in order) is shared by every instance it was installed in.
 */
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import { objectStub } from "./buckets";
import { seededRandom } from "../../tools/random";

export type FaultKind = "fail" | "failAfterWrite" | "delay";

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

export interface CleanPut {
  key: string;
  body: Uint8Array;
}

export interface FaultyBucket {
  /** While false, every put goes straight through (still recorded). */
  enabled: boolean;
  /** Puts attempted through the wrapper. */
  attempts: number;
  faults: Record<FaultKind, number>;
  /** Puts that resolved, in the order they resolved: the manager may rely on exactly these. */
  clean: CleanPut[];
  cleanKeys: Set<string>;
  /** Keys written to R2 by a put that then rejected: the index must never point at one. */
  failedAfterWrite: Set<string>;
  /** Every key a put was attempted for. */
  attemptedKeys: Set<string>;
  /** Puts to a key already attempted: the manager must never rewrite a key (docs/architecture.md §4). */
  rewrites: number;
  /** Instances the wrapper was (re)installed in, after the first. */
  reinstalls: number;
}

const INSTALLED = Symbol("faulty-bucket");

export function newFaultyBucket(options: FaultOptions): {
  bucket: FaultyBucket;
  wrap(real: R2Bucket): R2Bucket;
} {
  const random = seededRandom(options.seed);
  const script = [...(options.script ?? [])];
  const bucket: FaultyBucket = {
    enabled: true,
    attempts: 0,
    faults: { fail: 0, failAfterWrite: 0, delay: 0 },
    clean: [],
    cleanKeys: new Set(),
    failedAfterWrite: new Set(),
    attemptedKeys: new Set(),
    rewrites: 0,
    reinstalls: -1,
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const decide = (roll: number): FaultKind | "none" => {
    if (roll < options.fail) return "fail";
    if (roll < options.fail + options.failAfterWrite) return "failAfterWrite";
    if (roll < options.fail + options.failAfterWrite + options.delay) return "delay";
    return "none";
  };

  function wrap(real: R2Bucket): R2Bucket {
    return new Proxy(real, {
      get(target, property) {
        if (property === INSTALLED) return bucket;
        if (property === "put") {
          return async (key: string, value: any, putOptions?: R2PutOptions) => {
            bucket.attempts++;
            // Draw every number for every put, so the sequence of decisions depends only on
            // the seed and the number of puts, not on whether faults are switched on.
            const roll = random();
            const delayMs = 1 + Math.floor(random() * options.maxDelayMs);
            const kind = script.shift() ?? decide(roll);
            if (bucket.attemptedKeys.has(key)) bucket.rewrites++;
            bucket.attemptedKeys.add(key);
            const body = copyOf(value);
            if (bucket.enabled) {
              if (kind === "fail") {
                bucket.faults.fail++;
                throw new Error("injected R2 failure (nothing written)");
              }
              if (kind === "failAfterWrite") {
                bucket.faults.failAfterWrite++;
                await target.put(key, value, putOptions);
                bucket.failedAfterWrite.add(key);
                throw new Error("injected R2 failure (written, then rejected)");
              }
              if (kind === "delay") {
                bucket.faults.delay++;
                await sleep(delayMs);
              }
            }
            const result = await target.put(key, value, putOptions);
            bucket.clean.push({ key, body });
            bucket.cleanKeys.add(key);
            return result;
          };
        }
        const member = Reflect.get(target, property);
        return typeof member === "function" ? member.bind(target) : member;
      },
    });
  }
  return { bucket, wrap };
}

/**
 * Installs the wrapper in the object's running instance unless it is there already (the first
 * call, and after every eviction). Returns whether it had to install it.
 */
export async function ensureFaultyBucket(
  name: string,
  faulty: { bucket: FaultyBucket; wrap(real: R2Bucket): R2Bucket },
  /** Also run on each fresh instance (an eviction drops in-memory settings too). */
  onInstall?: (instance: MemoryObject) => void,
): Promise<boolean> {
  return runInDurableObject(objectStub(name), (instance: MemoryObject) => {
    const current = instance.pager.store.bucket as R2Bucket & { [INSTALLED]?: FaultyBucket };
    if (current[INSTALLED] === faulty.bucket) return false;
    onInstall?.(instance);
    instance.pager.store.bucket = faulty.wrap(current);
    faulty.bucket.reinstalls++;
    return true;
  });
}

function copyOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value.slice();
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (typeof value === "string") return new TextEncoder().encode(value);
  return new Uint8Array(0);
}
