/**
 * Errors per minute per key (durable/error-budget.ts): over the budget a key is exhausted until
 * its minute ends, and a caller inventing key after key does not grow the memory without bound.
 */
import { describe, expect, it } from "vitest";
import { ErrorBudget } from "../durable/error-budget";

describe("ErrorBudget", () => {
  it("exhausts a key past its budget for the rest of its minute", () => {
    const budget = new ErrorBudget(2);
    expect(budget.count("k", 0)).toBe(false);
    expect(budget.count("k", 10)).toBe(false);
    expect(budget.count("k", 20)).toBe(true);
    expect(budget.exhausted("k", 59_000)).toBe(true);
    expect(budget.exhausted("k", 61_000)).toBe(false);
    expect(budget.exhausted("other", 20)).toBe(false);
  });

  it("sweeps lapsed keys once many are held", () => {
    const budget = new ErrorBudget(100);
    for (let i = 0; i < 1500; i++) budget.count(`kernel-${i}`, 0);
    expect(budget.keys()).toBe(1500);
    budget.count("late", 120_000);
    expect(budget.keys()).toBe(1);
  });
});
