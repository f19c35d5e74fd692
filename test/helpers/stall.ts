/**
 * An R2 wrapper whose puts never settle, as when an instance is torn down in the middle of a
 * write. Unlike a delay (a timer, which an eviction waits for), a put that never settles leaves
 * nothing in flight, so `evictDurableObject` returns at once with SYNCHRONOUS requests waiting.
 */
import { runInDurableObject } from "cloudflare:test";
import type { MemoryObject } from "../../durable/memory-object";
import { objectStub } from "./buckets";

export interface StallControl {
  /** Puts attempted (each one is left pending). */
  attempts: number;
}

/** Installs the stalling bucket in the object's running instance; an eviction drops it. */
export async function stallObjectBucket(name: string): Promise<StallControl> {
  const control: StallControl = { attempts: 0 };
  await runInDurableObject(objectStub(name), (instance: MemoryObject) => {
    instance.pager.store.bucket = new Proxy(instance.pager.store.bucket, {
      get(target, property) {
        if (property === "put") {
          return () => {
            control.attempts++;
            return new Promise<never>(() => {});
          };
        }
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  });
  return control;
}
