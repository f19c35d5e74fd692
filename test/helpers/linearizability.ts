/**
 * A linearizability checker for pages used as read/write registers, for the tests of coherent
 * objects (docs/protocol.md §10): given every read and write of some pages with the real time each was called and
 * returned, it says whether one order of them, page by page, explains every value a read saw and
 * keeps every operation that returned before another began ahead of it. A test that records what
 * its kernels (and HTTP) did passes the history here; a memory that lets a kernel keep a stale
 * copy fails it.
 *
 * Linearizability is local (Herlihy and Wing): a history is linearizable if and only if each
 * object's sub-history is, so every page is checked on its own. One page is the search of Wing and
 * Gong as Lowe improved it (every state reached, its set of placed operations and the register's
 * value, is remembered, so no state is searched twice), cut down by four rules that keep its
 * answer and make the usual, mostly sequential history a straight walk:
 *
 * - a read that may go next and sees the current value goes next (reads change nothing, so
 *   placing one early never hurts);
 * - of the writes that may go next with the same value, only the one that returned first is tried
 *   (swapping two writes of one value changes no read);
 * - a write that never returned is placed only right before a read of its value (placed anywhere
 *   else it is overwritten unseen, which is the same as never taking effect);
 * - a state is a dead end once a read that may go next sees a value the register does not hold
 *   and no unplaced write of it began before the read returned.
 *
 * The search is bounded (`maxStates`): past the bound the answer is "too hard", never a guess.
 */

/** What a page holds as a register: a number, a 64-bit counter as a bigint, or a tag. */
export type RegisterValue = number | bigint | string;

/** One read or write of one page, with the real times (any one clock, e.g. milliseconds) it spanned. */
export interface Operation {
  /** Who did it (a kernel, `http`): for the explanation only. */
  process: string;
  page: number;
  kind: "read" | "write";
  /** For a write, the value written; for a read, the value it saw. */
  value: RegisterValue;
  call: number;
  /**
   * When it returned, or null if it never did (its kernel was cut off). A write that never
   * returned may take effect at any time after its call, or never; a read that never returned saw
   * nothing and is ignored.
   */
  return: number | null;
}

export interface CheckOptions {
  /** What every page holds before its first write (0: a never-written page reads as zeros). */
  initial?: RegisterValue;
  /** States searched per page before the answer is "too hard" (default 500,000). */
  maxStates?: number;
}

/** The operation no order could place, and what surrounded it. */
export interface Witness {
  /** The operation that could not be placed (a read, usually, that saw a value it could not see). */
  operation: Operation;
  /** The values the page held where the search found it could not place it. */
  possibleValues: RegisterValue[];
  /** Operations whose interval overlaps its own. */
  overlapping: Operation[];
  /** The last operations that returned before it was called, latest first. */
  before: Operation[];
}

export type LinearizabilityResult =
  | { ok: true; pages: number; operations: number; states: number }
  | { ok: false; verdict: "violation"; page: number; explanation: string; witness: Witness }
  | { ok: false; verdict: "too-hard"; page: number; explanation: string };

const DEFAULT_MAX_STATES = 500_000;
/** How many of a value's latest writes the dead-end test looks at before assuming one is left. */
const DOOM_LOOKBACK = 16;
/** How many overlapping and earlier operations an explanation lists. */
const LISTED = 8;

/**
 * Checks a history of reads and writes of pages for linearizability, page by page. On a violation
 * it names the first page (in ascending order) that has one; "too hard" only if no page has a
 * violation and some page's search ran past `maxStates`. Throws on a malformed operation.
 */
