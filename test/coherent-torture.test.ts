/**
 * The torture test of coherent objects (docs/protocol.md §10), as test/torture.test.ts is of the
 * rest: seeded, over raw frames, with the faults that matter here. Three kernels each run a loop
 * of operations on one coherent object:
 *
 * - increments of shared 32-bit counters (pages 0-3): ask for write access, add one to what the
 *   supply says, return it dirty, as `PageCache.update` does;
 * - reads of a page only HTTP writes (page 4), kept cached while the kernel holds it;
 * - SYNCHRONOUS synchronizes of a counter.
 *
 * Meanwhile a driver drops and replaces sockets, evicts the object (hibernating or closing its
 * sockets), fails and delays R2 puts, writes page 4 and reads the counters over HTTP, and runs
 * the alarm. Kernels answer most lock requests at once and leave some unanswered, so the lock
 * timeout closes them (4408). Then everything is checked against what the kernels and HTTP were
 * told:
 *
 * - nothing lost, nothing duplicated: each counter reads exactly the number of increments acked,
 *   and the values acked increments wrote are 1, 2, ... N, each once;
 * - nothing stale: an acked increment read the value the one before it wrote (else two would
 *   write the same value), a cached read of page 4 is never older than the last HTTP write
 *   answered before it began, and an HTTP read of a counter lies between the increments acked
 *   before it began and those sent before it ended;
 * - every accepted synchronize is answered once: a completion or KERN_MEMORY_ERROR;
 * - the single-writer rule holds in the holders table whenever the driver looks.
 *
 * Each kernel sends its state-changing messages one at a time (the next once the last is
 * answered), so after a drop the `last_id` of its ready tells exactly whether the one in flight
 * was applied (docs/protocol.md §3). `npm test` runs a fixed seed; `TORTURE_OPS` and
 * `TORTURE_SEED` pick others, as for test/torture.test.ts.
 */
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import {
  KERN_MEMORY_ERROR,
  KERN_PROTECTION_FAILURE,
  VM_PROT_READ,
  VM_PROT_WRITE,
  VM_SYNC_SYNCHRONOUS,
} from "../schema";
import { ensureObjectBucket, newControl, objectStub, seededFaults } from "./helpers/buckets";
import { putPages, readPages, stat } from "./helpers/http";
import { inspect } from "./helpers/inspect";
import { TestKernel, settle, type Received } from "./helpers/kernel";
import { waitFor } from "./helpers/wait";
import { seededRandom } from "../tools/random";

const vars = env as unknown as Record<string, string | undefined>;
/** Operations per kernel. */
const OPS = Math.ceil(Number(vars.TORTURE_OPS || 450) / 3);
const SEED = Number(vars.TORTURE_SEED || 20261202);

const PAGE = 512;
const COUNTERS = 4;
/** The page only HTTP writes; kernels read it. */
const HTTP_PAGE = COUNTERS;

function valueOf(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
}

