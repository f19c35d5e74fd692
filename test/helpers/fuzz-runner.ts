/**
 * The fuzz command's runner (`npm run fuzz -- --frames N --seed S`, and a small fixed seed in
 * `npm test`): frames of every kind, valid and not, from several kernels at once, against one
 * live object, each answer checked against the reference model (fuzz-reference.ts).
 *
 * Kernels:
 * - pool kernels: long-lived writers with mostly valid traffic (every message type, resends of
 *   applied ids, reconnects that resume, terminates) and a little garbage. Each name takes fewer
 *   errors than the per-kernel limit in its life and each socket fewer than the per-socket one,
 *   so neither limit ever closes them, whatever the minute windows; a name near its budget is
 *   terminated and replaced.
 * - lanes: short-lived kernel ids sending mostly garbage (test/helpers/fuzz-frames.ts), before
 *   init or after it, or with a read-only grant. Their sockets are closed by the per-socket limit
 *   (1008 after the 101st error), and they reconnect, as the model expects; a lane that never
 *   registered runs into the per-kernel limit (201st error: 1008, then its upgrade refused 429
 *   `too_many_errors`), one that registered terminates first. Both limits count per minute: a
 *   lane must reach them within 55 s of its first error (checked; a lane lives a few seconds).
 *
 * Batches (docs/protocol.md §11): each init asks for them by chance (half the pool mostly does,
 * half mostly not; lanes and crowd kernels now and then), and a socket that asked sends some of
 * its frames as batches, text or binary, of valid and bad messages, inits and entries that are
 * not objects; now and then one that cannot be parsed or passes max_transfer. A pool kernel that
 * did not ask now and then sends an array anyway (one bad_json). Replies to a socket that asked
 * may come batched: the runner unpacks them by the docs (`unpack`), checks the batch's own rules
 * (at least two messages, the limits, never memory_object_ready) and matches its messages one
 * by one, as if they had come alone; a socket that did not ask must never get one.
 *
 * Rounds: most rounds send a few frames on each of several sockets at once, interleaved, with no
 * waiting; the object takes them in an order the sender does not control, and the model's
 * answers hold in any order (fuzz-reference.ts keeps to frames that make it so). A round ends
 * when every socket received exactly what the model said, in order, and the closes it said; then
 * reads are checked against the page versions in seqno order. Checking per round rather than per
 * frame keeps several sockets racing (a frame at a time would serialize them) and a million
 * frames within half an hour: a round is a few dozen frames, and no frame goes unchecked.
 * Scenarios that reach other kernels (INVALIDATE answered by lock_completed, a disconnect or a
 * terminate; the kernel budget filled, reclaimed, refused) run a socket at a time.
 *
 * Atomic groups and the object size (docs/protocol.md §12, docs/protocol.md §13): pool kernels stage returns and set_sizes
 * in a few group numbers each, commit them with a synchronize (now and then in one batch frame
 * with the returns), resume naming some of their groups in `open_groups` (the rest are
 * discarded), and set the size; now and then the size is set over HTTP between rounds. A ready's
 * size is judged after its round, like a read. Three scenarios, a socket at a time: a kernel opens
 * groups to MAX_OPEN_GROUPS and one more (`too_many_groups`), then commits or abandons them;
 * with the journal empty and its limit tightened, a grouped return that does not fit
 * (`journal_full`) discards its group, whose later messages and synchronize get `group_discarded`
 * (now and then all in one batch); and a shrink cuts a page held only in R2.
 *
 * After every round `GET /v1/objects/{name}` must match the model (seqno, page count, kernels
 * with connected and last_id, outstanding syncs); every few rounds the pages are read back over
 * HTTP, and the object's tables (kernels, outbox, residency, syncs, locks) compared, and the
 * Durable Object must still be the same instance (not reset).
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { MemoryObject } from "../../durable/memory-object";
import { GRANT_HEADER, OBJECT_NAME_HEADER } from "../../schema";
import { objectStub } from "./buckets";
import { binaryFrame } from "./frames";
import {
  NON_OBJECT_ENTRIES,
  Rng,
  batchOf,
  batchPart,
  candidate,
  malformedBatch,
  serialize,
  type BatchPart,
  type FrameShape,
  type Target,
} from "./fuzz-frames";
import { call, putPages } from "./http";
import { inspect, pick } from "./inspect";
import { MAX_OPEN_GROUPS } from "./message-rules";
import {
  Cell,
  MAX_BATCH_MESSAGES,
  ReferenceObject,
  bind,
  cannotBind,
  carriesPages,
  type Expect,
  type KernelModel,
  type Outcome,
  type SocketModel,
  summarize as summary,
} from "./fuzz-reference";

type Received = Record<string, any> & { type: string; payload?: Uint8Array };

/** The synchronize columns the model decides (not `since`, a time, nor the lookup columns). */
const SYNC_COLUMNS = ["kernel", "id", "seqno", "offset", "length", "sync_flags", "active"] as const;

export interface FuzzOptions {
  frames: number;
  seed: number;
  object: string;
  log: (line: string) => void;
  /** A progress line every this many frames (0: none). */
  progressEvery?: number;
  /** Stop drawing frames after this long (ms), then finish and report what was done. */
  timeLimitMs?: number;
}

export interface FuzzFigures {
  seed: number;
  frames: number;
  /** Whether the run stopped at its time limit before `frames`. */
  stoppedAtTimeLimit: boolean;
  /** Frames the model judged errors, and the object answered so, by code. */
  errors: Record<string, number>;
  /** Acks of state-changing messages applied the first time, by type. */
  stateChanges: Record<string, number>;
  duplicatesAcked: number;
  /** Other answers checked: ready, supply, unavailable, lock requests, completions. */
  answers: Record<string, number>;
  closes: Record<string, number>;
  reconnects: number;
  upgradesRefused: number;
  sockets: number;
  kernels: number;
  rounds: number;
  soloRounds: number;
  scenarios: Record<string, number>;
  checks: { stat: number; pages: number; tables: number };
  /** Batch frames sent that parsed (and their messages), and batch frames received. */
  batches: {
    sent: number;
    messages: number;
    /** Of those, batches over max_transfer: one too_large per message. */
    overMaxTransfer: number;
    /** Array frames from kernels that did not ask: one bad_json each. */
    unasked: number;
    received: number;
    receivedMessages: number;
  };
  crashes: number;
  resets: number;
  durationMs: number;
  /** Where the time went: drawing and judging frames, waiting for answers, state checks. */
  timeMs: { frames: number; answers: number; checks: number; matching: number };
}

const PAGE = 4096;
/** Pages most traffic touches; a rare 1 MiB write goes above them. */
const TOUCHED = 64;
const BIG_FIRST = TOUCHED;
const vars = env as unknown as Record<string, string>;
const MAX_HEADER_BYTES = Number(vars.MAX_HEADER_BYTES);
const MAX_TRANSFER = Number(vars.MAX_TRANSFER);
const ERRORS_PER_MINUTE = Number(vars.ERRORS_PER_MINUTE);
const MAX_KERNELS = Number(vars.MAX_KERNELS);
const MAX_SYNCS = Number(vars.MAX_SYNCS_PER_KERNEL);
const OUTBOX_MAX = 1024;
/** Errors a pool kernel name may take in its life: under the kernel's limit (twice the socket's). */
const POOL_NAME_ERRORS = Math.floor(1.5 * ERRORS_PER_MINUTE);
const POOL = 4;
const LANES = 4;
const ROUND_TIMEOUT_MS = 30_000;
/** Both error limits count per minute: a socket or name must reach its limit within this. */
const WINDOW_MS = 55_000;
const MARK = Symbol.for("edgepager.fuzz.instance");

/** Group numbers a pool kernel mostly uses (docs/protocol.md §12): a few, so that they are used again. */
const GROUP_NUMBERS = 6;

/** Flags that pass the documented rules, INVALIDATE among them. */
const SYNC_FLAGS = [
  0, 1, 2, 4, 5, 6, 8, 0x10, 0x20, 0x40, 0x09, 0x12, 0x24, 0x4c, 0x78, 0x7c, 0x7e, 0x7d,
];

// ---------------------------------------------------------------------------------------------

/** A socket as the runner holds it: the real WebSocket and the model's view of it. */
class Live {
  closed: { code: number; reason: string } | null = null;
  chain: Promise<void> = Promise.resolve();
  framesSent = 0;
  constructor(
    readonly ws: WebSocket,
    readonly model: SocketModel,
    /** Before the upgrade: the socket's error minute starts no earlier. */
    readonly openedAt: number,
  ) {}
}

type Role = "pool" | "lane" | "reader" | "crowd";

class Actor {
  live: Live | null = null;
  nextId = 1;
  generation = 0;
  retiring = false;
  retired = false;
  /** Frames left before a lane retires of old age. */
  budget = 0;
  /** Rounds to stay away after a disconnect. */
  awayRounds = 0;
  firstErrorAt: number | null = null;
  /** How often its init asks for batches (docs/protocol.md §11): a choice made per socket. */
  batchRate = 0;
  constructor(
    public name: string,
    readonly role: Role,
    readonly writer: boolean,
    /** A lane that starts with init. */
    readonly initFirst: boolean,
  ) {}
}

class Failure extends Error {}

/** A frame the model judged while it was built (a batch, message by message). */
class Judged {
  constructor(
    readonly data: string | Uint8Array,
    readonly outcome: Outcome,
  ) {}
}

type Drawn = string | Uint8Array | Judged | null;

/** The header of a batch the manager sends stays under this (docs/protocol.md §11). */
const MAX_REPLY_BATCH_HEADER = 60_000;

export async function runFuzz(options: FuzzOptions): Promise<FuzzFigures> {
  const runner = new Runner(options);
  try {
    return await runner.run();
  } catch (error) {
    if (error instanceof Failure) {
      // What each side holds, to tell which was wrong.
      error.message += `\n  model: ${runner.describeModel()}\n  object: ${await runner.describeObject()}`;
    }
    throw error;
  } finally {
    runner.closeAll();
  }
}

class Runner {
  readonly rng: Rng;
  model!: ReferenceObject;
  shape!: FrameShape;
  readonly lives = new Set<Live>();
  pool: Actor[] = [];
  lanes: Actor[] = [];
  laneCount = 0;
  failure: string | null = null;
  private wake: (() => void) | null = null;
  private roundReads: { expect: Extract<Expect, { kind: "read" }>; message: Received }[] = [];
  /** Readies of the round: their size is judged once the round's seqnos are known. */
  private roundReadies: { kernel: string; message: Received }[] = [];
  roundNo = 0;
  /** The last frames sent, for a failure's report. */
  private readonly recent: string[] = [];
  readonly figures: FuzzFigures;
  private readonly started = Date.now();
  private nextProgress: number;
  private readonly runId = `${Date.now()}-${Math.random()}`;

  constructor(readonly options: FuzzOptions) {
    this.rng = new Rng(options.seed);
    this.nextProgress = options.progressEvery || Infinity;
    this.figures = {
      seed: options.seed,
      frames: 0,
      stoppedAtTimeLimit: false,
      errors: {},
      stateChanges: {},
      duplicatesAcked: 0,
      answers: {},
      closes: {},
      reconnects: 0,
      upgradesRefused: 0,
      sockets: 0,
      kernels: 0,
      rounds: 0,
      soloRounds: 0,
      scenarios: {},
      checks: { stat: 0, pages: 0, tables: 0 },
      batches: {
        sent: 0,
        messages: 0,
        overMaxTransfer: 0,
        unasked: 0,
        received: 0,
        receivedMessages: 0,
      },
      crashes: 0,
      resets: 0,
      durationMs: 0,
      timeMs: { frames: 0, answers: 0, checks: 0, matching: 0 },
    };
  }

  // --- the run ----------------------------------------------------------------------------------