export function checkLinearizability(
  history: readonly Operation[],
  options: CheckOptions = {},
): LinearizabilityResult {
  const initial = options.initial ?? 0;
  const maxStates = options.maxStates ?? DEFAULT_MAX_STATES;
  const byPage = new Map<number, Operation[]>();
  for (const operation of history) {
    checkOperation(operation);
    const ops = byPage.get(operation.page) ?? [];
    ops.push(operation);
    byPage.set(operation.page, ops);
  }
  let states = 0;
  let tooHard: LinearizabilityResult | null = null;
  for (const page of [...byPage.keys()].sort((a, b) => a - b)) {
    const outcome = checkRegister(byPage.get(page)!, initial, maxStates);
    states += outcome.states;
    if (outcome.kind === "violation") {
      return {
        ok: false,
        verdict: "violation",
        page,
        explanation: `page ${page} is not linearizable: ${outcome.explanation}`,
        witness: outcome.witness,
      };
    }
    if (outcome.kind === "too-hard" && tooHard === null) {
      tooHard = {
        ok: false,
        verdict: "too-hard",
        page,
        explanation:
          `page ${page}: gave up after ${maxStates} states without an answer ` +
          `(${byPage.get(page)!.length} operations, up to ${outcome.width} at once); ` +
          `raise maxStates or record a shorter history`,
      };
    }
  }
  return tooHard ?? { ok: true, pages: byPage.size, operations: history.length, states };
}

/**
 * Records operations with their real times as a test runs them (`performance.now()` by default).
 * Inside workerd the clock moves only across I/O, so operations of one turn look simultaneous:
 * the check is weaker there (more orders allowed), never wrong.
 */
export class HistoryRecorder {
  readonly operations: Operation[] = [];
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Records the call of a write now; call the function it returns when the write returns. */
  write(process: string, page: number, value: RegisterValue): () => void {
    const operation: Operation = {
      process,
      page,
      kind: "write",
      value,
      call: this.now(),
      return: null,
    };
    // Recorded at its call, so a write whose kernel is cut off stays in the history as pending.
    this.operations.push(operation);
    return () => {
      operation.return = this.now();
    };
  }

  /** Records the call of a read now; call the function it returns with the value it saw. */
  read(process: string, page: number): (seen: RegisterValue) => void {
    const call = this.now();
    // Recorded only when it returns: a read that never returned saw nothing.
    return (seen) => {
      this.operations.push({ process, page, kind: "read", value: seen, call, return: this.now() });
    };
  }
}

function checkOperation(operation: Operation): void {
  const { call, return: returned } = operation;
  const wrong = (why: string) =>
    new Error(`malformed operation ${JSON.stringify(operation, jsonSafe)}: ${why}`);
  if (!Number.isFinite(call)) throw wrong("call is not a finite number");
  if (returned !== null && !(Number.isFinite(returned) && returned >= call)) {
    throw wrong("return is neither null nor a finite time at or after its call");
  }
  if (operation.kind !== "read" && operation.kind !== "write")
    throw wrong("kind is not read/write");
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}

// ---------------------------------------------------------------------------------------------
// One register

/** An operation as the search sees it: its value interned as a small number. */
interface Entry {
  source: Operation;
  write: boolean;
  value: number;
  call: number;
  /** Infinity for a write that never returned. */
  ret: number;
}

type RegisterOutcome =
  | { kind: "linearizable"; states: number }
  | { kind: "violation"; states: number; explanation: string; witness: Witness }
  | { kind: "too-hard"; states: number; width: number };

/** A state of the depth-first search: the register's value and how this state was reached. */
interface Frame {
  value: number;
  /** The completed operation placed to reach this state (a write), or -1. */
  placedDone: number;
  /** The never-returned write placed to reach this state, or -1. */
  placedPending: number;
  /** The reads placed on entering this state. */
  absorbed: number[];
  savedFirst: number;
  savedByReturn: number;
  savedCount: number;
  /** The writes to try next from here (entries; pending ones as -1 - index); null until entered. */
  candidates: number[] | null;
  next: number;
}

