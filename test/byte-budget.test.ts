/**
 * The isolate's byte budget (durable/byte-budget.ts): bytes wait for room, a release lets the
 * next in, a lost holder's lease lapses, and a waiter of one Durable Object is never resumed by
 * another object's release (the platform forbids I/O for one object from another's context: the
 * first design deadlocked flushes that way).
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ByteBudget, isolateByteBudget } from "../durable/byte-budget";
import type { MemoryObject } from "../durable/memory-object";
import { objectStub } from "./helpers/buckets";
import { putPages } from "./helpers/http";

describe("ByteBudget", () => {
  it("makes a take wait for room, and lets it in once bytes are given back", async () => {
    const budget = new ByteBudget(100);
    const first = await budget.take(60);
    let second: (() => void) | null = null;
    const waiting = budget.take(60).then((release) => (second = release));
    // A waiter looks for room on a 5 ms timer of its own and no event marks a look that found
    // none, so only time can show it stays waiting: several of its looks.
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(second).toBeNull();
    expect(budget.inUse()).toBe(60);
    first();
    await waiting;
    expect(budget.inUse()).toBe(60);
    second!();
    expect(budget.inUse()).toBe(0);
    expect(budget.peak()).toBe(60);
  });

  it("lets a take larger than the whole budget through when nothing else is held", async () => {
    const budget = new ByteBudget(100);
    const release = await budget.take(500);
    expect(budget.inUse()).toBe(500);
    release();
  });

  it("forgets a lease whose holder never gave it back", async () => {
    const budget = new ByteBudget(100, 50);
    await budget.take(100); // never released: its holder was torn down
    const started = Date.now();
    const release = await budget.take(100);
    expect(Date.now() - started).toBeGreaterThanOrEqual(40);
    release();
  });
});

it("a PUT waiting for room resumes when another object releases it, and is journaled", async () => {
  const budget = isolateByteBudget();
  // Another object takes the whole budget in its own context.
  const release = await runInDurableObject(objectStub("budget-holder"), () =>
    budget.take(budget.maxBytes),
  );
  const object = "budget-waiter";
  let answered = false;
  const put = putPages(object, 0, new Uint8Array(8192).fill(3)).then((response) => {
    answered = true;
    return response;
  });
  // The PUT's wait for room is the budget's own timer, which no message stands for: give it
  // many looks before showing it still waits.
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(answered).toBe(false);
  // The holder gives the bytes back from its own context; the waiter resumes in its own.
  await runInDurableObject(objectStub("budget-holder"), () => release());
  const response = await put;
  expect(response.status, await response.clone().text()).toBe(200);
  expect(
    await runInDurableObject(objectStub(object), (instance: MemoryObject) =>
      instance.pager.journalPages(),
    ),
  ).toBe(2);
});