  async run(): Promise<FuzzFigures> {
    const { object } = this.options;
    // Lock requests wait longer than any round (a timeout would race the frames), and the
    // instance is marked: a reset Durable Object would come back without the mark.
    await call(`/v1/objects/${object}`);
    await runInDurableObject(objectStub(object), (instance: MemoryObject) => {
      instance.pager.testHooks.limits.lockTimeoutMs = 10 * 60_000;
      (instance as unknown as Record<symbol, string>)[MARK] = this.runId;
    });
    // max_size as a first init announces it (it depends on the page size and the limits only).
    const probe = await this.rawConnect(`probe`, true, `${object}-probe`);
    const ready = await new Promise<Received>((resolve) => {
      probe.addEventListener("message", (e) => resolve(JSON.parse(e.data as string)));
      probe.send(
        JSON.stringify({ type: "memory_object_init", id: 1, page_size: PAGE, received_mid: 0 }),
      );
    });
    probe.close(1000, "probe done");
    const limits = {
      pageSize: PAGE,
      maxSize: ready.max_size as number,
      maxTransfer: MAX_TRANSFER,
      maxHeaderBytes: MAX_HEADER_BYTES,
      errorsPerMinute: ERRORS_PER_MINUTE,
      kernelErrorsPerMinute: 2 * ERRORS_PER_MINUTE,
      maxKernels: MAX_KERNELS,
      maxSyncsPerKernel: MAX_SYNCS,
      outboxMax: OUTBOX_MAX,
    };
    this.model = new ReferenceObject(limits, object);
    this.model.httpOperation(); // the GET above
    this.shape = {
      pageSize: PAGE,
      touchedPages: TOUCHED,
      maxSize: limits.maxSize,
      maxTransfer: MAX_TRANSFER,
      maxHeaderBytes: MAX_HEADER_BYTES,
      oversizedRate: 0.002,
    };
    for (let i = 0; i < POOL; i++) {
      const actor = new Actor(`p${i}-0`, "pool", true, true);
      actor.nextId = 2;
      // Half the pool mostly asks for batches, half mostly does not.
      actor.batchRate = i % 2 === 0 ? 0.85 : 0.15;
      this.pool.push(actor);
    }
    this.figures.kernels = POOL;
    // The rarer scenarios run at least once in a run long enough.
    const crowdAt = this.options.frames >= 2000 ? Math.floor(this.options.frames * 0.4) : Infinity;
    const hoardAt = this.options.frames >= 3000 ? Math.floor(this.options.frames * 0.7) : Infinity;
    const groupsAt =
      this.options.frames >= 2000 ? Math.floor(this.options.frames * 0.25) : Infinity;
    const roomAt = this.options.frames >= 2000 ? Math.floor(this.options.frames * 0.55) : Infinity;
    const cutAt = this.options.frames >= 2000 ? Math.floor(this.options.frames * 0.15) : Infinity;
    let crowdDone = false;
    let hoardDone = false;
    let groupsDone = false;
    let roomDone = false;
    let cutDone = false;
    const deadline = this.started + (this.options.timeLimitMs ?? Infinity);
    while (this.figures.frames < this.options.frames) {
      if (Date.now() > deadline) {
        this.figures.stoppedAtTimeLimit = true;
        break;
      }
      if (!crowdDone && this.figures.frames >= crowdAt) {
        crowdDone = true;
        await this.crowdScenario();
      } else if ((!hoardDone && this.figures.frames >= hoardAt) || this.rng.chance(0.0002)) {
        hoardDone = true;
        await this.hoardScenario();
      } else if ((!groupsDone && this.figures.frames >= groupsAt) || this.rng.chance(0.002)) {
        groupsDone = true;
        await this.groupsScenario();
      } else if ((!cutDone && this.figures.frames >= cutAt) || this.rng.chance(0.004)) {
        cutDone = true;
        await this.cutScenario();
      } else if ((!roomDone && this.figures.frames >= roomAt) || this.rng.chance(0.004)) {
        roomDone = true;
        await this.roomScenario();
      } else if (this.rng.chance(0.015)) {
        await this.invalidateScenario();
      } else if (this.rng.chance(0.0004)) {
        await this.crowdScenario();
      } else {
        await this.concurrentRound();
      }
      this.progress();
    }
    await this.finish();
    // What the atomic groups came to, among the scenarios' figures.
    Object.assign(this.figures.scenarios, this.model.tallies);
    this.figures.durationMs = Date.now() - this.started;
    return this.figures;
  }

  private progress(): void {
    if (this.figures.frames < this.nextProgress) return;
    this.nextProgress += this.options.progressEvery!;
    const seconds = (Date.now() - this.started) / 1000;
    const errors = Object.values(this.figures.errors).reduce((a, b) => a + b, 0);
    const changes = Object.values(this.figures.stateChanges).reduce((a, b) => a + b, 0);
    this.options.log(
      `fuzz: ${this.figures.frames} frames, ${errors} errors, ${changes} state changes, ` +
        `${this.figures.rounds} rounds, ${seconds.toFixed(0)} s, ` +
        `${Math.round(this.figures.frames / seconds)} frames/s`,
    );
  }

  // --- sockets ------------------------------------------------------------------------------------

  private async rawConnect(
    kernel: string,
    writer: boolean,
    object = this.options.object,
  ): Promise<WebSocket> {
    const response = await this.upgrade(kernel, writer, object);
    const socket = response.webSocket;
    if (!socket) {
      throw new Failure(
        `upgrade of ${kernel} refused: ${response.status} ${await response.text()}`,
      );
    }
    socket.accept();
    return socket;
  }

  private upgrade(
    kernel: string,
    writer: boolean,
    object = this.options.object,
  ): Promise<Response> {
    const url = `http://edgepager.test/v1/objects/${object}/control?kernel=${kernel}`;
    if (writer) return exports.default.fetch(url, { headers: { Upgrade: "websocket" } });
    // A read-only token, as the Worker would have verified it.
    return objectStub(object).fetch(url, {
      headers: {
        Upgrade: "websocket",
        [OBJECT_NAME_HEADER]: object,
        [GRANT_HEADER]: JSON.stringify({ rights: ["read"], exp: Number.MAX_SAFE_INTEGER }),
      },
    });
  }

  /** Opens a socket for the actor (closing its old one with 4409, as the model expects). */
  private async connect(actor: Actor): Promise<Live> {
    const openedAt = Date.now();
    // The model first: the object closes the kernel's older socket (4409) as it accepts this one.
    const model = this.model.connect(actor.name, actor.writer);
    const ws = await this.rawConnect(actor.name, actor.writer);
    const live = new Live(ws, model, openedAt);
    this.figures.sockets++;
    if (actor.live) this.figures.reconnects++;
    actor.live = live;
    this.lives.add(live);
    ws.addEventListener("message", (event) => {
      const data = event.data as string | ArrayBuffer | Blob;
      live.chain = live.chain.then(async () => {
        const bytes =
          typeof data === "string" || data instanceof ArrayBuffer ? data : await data.arrayBuffer();
        this.onMessage(live, bytes);
      });
    });
    ws.addEventListener("close", (event) => {
      live.chain = live.chain.then(() => this.onClose(live, event.code, event.reason));
    });
    return live;
  }

  /** Closes the actor's socket from the kernel's side and waits until the object has seen it. */
  private async disconnect(actor: Actor): Promise<void> {
    const live = actor.live!;
    if (live.model.open && !live.closed) {
      // The model first: what the object sends when it sees the close (completions of requests
      // that waited on this kernel) may reach other sockets before this one's close does.
      live.model.closeExpected = 1000;
      this.model.clientClosed(live.model);
      live.ws.close(1000, "fuzz disconnect");
      await this.waitUntil(() => live.closed !== null, `${actor.name} to close`);
    }
    this.retireLive(live);
  }

  private retireLive(live: Live): void {
    this.lives.delete(live);
    this.model.forgetSocket(live.model);
  }

  closeAll(): void {
    for (const live of this.lives) {
      try {
        live.ws.close(1000, "fuzz done");
      } catch {
        // closed
      }
    }
  }

  // --- answers ------------------------------------------------------------------------------------

  private onMessage(live: Live, data: string | ArrayBuffer): void {
    const started = Date.now();
    try {
      this.match(live, data);
    } finally {
      this.figures.timeMs.matching += Date.now() - started;
    }
  }

  /** A frame from the object: a message, or a batch of them, each matched in order. */
  private match(live: Live, data: string | ArrayBuffer): void {
    if (this.failure) return;
    let frame: ReturnType<typeof unpack>;
    try {
      frame = unpack(data);
    } catch (error) {
      return this.fail(
        `${live.model.kernel}: undecodable message from the object: ${String(error)}`,
      );
    }
    if (frame.batch) {
      const why = batchFault(frame, live.model.batch);
      if (why) {
        return this.fail(
          `${live.model.kernel} (socket ${live.model.id}): ${why}: ${show(frame.messages[0]!)} …`,
        );
      }
      this.figures.batches.received++;
      this.figures.batches.receivedMessages += frame.messages.length;
    }
    for (const message of frame.messages) {
      this.matchOne(live, message);
      if (this.failure) return;
    }
  }

  private matchOne(live: Live, message: Received): void {
    const stream = live.model.stream;
    if (stream.length === 0) {
      return this.fail(`${live.model.kernel}: unexpected message ${show(message)}`);
    }
    let index = 0;
    let why = check(stream[0]!, message);
    const head = stream[0]!;
    if (why !== null && head.kind === "outbox" && head.group !== null) {
      // What one step sent the kernel comes in any order.
      for (let i = 1; i < stream.length; i++) {
        const e = stream[i]!;
        if (e.kind !== "outbox" || e.group !== head.group) break;
        if (check(e, message) === null) {
          index = i;
          why = null;
          break;
        }
      }
    }
    if (why !== null) {
      return this.fail(
        `${live.model.kernel} (socket ${live.model.id}): ${why}\n  expected ${describe(stream[0]!)}\n  got ${show(message)}`,
      );
    }
    const expect = stream.splice(index, 1)[0]!;
    commit(expect, message);
    this.count(expect, message);
    if (expect.kind === "read") this.roundReads.push({ expect, message });
    if (expect.kind === "ready") this.roundReadies.push({ kernel: live.model.kernel, message });
    if (expect.kind === "outbox") {
      const k = this.model.kernels.get(live.model.kernel);
      if (k) k.seenMid = Math.max(k.seenMid, message.mid);
    }
    this.wake?.();
  }

  private count(expect: Expect, message: Received): void {
    const f = this.figures;
    const add = (table: Record<string, number>, key: string) =>
      (table[key] = (table[key] ?? 0) + 1);
    switch (expect.kind) {
      case "error":
        add(f.errors, expect.code);
        break;
      case "ack":
        if (expect.applied) add(f.stateChanges, expect.frame.type);
        else f.duplicatesAcked++;
        break;
      default:
        add(f.answers, message.type);
    }
  }

  private onClose(live: Live, code: number, reason: string): void {
    live.closed = { code, reason };
    if (this.failure) return;
    const add = (key: string) => (this.figures.closes[key] = (this.figures.closes[key] ?? 0) + 1);
    add(String(code));
    if (live.model.closeExpected === null) {
      this.figures.crashes++;
      return this.fail(
        `${live.model.kernel} (socket ${live.model.id}, ${live.framesSent} frames sent, ` +
          `${this.lives.has(live) ? "in use" : "retired"}): socket closed unexpectedly (${code} ${reason})`,
      );
    }
    // A close the kernel asked for is answered with its code; any other must be the one planned.
    if (code !== live.model.closeExpected) {
      this.figures.crashes++;
      return this.fail(
        `${live.model.kernel}: socket closed with ${code} (${reason}), expected ${live.model.closeExpected}`,
      );
    }
    if (live.model.stream.length > 0) {
      return this.fail(
        `${live.model.kernel}: socket closed (${code}) before ${describe(live.model.stream[0]!)}`,
      );
    }
    this.wake?.();
  }

  private fail(why: string): void {
    if (this.failure) return;
    this.failure =
      `seed ${this.options.seed}, round ${this.roundNo}: ${why}\n  last frames sent:\n    ` +
      this.recent.join("\n    ");
    this.wake?.();
  }