function checkRegister(
  operations: readonly Operation[],
  initial: RegisterValue,
  maxStates: number,
): RegisterOutcome {
  const values: RegisterValue[] = [];
  const valueIds = new Map<RegisterValue, number>();
  const intern = (value: RegisterValue) => {
    let id = valueIds.get(value);
    if (id === undefined) {
      id = values.length;
      values.push(value);
      valueIds.set(value, id);
    }
    return id;
  };
  const initialId = intern(initial);
  const entry = (source: Operation): Entry => ({
    source,
    write: source.kind === "write",
    value: intern(source.value),
    call: source.call,
    ret: source.return ?? Infinity,
  });
  const byCall = (a: Entry, b: Entry) => a.call - b.call || a.ret - b.ret;
  // Completed operations, by call; writes that never returned, apart (they bind no one).
  const done = operations
    .filter((o) => o.return !== null)
    .map(entry)
    .sort(byCall);
  const pending = operations
    .filter((o) => o.return === null && o.kind === "write")
    .map(entry)
    .sort(byCall);

  const impossible = readOfUnwrittenValue(done, pending, initialId);
  if (impossible !== null) {
    const { read, later } = impossible;
    const shown = show(values[read.value]!);
    const witness: Witness = {
      operation: read.source,
      possibleValues: [],
      overlapping: overlapping(read, done, pending),
      before: returnedBefore(read, done),
    };
    const why =
      later.length === 0
        ? `no write of ${shown} at all`
        : `every write of ${shown} began after it returned: ${later.map((e) => describeOperation(e.source)).join("; ")}`;
    return {
      kind: "violation",
      states: 0,
      explanation:
        `${describeOperation(read.source)}, but ${shown} is not the initial value (${show(initial)}) ` +
        `and ${why}.` +
        surroundings(witness),
      witness,
    };
  }

  const n = done.length;
  const byReturn = done.map((_, i) => i).sort((a, b) => done[a]!.ret - done[b]!.ret || a - b);
  const placed = new Uint8Array(n);
  const placedPending = new Uint8Array(pending.length);
  const pendingOrder: number[] = [];
  let first = 0; // lowest completed operation (by call) not yet placed
  let firstByReturn = 0; // position in byReturn of the unplaced operation that returned first
  let count = 0; // completed operations placed
  const minReturn = () => (firstByReturn < n ? done[byReturn[firstByReturn]!]!.ret : Infinity);
  const advance = () => {
    while (first < n && placed[first]) first++;
    while (firstByReturn < n && placed[byReturn[firstByReturn]!]) firstByReturn++;
  };

  // An operation may go next when no unplaced completed operation returned before its call.
  const absorbReads = (frame: Frame) => {
    let bound = minReturn();
    for (let i = first; i < n && done[i]!.call <= bound; i++) {
      const e = done[i]!;
      if (placed[i] || e.write || e.value !== frame.value) continue;
      placed[i] = 1;
      count++;
      frame.absorbed.push(i);
      advance();
      bound = minReturn();
    }
  };

  // The writes of each value, by call (completed ones by index, pending ones as -1 - index).
  const writesOf = new Map<number, number[]>();
  const addWrite = (value: number, id: number) => {
    const ids = writesOf.get(value) ?? [];
    writesOf.set(value, ids);
    ids.push(id);
  };
  done.forEach((e, i) => e.write && addWrite(e.value, i));
  pending.forEach((e, j) => addWrite(e.value, -1 - j));
  for (const ids of writesOf.values()) ids.sort((a, b) => entryOf(a).call - entryOf(b).call);
  function entryOf(id: number): Entry {
    return id >= 0 ? done[id]! : pending[-1 - id]!;
  }
  const isPlaced = (id: number) => (id >= 0 ? placed[id] : placedPending[-1 - id]) === 1;
  /**
   * Whether a write of `value` that began by `time` is still unplaced: looked for among the latest
   * such writes only (those before them are usually placed), so "yes" when the answer is far.
   */
  const mayStillWrite = (value: number, time: number): boolean => {
    const ids = writesOf.get(value) ?? [];
    let low = 0;
    let high = ids.length; // first write that began after `time`
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (entryOf(ids[middle]!).call <= time) low = middle + 1;
      else high = middle;
    }
    for (let k = high - 1; k >= 0; k--) {
      if (!isPlaced(ids[k]!) || high - k > DOOM_LOOKBACK) return true;
    }
    return false;
  };
  /**
   * A read that makes this state a dead end, or -1: one that may go next, sees a value the
   * register does not hold, and every write of that value that began before the read returned is
   * placed (a write that began after it returned cannot come before it).
   */
  const doomedRead = (current: number): number => {
    const bound = minReturn();
    for (let i = first; i < n && done[i]!.call <= bound; i++) {
      const e = done[i]!;
      if (placed[i] || e.write || e.value === current) continue;
      if (!mayStillWrite(e.value, e.ret)) return i;
    }
    return -1;
  };

  const candidates = (current: number): number[] => {
    const bound = minReturn();
    const needed = new Set<number>();
    const writeOf = new Map<number, number>(); // value -> the write of it that returned first
    for (let i = first; i < n && done[i]!.call <= bound; i++) {
      const e = done[i]!;
      if (placed[i]) continue;
      if (!e.write) needed.add(e.value);
      else {
        const kept = writeOf.get(e.value);
        if (kept === undefined || done[kept]!.ret > e.ret) writeOf.set(e.value, i);
      }
    }
    const chosen = [...writeOf.values()];
    const pendingOf = new Map<number, number>();
    for (let j = 0; j < pending.length && pending[j]!.call <= bound; j++) {
      const value = pending[j]!.value;
      if (placedPending[j] || value === current || !needed.has(value)) continue;
      if (writeOf.has(value) || pendingOf.has(value)) continue;
      pendingOf.set(value, j);
    }
    // Writes whose value an eligible read waits for first, then by how soon they returned.
    const urgency = (c: number) => (needed.has(done[c]!.value) ? 0 : 1);
    chosen.sort((a, b) => urgency(a) - urgency(b) || done[a]!.ret - done[b]!.ret);
    return [...chosen, ...[...pendingOf.values()].map((j) => -1 - j)];
  };

  /** The state after placing reads: value, lowest unplaced, placed ones past it, placed pending. */
  const stateKey = (value: number): string => {
    const bound = minReturn();
    let key = `${value}:${first}`;
    // Placed operations past `first` all began by `bound`; written as runs, since a long
    // operation left unplaced makes the placed ones after it a long run.
    let runStart = -1;
    for (let i = first + 1; ; i++) {
      const inside = i < n && done[i]!.call <= bound;
      if (inside && placed[i]) {
        if (runStart < 0) runStart = i;
        continue;
      }
      if (runStart >= 0) key += i - 1 === runStart ? `,${runStart}` : `,${runStart}-${i - 1}`;
      runStart = -1;
      if (!inside) break;
    }
    if (pendingOrder.length > 0) key += `|${[...pendingOrder].sort((a, b) => a - b).join(",")}`;
    return key;
  };

  const visited = new Set<string>();
  let states = 0;
  // The furthest the search got (completed operations placed) and what stopped it there: a read
  // it could no longer place, or else the operation due, the unplaced one that returned first
  // (it must be placed before anything called after it returned).
  let deepest = -1;
  let stuck = -1;
  // For every operation that ever stopped the search, the values the register held then.
  const valuesWhenDue = new Map<number, Set<number>>();

  const frame = (value: number, placedDone: number, placedPendingIndex: number): Frame => ({
    value,
    placedDone,
    placedPending: placedPendingIndex,
    absorbed: [],
    savedFirst: first,
    savedByReturn: firstByReturn,
    savedCount: count,
    candidates: null,
    next: 0,
  });
  const undo = (f: Frame) => {
    for (const i of f.absorbed) placed[i] = 0;
    if (f.placedDone >= 0) placed[f.placedDone] = 0;
    if (f.placedPending >= 0) {
      placedPending[f.placedPending] = 0;
      pendingOrder.pop();
    }
    first = f.savedFirst;
    firstByReturn = f.savedByReturn;
    count = f.savedCount;
  };

  const stack: Frame[] = [frame(initialId, -1, -1)];
  for (;;) {
    const top = stack[stack.length - 1];
    if (top === undefined) break;
    if (top.candidates === null) {
      if (++states > maxStates) return { kind: "too-hard", states, width: concurrency(done) };
      absorbReads(top);
      if (firstByReturn >= n) return { kind: "linearizable", states };
      const key = stateKey(top.value);
      if (visited.has(key)) {
        undo(top);
        stack.pop();
        continue;
      }
      visited.add(key);
      const dead = doomedRead(top.value);
      // What stops this state: a read it cannot place any more, or else the operation due.
      const blocked = dead >= 0 ? dead : byReturn[firstByReturn]!;
      if (count > deepest) {
        deepest = count;
        stuck = blocked;
      }
      const due = valuesWhenDue.get(blocked) ?? new Set<number>();
      valuesWhenDue.set(blocked, due.add(top.value));
      top.candidates = dead >= 0 ? [] : candidates(top.value);
    }
    const choice = top.candidates[top.next++];
    if (choice === undefined) {
      undo(top);
      stack.pop();
      continue;
    }
    if (choice >= 0) {
      const child = frame(done[choice]!.value, choice, -1);
      placed[choice] = 1;
      count++;
      advance();
      stack.push(child);
    } else {
      const j = -1 - choice;
      const child = frame(pending[j]!.value, -1, j);
      placedPending[j] = 1;
      pendingOrder.push(j);
      stack.push(child);
    }
  }

  const blocked = done[stuck]!;
  const witness: Witness = {
    operation: blocked.source,
    possibleValues: [...valuesWhenDue.get(stuck)!].map((v) => values[v]!),
    overlapping: overlapping(blocked, done, pending),
    before: returnedBefore(blocked, done),
  };
  const could = witness.possibleValues.map(show).join(" or ");
  return {
    kind: "violation",
    states,
    explanation:
      `no order places ${describeOperation(blocked.source)}: ` +
      (blocked.write
        ? `every order that places it fails later`
        : `while it is due, the page can hold only ${could}`) +
      ` (the furthest orders place ${deepest} of ${n} completed operations).` +
      surroundings(witness),
    witness,
  };
}

