/**
 * R2 wrappers for running the same scenario against a failing or slow store (CONTRIBUTING.md §10).
 * They wrap the real local bucket; only `put`, `get`, `delete` and `list` are changed (and counted). `onObject` installs one inside a live
 * MemoryObject (an eviction drops it again, like any in-memory state).
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";

export interface PutControl {
  /** While true, every put rejects. */
  failing: boolean;
  /** Added delay before each put, in ms. */
  delayMs: number;
  /** Added delay before each get (a read), in ms. */
  readDelayMs: number;
  /** Keys whose put resolved. */
  written: string[];
  /** Puts attempted (including failed ones). */
  attempts: number;
  /** Gets (ranged reads) asked of R2. */
  reads: number;
  /** While true, every delete rejects. */
  deletesFailing: boolean;
  /** Deletes attempted (including failed ones). */
  deleteAttempts: number;
  /** Lists asked of R2. */
  lists: number;
}

export function newControl(options: Partial<PutControl> = {}): PutControl {
  return {
    failing: false,
    delayMs: 0,
    readDelayMs: 0,
    written: [],
    attempts: 0,
    reads: 0,
    deletesFailing: false,
    deleteAttempts: 0,
    lists: 0,
    ...options,
  };
}

export function wrapBucket(bucket: R2Bucket, control: PutControl): R2Bucket {
  return new Proxy(bucket, {
    get(target, property) {
      if (property === "put") {
        return async (key: string, value: any, options?: R2PutOptions) => {
          control.attempts++;
          if (control.delayMs > 0) await new Promise((r) => setTimeout(r, control.delayMs));
          if (control.failing) throw new Error("injected R2 failure");
          const result = await target.put(key, value, options);
          control.written.push(key);
          return result;
        };
      }
      if (property === "get") {
        return async (key: string, options?: R2GetOptions) => {
          control.reads++;
          if (control.readDelayMs > 0) await new Promise((r) => setTimeout(r, control.readDelayMs));
          return target.get(key, options);
        };
      }
      if (property === "delete") {
        return async (keys: string | string[]) => {
          control.deleteAttempts++;
          if (control.deletesFailing) throw new Error("injected delete failure");
          return target.delete(keys);
        };
      }
      if (property === "list") {
        return async (options?: R2ListOptions) => {
          control.lists++;
          return target.list(options);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export function objectStub(name: string) {
  return env.MEMORY_OBJECT.getByName(name);
}

/** Installs a wrapped bucket in the object's running instance and returns its control. */
export async function wrapObjectBucket(
  name: string,
  options: Partial<PutControl> = {},
): Promise<PutControl> {
  const control = newControl(options);
  await runInDurableObject(objectStub(name), (instance: MemoryObject) => {
    instance.pager.store.bucket = wrapBucket(instance.pager.store.bucket, control);
  });
  return control;
}

/** Counts rows of a table in the object's SQLite. */
export async function countRows(name: string, table: string): Promise<number> {
  return runInDurableObject(
    objectStub(name),
    (_instance: MemoryObject, state) =>
      state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n,
  );
}

/** Runs the object's sweep and compaction now (the alarm does it after flushes) and waits. */
export async function maintain(name: string): Promise<void> {
  await runInDurableObject(objectStub(name), (instance: MemoryObject) => instance.pager.maintain());
}