  /** Resolves when every socket has what the model said, and the closes it said. */
  private async settleRound(what: string): Promise<void> {
    const done = () =>
      this.failure !== null ||
      [...this.lives].every(
        (live) =>
          live.model.stream.length === 0 &&
          (live.model.closeExpected === null || live.closed !== null),
      );
    if (!done()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.fail(
            `${what}: no answer within ${ROUND_TIMEOUT_MS} ms; waiting for ${this.pending()}`,
          );
        }, ROUND_TIMEOUT_MS);
        this.wake = () => {
          if (!done()) return;
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
    if (this.failure) throw new Failure(this.failure);
  }

  private pending(): string {
    return [...this.lives]
      .filter((l) => l.model.stream.length > 0 || (l.model.closeExpected !== null && !l.closed))
      .map(
        (l) =>
          `${l.model.kernel}#${l.model.id}: ${l.model.stream.slice(0, 3).map(describe).join("; ")}` +
          (l.model.stream.length > 3 ? ` (+${l.model.stream.length - 3})` : "") +
          (l.model.closeExpected !== null && !l.closed ? ` close ${l.model.closeExpected}` : ""),
      )
      .join(" | ");
  }

  private async waitUntil(condition: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + ROUND_TIMEOUT_MS;
    while (!condition()) {
      if (this.failure) throw new Failure(this.failure);
      if (Date.now() > deadline)
        throw new Failure(`seed ${this.options.seed}: timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  // --- rounds -------------------------------------------------------------------------------------

  /**
   * One round: `plan` draws frames for each socket, interleaved; each is judged by the model and
   * sent at once. Then every answer is awaited and checked, reads against the page versions.
   */
  private async round(
    mode: "concurrent" | "solo",
    plan: { actor: Actor; count: number; draw: (actor: Actor) => Drawn }[],
  ): Promise<void> {
    this.roundNo++;
    this.figures.rounds++;
    if (mode === "solo") this.figures.soloRounds++;
    this.model.beginRound(mode);
    this.roundReads = [];
    this.roundReadies = [];
    const t0 = Date.now();
    const left = plan.map((p) => p.count);
    const silent = plan.map(() => false);
    for (let more = true; more;) {
      more = false;
      plan.forEach((p, i) => {
        if (left[i]! <= 0) return;
        const live = p.actor.live;
        if (!live || !live.model.open) {
          left[i] = 0;
          return;
        }
        const before = live.model.stream.length;
        const outcome = this.send(p.actor, () => p.draw(p.actor));
        silent[i] = outcome !== null && live.model.stream.length === before && !outcome.closes;
        left[i]!--;
        if (!outcome || outcome.closes || outcome.delayed) {
          left[i] = 0;
          // After a completion that waits on a flush, nothing else in a round a socket at a time.
          if (outcome?.delayed && mode === "solo") left.fill(0);
        }
        if (left[i]! > 0) more = true;
      });
    }
    // A frame with no answer (a valid `received`) last on its socket: one more that is
    // answered, so that the round's end means the object took them all (the status that
    // follows would otherwise race them).
    plan.forEach((p, i) => {
      const live = p.actor.live;
      if (!silent[i] || !live?.model.open || !live.model.initialized) return;
      this.send(p.actor, () =>
        JSON.stringify({
          type: "memory_object_data_request",
          id: p.actor.nextId++,
          offset: 0,
          length: PAGE,
          desired_access: 1,
        }),
      );
    });
    const t1 = Date.now();
    await this.settleRound(`round ${this.roundNo}`);
    const t2 = Date.now();
    this.checkReads();
    const fault = this.model.endRound();
    if (fault) throw new Failure(`seed ${this.options.seed}, round ${this.roundNo}: ${fault}`);
    await this.afterRound();
    this.figures.timeMs.frames += t1 - t0;
    this.figures.timeMs.answers += t2 - t1;
    this.figures.timeMs.checks += Date.now() - t2;
  }

  /** Draws until the model accepts the frame (at most a few tries), then sends it. */
  private send(actor: Actor, draw: () => Drawn): Outcome | null {
    const live = actor.live!;
    for (let attempt = 0; attempt < 12; attempt++) {
      // Garbage may have applied an id far ahead: the kernel's next messages go above it.
      actor.nextId = Math.max(actor.nextId, (this.kernel(actor)?.lastId ?? 0) + 1);
      let data: string | Uint8Array | undefined;
      let outcome: Outcome;
      try {
        // A batch the runner builds is judged as it is drawn, a message at a time.
        const drawn = draw();
        if (drawn === null) return null;
        data = drawn instanceof Judged ? drawn.data : drawn;
        outcome = drawn instanceof Judged ? drawn.outcome : this.model.frame(live.model, data);
      } catch (error) {
        if (error instanceof Failure) throw error;
        throw new Failure(
          `seed ${this.options.seed}, round ${this.roundNo}: ${actor.name}: ${String(error)}\n  frame: ${data === undefined ? "(a batch being built)" : summary(data)}\n  last frames sent:\n    ${this.recent.join("\n    ")}`,
        );
      }
      if (outcome.refused) continue;
      if (outcome.error) {
        actor.firstErrorAt ??= Date.now();
        if (outcome.closes) this.checkWindow(actor, live);
      }
      try {
        live.ws.send(data);
      } catch (error) {
        throw new Failure(
          `seed ${this.options.seed}: ${actor.name}: send failed: ${String(error)}`,
        );
      }
      if (outcome.batch) {
        this.figures.batches.sent++;
        this.figures.batches.messages += outcome.batch;
        if (outcome.error === "too_large") this.figures.batches.overMaxTransfer++;
      } else if (!live.model.batch && isArrayFrame(data)) {
        this.figures.batches.unasked++;
      }
      this.recent.push(
        `#${this.roundNo} ${actor.name}/${live.model.id} ${outcome.batch ? `batch of ${outcome.batch} ` : ""}${outcome.error ?? outcome.type ?? ""}: ${summary(data)}`,
      );
      if (this.recent.length > 80) this.recent.shift();
      live.framesSent++;
      actor.budget--;
      this.figures.frames++;
      return outcome;
    }
    return null;
  }

  /** A limit reached by a count in its minute: the minute must not have ended first. */
  private checkWindow(actor: Actor, live: Live): void {
    const now = Date.now();
    const socketAge = now - live.openedAt;
    const nameAge = now - (actor.firstErrorAt ?? now);
    if (socketAge > WINDOW_MS || nameAge > WINDOW_MS) {
      throw new Failure(
        `seed ${this.options.seed}: ${actor.name} reached an error limit ${Math.round(
          Math.max(socketAge, nameAge) / 1000,
        )} s into its minute; the run is too slow for the limits' minute windows to be predicted`,
      );
    }
  }

  /** Every read against the pages as of its seqno. */
  private checkReads(): void {
    for (const { expect, message } of this.roundReads) {
      const first = expect.offset / PAGE;
      const expected = this.model.readAt(message.seqno, first, expect.length / PAGE);
      const label = `${expect.frame.socket.kernel}: data_request ${expect.replyTo} at seqno ${message.seqno}`;
      if (expected === null) {
        if (message.type !== "memory_object_data_unavailable") {
          throw new Failure(
            `seed ${this.options.seed}, round ${this.roundNo}: ${label} must be data_unavailable, got ${message.type}`,
          );
        }
        continue;
      }
      if (message.type !== "memory_object_data_supply") {
        throw new Failure(
          `seed ${this.options.seed}, round ${this.roundNo}: ${label} must be data_supply, got ${message.type}`,
        );
      }
      const at = firstDifference(expected, message.payload!);
      if (at >= 0) {
        throw new Failure(
          `seed ${this.options.seed}, round ${this.roundNo}: ${label}: byte ${at} (page ${first + Math.floor(at / PAGE)}) is ${message.payload![at]}, expected ${expected[at]}`,
        );
      }
    }
    this.roundReads = [];
    for (const { kernel, message } of this.roundReadies) {
      const size = this.model.sizeAt(message.seqno);
      if (message.size !== size) {
        throw new Failure(
          `seed ${this.options.seed}, round ${this.roundNo}: ${kernel}: ready at seqno ${message.seqno} has size ${message.size}, expected ${size}`,
        );
      }
    }
    this.roundReadies = [];
  }

  /** A round with no frames: waits for what a disconnect made the object send. */
  private async drain(): Promise<void> {
    this.model.beginRound("solo");
    this.roundReadies = [];
    await this.settleRound("drain");
    this.checkReads();
    const fault = this.model.endRound();
    if (fault) throw new Failure(`seed ${this.options.seed}: ${fault}`);
  }

  private async afterRound(): Promise<void> {
    // Sockets the object closed as planned: done with them.
    for (const live of [...this.lives]) {
      if (live.closed) this.retireLive(live);
    }
    for (const name of this.model.disconnectStale.splice(0)) {
      await this.waitStale(name);
    }
    if (this.model.journalLimitPages === null) {
      if (this.rng.chance(0.01)) await this.patchSize();
      if (this.rng.chance(0.01)) await this.putPages();
    }
    await this.checkStat();
    await this.checkGroupRows();
    if (this.roundNo % 40 === 0) await this.checkPages();
    if (this.roundNo % 97 === 0) await this.checkTables();
  }

  // --- state checks -------------------------------------------------------------------------------

  private async checkStat(): Promise<void> {
    const seqno = this.model.httpOperation();
    const response = await call(`/v1/objects/${this.options.object}`);
    const actual = (await response.json()) as Record<string, unknown>;
    const { journal_pages, ...rest } = actual;
    const expected = this.model.expectedStat(seqno);
    const same = JSON.stringify(sortKeys(rest)) === JSON.stringify(sortKeys(expected));
    const journal = journal_pages as number;
    if (!same || !(journal >= 0 && journal <= (expected.pages as number))) {
      throw new Failure(
        `seed ${this.options.seed}, round ${this.roundNo}: status differs\n  expected ${JSON.stringify(expected)}\n  got      ${JSON.stringify(actual)}`,
      );
    }
    this.figures.checks.stat++;
  }

  /**
   * The object's open groups and staged messages, counted, against the model's after every round
   * (cheap, unlike the whole tables): a group left behind or lost shows at once.
   */
  private async checkGroupRows(): Promise<void> {
    const actual = await inspect(this.options.object, (view) => ({
      groups: view.count("groups"),
      staged: view.count("staged"),
    }));
    const expected = this.model.groupRows();
    if (actual.groups !== expected.groups || actual.staged !== expected.staged) {
      throw new Failure(
        `seed ${this.options.seed}, round ${this.roundNo}: the object has ${actual.groups} groups and ${actual.staged} staged messages, the model ${expected.groups} and ${expected.staged}\n  last frames sent:\n    ${this.recent.join("\n    ")}`,
      );
    }
  }

  /**
   * `PUT /v1/objects/{name}/pages`: a write of kernel `http`, which raises the size too
   * (docs/protocol.md §13); now and then over a spool slice (1 MiB), so it is journaled from the spool.
   */
  private async putPages(): Promise<void> {
    const rng = this.rng;
    const pages = rng.chance(0.2) ? 257 + rng.int(64) : 1 + rng.int(4);
    const first = pages > 4 ? BIG_FIRST + rng.int(32) : rng.int(TOUCHED - pages + 1);
    const body = this.pattern(pages);
    const seqno = this.model.httpWrite(first, body);
    const response = await putPages(this.options.object, first * PAGE, body);
    const result = (await response.json()) as Record<string, unknown>;
    const expected = { offset: first * PAGE, length: pages * PAGE, seqno };
    const same = JSON.stringify(sortKeys(result)) === JSON.stringify(sortKeys(expected));
    if (response.status !== 200 || !same) {
      throw new Failure(
        `seed ${this.options.seed}, round ${this.roundNo}: PUT ${pages} pages at page ${first}: ${response.status} ${JSON.stringify(result)}, expected 200 ${JSON.stringify(expected)}`,
      );
    }
    this.figures.scenarios.putPages = (this.figures.scenarios.putPages ?? 0) + 1;
  }

