// The linearizability checker of test/helpers/linearizability.ts, which the tests of coherent
// objects judge their histories with: hand-written histories of every kind it must accept or
// refuse, its answers compared with a brute-force search over every order on thousands of small
// random histories, histories of a simulated linearizable register (all pass) and of a simulated
// memory without coherence (all caught), and its speed on a long history.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  HistoryRecorder,
  checkLinearizability,
  type LinearizabilityResult,
  type Operation,
  type RegisterValue,
  type Witness,
} from "../helpers/linearizability";
import { seededRandom } from "../../tools/random";

// One seed for the whole file: a failure prints its counterexample and replays identically.
fc.configureGlobal({ seed: 14, numRuns: 300 });

function write(process: string, value: RegisterValue, call: number, ret: number | null, page = 0) {
  return { process, page, kind: "write", value, call, return: ret } satisfies Operation;
}
function read(process: string, value: RegisterValue, call: number, ret: number, page = 0) {
  return { process, page, kind: "read", value, call, return: ret } satisfies Operation;
}

/** The result, which must be a violation (its explanation shows when it is not). */
function violation(result: LinearizabilityResult): {
  page: number;
  explanation: string;
  witness: Witness;
} {
  expect(result, "expected a violation").toMatchObject({ ok: false, verdict: "violation" });
  if (result.ok || result.verdict !== "violation") throw new Error("unreachable");
  return result;
}

function expectLinearizable(history: Operation[]) {
  expect(checkLinearizability(history)).toMatchObject({ ok: true });
}

/**
 * The definition itself, with no shortcut: some order of the operations, each placed only when no
 * unplaced operation returned before its call, every read seeing the last write before it (or the
 * initial value), every completed operation placed (a write that never returned may be left out).
 * Exponential: for histories of a handful of operations.
 */
function bruteForce(history: readonly Operation[], initial: RegisterValue = 0): boolean {
  const place = (remaining: readonly Operation[], value: RegisterValue): boolean => {
    if (remaining.every((o) => o.return === null)) return true;
    return remaining.some(
      (o) =>
        !remaining.some((p) => p !== o && p.return !== null && p.return < o.call) &&
        (o.kind === "write" || o.value === value) &&
        place(
          remaining.filter((p) => p !== o),
          o.kind === "write" ? o.value : value,
        ),
    );
  };
  const pages = new Set(history.map((o) => o.page));
  return [...pages].every((page) =>
    place(
      history.filter((o) => o.page === page && (o.kind === "write" || o.return !== null)),
      initial,
    ),
  );
}