/** A read whose value no write could have given it (nor the initial value), with such writes. */
function readOfUnwrittenValue(
  done: readonly Entry[],
  pending: readonly Entry[],
  initial: number,
): { read: Entry; later: Entry[] } | null {
  const earliestWrite = new Map<number, number>();
  for (const e of [...done, ...pending]) {
    if (e.write)
      earliestWrite.set(e.value, Math.min(e.call, earliestWrite.get(e.value) ?? Infinity));
  }
  for (const e of done) {
    if (e.write || e.value === initial) continue;
    if ((earliestWrite.get(e.value) ?? Infinity) <= e.ret) continue;
    const later = [...done, ...pending].filter((w) => w.write && w.value === e.value);
    return { read: e, later: later.slice(0, LISTED) };
  }
  return null;
}

/** The most operations whose intervals all overlap one instant (for the "too hard" message). */
function concurrency(done: readonly Entry[]): number {
  const events = done.flatMap((e) => [
    [e.call, 1],
    [e.ret, -1],
  ]);
  events.sort((a, b) => a[0]! - b[0]! || b[1]! - a[1]!);
  let open = 0;
  let most = 0;
  for (const [, step] of events) most = Math.max(most, (open += step!));
  return most;
}

function overlapping(e: Entry, done: readonly Entry[], pending: readonly Entry[]): Operation[] {
  return [...done, ...pending]
    .filter((o) => o !== e && o.call <= e.ret && e.call <= o.ret)
    .slice(0, LISTED)
    .map((o) => o.source);
}

function returnedBefore(e: Entry, done: readonly Entry[]): Operation[] {
  return done
    .filter((o) => o.ret < e.call)
    .sort((a, b) => b.ret - a.ret)
    .slice(0, LISTED)
    .map((o) => o.source);
}

function surroundings(witness: Witness): string {
  const list = (ops: Operation[]) =>
    ops.length === 0 ? "\n  (none)" : ops.map((o) => `\n  ${describeOperation(o)}`).join("");
  return (
    `\nOperations overlapping it:${list(witness.overlapping)}` +
    `\nThe last operations that returned before it began, latest first:${list(witness.before)}`
  );
}

function describeOperation(o: Operation): string {
  const end = o.return === null ? "never returned" : time(o.return);
  const what = o.kind === "write" ? `wrote ${show(o.value)}` : `saw ${show(o.value)}`;
  return `${o.kind} by ${o.process} at [${time(o.call)}, ${end}] ${what}`;
}

function time(t: number): string {
  return Number.isInteger(t) ? String(t) : t.toFixed(3);
}

function show(value: RegisterValue): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}