  /** `PATCH /v1/objects/{name}` `{size}` (docs/protocol.md §13): as a set_size of kernel `http`. */
  private async patchSize(): Promise<void> {
    const size = this.drawSize();
    const seqno = this.model.httpSetSize(size);
    const response = await call(`/v1/objects/${this.options.object}`, {
      method: "PATCH",
      body: JSON.stringify({ size }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    const expected = { object: this.options.object, size, seqno };
    const same = JSON.stringify(sortKeys(body)) === JSON.stringify(sortKeys(expected));
    if (response.status !== 200 || !same) {
      throw new Failure(
        `seed ${this.options.seed}, round ${this.roundNo}: PATCH size ${size}: ${response.status} ${JSON.stringify(body)}, expected 200 ${JSON.stringify(expected)}`,
      );
    }
    this.figures.scenarios.patchSize = (this.figures.scenarios.patchSize ?? 0) + 1;
  }

  private async checkPages(): Promise<void> {
    // The pages most traffic touches and the 1 MiB above them, then any page far away (a valid
    // return drawn among the garbage may land anywhere below max_size), and one never written.
    const ranges: [number, number][] = [[0, BIG_FIRST + MAX_TRANSFER / PAGE]];
    for (const page of this.model.pages.keys()) {
      if (page >= ranges[0]![1]) ranges.push([page, page + 1]);
    }
    ranges.push([1 << 24, (1 << 24) + 1]);
    for (const [first, end] of ranges) {
      this.model.httpOperation();
      const response = await call(
        `/v1/objects/${this.options.object}/pages?offset=${first * PAGE}&length=${(end - first) * PAGE}`,
      );
      const bytes = new Uint8Array(await response.arrayBuffer());
      const expected = this.model.expectedBytes(first, end);
      const at = response.status === 200 ? firstDifference(expected, bytes) : 0;
      if (at >= 0) {
        throw new Failure(
          `seed ${this.options.seed}, round ${this.roundNo}: GET pages ${first}…${end - 1} (${response.status}) differs at byte ${at} (page ${first + Math.floor(at / PAGE)})`,
        );
      }
    }
    this.figures.checks.pages++;
  }

  /** The object's tables against the model; and the instance must be the one marked. */
  private async checkTables(): Promise<void> {
    const expected = this.expectedTables();
    const actual = await inspect(this.options.object, (view, instance) => {
      const residency: Record<string, number[]> = {};
      for (const row of view.residency()) {
        const pages = (residency[row.kernel] ??= []);
        for (let p = row.first_page; p < row.end_page; p++) pages.push(p);
      }
      for (const kernel of Object.keys(residency)) {
        residency[kernel] = [...new Set(residency[kernel])].sort((a, b) => a - b);
      }
      const meta = view.meta();
      return {
        mark: (instance as unknown as Record<symbol, string>)[MARK] ?? null,
        kernels: pick(view.kernels(), [
          "kernel",
          "last_id",
          "last_seqno",
          "next_mid",
          "stale",
          "writer",
        ]),
        outbox: view.outbox(),
        residency,
        syncs: pick(view.syncs(), SYNC_COLUMNS),
        locks: pick(view.locks(), ["lock_id", "sync_seqno", "kernel"]),
        nextLockId: meta.next_lock_id ?? 1,
        reclaimed: meta.kernels_reclaimed === 1,
        seqno: meta.seqno ?? null,
        groupRows: { groups: view.count("groups"), staged: view.count("staged") },
      };
    });
    if (actual.mark !== this.runId) {
      this.figures.resets++;
      throw new Failure(
        `seed ${this.options.seed}, round ${this.roundNo}: the Durable Object was reset`,
      );
    }
    const { mark: _mark, ...rest } = actual;
    const a = JSON.stringify(sortKeys(rest));
    const e = JSON.stringify(sortKeys(expected));
    if (a !== e) {
      throw new Failure(
        `seed ${this.options.seed}, round ${this.roundNo}: tables differ from the model\n  expected ${e}\n  got      ${a}`,
      );
    }
    this.figures.checks.tables++;
  }

  describeModel(): string {
    return JSON.stringify(this.expectedTables());
  }

  async describeObject(): Promise<string> {
    try {
      return JSON.stringify(
        await inspect(this.options.object, (view) => ({
          kernels: pick(view.kernels(), ["kernel", "last_id", "next_mid", "stale"]),
          syncs: pick(view.syncs(), SYNC_COLUMNS),
          locks: pick(view.locks(), ["lock_id", "sync_seqno", "kernel"]),
          residency: view.residency(),
        })),
      );
    } catch (error) {
      return `unreadable: ${String(error)}`;
    }
  }

  private expectedTables() {
    const m = this.model;
    const kernels = [...m.kernels.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
    const residency: Record<string, number[]> = {};
    for (const k of kernels) {
      if (k.residency.size > 0) residency[k.name] = [...k.residency].sort((a, b) => a - b);
    }
    return {
      kernels: kernels.map((k) => ({
        kernel: k.name,
        last_id: k.lastId,
        last_seqno: k.lastFrame?.seqno.value ?? null,
        next_mid: k.nextMid,
        stale: k.stale ? 1 : 0,
        writer: k.writer ? 1 : 0,
      })),
      outbox: kernels.flatMap((k) =>
        k.outbox.map((entry) => ({ kernel: k.name, mid: entry.mid.value, message: plain(entry) })),
      ),
      residency,
      // As `GET …/syncs` lists them, with whether each has started.
      syncs: m.expectedSyncs().map((row, i) => ({ ...row, active: m.syncs[i]!.active ? 1 : 0 })),
      locks: m.syncs
        .flatMap((row) =>
          [...row.locks].map(([kernel, lock]) => ({
            lock_id: lock.value,
            sync_seqno: row.frame.seqno.value,
            kernel,
          })),
        )
        .sort((a, b) => a.lock_id! - b.lock_id!),
      nextLockId: m.nextLockId,
      reclaimed: m.reclaimed,
      seqno: m.nextSeqno,
      groupRows: m.groupRows(),
    };
  }

  private async waitStale(kernel: string): Promise<void> {
    await this.waitUntilAsync(async () => {
      const stale = await inspect(
        this.options.object,
        (view) => view.kernels().find((row) => row.kernel === kernel)?.stale,
      );
      return stale === 1;
    }, `the object to see ${kernel} disconnect`);
  }

  private async waitUntilAsync(condition: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + ROUND_TIMEOUT_MS;
    while (!(await condition())) {
      if (Date.now() > deadline)
        throw new Failure(`seed ${this.options.seed}: timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  // --- kernels ------------------------------------------------------------------------------------

  private kernel(actor: Actor): KernelModel | undefined {
    return this.model.kernels.get(actor.name);
  }

  private target(actor: Actor): Target {
    const k = this.kernel(actor);
    return {
      initialized: actor.live?.model.initialized ?? false,
      lastId: k?.lastId ?? 0,
      lastMid: (k?.nextMid ?? 1) - 1,
    };
  }

  /** The highest mid the kernel has seen: what it reports received. */
  private seenMid(actor: Actor): number {
    return this.kernel(actor)?.seenMid ?? 0;
  }

  /**
   * An init; it asks for batches now and then, else says it does not or leaves it out. A kernel
   * with open groups mostly names some of them in `open_groups` (the rest are discarded), now
   * and then with a number it has not opened; `openGroups` names them for it.
   */
  private initFrame(
    actor: Actor,
    receivedMid = this.seenMid(actor),
    openGroups?: number[],
  ): string {
    const rng = this.rng;
    const batch = rng.chance(actor.batchRate)
      ? { batch: true }
      : rng.chance(0.3)
        ? { batch: false }
        : {};
    const open = [...(this.kernel(actor)?.groups.keys() ?? [])];
    let groups: { open_groups?: number[] } = {};
    if (openGroups) groups = { open_groups: openGroups };
    else if (open.length > 0 && rng.chance(0.7)) {
      const kept = open.filter(() => rng.chance(0.7));
      if (rng.chance(0.2)) kept.push(1 + rng.int(GROUP_NUMBERS * 2));
      groups = { open_groups: [...new Set(kept)].slice(0, MAX_OPEN_GROUPS) };
    } else if (rng.chance(0.1)) groups = { open_groups: [] };
    return JSON.stringify({
      type: "memory_object_init",
      id: actor.nextId++,
      page_size: PAGE,
      received_mid: receivedMid,
      ...batch,
      ...groups,
    });
  }

  private errorsOf(actor: Actor): number {
    return this.model.kernelErrors.get(actor.name) ?? 0;
  }

  /** Garbage the pool actor may send now without any limit closing it. */
  private poolMayErr(actor: Actor): boolean {
    return (
      this.errorsOf(actor) < POOL_NAME_ERRORS &&
      (actor.live?.model.errors ?? 0) < ERRORS_PER_MINUTE - 5
    );
  }

  /** Brings the pool up: reconnects whoever is away and due back, renames worn-out names. */
  private async preparePool(): Promise<void> {
    for (const actor of this.pool) {
      if (actor.live && (actor.live.closed || !actor.live.model.open)) {
        await this.settleClosed(actor);
      }
      const live = actor.live;
      if (live && this.errorsOf(actor) >= POOL_NAME_ERRORS - 10 && this.model.syncs.length === 0) {
        // Its name took nearly all the errors it may: it terminates, and a new name takes over.
        await this.solo(actor, (a) =>
          JSON.stringify({ type: "memory_object_terminate", id: a.nextId++ }),
        );
        this.retireLive(live);
        actor.live = null;
        this.rename(actor);
      }
      if (actor.live && actor.live.framesSent > 400 && this.rng.chance(0.5)) {
        // A socket gets old: reconnect, by replacing it (4409) or by closing it first.
        if (this.rng.chance(0.5)) await this.disconnect(actor);
        else await this.reopen(actor);
        continue;
      }
      if (!actor.live) {
        if (actor.awayRounds > 0) {
          actor.awayRounds--;
          continue;
        }
        await this.reopen(actor);
      }
    }
  }

  private async settleClosed(actor: Actor): Promise<void> {
    const live = actor.live!;
    if (!live.closed) await this.waitUntil(() => live.closed !== null, `${actor.name} to close`);
    this.retireLive(live);
    actor.live = null;
  }

  /** A new socket for the actor, and its init in a round of its own (naming `openGroups`, if given). */
  private async reopen(actor: Actor, openGroups?: number[]): Promise<void> {
    if (!this.kernel(actor) && actor.role === "pool" && this.errorsOf(actor) >= POOL_NAME_ERRORS) {
      this.rename(actor);
    }
    const old = actor.live;
    const live = await this.connect(actor);
    if (old && old !== live) {
      // Replaced: the object closes the old socket with 4409 (if it was still open).
      if (old.model.closeExpected !== null && !old.closed) {
        await this.waitUntil(() => old.closed !== null, `${actor.name}'s old socket to close`);
      }
      this.retireLive(old);
    }
    const midChoice = this.rng.float();
    await this.round("solo", [
      {
        actor,
        count: 1,
        draw: (a) =>
          this.initFrame(
            a,
            midChoice < 0.1
              ? 0
              : midChoice < 0.13
                ? this.seenMid(a) + 1 + this.rng.int(5)
                : this.seenMid(a),
            openGroups,
          ),
      },
    ]);
    if (!live.model.initialized && live.model.open) {
      // A received_mid ahead of what it was sent: refused; init again as it should.
      await this.round("solo", [
        { actor, count: 1, draw: (a) => this.initFrame(a, this.seenMid(a), openGroups) },
      ]);
    }
  }

  private rename(actor: Actor): void {
    actor.generation++;
    actor.name = actor.name.replace(/-\d+$/, `-${actor.generation}`);
    actor.nextId = 1;
    actor.firstErrorAt = null;
    this.figures.kernels++;
  }

  // --- frames -------------------------------------------------------------------------------------

  private pattern(pages: number): Uint8Array {
    const words = new Uint32Array((pages * PAGE) / 4);
    let x = (this.rng.int(0x7fffffff) | 1) >>> 0;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x >>> 0;
    }
    return new Uint8Array(words.buffer);
  }

  private binary(header: Record<string, unknown>, payload: Uint8Array): Uint8Array {
    return binaryFrame(serialize(header), payload);
  }

  /** A valid message of the actor's, of a type drawn by weight. */
  private validFrame(actor: Actor): string | Uint8Array {
    const rng = this.rng;
    const k = this.kernel(actor);
    if (rng.chance(0.12)) return this.groupFrame(actor);
    if (rng.chance(0.02)) {
      return JSON.stringify({
        type: "memory_object_set_size",
        id: actor.nextId++,
        size: this.drawSize(),
      });
    }
    const roll = rng.int(100);
    const pages = 1 + rng.int(rng.chance(0.1) ? 16 : 4);
    const first = rng.int(TOUCHED - pages + 1);
    if (roll < 25) {
      if (rng.chance(0.002)) {
        // A whole max_transfer at once, above the pages the rest touches.
        const big = MAX_TRANSFER / PAGE;
        return this.binary(
          {
            type: "memory_object_data_return",
            id: actor.nextId++,
            offset: BIG_FIRST * PAGE,
            length: MAX_TRANSFER,
            dirty: true,
            kernel_copy: false,
          },
          this.pattern(big),
        );
      }
      return this.binary(
        {
          type: "memory_object_data_return",
          id: actor.nextId++,
          offset: first * PAGE,
          length: pages * PAGE,
          dirty: rng.chance(0.9),
          kernel_copy: rng.chance(0.2),
        },
        this.pattern(pages),
      );
    }
    if (roll < 50) {
      return JSON.stringify({
        type: "memory_object_data_request",
        id: actor.nextId++,
        offset: first * PAGE,
        length: pages * PAGE,
        desired_access: rng.int(8),
      });
    }
    if (roll < 58) {
      return JSON.stringify({
        type: "memory_object_data_unlock",
        id: actor.nextId++,
        offset: first * PAGE,
        length: pages * PAGE,
        desired_access: rng.int(8),
      });
    }
    if (roll < 72) {
      const offset = rng.int(TOUCHED * PAGE);
      return JSON.stringify({
        type: "memory_object_synchronize",
        id: actor.nextId++,
        offset,
        length: rng.chance(0.1) ? 0 : 1 + rng.int(Math.min(8 * PAGE, TOUCHED * PAGE - offset)),
        sync_flags: rng.pick(SYNC_FLAGS),
      });
    }
    if (roll < 78) {
      return JSON.stringify({
        type: "memory_object_lock_completed",
        id: actor.nextId++,
        lock_id: 1 + rng.int(this.model.nextLockId + 5),
        offset: first * PAGE,
        length: pages * PAGE,
      });
    }
    if (roll < 90) {
      const seen = this.seenMid(actor);
      return JSON.stringify({
        type: "received",
        id: actor.nextId++,
        mid: rng.chance(0.8) ? seen : rng.int(seen + 1),
      });
    }
    if (roll < 98 && k && k.lastId > 0) {
      // A resend of an applied id, with other contents: acked again, never applied (docs/protocol.md §3).
      const id = rng.chance(0.5) ? k.lastId : 1 + rng.int(k.lastId);
      const kind = rng.int(5);
      if (kind === 0) {
        return this.binary(
          {
            type: "memory_object_data_return",
            id,
            offset: first * PAGE + (rng.chance(0.3) ? 1 : 0),
            length: PAGE,
            dirty: true,
            kernel_copy: false,
            ...(rng.chance(0.3) && { group: 1 + rng.int(GROUP_NUMBERS) }),
          },
          this.pattern(1),
        );
      }
      if (kind === 4) {
        return JSON.stringify({
          type: "memory_object_set_size",
          id,
          size: rng.int(TOUCHED) * PAGE,
          ...(rng.chance(0.3) && { group: 1 + rng.int(GROUP_NUMBERS) }),
        });
      }
      if (kind === 1) {
        return JSON.stringify({
          type: "memory_object_synchronize",
          id,
          offset: first * PAGE,
          length: PAGE,
          sync_flags: rng.pick(SYNC_FLAGS),
        });
      }
      if (kind === 2) {
        return JSON.stringify({
          type: "memory_object_lock_completed",
          id,
          lock_id: 1 + rng.int(50),
          offset: 0,
          length: PAGE,
        });
      }
      return JSON.stringify({ type: "memory_object_terminate", id });
    }
    if (roll < 98) {
      return JSON.stringify({ type: "received", id: actor.nextId++, mid: this.seenMid(actor) });
    }
    if (actor.role === "pool" && roll === 98 && rng.chance(0.3)) {
      return JSON.stringify({ type: "memory_object_terminate", id: actor.nextId++ });
    }
    return JSON.stringify({
      type: "memory_object_data_request",
      id: actor.nextId++,
      offset: rng.int(TOUCHED) * PAGE,
      length: PAGE,
      desired_access: 1,
    });
  }

  /**
   * A message of an atomic group (docs/protocol.md §12): mostly a staged return (now and then a
   * clean one, which only opens the group) or set_size, else the synchronize that commits the
   * group, mostly one the kernel has open.
   */
  private groupFrame(actor: Actor, group = this.drawGroup(actor)): string | Uint8Array {
    const rng = this.rng;
    const failed = [...(this.kernel(actor)?.groups ?? [])].filter(([, g]) => g.failed);
    if (failed.length > 0 && rng.chance(0.5)) {
      // A group a refusal discarded: its synchronize is refused too, and frees the number.
      return this.groupSync(actor, rng.pick(failed)[0], rng.pick(SYNC_FLAGS));
    }
    const roll = rng.float();
    if (roll < 0.55) {
      const pages = 1 + rng.int(rng.chance(0.1) ? 16 : 4);
      return this.groupReturn(actor, group, pages, rng.int(TOUCHED - pages + 1), rng.chance(0.92));
    }
    if (roll < 0.65) {
      return JSON.stringify({
        type: "memory_object_set_size",
        id: actor.nextId++,
        size: this.drawSize(),
        group,
      });
    }
    return this.groupSync(actor, group, rng.pick(SYNC_FLAGS));
  }

  /** One of the actor's open groups (not one a refusal discarded), mostly; else one of a few numbers. */
  private drawGroup(actor: Actor): number {
    const groups = [...(this.kernel(actor)?.groups ?? [])];
    const open = groups.filter(([, g]) => !g.failed).map(([group]) => group);
    return open.length > 0 && this.rng.chance(0.75)
      ? this.rng.pick(open)
      : 1 + this.rng.int(GROUP_NUMBERS);
  }

  private groupReturn(
    actor: Actor,
    group: number,
    pages: number,
    first: number,
    dirty = true,
  ): Uint8Array {
    return this.binary(
      {
        type: "memory_object_data_return",
        id: actor.nextId++,
        offset: first * PAGE,
        length: pages * PAGE,
        dirty,
        kernel_copy: this.rng.chance(0.2),
        group,
      },
      this.pattern(pages),
    );
  }

  /** The synchronize that commits `group`, of a range of the pages most traffic touches. */
  private groupSync(actor: Actor, group: number, flags: number): string {
    const rng = this.rng;
    const offset = rng.chance(0.3) ? 0 : rng.int(TOUCHED * PAGE);
    return JSON.stringify({
      type: "memory_object_synchronize",
      id: actor.nextId++,
      offset,
      length: rng.chance(0.1) ? 0 : 1 + rng.int(TOUCHED * PAGE - offset),
      sync_flags: flags,
      group,
    });
  }

  /**
   * A size (docs/protocol.md §13): mostly near the end of the pages most traffic touches, so that a
   * shrink drops a few of them and cuts one; now and then anywhere below, or among the pages of
   * the rare 1 MiB write above them.
   */
  private drawSize(): number {
    const rng = this.rng;
    const roll = rng.float();
    const cut = rng.chance(0.5) ? rng.int(PAGE) : 0;
    if (roll < 0.6) return (TOUCHED - 1 - rng.int(6)) * PAGE + cut;
    if (roll < 0.85) return rng.int(TOUCHED) * PAGE + cut;
    if (roll < 0.95) return (BIG_FIRST + rng.int(MAX_TRANSFER / PAGE)) * PAGE + cut;
    return rng.int(2) * PAGE;
  }

  /** Garbage for the actor: any frame of fuzz-frames.ts, judged by the model. */
  private garbage(actor: Actor): string | Uint8Array {
    return candidate(this.rng, this.target(actor), this.shape);
  }

  private drawPool(actor: Actor): Drawn {
    const live = actor.live!;
    if (!live.model.initialized) return this.initFrame(actor);
    if (live.model.batch && this.rng.chance(0.3)) {
      const batch = this.drawBatch(actor);
      if (batch) return batch;
    }
    if (!live.model.batch && this.rng.chance(0.01) && this.poolMayErr(actor)) {
      // A batch from a kernel that did not ask: one bad_json, as in version 1.
      const binary = this.rng.chance(0.5);
      const parts = Array.from({ length: 1 + this.rng.int(3) }, () =>
        batchPart(this.rng, this.validFrame(actor), binary),
      );
      return batchOf(
        parts.filter((part) => part !== null),
        binary,
      );
    }
    if (this.rng.chance(0.04) && this.poolMayErr(actor)) {
      // Garbage that must not close the socket: an error is fine while under the limits.
      for (let i = 0; i < 5; i++) {
        const data = this.garbage(actor);
        if (!this.model.errorCloses(live.model)) return data;
      }
    }
    return this.validFrame(actor);
  }

  private drawLane(actor: Actor): Drawn {
    const live = actor.live!;
    const k = this.kernel(actor);
    if (actor.retiring) {
      if (!live.model.initialized) return k ? this.initFrame(actor) : null;
      return JSON.stringify({ type: "memory_object_terminate", id: actor.nextId++ });
    }
    if (actor.initFirst && !live.model.initialized && live.framesSent === 0) {
      return this.initFrame(actor);
    }
    if (live.model.batch && this.rng.chance(0.25)) {
      const batch = this.drawBatch(actor);
      if (batch) return batch;
    }
    if (this.rng.chance(0.0003)) {
      // A whole frame over MAX_HEADER_BYTES + max_transfer, however short its header.
      return this.binary(
        { type: "memory_object_data_return" },
        new Uint8Array(MAX_TRANSFER + 3 * MAX_HEADER_BYTES),
      );
    }
    for (let attempt = 0; attempt < 8; attempt++) {
      const data =
        live.model.initialized && this.rng.chance(0.2)
          ? this.validFrame(actor)
          : this.garbage(actor);
      const preview = this.model.preview(live.model, data);
      const applies = !preview.error && !preview.refused && !preview.duplicate;
      // A lane ends when it decides to (a terminate drawn by chance would end it early), and a
      // lane that never inits stays so, to meet the per-kernel error limit.
      if (applies && preview.type === "memory_object_terminate") continue;
      if (applies && preview.type === "memory_object_init" && !actor.initFirst) continue;
      return data;
    }
    return "null";
  }

  // --- batches (docs/protocol.md §11) ------------------------------------------------------------

  /**
   * A batch from a kernel that asked for them: now and then one that cannot be parsed or passes
   * max_transfer (judged whole by the model), else one built a message at a time, each judged as
   * it is drawn and drawn again when the model refuses it, so that its answers are exact.
   */
  private drawBatch(actor: Actor): Drawn {
    const pool = actor.role === "pool";
    if (this.rng.chance(pool ? 0.08 : 0.3) && (!pool || this.poolMayErr(actor))) {
      return malformedBatch(
        this.rng,
        this.shape,
        {
          nextId: () => actor.nextId++,
          seenMid: this.seenMid(actor),
          pattern: (pages) => this.pattern(pages),
        },
        MAX_BATCH_MESSAGES,
        this.rng.chance(0.15),
      );
    }
    if (pool && this.rng.chance(0.25)) return this.commitBatch(actor);
    return this.builtBatch(actor);
  }

  /**
   * A small commit in one frame (docs/protocol.md §12): staged returns (now and then a set_size) of
   * one group, then the synchronize that commits it.
   */
  private commitBatch(actor: Actor): Judged | null {
    const rng = this.rng;
    const group = this.drawGroup(actor);
    const staged = 1 + rng.int(5);
    // Now and then the kernel terminates inside it: what follows is refused (docs/protocol.md §11),
    // and the group goes with the kernel (docs/protocol.md §12).
    const terminateAt = rng.chance(0.03) ? rng.int(staged + 1) : -1;
    const count = staged + 1 + (terminateAt >= 0 ? 1 : 0);
    return this.builtBatch(actor, true, count, (i) => {
      if (i === terminateAt) {
        return {
          text: JSON.stringify({ type: "memory_object_terminate", id: actor.nextId++ }),
          payload: null,
        };
      }
      if (i === count - 1) {
        return { text: this.groupSync(actor, group, rng.pick(SYNC_FLAGS)), payload: null };
      }
      const frame = rng.chance(0.85)
        ? this.groupReturn(actor, group, 1 + rng.int(3), rng.int(TOUCHED - 3))
        : JSON.stringify({
            type: "memory_object_set_size",
            id: actor.nextId++,
            size: this.drawSize(),
            group,
          });
      return batchPart(rng, frame, true);
    });
  }

  private builtBatch(
    actor: Actor,
    binary = this.rng.chance(0.6),
    count = this.rng.chance(0.1) ? 8 + this.rng.int(40) : 1 + this.rng.int(6),
    draw = (_index: number) => this.batchMessage(actor, binary),
  ): Judged | null {
    const pool = actor.role === "pool";
    // A pool kernel errs only while under its limits; a lane ends when it decides to.
    const veto = (v: { error?: string; type: string; duplicate: boolean }) =>
      v.error !== undefined
        ? pool && !this.poolMayErr(actor)
        : !pool && !v.duplicate && v.type === "memory_object_terminate";
    this.model.beginBatch(actor.live!.model, binary);
    const parts: BatchPart[] = [];
    let chars = 2;
    for (let i = 0; i < count && !this.model.batchEnded; i++) {
      for (let attempt = 0; attempt < 6; attempt++) {
        actor.nextId = Math.max(actor.nextId, (this.kernel(actor)?.lastId ?? 0) + 1);
        const part = draw(i);
        // Its header well under MAX_HEADER_BYTES, however many bytes a character takes.
        if (!part || chars + part.text.length > 20_000) continue;
        const value: unknown = JSON.parse(part.text);
        if (this.model.batchEntry(value, part.payload, veto).refused) continue;
        parts.push(binary && carriesPages(value) ? part : { ...part, payload: null });
        chars += part.text.length + 1;
        break;
      }
    }
    const data = parts.length > 0 ? batchOf(parts, binary) : null;
    const outcome = this.model.endBatch(data);
    return data === null ? null : new Judged(data, outcome);
  }

  /**
   * One message for a batch: mostly valid for a pool kernel, mostly not for a lane; garbage of
   * every kind, entries that are not objects, an init (not allowed in a batch), a data_supply
   * (not a kernel's message, though its pages follow it).
   */
  private batchMessage(actor: Actor, binary: boolean): BatchPart | null {
    const rng = this.rng;
    const pool = actor.role === "pool";
    const roll = rng.float();
    if (roll < (pool ? 0.85 : 0.35)) return batchPart(rng, this.validFrame(actor), binary);
    if (roll < (pool ? 0.9 : 0.7)) return batchPart(rng, this.garbage(actor), binary);
    if (roll < (pool ? 0.95 : 0.85)) return { text: rng.pick(NON_OBJECT_ENTRIES), payload: null };
    if (roll < (pool ? 0.97 : 0.93)) {
      return { text: this.initFrame(actor), payload: null };
    }
    const pages = 1 + rng.int(2);
    return {
      text: JSON.stringify({
        type: "memory_object_data_supply",
        reply_to: actor.nextId,
        seqno: 0,
        offset: 0,
        length: pages * PAGE,
        lock_value: 0,
        precious: false,
      }),
      payload: rng.bytes(pages * PAGE),
    };
  }

  // --- concurrent rounds --------------------------------------------------------------------------

  private async concurrentRound(): Promise<void> {
    await this.preparePool();
    await this.prepareLanes();
    const plan: Parameters<Runner["round"]>[1] = [];
    for (const actor of this.pool) {
      if (actor.live?.model.initialized && actor.live.model.open) {
        plan.push({ actor, count: 1 + this.rng.int(5), draw: (a) => this.drawPool(a) });
      }
    }
    for (const actor of this.lanes) {
      if (actor.live && actor.live.model.open && !actor.retired) {
        plan.push({ actor, count: 1 + this.rng.int(8), draw: (a) => this.drawLane(a) });
      }
    }
    // Whoever goes first differs from round to round.
    for (let i = plan.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }
    await this.round("concurrent", plan);
    await this.afterLanes();
    for (const actor of this.pool) {
      if (actor.live?.closed?.code === 1000 && !this.kernel(actor)) {
        // Terminated: its name starts afresh (a new name, if this one took many errors).
        this.retireLive(actor.live);
        actor.live = null;
        if (this.errorsOf(actor) >= POOL_NAME_ERRORS / 2) this.rename(actor);
      }
    }
  }

  private async prepareLanes(): Promise<void> {
    this.lanes = this.lanes.filter((lane) => !lane.retired);
    while (this.lanes.length < LANES) {
      const n = this.laneCount++;
      // Kinds: read-only; garbage before any init, to the per-kernel limit; init, then mostly
      // garbage.
      const kind = this.rng.int(10);
      const reader = kind === 0 && this.lanes.filter((l) => !l.writer).length < 2;
      const lane = new Actor(
        `l${this.options.seed.toString(36)}-${n}`,
        reader ? "reader" : "lane",
        !reader,
        reader || kind >= 4,
      );
      lane.budget = 150 + this.rng.int(600);
      lane.batchRate = 0.4;
      this.figures.kernels++;
      this.lanes.push(lane);
      await this.connect(lane);
    }
    for (const lane of this.lanes) {
      if (lane.live && !lane.live.closed) continue;
      // Closed by a limit: back on a new socket, unless the kernel's minute is spent.
      if (lane.live) {
        this.retireLive(lane.live);
      }
      if (this.errorsOf(lane) > 2 * ERRORS_PER_MINUTE) {
        await this.refusedUpgrade(lane);
        lane.retired = true;
        continue;
      }
      await this.connect(lane);
      lane.live!.framesSent = 0;
      if (this.kernel(lane)) {
        // A registered kernel resumes.
        await this.round("solo", [{ actor: lane, count: 1, draw: (a) => this.initFrame(a) }]);
      }
    }
    this.lanes = this.lanes.filter((lane) => !lane.retired);
  }

  /** Past its budget a kernel id may not open a socket for the rest of the minute (429). */
  private async refusedUpgrade(lane: Actor): Promise<void> {
    const response = await this.upgrade(lane.name, lane.writer);
    const body = (await response.json().catch(() => null)) as { error?: { code?: string } } | null;
    if (response.status !== 429 || body?.error?.code !== "too_many_errors") {
      throw new Failure(
        `seed ${this.options.seed}: ${lane.name} took ${this.errorsOf(lane)} errors; its upgrade must be refused 429 too_many_errors, got ${response.status} ${JSON.stringify(body)}`,
      );
    }
    this.figures.upgradesRefused++;
  }

  /** Lanes near their end retire: a registered kernel terminates, others are left closed. */
  private async afterLanes(): Promise<void> {
    for (const lane of this.lanes) {
      const live = lane.live;
      if (!live) continue;
      if (live.closed?.code === 1000 && !this.kernel(lane)) {
        lane.retired = true;
        continue;
      }
      // Old: the error limits count per minute, and a lane must meet them within its first.
      const now = Date.now();
      const old = now - (lane.firstErrorAt ?? now) > 40_000 || now - live.openedAt > 40_000;
      const worn = this.errorsOf(lane) >= 2 * ERRORS_PER_MINUTE - 25 || lane.budget <= 0 || old;
      if (!worn || lane.retiring) continue;
      if (this.kernel(lane)) {
        lane.retiring = true;
      } else if (lane.budget <= 0 || old) {
        if (!live.closed) await this.disconnect(lane);
        lane.live = null;
        lane.retired = true;
      }
    }
  }

  // --- scenarios ----------------------------------------------------------------------------------

  private solo(actor: Actor, draw: (a: Actor) => Drawn, count = 1) {
    return this.round("solo", [{ actor, count, draw }]);
  }

  private connectedPool(): Actor[] {
    return this.pool.filter((a) => a.live?.model.initialized && a.live.model.open);
  }

  /**
   * INVALIDATE (docs/protocol.md §6.6): a kernel Y synchronizes pages others may cache; each connected
   * holder gets a lock request, disconnected ones are marked stale; Y's request (and those of
   * its queued behind it) completes once every holder answered lock_completed, terminated or
   * disconnected, a socket at a time so that every answer is exact.
   */
  private async invalidateScenario(): Promise<void> {
    await this.preparePool();
    const candidates = this.connectedPool();
    if (candidates.length < 2) return;
    this.figures.scenarios.invalidate = (this.figures.scenarios.invalidate ?? 0) + 1;
    const rng = this.rng;
    const y = rng.pick(candidates);
    const x = rng.pick(candidates.filter((a) => a !== y));
    const pages = 1 + rng.int(6);
    const first = rng.int(TOUCHED - pages);
    // X reads the range, so it caches it.
    await this.solo(x, (a) =>
      JSON.stringify({
        type: "memory_object_data_request",
        id: a.nextId++,
        offset: first * PAGE,
        length: pages * PAGE,
        desired_access: 3,
      }),
    );
    const offset = first * PAGE + rng.int(PAGE);
    const length = 1 + rng.int((first + pages) * PAGE - offset);
    const flags = rng.pick([4, 5, 6, 4 | 8, 4 | 0x10, 6 | 0x20, 5 | 0x40, 0x7c, 0x7e, 0x7d]);
    const sync = (a: Actor, o: number, l: number, f: number) =>
      JSON.stringify({
        type: "memory_object_synchronize",
        id: a.nextId++,
        offset: o,
        length: l,
        sync_flags: f,
      });
    await this.solo(y, (a) => sync(a, offset, length, flags));
    // More of Y's: overlapping ones queue behind it (never an INVALIDATE behind a SYNCHRONOUS,
    // which would ask other kernels after a flush), others complete at once.
    // Sometimes up to MAX_SYNCS_PER_KERNEL queued, and one more: too_many_syncs.
    const full = rng.chance(0.1);
    const extra = full ? MAX_SYNCS : rng.int(4);
    if (extra > 0 && this.model.syncs.length > 0) {
      // Never an INVALIDATE behind a SYNCHRONOUS one (it would ask kernels after a flush); none
      // at all in a full queue (each would ask the holders again).
      const queuedFlags = (flags & 2) !== 0 || full ? [0, 1, 8, 0x11] : [0, 1, 4, 5, 8, 0x10];
      await this.solo(
        y,
        (a) => {
          const overlap = full || rng.chance(0.8);
          const o = overlap ? offset : ((first + pages + rng.int(8)) % TOUCHED) * PAGE;
          return sync(a, o, overlap ? length : PAGE, rng.pick(queuedFlags));
        },
        extra,
      );
    }
    // Noise while it waits: reads, unlocks, received, wrong lock ids, a little garbage.
    for (let i = rng.int(4); i > 0; i--) {
      const who = rng.pick(this.connectedPool());
      await this.solo(who, (a) =>
        rng.chance(0.3) && this.poolMayErr(a) && !this.model.errorCloses(a.live!.model)
          ? this.garbage(a)
          : rng.chance(0.5)
            ? JSON.stringify({
                type: "memory_object_lock_completed",
                id: a.nextId++,
                lock_id: this.model.nextLockId + 100 + rng.int(100),
                offset: 0,
                length: PAGE,
              })
            : this.validNonSync(a),
      );
    }
    if (rng.chance(0.1)) {
      // Y goes away meanwhile: its completion waits in its outbox and comes with its next
      // ready. (With one request of Y's outstanding, not SYNCHRONOUS: several completions at
      // once, or one after a flush, would come in an order no socket shows.)
      if (this.mayLeave(y)) {
        await this.disconnect(y);
        y.live = null;
        y.awayRounds = 0;
      }
    }
    await this.resolveLocks();
  }

  /**
   * Whether the actor may disconnect while requests are outstanding: its own completions then
   * wait in its outbox, which only works for one at a time, and not one after a flush (several
   * at once, or after a flush, come in an order no socket shows).
   */
  private mayLeave(actor: Actor): boolean {
    const own = this.model.syncs.filter((row) => row.kernel === actor.name);
    return own.length === 0 || (own.length === 1 && (own[0]!.flags & 2) === 0);
  }

  /** A valid frame that starts no synchronize (what a kernel sends while others wait). */
  private validNonSync(actor: Actor): string | Uint8Array {
    for (;;) {
      const data = this.validFrame(actor);
      if (
        typeof data !== "string" ||
        !/memory_object_(synchronize|terminate|lock_completed)/.test(data)
      ) {
        return data;
      }
    }
  }

  /** Answers every lock request some request waits on, one holder at a time. */
  private async resolveLocks(): Promise<void> {
    const rng = this.rng;
    for (let guard = 0; this.model.syncs.length > 0; guard++) {
      if (guard > 500)
        throw new Failure(`seed ${this.options.seed}: outstanding requests never resolve`);
      const waited = this.model.waitedOn();
      if (waited.length === 0) {
        throw new Failure(`seed ${this.options.seed}: the model has requests waiting on nothing`);
      }
      const name = rng.pick(waited);
      const holder = this.actorOf(name);
      if (!holder?.live) {
        const socket = this.model.socketOf(name);
        throw new Failure(
          `seed ${this.options.seed}: ${name} is waited on, and no actor drives it ` +
            `(actor ${holder ? `retired ${holder.retired}, live ${holder.live}` : "none"}, ` +
            `socket ${socket?.id} open ${socket?.open})`,
        );
      }
      const roll = rng.float();
      if (roll < 0.2 && this.mayLeave(holder)) {
        if (holder?.live) {
          await this.disconnect(holder);
          holder.live = null;
          holder.awayRounds = rng.int(3);
        }
        // A holder no actor drives (or one that left): the object sees the socket go.
        await this.drain();
        await this.afterRound();
        continue;
      }
      if (roll < 0.28) {
        await this.solo(holder, (a) =>
          JSON.stringify({ type: "memory_object_terminate", id: a.nextId++ }),
        );
        this.retireLive(holder.live);
        holder.live = null;
        if (holder.role === "pool") {
          if (this.errorsOf(holder) >= POOL_NAME_ERRORS / 2) this.rename(holder);
        } else {
          holder.retired = true;
        }
        continue;
      }
      const lockId = this.model.locksOf(name)[0]!;
      const span = this.model.lockSpanOf(name, lockId)!;
      await this.solo(holder, (a) =>
        JSON.stringify({
          type: "memory_object_lock_completed",
          id: a.nextId++,
          lock_id: lockId,
          ...span,
        }),
      );
    }
    // Away kernels with outbox messages come back in the next rounds (preparePool).
  }

  private actorOf(name: string): Actor | undefined {
    return [...this.pool, ...this.lanes].find((a) => a.name === name);
  }

  /**
   * The kernel budget (docs/protocol.md §3 Reading): kernels fill the object's MAX_KERNELS; one more
   * takes the place of the oldest disconnected kernel holding nothing, or gets too_many_kernels.
   * Then every crowd kernel terminates.
   */
  private async crowdScenario(): Promise<void> {
    await this.preparePool();
    this.figures.scenarios.crowd = (this.figures.scenarios.crowd ?? 0) + 1;
    const rng = this.rng;
    const tag = `c${this.options.seed.toString(36)}-${this.roundNo}`;
    const writers = [...this.model.kernels.values()].filter((k) => k.writer).length;
    const crowd: Actor[] = [];
    for (let i = 0; i < MAX_KERNELS - writers; i++) {
      const actor = new Actor(`${tag}-${i}`, "crowd", true, true);
      actor.batchRate = 0.2;
      crowd.push(actor);
      this.figures.kernels++;
      await this.connect(actor);
      await this.solo(actor, (a) => this.initFrame(a));
    }
    // Some leave: they hold nothing, so a newcomer may take the place of the oldest.
    for (const actor of crowd) {
      if (rng.chance(0.1)) {
        await this.disconnect(actor);
        actor.live = null;
      }
    }
    // Newcomers: each takes the place of the oldest that left, until none is left to take.
    for (let i = 0; i < 8; i++) {
      const extra = new Actor(`${tag}-x${i}`, "crowd", true, true);
      extra.batchRate = 0.2;
      crowd.push(extra);
      this.figures.kernels++;
      await this.connect(extra);
      await this.solo(extra, (a) => this.initFrame(a));
      if (!this.kernel(extra)) break;
    }
    // Everyone of the crowd goes: connected ones first, so that the others find room to init.
    for (const actor of crowd) {
      if (!actor.live) continue;
      if (actor.live.model.initialized && actor.live.model.open) {
        await this.solo(actor, (a) =>
          JSON.stringify({ type: "memory_object_terminate", id: a.nextId++ }),
        );
      } else {
        await this.disconnect(actor);
      }
      if (actor.live) this.retireLive(actor.live);
      actor.live = null;
    }
    for (const actor of crowd) {
      if (!this.kernel(actor)) continue;
      await this.connect(actor);
      await this.solo(actor, (a) => this.initFrame(a));
      await this.solo(actor, (a) =>
        JSON.stringify({ type: "memory_object_terminate", id: a.nextId++ }),
      );
      this.retireLive(actor.live!);
      actor.live = null;
    }
    await this.checkTables();
  }

  /**
   * A kernel that never reports what it received (docs/protocol.md §3 Reading): its outbox fills with
   * grants until a data_unlock, and a synchronize, get outbox_full; then it reports them.
   */
  private async hoardScenario(): Promise<void> {
    await this.preparePool();
    const candidates = this.connectedPool().filter((a) => this.errorsOf(a) < POOL_NAME_ERRORS - 20);
    if (candidates.length === 0) return;
    this.figures.scenarios.hoard = (this.figures.scenarios.hoard ?? 0) + 1;
    const actor = this.rng.pick(candidates);
    const room = OUTBOX_MAX - this.kernel(actor)!.outbox.length;
    let sent = 0;
    await this.solo(
      actor,
      (a) =>
        sent++ <= room
          ? JSON.stringify({
              type: "memory_object_data_unlock",
              id: a.nextId++,
              offset: this.rng.int(TOUCHED) * PAGE,
              length: PAGE,
              desired_access: 1 + this.rng.int(7),
            })
          : JSON.stringify({
              type: "memory_object_synchronize",
              id: a.nextId++,
              offset: 0,
              length: PAGE,
              sync_flags: 1,
            }),
      room + 2,
    );
    await this.solo(actor, (a) =>
      JSON.stringify({ type: "received", id: a.nextId++, mid: this.seenMid(a) }),
    );
  }

  /** A pool kernel that may take a few errors more, if any; none while requests are outstanding. */
  private groupActor(): Actor | null {
    if (this.model.syncs.length > 0) return null;
    const candidates = this.connectedPool().filter(
      (a) =>
        this.errorsOf(a) < POOL_NAME_ERRORS - 20 && a.live!.model.errors < ERRORS_PER_MINUTE - 15,
    );
    return candidates.length > 0 ? this.rng.pick(candidates) : null;
  }

  /** A group number the kernel has not opened. */
  private freshGroup(actor: Actor, taken: number[] = []): number {
    const open = this.kernel(actor)?.groups;
    for (;;) {
      const group = 1 + this.rng.int(this.rng.chance(0.9) ? 1000 : Number.MAX_SAFE_INTEGER);
      if (!open?.has(group) && !taken.includes(group)) return group;
    }
  }

  /**
   * MAX_OPEN_GROUPS (docs/protocol.md §12): a kernel opens groups (by clean returns, which stage
   * nothing, and one-page ones) until it has as many as it may, and one more is refused
   * `too_many_groups`; then it commits them all, or resumes naming a few and commits those.
   */
  private async groupsScenario(): Promise<void> {
    await this.preparePool();
    const actor = this.groupActor();
    if (!actor) return;
    this.figures.scenarios.groups = (this.figures.scenarios.groups ?? 0) + 1;
    const rng = this.rng;
    const k = this.kernel(actor)!;
    await this.solo(
      actor,
      (a) => this.groupReturn(a, this.freshGroup(a), 1, rng.int(TOUCHED), rng.chance(0.5)),
      MAX_OPEN_GROUPS - k.groups.size + 1,
    );
    if (rng.chance(0.5)) {
      const kept = [...k.groups.keys()].filter(() => rng.chance(0.1));
      await this.reopen(actor, kept);
    }
    // Commits what is left, a synchronize each (not SYNCHRONOUS: that would end the round).
    for (let guard = 0; this.kernel(actor) && this.kernel(actor)!.groups.size > 0; guard++) {
      if (guard > 20 || !actor.live?.model.open) break;
      const left = [...this.kernel(actor)!.groups.keys()];
      let next = 0;
      await this.solo(
        actor,
        (a) => this.groupSync(a, left[next++]!, rng.pick([0, 1, 8])),
        left.length,
      );
    }
  }

  /**
   * A shrink that cuts a page held only in R2 (docs/protocol.md §13): a kernel writes a few pages and
   * synchronizes them SYNCHRONOUS (so they leave the journal for R2), sets the size inside one
   * of them, and reads them back; then, now and then, grows the size and reads again, or writes
   * the cut page anew.
   */
  private async cutScenario(): Promise<void> {
    await this.preparePool();
    const actor = this.groupActor();
    if (!actor) return;
    this.figures.scenarios.cut = (this.figures.scenarios.cut ?? 0) + 1;
    const rng = this.rng;
    const pages = 2 + rng.int(6);
    const first = rng.int(TOUCHED - pages);
    const range = { offset: first * PAGE, length: pages * PAGE };
    const read = (a: Actor) =>
      JSON.stringify({
        type: "memory_object_data_request",
        id: a.nextId++,
        ...range,
        desired_access: 1,
      });
    const setSize = (size: number) => (a: Actor) =>
      JSON.stringify({ type: "memory_object_set_size", id: a.nextId++, size });
    await this.solo(actor, (a) =>
      this.binary(
        {
          type: "memory_object_data_return",
          id: a.nextId++,
          ...range,
          dirty: true,
          kernel_copy: false,
        },
        this.pattern(pages),
      ),
    );
    await this.solo(actor, (a) =>
      JSON.stringify({
        type: "memory_object_synchronize",
        id: a.nextId++,
        ...range,
        sync_flags: 2,
      }),
    );
    const cutPage = first + rng.int(pages);
    await this.solo(actor, setSize(cutPage * PAGE + 1 + rng.int(PAGE - 1)));
    await this.solo(actor, read);
    const roll = rng.float();
    if (roll < 0.4) await this.solo(actor, setSize((first + pages) * PAGE));
    else if (roll < 0.7) {
      await this.solo(actor, (a) =>
        this.binary(
          {
            type: "memory_object_data_return",
            id: a.nextId++,
            offset: cutPage * PAGE,
            length: PAGE,
            dirty: true,
            kernel_copy: false,
          },
          this.pattern(1),
        ),
      );
    }
    await this.solo(actor, read);
  }

  /**
   * A grouped return that does not fit (docs/protocol.md §12): with the journal empty and its limit
   * tightened to the staged pages and a few more, a kernel stages what fits in group g, then a
   * return that does not: `journal_full`, and g is discarded, its room free again (another
   * group stages in it); g's later messages get `group_discarded`, and so does its synchronize,
   * after which g stages and commits again.
   */
  private async roomScenario(): Promise<void> {
    await this.preparePool();
    const actor = this.groupActor();
    if (!actor || this.kernel(actor)!.groups.size > MAX_OPEN_GROUPS - 3) return;
    const rng = this.rng;
    const g = this.freshGroup(actor);
    const other = this.freshGroup(actor, [g]);
    const room = 2 + rng.int(5);
    const original = await this.tightenJournal(this.model.stagedPages() + room);
    if (original === null) return;
    this.figures.scenarios.room = (this.figures.scenarios.room ?? 0) + 1;
    this.model.journalLimitPages = this.model.stagedPages() + room;
    const stage =
      (group: number, pages: number, dirty = true) =>
      (a: Actor) =>
        this.groupReturn(a, group, pages, rng.int(TOUCHED - pages + 1), dirty);
    const setSize = (group: number) => (a: Actor) =>
      JSON.stringify({
        type: "memory_object_set_size",
        id: a.nextId++,
        size: this.drawSize(),
        group,
      });
    const sync = (group: number) => (a: Actor) => this.groupSync(a, group, rng.pick([0, 1, 2]));
    try {
      let used = 0;
      while (used < room && rng.chance(0.8)) {
        const pages = 1 + rng.int(room - used);
        used += pages;
        await this.solo(actor, stage(g, pages));
      }
      if (rng.chance(0.3)) await this.solo(actor, stage(g, 1, false));
      if (rng.chance(0.3)) await this.solo(actor, setSize(g));
      // The one that does not fit, then what follows it: another group fits in the room freed,
      // g's later messages and its synchronize are refused (which frees its number).
      const rest: ((a: Actor) => string | Uint8Array)[] = [stage(g, room - used + 1 + rng.int(2))];
      if (rng.chance(0.7)) rest.push(stage(other, 1 + rng.int(room)));
      for (let i = rng.int(3); i > 0; i--) {
        rest.push(rng.chance(0.6) ? stage(g, 1, rng.chance(0.8)) : setSize(g));
      }
      rest.push(sync(g));
      if (actor.live!.model.batch && rng.chance(0.6)) {
        // All in one batch frame: the refusal's discard happens inside the batch's step.
        await this.solo(actor, (a) =>
          this.builtBatch(a, true, rest.length, (i) => batchPart(rng, rest[i]!(a), true)),
        );
      } else {
        for (const draw of rest) await this.solo(actor, draw);
      }
    } finally {
      this.model.journalLimitPages = null;
      await inspect(this.options.object, (_view, instance) => {
        instance.pager.testHooks.limits.journalMaxBytes = original;
      });
    }
    // Its number is free again: it stages and commits afresh.
    await this.solo(actor, stage(g, 1 + rng.int(3)));
    await this.solo(actor, sync(g));
    await this.solo(actor, sync(other));
  }

  /**
   * Waits (a few seconds at most) until the journal is empty, then sets its limit to `pages`
   * pages and returns the limit it had; null if it did not empty. The object's staged pages must
   * be the model's.
   */
  private async tightenJournal(pages: number): Promise<number | null> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const seen = await inspect(this.options.object, (_view, instance) => {
        const { pager } = instance;
        if (pager.journalPages() !== 0) return null;
        const original = pager.testHooks.limits.journalMaxBytes;
        pager.testHooks.limits.journalMaxBytes = pages * PAGE;
        return { original, staged: pager.stagedPages() };
      });
      if (seen) {
        if (seen.staged !== this.model.stagedPages()) {
          throw new Failure(
            `seed ${this.options.seed}, round ${this.roundNo}: the object has ${seen.staged} staged pages, the model ${this.model.stagedPages()}`,
          );
        }
        return seen.original;
      }
      if (Date.now() > deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  // --- the end ------------------------------------------------------------------------------------

  private async finish(): Promise<void> {
    await this.resolveLocks();
    await this.preparePool();
    // Nothing more may come: no socket gets a message the model did not expect.
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (this.failure) throw new Failure(this.failure);
    await this.checkStat();
    await this.checkPages();
    await this.checkTables();
  }
}

// ---------------------------------------------------------------------------------------------
// Matching one message against one expectation.

const READ_TYPES = ["memory_object_data_supply", "memory_object_data_unavailable"];

/** Why `m` is not what `e` expects, or null. Binds nothing. */
function check(e: Expect, m: Received): string | null {
  const keys = (allowed: string[]) => {
    const extra = Object.keys(m).filter((key) => key !== "payload" && !allowed.includes(key));
    return extra.length ? `unexpected fields ${extra.join(", ")}` : null;
  };
  const seqno = (cell: Cell) => {
    const why = cannotBind(cell, m.seqno);
    return why ? `seqno ${m.seqno}: ${why}` : null;
  };
  switch (e.kind) {
    case "error":
      if (m.type !== "error") return `expected error ${e.code}`;
      if (m.code !== e.code) return `code ${m.code}, expected ${e.code}`;
      if (m.reply_to !== e.replyTo) return `reply_to ${m.reply_to}, expected ${e.replyTo}`;
      if (m.kern_return !== e.kernReturn)
        return `kern_return ${m.kern_return}, expected ${e.kernReturn}`;
      if (typeof m.message !== "string" || m.message.length < 10) return `no message`;
      if (e.field && !m.message.startsWith(`${e.field} `))
        return `message does not name ${e.field}`;
      return (
        seqno(e.frame.seqno) ??
        keys(["type", "reply_to", "seqno", "kern_return", "code", "message"])
      );
    case "ack":
      if (m.type !== "ack" || m.id !== e.id) return `expected ack of ${e.id}`;
      if (e.seqno !== e.frame.seqno && e.seqno.value === undefined) return `original seqno unknown`;
      return seqno(e.seqno) ?? keys(["type", "id", "seqno"]);
    case "ready":
      for (const [key, value] of Object.entries(e.fields)) {
        if (m[key] !== value)
          return `${key} ${JSON.stringify(m[key])}, expected ${JSON.stringify(value)}`;
      }
      // Its size is judged after the round (`checkReads`), when the seqnos before it are known.
      if (!Number.isSafeInteger(m.size) || m.size < 0) return `size ${JSON.stringify(m.size)}`;
      return seqno(e.frame.seqno) ?? keys([...Object.keys(e.fields), "seqno", "size"]);
    case "read": {
      if (!READ_TYPES.includes(m.type)) return `expected data_supply or data_unavailable`;
      if (m.reply_to !== e.replyTo || m.offset !== e.offset || m.length !== e.length) {
        return `reply_to/offset/length ${m.reply_to}/${m.offset}/${m.length}, expected ${e.replyTo}/${e.offset}/${e.length}`;
      }
      if (m.type === "memory_object_data_supply") {
        if (m.lock_value !== 0 || m.precious !== false) return `lock_value/precious`;
        if (m.payload?.byteLength !== e.length) return `payload of ${m.payload?.byteLength} bytes`;
        return (
          seqno(e.frame.seqno) ??
          keys(["type", "reply_to", "seqno", "offset", "length", "lock_value", "precious"])
        );
      }
      if (m.payload) return `data_unavailable with a payload`;
      return seqno(e.frame.seqno) ?? keys(["type", "reply_to", "seqno", "offset", "length"]);
    }
    case "outbox": {
      const why = cannotBind(e.entry.mid, m.mid);
      if (why) return `mid ${m.mid}: ${why}`;
      for (const [key, value] of Object.entries(e.entry.fields)) {
        if (value instanceof Cell) {
          const cellWhy = cannotBind(value, m[key]);
          if (cellWhy) return `${key} ${m[key]}: ${cellWhy}`;
        } else if (m[key] !== value) {
          return `${key} ${JSON.stringify(m[key])}, expected ${JSON.stringify(value)}`;
        }
      }
      return keys([...Object.keys(e.entry.fields), "mid"]);
    }
  }
}

/**
 * A frame from the object, read by docs/protocol.md §2 and docs/protocol.md §11 rather than by schema/: one
 * message, or a batch (a JSON array; binary, with each data_supply's pages in order).
 */
function unpack(data: string | ArrayBuffer): {
  batch: boolean;
  messages: Received[];
  headerBytes: number;
  payloadBytes: number;
} {
  let json: unknown;
  let payload: Uint8Array | undefined;
  let headerBytes: number;
  if (typeof data === "string") {
    json = JSON.parse(data);
    headerBytes = utf8.encode(data).byteLength;
  } else {
    const bytes = new Uint8Array(data);
    if (bytes.byteLength < 4) throw new Error(`a binary frame of ${bytes.byteLength} bytes`);
    headerBytes = new DataView(data).getUint32(0);
    if (headerBytes > bytes.byteLength - 4) throw new Error(`a header length past the frame`);
    json = JSON.parse(strictUtf8.decode(bytes.subarray(4, 4 + headerBytes)));
    payload = bytes.subarray(4 + headerBytes);
  }
  const isMessage = (value: unknown): value is Received =>
    typeof value === "object" && value !== null && !Array.isArray(value);
  if (!Array.isArray(json)) {
    if (!isMessage(json)) throw new Error(`not a JSON object: ${JSON.stringify(json)}`);
    return { batch: false, messages: [{ ...json, payload }], headerBytes, payloadBytes: 0 };
  }
  let offset = 0;
  const messages = json.map((value): Received => {
    if (!isMessage(value)) throw new Error(`a batch entry that is not an object`);
    if (!payload || !carriesPages(value)) return { ...value, payload: undefined };
    const length = value.length as number;
    if (!Number.isSafeInteger(length) || length < 0 || offset + length > payload.byteLength) {
      throw new Error(`a batch whose pages do not add up to its lengths`);
    }
    offset += length;
    return { ...value, payload: payload.subarray(offset - length, offset) };
  });
  if (offset !== (payload?.byteLength ?? 0)) {
    throw new Error(`a batch with ${(payload?.byteLength ?? 0) - offset} bytes after its pages`);
  }
  return { batch: true, messages, headerBytes, payloadBytes: offset };
}

/** Why a batch the object sent breaks docs/protocol.md §11, or null. */
function batchFault(frame: ReturnType<typeof unpack>, asked: boolean): string | null {
  if (!asked) return `a batch to a socket that did not ask for batches`;
  const n = frame.messages.length;
  // A reply alone goes as a plain frame.
  if (n < 2 || n > MAX_BATCH_MESSAGES) return `a batch of ${n} messages`;
  if (frame.payloadBytes > MAX_TRANSFER) return `a batch of ${frame.payloadBytes} payload bytes`;
  if (frame.headerBytes >= MAX_REPLY_BATCH_HEADER) {
    return `a batch header of ${frame.headerBytes} bytes`;
  }
  if (frame.messages.some((m) => m.type === "memory_object_ready")) {
    return `memory_object_ready inside a batch`;
  }
  return null;
}

/** Whether a frame's JSON is an array (a batch, to a socket that asked). */
function isArrayFrame(data: string | Uint8Array): boolean {
  try {
    const text =
      typeof data === "string"
        ? data
        : strictUtf8.decode(
            data.subarray(4, 4 + new DataView(data.buffer, data.byteOffset).getUint32(0)),
          );
    return Array.isArray(JSON.parse(text));
  } catch {
    return false;
  }
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Binds what the message told. */
function commit(e: Expect, m: Received): void {
  switch (e.kind) {
    case "error":
    case "ready":
    case "read":
      bind(e.frame.seqno, m.seqno);
      break;
    case "ack":
      bind(e.seqno, m.seqno);
      break;
    case "outbox":
      bind(e.entry.mid, m.mid);
      for (const [key, value] of Object.entries(e.entry.fields)) {
        if (value instanceof Cell) bind(value, m[key]);
      }
  }
}

function plain(entry: { mid: Cell; fields: Record<string, unknown> }): Record<string, unknown> {
  const out: Record<string, unknown> = { mid: entry.mid.value };
  for (const [key, value] of Object.entries(entry.fields)) {
    out[key] = value instanceof Cell ? value.value : value;
  }
  return out;
}

function describe(e: Expect): string {
  switch (e.kind) {
    case "error":
      return `error ${e.code} reply_to ${e.replyTo} for frame ${e.frame.n} ${e.frame.summary}`;
    case "ack":
      return `ack ${e.id} for frame ${e.frame.n} ${e.frame.summary}`;
    case "ready":
      return `ready ${JSON.stringify(e.fields)} for frame ${e.frame.n}`;
    case "read":
      return `read answer to ${e.replyTo} (${e.offset}+${e.length}) for frame ${e.frame.n}`;
    case "outbox":
      return `${e.group !== null ? `group ${e.group} ` : ""}outbox ${JSON.stringify(plain(e.entry))}`;
  }
}

function show(m: Received): string {
  const { payload, ...rest } = m;
  return JSON.stringify(rest) + (payload ? ` + ${payload.byteLength} bytes` : "");
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value as object)
        .sort()
        .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
    );
  }
  return value;
}