describe("sequential histories", () => {
  it("accepts reads that see the last write, and the initial zeros before any", () => {
    expectLinearizable([
      read("a", 0, 0, 1),
      write("a", 5, 2, 3),
      read("b", 5, 4, 5),
      write("b", 6, 6, 7),
      read("a", 6, 8, 9),
      read("b", 6, 10, 11),
    ]);
    expect(checkLinearizability([])).toMatchObject({ ok: true, pages: 0 });
  });

  it("starts from the initial value it is given", () => {
    const history = [read("a", "blank", 0, 1), write("a", "x", 2, 3), read("b", "x", 4, 5)];
    expect(checkLinearizability(history, { initial: "blank" })).toMatchObject({ ok: true });
    expect(violation(checkLinearizability(history)).witness.operation).toBe(history[0]);
  });

  it("catches a read of a value never written, naming it", () => {
    const history = [write("a", 5, 0, 1), read("b", 9, 2, 3), write("a", 6, 4, 5)];
    const result = violation(checkLinearizability(history));
    expect(result.page).toBe(0);
    expect(result.witness.operation).toBe(history[1]);
    expect(result.explanation).toContain("read by b at [2, 3] saw 9");
    expect(result.explanation).toContain("no write of 9 at all");
  });

  it("catches a read of a value whose only write began after the read returned", () => {
    const history = [read("b", 7, 0, 1), write("a", 7, 2, 3)];
    const result = violation(checkLinearizability(history));
    expect(result.witness.operation).toBe(history[0]);
    expect(result.explanation).toContain("every write of 7 began after it returned");
  });

  it("catches a stale read after a later write returned", () => {
    const history = [write("a", 1, 0, 1), write("a", 2, 2, 3), read("b", 1, 4, 5)];
    const result = violation(checkLinearizability(history));
    expect(result.witness.operation).toBe(history[2]);
    expect(result.witness.possibleValues).toEqual([2]);
    expect(result.witness.before).toEqual([history[1], history[0]]);
    expect(result.explanation).toContain("the page can hold only 2");
  });

  it("catches reads going back in time: new, then old, one after the other", () => {
    // Each read overlaps the write of 2 and alone could see 1 or 2; in sequence, not 2 then 1.
    const slowWrite = write("a", 2, 2, 10);
    const history = [write("a", 1, 0, 1), slowWrite, read("b", 2, 3, 4), read("b", 1, 5, 6)];
    expectLinearizable([history[0]!, slowWrite, history[2]!]);
    expectLinearizable([history[0]!, slowWrite, history[3]!]);
    expectLinearizable([history[0]!, slowWrite, read("b", 1, 3, 4), read("b", 2, 5, 6)]);
    const result = violation(checkLinearizability(history));
    expect(result.witness.operation).toBe(history[3]);
    expect(result.witness.overlapping).toContain(slowWrite);
  });

  it("refuses a malformed operation rather than judging it", () => {
    expect(() => checkLinearizability([read("a", 0, 2, 1)])).toThrow(/malformed operation/);
    expect(() => checkLinearizability([write("a", 0, NaN, 1)])).toThrow(/call is not/);
  });
});

describe("concurrent histories", () => {
  it("lets a read overlapping a write see the old value or the new", () => {
    expectLinearizable([write("a", 1, 0, 1), write("a", 2, 2, 6), read("b", 1, 3, 4)]);
    expectLinearizable([write("a", 1, 0, 1), write("a", 2, 2, 6), read("b", 2, 3, 4)]);
    expectLinearizable([write("a", 2, 2, 6), read("b", 2, 1, 3)]); // called before the write
  });

  it("orders two overlapping writes either way, but every later read must agree on one", () => {
    const writes = [write("a", 1, 0, 10), write("b", 2, 1, 11)];
    expectLinearizable([...writes, read("c", 1, 12, 13), read("d", 1, 14, 15)]);
    expectLinearizable([...writes, read("c", 2, 12, 13), read("d", 2, 14, 15)]);
    const flipped = [...writes, read("c", 1, 12, 13), read("d", 2, 14, 15)];
    expect(violation(checkLinearizability(flipped)).witness.operation).toBe(flipped[3]);
    const flippedBack = [...writes, read("c", 2, 12, 13), read("d", 1, 14, 15)];
    expect(violation(checkLinearizability(flippedBack)).witness.operation).toBe(flippedBack[3]);
  });

  it("catches the new-old inversion across two readers", () => {
    // A sees the new value; after A's read returned, B's read begins and sees the old one.
    const history = [write("w", 1, 0, 10), read("A", 1, 1, 2), read("B", 0, 3, 4)];
    const result = violation(checkLinearizability(history));
    expect(result.witness.operation).toBe(history[2]);
    expect(result.witness.possibleValues).toEqual([1]);
    expect(result.witness.overlapping).toEqual([history[0]]);
    expect(result.witness.before).toEqual([history[1]]);
    expect(result.explanation).toMatch(/no order places read by B at \[3, 4\] saw 0/);
    expect(result.explanation).toContain("read by A at [1, 2] saw 1");
    // Had the two reads overlapped, B could have gone first.
    expectLinearizable([write("w", 1, 0, 10), read("A", 1, 1, 2), read("B", 0, 1.5, 4)]);
  });

  it("finds the one order of many concurrent writes that the reads allow", () => {
    // Ten writes at once, then reads that pin part of their order: 3 before 4..9 returned, then
    // 8 once all have.
    const writes = Array.from({ length: 10 }, (_, v) => write(`p${v}`, v, v, 20 + v));
    const reads = [read("r", 3, 21, 22), read("r", 3, 23, 24), read("s", 8, 30, 31)];
    expectLinearizable([...writes, ...reads]);
    const result = violation(checkLinearizability([...writes, ...reads, read("t", 3, 32, 33)]));
    expect(result.witness.operation.process).toBe("t");
  });
});