function pageWith(value: number): Uint8Array {
  const bytes = new Uint8Array(PAGE);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

/** One state-changing message and how it ended. */
interface InFlight {
  id: number;
  header: Record<string, unknown>;
  payload?: Uint8Array;
  settle(outcome: Received): void;
}

class Run {
  readonly name = `coherent-torture-${SEED}`;
  readonly random = seededRandom(SEED);
  readonly faults = seededFaults({
    seed: SEED ^ 0x9e3779b9,
    fail: 0.15,
    failAfterWrite: 0.1,
    delay: 0.25,
    maxDelayMs: 15,
  });
  readonly bucket = newControl({ putFault: this.faults.decide });
  readonly violations: string[] = [];
  /** Per counter: the values acked increments wrote. */
  readonly written = Array.from({ length: COUNTERS }, () => [] as number[]);
  /** Per counter: increments whose return was sent (acked or not yet known). */
  readonly sent = new Array<number>(COUNTERS).fill(0);
  /** HTTP writes of page 4: the last value answered, and the last value sent. */
  httpAnswered = 0;
  httpSent = 0;
  readonly figures = {
    increments: 0,
    fenced: 0,
    retries: 0,
    cachedReads: 0,
    lockAnswers: 0,
    lockIgnored: 0,
    timeouts: 0,
    drops: 0,
    evictions: 0,
    httpReads: 0,
    httpWrites: 0,
    syncs: 0,
    syncErrors: 0,
    holderChecks: 0,
  };

  int(below: number): number {
    return Math.floor(this.random() * below);
  }

  async ensureBucket(): Promise<void> {
    await ensureObjectBucket(this.name, this.bucket);
  }

  violation(text: string): void {
    this.violations.push(text);
  }
}

/** A kernel that plays by docs/protocol.md §10, over raw frames, across reconnects. */
class Kernel {
  private session: TestKernel | null = null;
  /** Per session: resolves when it closes. */
  private readonly closedOf = new WeakMap<TestKernel, Promise<void>>();
  /** A connect under way, which every caller that needs the socket waits for. */
  private connecting: Promise<void> | null = null;
  /** Set at the end: a closed socket is not reopened. */
  stopped = false;
  /** It left a lock request unanswered: its copies are not to be trusted until it resumes. */
  private untrusted = false;
  private nextId = 1;
  private receivedMid = 0;
  private inFlight: InFlight | null = null;
  /** The queue of state-changing messages: each waits for the one before to be answered. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Page 4 as this kernel caches it, while it holds it. */
  private cachedHttpPage: number | null = null;
  /** Set by the driver: leave the next lock request unanswered (the lock timeout then runs). */
  ignoreNextLock = false;
  readonly completions = new Map<number, number>();

  constructor(
    private readonly run: Run,
    readonly id: string,
    private readonly random: () => number,
  ) {}

  get connected(): boolean {
    return this.session !== null && this.session.closed === null;
  }

  /** Connected, or connecting: resolves once it has a session. */
  ensureConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return (this.connecting ??= this.connect().finally(() => (this.connecting = null)));
  }

  /** A new socket replaces the open one (4409), as a client that lost track of it would do. */
  replace(): Promise<void> {
    return (this.connecting = this.connect().finally(() => (this.connecting = null)));
  }

  /** Connects and resumes: the message in flight is settled by `last_id` or sent again. */
  private async connect(): Promise<void> {
    const session = await TestKernel.connect(this.run.name, this.id);
    const closed = new Promise<void>((resolve) =>
      session.socket.addEventListener("close", (event) => {
        if (event.code === 4408) this.run.figures.timeouts++;
        resolve();
      }),
    );
    this.closedOf.set(session, closed);
    // Like a real client, it comes back after a moment, whoever closed it.
    void closed.then(async () => {
      await settle(Math.floor(this.random() * 20));
      if (!this.stopped) await this.ensureConnected();
    });
    session.watch((message) => this.onMessage(message));
    const ready = await session.init({
      id: this.takeId(),
      receivedMid: this.receivedMid,
      pageSize: PAGE,
      coherent: true,
    });
    if (ready.type !== "memory_object_ready") throw new Error(JSON.stringify(ready));
    this.session = session;
    // Departed (docs/protocol.md §10.5): it holds nothing, so it caches nothing.
    if (ready.flush) this.cachedHttpPage = null;
    this.untrusted = false;
    const flight = this.inFlight;
    if (!flight) return;
    if (flight.id <= ready.last_id) {
      // Applied before the drop; nothing after it was sent, so last_id is its own.
      flight.settle({ type: "ack", id: flight.id, seqno: -1 });
    } else {
      this.transmit(flight);
    }
  }

  async drop(): Promise<void> {
    const session = this.session;
    if (!session) return;
    session.close();
    await this.closedOf.get(session);
  }

  private takeId(): number {
    return this.nextId++;
  }

  private transmit(flight: InFlight): void {
    try {
      if (flight.payload) this.session?.sendBinary(flight.header, flight.payload);
      else this.session?.send(flight.header);
    } catch {
      // The socket closed under us: sent again after the next connect.
    }
  }

  /** Sends a state-changing message once the one before is answered; resolves with its answer. */
  stateChanging(header: Record<string, unknown>, payload?: Uint8Array): Promise<Received> {
    const answered = this.chain.then(
      () =>
        new Promise<Received>((resolve) => {
          const id = this.takeId();
          const flight: InFlight = {
            id,
            header: { ...header, id },
            payload,
            settle: (outcome) => {
              this.inFlight = null;
              resolve(outcome);
            },
          };
          this.inFlight = flight;
          this.transmit(flight);
        }),
    );
    this.chain = answered;
    return answered;
  }

  /** A request's answer, or null when the session closes first. */
  private async request(header: Record<string, unknown>): Promise<Received | null> {
    const session = this.session;
    if (!session || session.closed) return null;
    const id = this.takeId();
    const answer = session.next((m) => m.reply_to === id, 30_000);
    try {
      session.send({ ...header, id });
    } catch {
      return null;
    }
    return Promise.race([answer, this.closedOf.get(session)!.then(() => null)]);
  }

  private onMessage(message: Received): void {
    const flight = this.inFlight;
    if (flight && (message.type === "ack" ? message.id : message.reply_to) === flight.id) {
      if (message.type === "ack" || message.type === "error") flight.settle(message);
    }
    if (message.type === "memory_object_synchronize_completed") {
      this.completions.set(message.reply_to, (this.completions.get(message.reply_to) ?? 0) + 1);
    }
    if (message.mid === undefined || message.mid <= this.receivedMid) return;
    this.receivedMid = message.mid;
    if (message.type === "error" && message.kern_return === KERN_MEMORY_ERROR) {
      this.run.figures.syncErrors++;
      this.completions.set(message.reply_to, (this.completions.get(message.reply_to) ?? 0) + 1);
    }
    if (message.type !== "memory_object_lock_request") return;
    const first = Math.floor(message.offset / PAGE);
    const end = Math.ceil((message.offset + message.length) / PAGE);
    // Its copy of page 4 goes before the answer, as a kernel's flush does.
    if (message.should_flush && first <= HTTP_PAGE && HTTP_PAGE < end) this.cachedHttpPage = null;
    if (this.ignoreNextLock) {
      // A kernel that does not answer may be dropped at any moment: it trusts no copy.
      this.ignoreNextLock = false;
      this.untrusted = true;
      this.cachedHttpPage = null;
      this.run.figures.lockIgnored++;
      return;
    }
    this.run.figures.lockAnswers++;
    // Nothing dirty to return: an increment returns its page as soon as it has written it.
    void this.stateChanging({
      type: "memory_object_lock_completed",
      lock_id: message.lock_id,
      offset: message.offset,
      length: message.length,
    });
  }

  /** One atomic increment of a counter; retried until applied. */
  async increment(page: number): Promise<void> {
    for (;;) {
      await this.ensureConnected();
      const supply = await this.request({
        type: "memory_object_data_request",
        offset: page * PAGE,
        length: PAGE,
        desired_access: VM_PROT_READ | VM_PROT_WRITE,
      });
      if (supply?.type !== "memory_object_data_supply") {
        this.run.figures.retries++;
        if (supply && supply.type !== "memory_object_data_error") {
          this.run.violation(`${this.id}: request answered with ${JSON.stringify(supply)}`);
        }
        continue;
      }
      if (supply.lock_value !== 0) this.run.violation(`${this.id}: write supply not writable`);
      const value = valueOf(supply.payload!) + 1;
      this.run.sent[page]!++;
      const answer = await this.stateChanging(
        {
          type: "memory_object_data_return",
          offset: page * PAGE,
          length: PAGE,
          dirty: true,
          kernel_copy: true,
        },
        pageWith(value),
      );
      this.run.sent[page]!--;
      if (answer.type === "ack") {
        this.run.written[page]!.push(value);
        this.run.figures.increments++;
        return;
      }
      if (answer.kern_return !== KERN_PROTECTION_FAILURE) {
        this.run.violation(`${this.id}: return answered with ${JSON.stringify(answer)}`);
      }
      this.run.figures.fenced++;
    }
  }

  /** Reads page 4, from its copy while it holds one: never older than the last HTTP write answered. */
  async readHttpPage(): Promise<void> {
    const floor = this.run.httpAnswered;
    await this.ensureConnected();
    let value = this.cachedHttpPage;
    if (value !== null) {
      this.run.figures.cachedReads++;
    } else {
      const supply = await this.request({
        type: "memory_object_data_request",
        offset: HTTP_PAGE * PAGE,
        length: PAGE,
        desired_access: VM_PROT_READ,
      });
      if (supply?.type !== "memory_object_data_supply") return;
      value = valueOf(supply.payload!);
      // Held read-only until a flush says otherwise; a drop makes it depart.
      if (this.connected && !this.untrusted) this.cachedHttpPage = value;
    }
    const ceiling = this.run.httpSent;
    if (value < floor || value > ceiling) {
      this.run.violation(`${this.id} read page 4 as ${value}, outside [${floor}, ${ceiling}]`);
    }
  }

  async synchronize(page: number): Promise<void> {
    await this.ensureConnected();
    const answer = await this.stateChanging({
      type: "memory_object_synchronize",
      offset: page * PAGE,
      length: PAGE,
      sync_flags: VM_SYNC_SYNCHRONOUS,
    });
    if (answer.type === "ack") {
      this.run.figures.syncs++;
      this.accepted.push(answer.id);
    }
  }

  /** Synchronizes the manager accepted (acked), whose answer must come exactly once. */
  readonly accepted: number[] = [];

  async operate(): Promise<void> {
    for (let op = 0; op < OPS; op++) {
      // A pause now and then, so the driver's chaos lands between and inside operations.
      if (this.random() < 0.3) await settle(Math.floor(this.random() * 6));
      const roll = this.random();
      if (roll < 0.7) await this.increment(Math.floor(this.random() * COUNTERS));
      else if (roll < 0.9) await this.readHttpPage();
      else await this.synchronize(Math.floor(this.random() * COUNTERS));
    }
  }

  /** Every state-changing message answered, and the session open. */
  async quiesce(): Promise<void> {
    await this.ensureConnected();
    await this.chain;
  }
}