describe("writes that never returned", () => {
  const before = write("a", 1, 0, 1);
  const cutOff = write("k", 2, 2, null);

  it("may be seen, or not, at any time after their call", () => {
    expectLinearizable([before, cutOff]);
    expectLinearizable([before, cutOff, read("b", 2, 3, 4)]);
    expectLinearizable([before, cutOff, read("b", 1, 3, 4)]);
    expectLinearizable([before, cutOff, read("b", 1, 3, 4), read("b", 1, 50, 51)]);
    // Seen late, after other writes: it took effect then.
    expectLinearizable([before, cutOff, write("c", 3, 5, 6), read("b", 2, 100, 101)]);
  });

  it("once seen, hide the earlier value from every later read", () => {
    const history = [before, cutOff, read("b", 1, 3, 4), read("b", 2, 5, 6), read("c", 1, 7, 8)];
    expect(violation(checkLinearizability(history)).witness.operation).toBe(history[4]);
    expect(
      violation(checkLinearizability([before, cutOff, read("b", 2, 3, 4), read("c", 1, 5, 6)])),
    );
  });

  it("cannot be seen before their call", () => {
    const history = [before, read("b", 2, 0.5, 1.5), cutOff];
    expect(violation(checkLinearizability(history)).witness.operation).toBe(history[1]);
  });

  it("may take effect late, even where an earlier read could have used them", () => {
    // The first read of 2 may be the cut-off write's or the later write's; the last read of 2
    // can only be the cut-off write's, taking effect after the write of 3.
    const history = [
      write("k", 2, 0, null),
      write("a", 1, 0, 1),
      read("b", 2, 0, 10),
      write("c", 2, 5, 6),
      write("a", 3, 20, 21),
      read("b", 2, 22, 23),
    ];
    expect(bruteForce(history)).toBe(true);
    expectLinearizable(history);
    expect(bruteForce([...history, read("b", 3, 24, 25)])).toBe(false);
    violation(checkLinearizability([...history, read("b", 3, 24, 25)]));
  });

  it("are no completed operation: a history of them alone is linearizable", () => {
    expectLinearizable([cutOff, write("k", 3, 0, null)]);
  });

  it("ignore a read that never returned (it saw nothing)", () => {
    expectLinearizable([before, { ...read("b", 99, 3, 4), return: null }]);
  });
});

describe("pages", () => {
  it("are registers of their own", () => {
    // As one register this would be a stale read; each page is fine alone.
    expectLinearizable([write("a", 5, 0, 1, 1), write("a", 6, 2, 3, 2), read("b", 5, 4, 5, 1)]);
  });

  it("report a violation on the page where it is", () => {
    const history = [
      write("a", 1, 0, 1, 1),
      write("b", 7, 0, 1, 3),
      write("a", 8, 2, 3, 3),
      read("c", 1, 4, 5, 1),
      read("c", 7, 6, 7, 3), // stale on page 3
      read("c", 1, 8, 9, 1),
      write("d", 2, 0, 1, 7),
      read("d", 2, 4, 5, 7),
    ];
    const result = violation(checkLinearizability(history));
    expect(result.page).toBe(3);
    expect(result.witness.operation).toBe(history[4]);
    expect(result.explanation).toMatch(/^page 3 is not linearizable/);
  });

  it("never lend a value written on another page", () => {
    const history = [write("a", 5, 0, 1, 1), read("b", 5, 2, 3, 2)];
    expect(violation(checkLinearizability(history)).page).toBe(2);
  });

  it("report the first page with a violation, and a violation before a search given up", () => {
    const hard = hardHistory(12, 9);
    const history = [...hard, write("a", 1, 0, 1, 5), read("a", 0, 2, 3, 5)];
    expect(violation(checkLinearizability(history, { maxStates: 100 })).page).toBe(5);
    const two = [read("a", 4, 0, 1, 8), read("a", 4, 0, 1, 6)];
    expect(violation(checkLinearizability(two)).page).toBe(6);
  });
});