/** Chaos while the kernels work, until they are done. */
async function drive(run: Run, kernels: Kernel[], done: () => boolean): Promise<void> {
  let httpValue = 0;
  while (!done()) {
    await settle(run.int(6));
    const roll = run.random();
    const k = kernels[run.int(kernels.length)]!;
    if (roll < 0.1 && k.connected) {
      run.figures.drops++;
      await k.drop();
    } else if (roll < 0.15 && k.connected) {
      // A second socket of the same kernel replaces the first (4409): it departs.
      run.figures.drops++;
      await k.replace();
    } else if (roll < 0.2) {
      run.figures.evictions++;
      const webSockets = run.random() < 0.5 ? "hibernate" : "close";
      await evictDurableObject(objectStub(run.name), { webSockets });
      await run.ensureBucket();
    } else if (roll < 0.25) {
      k.ignoreNextLock = true;
    } else if (roll < 0.4) {
      run.figures.httpWrites++;
      const value = ++httpValue;
      run.httpSent = value;
      const response = await putPages(run.name, HTTP_PAGE * PAGE, pageWith(value));
      if (response.status === 200) run.httpAnswered = Math.max(run.httpAnswered, value);
      else await response.text();
    } else if (roll < 0.55) {
      run.figures.httpReads++;
      const page = run.int(COUNTERS);
      const floor = run.written[page]!.length;
      const value = valueOf(await readPages(run.name, page * PAGE, PAGE));
      const ceiling = run.written[page]!.length + run.sent[page]!;
      if (value < floor || value > ceiling) {
        run.violation(`HTTP read counter ${page} as ${value}, outside [${floor}, ${ceiling}]`);
      }
    } else if (roll < 0.65) {
      run.figures.holderChecks++;
      await checkSingleWriter(run);
    } else {
      // Lock deadlines pass only with time; the alarm expires them (and flushes).
      await runDurableObjectAlarm(objectStub(run.name));
    }
  }
}

/** A page has one writer and no reader, or readers and no writer (docs/protocol.md §10.2). */
async function checkSingleWriter(run: Run): Promise<void> {
  const broken = await inspect(run.name, (_view, _instance, state) =>
    state.storage.sql
      .exec<{ page: number; writers: number; holders: number }>(
        `WITH RECURSIVE page (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM page WHERE n < 4)
         SELECT n AS page, sum(writer) AS writers, count(*) AS holders
         FROM page JOIN holders ON first_page <= n AND end_page > n
         GROUP BY n HAVING sum(writer) > 1 OR (sum(writer) = 1 AND count(*) > 1)`,
      )
      .toArray(),
  );
  for (const row of broken) run.violation(`holders of page ${row.page}: ${JSON.stringify(row)}`);
}

it(
  `coherent torture, seed ${SEED}: nothing lost, duplicated or stale`,
  { timeout: 120_000 },
  async () => {
    const run = new Run();
    // The first write fixes the mode and page size (docs/protocol.md §10.1).
    expect(
      (await putPages(run.name, HTTP_PAGE * PAGE, pageWith(0), `&page_size=${PAGE}&coherent=1`))
        .status,
    ).toBe(200);
    await run.ensureBucket();
    const kernels = ["k0", "k1", "k2"].map(
      (id, i) => new Kernel(run, id, seededRandom(SEED + i + 1)),
    );
    let finished = 0;
    const working = kernels.map((k) => k.operate().finally(() => finished++));
    await Promise.all([
      Promise.all(working),
      drive(run, kernels, () => finished === kernels.length),
    ]);

    // Quiet: faults off, every kernel back and answered, the journal flushed.
    run.faults.enabled = false;
    await run.ensureBucket();
    for (const k of kernels) await k.quiesce();
    await waitFor(async () => {
      await runDurableObjectAlarm(objectStub(run.name));
      const status = await stat(run.name);
      return status.journal_pages === 0 && status.syncs === 0;
    }, "the journal to drain and every synchronize to finish");
    await checkSingleWriter(run);

    const final = await readPages(run.name, 0, COUNTERS * PAGE);
    for (let page = 0; page < COUNTERS; page++) {
      const acked = run.written[page]!;
      const value = valueOf(final.subarray(page * PAGE));
      if (value !== acked.length) {
        run.violation(`counter ${page} reads ${value}, ${acked.length} increments were acked`);
      }
      const sorted = [...acked].sort((a, b) => a - b);
      if (sorted.some((v, i) => v !== i + 1)) {
        run.violation(`counter ${page}: acked increments wrote ${sorted.join(",")}`);
      }
    }
    for (const k of kernels) {
      for (const id of k.accepted) {
        const answers = k.completions.get(id) ?? 0;
        if (answers !== 1) run.violation(`${k.id}'s synchronize ${id} answered ${answers} times`);
      }
    }
    console.log(`coherent torture seed ${SEED}: ${JSON.stringify(run.figures)}`);
    expect(run.violations).toEqual([]);
    // The run exercised what it claims to: handoffs, fencing, departures of every kind.
    expect(run.figures.increments).toBeGreaterThan(OPS);
    expect(run.figures.lockAnswers).toBeGreaterThan(50);
    expect(run.figures.evictions).toBeGreaterThan(0);
    for (const k of kernels) {
      k.stopped = true;
      await k.drop();
    }
  },
);