/** `writers` writes at once, then two reads after all returned that see two different values. */
function hardHistory(writers: number, page: number): Operation[] {
  return [
    ...Array.from({ length: writers }, (_, v) => write(`p${v}`, v + 1, v, 100, page)),
    read("r", 1, 101, 102, page),
    read("r", 2, 103, 104, page),
  ];
}

describe("a search too long to finish", () => {
  it('is answered "too hard", never with a guess', () => {
    const result = checkLinearizability(hardHistory(12, 4), { maxStates: 1_000 });
    expect(result).toMatchObject({ ok: false, verdict: "too-hard", page: 4 });
    expect(!result.ok && result.explanation).toMatch(
      /page 4: gave up after 1000 states .*14 operations, up to 12 at once/,
    );
    // Given room, the same search finishes: the two last reads cannot both be right.
    const finished = violation(checkLinearizability(hardHistory(12, 4)));
    expect(finished.witness.operation.value).toBe(2);
  });
});

describe("against the brute-force search", () => {
  /** A small history of at most 7 operations on one or two pages, values 0-2, any times. */
  const smallHistory = fc.array(
    fc.record({
      process: fc.constantFrom("a", "b", "c"),
      page: fc.constantFrom(0, 0, 1),
      kind: fc.constantFrom("read", "write") as fc.Arbitrary<"read" | "write">,
      value: fc.integer({ min: 0, max: 2 }),
      call: fc.integer({ min: 0, max: 12 }),
      length: fc.integer({ min: 0, max: 6 }),
      pending: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
    }),
    { maxLength: 7 },
  );

  it("agrees on every small history, linearizable or not", () => {
    let linearizable = 0;
    let not = 0;
    fc.assert(
      fc.property(smallHistory, (specs) => {
        const history: Operation[] = specs.map((s) => ({
          process: s.process,
          page: s.page,
          kind: s.kind,
          value: s.value,
          call: s.call,
          return: s.pending ? null : s.call + s.length,
        }));
        const expected = bruteForce(history);
        const result = checkLinearizability(history);
        expect(result.ok, result.ok ? "" : result.explanation).toBe(expected);
        if (expected) linearizable++;
        else not++;
      }),
      { numRuns: 3_000 },
    );
    // Both answers were exercised, often.
    expect(linearizable).toBeGreaterThan(500);
    expect(not).toBeGreaterThan(500);
  });

  it("agrees on small histories with many writes that never returned", () => {
    const cutOffWrites = fc.array(
      fc.record({
        write: fc.integer({ min: 0, max: 2 }).map((n) => n > 0),
        cutOff: fc.boolean(),
        value: fc.integer({ min: 0, max: 2 }),
        call: fc.integer({ min: 0, max: 12 }),
        length: fc.integer({ min: 0, max: 6 }),
      }),
      { maxLength: 8 },
    );
    let linearizable = 0;
    fc.assert(
      fc.property(cutOffWrites, (specs) => {
        const history = specs.map((s, i) =>
          s.write
            ? write(`k${i}`, s.value, s.call, s.cutOff ? null : s.call + s.length)
            : read(`k${i}`, s.value, s.call, s.call + s.length),
        );
        const expected = bruteForce(history);
        expect(checkLinearizability(history).ok).toBe(expected);
        if (expected) linearizable++;
      }),
      { numRuns: 3_000 },
    );
    expect(linearizable).toBeGreaterThan(500);
    expect(linearizable).toBeLessThan(2_500);
  });

  it("agrees on small histories of a real register with one read changed", () => {
    let not = 0;
    fc.assert(
      fc.property(
        registerHistory({ processes: 3, operations: 4, values: 3 }),
        fc.nat(),
        fc.integer({ min: 0, max: 3 }),
        ({ history }, which, value) => {
          const reads = history.filter((o) => o.kind === "read");
          if (reads.length > 0) reads[which % reads.length]!.value = value;
          const expected = bruteForce(history);
          expect(checkLinearizability(history).ok).toBe(expected);
          if (!expected) not++;
        },
      ),
      { numRuns: 1_000 },
    );
    expect(not).toBeGreaterThan(100);
  });
});

// ---------------------------------------------------------------------------------------------
// Simulated memories

interface RegisterShape {
  processes: number;
  /** Operations per process, at most. */
  operations: number;
  /** Writes pick from values 1..values; 0 for a fresh value at every write. */
  values: number;
}

/**
 * A history of one linearizable register: each process runs operations one after another, each
 * taking effect at a random instant inside its interval; a write may never return (its process
 * then stops), having taken effect or not. Times are small integers, so ties are common.
 */
function registerHistory(shape: RegisterShape) {
  const step = fc.record({
    isWrite: fc.boolean(),
    value: fc.integer({ min: 1, max: Math.max(1, shape.values) }),
    gap: fc.integer({ min: 0, max: 4 }),
    toEffect: fc.integer({ min: 0, max: 8 }),
    toReturn: fc.integer({ min: 0, max: 8 }),
    cutOff: fc.integer({ min: 0, max: 15 }).map((n) => n === 0),
    tookEffect: fc.boolean(),
  });
  return fc
    .array(fc.array(step, { maxLength: shape.operations }), {
      minLength: 1,
      maxLength: shape.processes,
    })
    .map((processes) => {
      const happened: { operation: Operation; at: number }[] = [];
      let fresh = 0;
      processes.forEach((steps, p) => {
        let now = 0;
        for (const s of steps) {
          const call = now + s.gap;
          const at = call + s.toEffect;
          now = at + s.toReturn;
          const value = shape.values === 0 ? ++fresh : s.value;
          const cutOff = s.isWrite && s.cutOff;
          const operation: Operation = {
            process: `k${p}`,
            page: 0,
            kind: s.isWrite ? "write" : "read",
            value,
            call,
            return: cutOff ? null : now,
          };
          if (!cutOff || s.tookEffect) happened.push({ operation, at });
          else happened.push({ operation, at: Infinity });
          if (cutOff) break;
        }
      });
      // The register: effects in the order of their instants (ties in any order).
      let register: RegisterValue = 0;
      for (const { operation, at } of [...happened].sort((a, b) => a.at - b.at)) {
        if (at === Infinity) continue;
        if (operation.kind === "write") register = operation.value;
        else operation.value = register;
      }
      return { history: happened.map((h) => h.operation) };
    });
}

describe("a simulated linearizable register", () => {
  const shape = { processes: 6, operations: 25, values: 4 };

  it("always passes, values repeated or not", () => {
    fc.assert(
      fc.property(registerHistory(shape), ({ history }) => {
        const result = checkLinearizability(history);
        expect(result.ok, result.ok ? "" : result.explanation).toBe(true);
      }),
    );
    fc.assert(
      fc.property(registerHistory({ ...shape, values: 0 }), ({ history }) => {
        expect(checkLinearizability(history)).toMatchObject({ ok: true });
      }),
    );
  });

  it("is caught when one read sees a value never written", () => {
    fc.assert(
      fc.property(registerHistory(shape), fc.nat(), ({ history }, which) => {
        const reads = history.filter((o) => o.kind === "read");
        fc.pre(reads.length > 0);
        const corrupted = reads[which % reads.length]!;
        corrupted.value = -1; // writes are 1..4 and the initial value is 0
        expect(violation(checkLinearizability(history)).witness.operation).toBe(corrupted);
      }),
    );
  });

  it("is caught when one read sees a value overwritten before it began", () => {
    // Every write has a value of its own, so a write w1 that returned before a write w2 began,
    // which returned before the read began, cannot be what the read sees.
    fc.assert(
      fc.property(registerHistory({ ...shape, values: 0 }), fc.nat(), ({ history }, which) => {
        const finished = history.filter((o) => o.return !== null);
        const stale = finished.flatMap((r) =>
          r.kind !== "read"
            ? []
            : finished
                .filter((w1) => w1.kind === "write")
                .filter((w1) =>
                  finished.some(
                    (w2) => w2.kind === "write" && w1.return! < w2.call && w2.return! < r.call,
                  ),
                )
                .map((w1) => ({ read: r, value: w1.value })),
        );
        fc.pre(stale.length > 0);
        const { read: corrupted, value } = stale[which % stale.length]!;
        corrupted.value = value;
        expect(violation(checkLinearizability(history)).witness.operation.kind).toBe("read");
      }),
    );
  });
});

/** A seeded generator of numbers in [0, 1), for histories built without fast-check. */
const random = seededRandom;

/**
 * Kernels sharing pages of one memory, as edgepager's kernels share an object: each keeps the
 * pages it has read or written in its own cache and reads them from there; a write goes to its
 * cache and through to the memory. `coherent` says whether a write also drops every other
 * kernel's copy (what a coherent object's lock requests do); otherwise a kernel drops its copy
 * only now and then (an eviction, an msync with INVALIDATE). Each kernel runs one operation after
 * another, each taking effect at a random instant inside its interval; the history is recorded
 * with a `HistoryRecorder` on the simulated clock.
 */
function sharedMemoryHistory(options: {
  seed: number;
  kernels: number;
  operations: number;
  pages: number;
  coherent: boolean;
  /** The longest pause between a kernel's operations (each lasts up to 4). */
  maxGap?: number;
}): Operation[] {
  const next = random(options.seed);
  const maxGap = options.maxGap ?? 1;
  let clock = 0;
  const recorder = new HistoryRecorder(() => clock);
  const memory = new Map<number, number>();
  const caches = Array.from({ length: options.kernels }, () => new Map<number, number>());
  interface Running {
    /** When it takes effect; Infinity once it has. */
    at: number;
    end: number;
    takeEffect(): void;
    finish(): void;
  }
  const running: (Running | null)[] = [];
  let fresh = 0;
  let started = 0;
  const start = (k: number, call: number): Running => {
    started++;
    clock = call;
    const page = Math.floor(next() * options.pages);
    const cache = caches[k]!;
    const at = call + next() * 2;
    const end = at + next() * 2;
    if (next() < 0.4) {
      const value = ++fresh;
      const finish = recorder.write(`k${k}`, page, value);
      const takeEffect = () => {
        cache.set(page, value);
        memory.set(page, value);
        if (options.coherent) for (const other of caches) if (other !== cache) other.delete(page);
      };
      return { at, end, takeEffect, finish };
    }
    const returned = recorder.read(`k${k}`, page);
    let seen = 0;
    const takeEffect = () => {
      if (next() < 0.05) cache.delete(page);
      seen = cache.get(page) ?? memory.get(page) ?? 0;
      cache.set(page, seen);
    };
    return { at, end, takeEffect, finish: () => returned(seen) };
  };
  for (let k = 0; k < options.kernels; k++) running.push(start(k, next() * maxGap));
  // Events in time order: an effect at its instant, a return at its end (then the next call).
  for (;;) {
    let soonest = -1;
    let soonestTime = Infinity;
    running.forEach((r, k) => {
      const t = r === null ? Infinity : Math.min(r.at, r.end);
      if (t < soonestTime) [soonest, soonestTime] = [k, t];
    });
    const r = running[soonest];
    if (r === undefined || r === null) break;
    clock = soonestTime;
    if (r.at <= r.end && r.at < Infinity) {
      r.takeEffect();
      r.at = Infinity;
    } else {
      r.finish();
      running[soonest] =
        started < options.operations ? start(soonest, clock + next() * maxGap) : null;
    }
  }
  return recorder.operations;
}

describe("a simulated shared memory", () => {
  const seeds = Array.from({ length: 20 }, (_, i) => i + 1);
  const shape = { kernels: 4, operations: 300, pages: 3 };

  it("passes with coherence", () => {
    for (const seed of seeds) {
      const history = sharedMemoryHistory({ seed, ...shape, coherent: true });
      expect(history.length).toBe(shape.operations);
      const result = checkLinearizability(history);
      expect(result.ok, `seed ${seed}: ${result.ok ? "" : result.explanation}`).toBe(true);
    }
  });

  it("is caught without it, every seed", () => {
    for (const seed of seeds) {
      const history = sharedMemoryHistory({ seed, ...shape, coherent: false });
      expect(violation(checkLinearizability(history)).witness.operation.kind).toBe("read");
    }
    const example = checkLinearizability(
      sharedMemoryHistory({ seed: 1, ...shape, coherent: false }),
    );
    console.log(
      `An incoherent memory, as the checker explains it:\n${!example.ok && example.explanation}`,
    );
  });
});

describe("the recorder", () => {
  it("keeps a write that never returned as pending, and a read only once it returned", () => {
    let now = 0;
    const recorder = new HistoryRecorder(() => now);
    const wrote = recorder.write("k1", 2, 7n);
    now = 1;
    recorder.write("k2", 2, 8n); // cut off: never returns
    now = 2;
    wrote();
    const saw = recorder.read("http", 2);
    recorder.read("k3", 2); // never returns
    now = 3;
    saw(7n);
    expect(recorder.operations).toEqual([
      { process: "k1", page: 2, kind: "write", value: 7n, call: 0, return: 2 },
      { process: "k2", page: 2, kind: "write", value: 8n, call: 1, return: null },
      { process: "http", page: 2, kind: "read", value: 7n, call: 2, return: 3 },
    ]);
    expect(checkLinearizability(recorder.operations, { initial: 0n })).toMatchObject({ ok: true });
  });
});

describe("speed", () => {
  it("checks 5,000 operations of 8 kernels on one page quickly, linearizable or not", () => {
    const history = sharedMemoryHistory({
      seed: 7,
      kernels: 8,
      operations: 5_000,
      pages: 1,
      coherent: true,
      maxGap: 8,
    });
    const overlap = history.reduce((sum, o) => sum + ((o.return ?? o.call) - o.call), 0);
    const span = Math.max(...history.map((o) => o.return ?? o.call));
    let started = performance.now();
    const result = checkLinearizability(history);
    const linearizableMs = performance.now() - started;
    expect(result).toMatchObject({ ok: true, operations: 5_000 });

    // The same history with a stale read near its end: the search must try every order first.
    const reads = history.filter((o) => o.kind === "read" && o.value !== 0);
    const late = reads[reads.length - 10]!;
    const earlier = history.find((o) => o.kind === "write" && o.return! < late.call - 20)!;
    late.value = earlier.value;
    started = performance.now();
    const caught = violation(checkLinearizability(history));
    const violationMs = performance.now() - started;
    expect(caught.witness.operation).toBe(late);
    console.log(
      `5,000 operations, 8 kernels, ${(overlap / span).toFixed(1)} at once on average: ` +
        `linearizable in ${linearizableMs.toFixed(0)} ms (${result.ok && result.states} states), ` +
        `the stale read caught in ${violationMs.toFixed(0)} ms`,
    );
  });
});
