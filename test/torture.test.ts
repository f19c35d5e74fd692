/**
 * A seeded torture test (CONTRIBUTING.md §10): three kernels and the HTTP surface on one object, in a
 * random interleaving of data_returns, synchronizes of every flag combination (kernel-local bits
 * and the invalid SYNCHRONOUS|ASYNCHRONOUS too), data_requests, lock answers (most lock requests
 * are answered, some left to time out), `received` reports, resent duplicates, socket drops,
 * replaced sockets and resume, evictions (hibernate and close) and R2 faults (fail, fail after
 * write, delay; `seededFaults` in test/helpers/buckets.ts). Faults are then switched off, everything is
 * flushed, and the run is checked against a model of what the kernels were told:
 *
 * - lost = 0: every acked page reads back as last written in seqno order (HTTP GET pages);
 * - duplicated = 0, missing = 0: every accepted synchronize got exactly one completion or one
 *   KERN_MEMORY_ERROR, counted per request id across reconnects. The kernel ignores mids it already
 *   processed (docs/protocol.md §3); no mid comes twice on one socket, nor after the manager took a
 *   report covering it;
 * - early = 0: no SYNCHRONOUS completion arrived before its pages were in R2. At the moment it
 *   arrived, every page of its range written before the request was in a segment whose put had
 *   resolved (the fault wrapper's record of clean puts); soon after, the index pointed at a key
 *   whose put resolved, holding those bytes or newer ones;
 * - staleReads = 0: every data_supply matched the pages as of its seqno; the index never points
 *   at a key whose put failed, and no key is written twice.
 *
 * Coherent objects (docs/protocol.md §10) have a torture test of their own,
 * test/coherent-torture.test.ts, whose kernels play by the coherence rules.
 *
 * `npm test` runs a fixed seed (2000 operations, under ten seconds); `npm run torture -- --ops N
 * --seed S` runs any other. The operations drawn depend only on the seed; the interleaving with
 * the manager's own work (flushes, alarms, retries) depends on timing too, so a failing seed
 * usually, not always, fails again. Seqnos of messages whose ack was lost in a drop are not known
 * exactly: the model bounds them by those of the messages around them on the same socket, which
 * the manager processes in order (docs/protocol.md §3), and accepts any answer consistent with the bounds.
 */
import { evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import {
  ensureObjectBucket,
  newControl,
  objectStub,
  seededFaults,
  type BucketControl,
} from "./helpers/buckets";
import {
  CLOSE_REPLACED,
  KERN_INVALID_ARGUMENT,
  KERN_MEMORY_ERROR,
  VM_SYNC_ASYNCHRONOUS as ASYNC,
  VM_SYNC_CONTIGUOUS,
  VM_SYNC_DEACTIVATE,
  VM_SYNC_INVALIDATE as INVALIDATE,
  VM_SYNC_KILLPAGES,
  VM_SYNC_REUSABLEPAGES,
  VM_SYNC_SYNCHRONOUS as SYNC,
  pageSpanOf,
} from "../schema";
import { putPages, readPages, stat, synchronize } from "./helpers/http";
import { pageIndex, pageLocation } from "./helpers/inspect";
import { TestKernel, settle, type Received } from "./helpers/kernel";
import { seededRandom } from "../tools/random";
import { waitFor } from "./helpers/wait";

const vars = env as unknown as Record<string, string | undefined>;
const OPS = Number(vars.TORTURE_OPS || 2000);
const SEED = Number(vars.TORTURE_SEED || 20261101);

const PAGE = 512;
const PAGES = 12;
const KERNELS = 3;
const LOCAL_BITS = [
  VM_SYNC_KILLPAGES,
  VM_SYNC_DEACTIVATE,
  VM_SYNC_CONTIGUOUS,
  VM_SYNC_REUSABLEPAGES,
];

// ---------------------------------------------------------------------------------------------
// The model: what each kernel sent, on which socket, and what it learned about seqnos.

/** One transmission of a message on one socket, in send order. */
interface Sent {
  id: number;
  type: string;
  /** Its place in its session's `sent`. */
  at: number;
  /** A resend of a message already applied: its ack's seqno says nothing about the original. */
  duplicate?: boolean;
  /** Learned from its ack, reply, ready or completion. */
  seqno?: number;
}

interface Session {
  owner: TortureKernel;
  kernel: TestKernel;
  sent: Sent[];
  readySeqno?: number;
  /** Mids that came on this socket: none may come twice. */
  mids: Set<number>;
}

/** A state-changing message the kernel keeps until it is acked (or known applied). */
interface Outgoing {
  id: number;
  header: Record<string, unknown> & { type: string };
  payload?: Uint8Array;
  /** The latest transmission: the one applied, since a message is resent only if not applied. */
  entry: Sent;
  session: Session;
  applied: boolean;
}

/** A kernel's report of the mids it received: init's received_mid, or a `received` message. */
interface Report {
  mid: number;
  session: Session;
  entry: Sent;
}

/** The manager surely processed a message once it, or a later one on its socket, was answered. */
function processed(session: Session, entry: Sent): boolean {
  return session.sent.slice(entry.at).some((e) => e.seqno !== undefined);
}

interface Write {
  writeNo: number;
  page: number;
  bytes: Uint8Array;
  /** The data_return that carried it; null for an HTTP write, whose seqno its response gave. */
  message: Outgoing | null;
  seqno?: number;
}

interface SyncRequest {
  kernel: number;
  message: Outgoing;
  offset: number;
  length: number;
  flags: number;
  valid: boolean;
  accepted: boolean;
  seqno?: number;
  completions: number;
  errors: number;
}

/** A completion as it arrived: over a socket (from the outbox) or as an HTTP 200. */
interface Completion {
  /** Who asked: `k1/42` (kernel and id) or `http@17` (the seqno). */
  label: string;
  offset: number;
  length: number;
  flags: number;
  seqno: number;
  /** How many clean puts the fault wrapper had recorded when the completion arrived. */
  cleanPutsAtArrival: number;
}

interface Supply {
  seqno: number;
  offset: number;
  length: number;
  payload: Uint8Array | null;
}

/** Possible seqnos of a message: [min, max], exact once acked. */
interface Bounds {
  min: number;
  max: number;
}

function makePage(writeNo: number, page: number, kernel: number): Uint8Array {
  const bytes = new Uint8Array(PAGE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, writeNo);
  view.setUint32(4, page);
  view.setUint32(8, kernel);
  for (let i = 12; i < PAGE; i++) bytes[i] = (writeNo * 131 + page * 17 + i * 7) & 0xff;
  return bytes;
}

function tagOf(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return `${view.getUint32(0)}:${view.getUint32(4)}`;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}

// ---------------------------------------------------------------------------------------------

class Torture {
  readonly name = `torture-${SEED}`;
  readonly random = seededRandom(SEED);
  /** Separate stream for the kernels' answers, which happen at times the network decides. */
  readonly answerRandom = seededRandom(SEED ^ 0x5bd1e995);
  readonly faults = seededFaults({
    seed: SEED ^ 0x9e3779b9,
    fail: 0.15,
    failAfterWrite: 0.1,
    delay: 0.25,
    maxDelayMs: 15,
  });
  /** The fault wrapper's record: installed again after every eviction (`ensureBucket`). */
  readonly bucket: BucketControl = newControl({ putFault: this.faults.decide, keepBodies: true });
  readonly kernels: TortureKernel[] = [];
  readonly writes = new Map<number, Write[]>();
  readonly syncs: SyncRequest[] = [];
  readonly completions: Completion[] = [];
  readonly supplies: Supply[] = [];
  readonly violations: string[] = [];
  /** Outbox messages that came again with a mid at or below one the kernel had reported. */
  readonly lateMids: { kernel: string; mid: number; reports: Report[] }[] = [];
  /** SYNCHRONOUS completions whose index check (runInDurableObject) is still to run. */
  readonly indexChecks: Completion[] = [];
  /** HTTP synchronizes in flight. */
  readonly httpSyncs: Promise<void>[] = [];
  figures = {
    operations: 0,
    dataReturns: 0,
    synchronizes: 0,
    dataRequests: 0,
    lockAnswers: 0,
    lockIgnored: 0,
    evictions: 0,
    socketDrops: 0,
    reconnects: 0,
    redeliveries: 0,
    duplicatesSent: 0,
    duplicateAcks: 0,
    indexChecks: 0,
    httpWrites: 0,
    httpSynchronizes: 0,
    httpMemoryErrors: 0,
    /** HTTP synchronizes whose connection an eviction cut, or that failed otherwise. */
    httpCut: 0,
  };
  private writeNo = 0;
  private frozenBounds: Map<Outgoing, Bounds> | null = null;

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  int(below: number): number {
    return Math.floor(this.random() * below);
  }

  nextWriteNo(): number {
    return ++this.writeNo;
  }

  versions(page: number): Write[] {
    let list = this.writes.get(page);
    if (!list) this.writes.set(page, (list = []));
    return list;
  }

  /** The seqno bounds of an applied message (docs/protocol.md §3: one socket's messages in order). */
  bounds(message: Outgoing): Bounds {
    if (message.entry.seqno !== undefined)
      return { min: message.entry.seqno, max: message.entry.seqno };
    const known = this.frozenBounds?.get(message);
    if (known) return known;
    const { session, entry } = message;
    const { at } = entry;
    let low = session.readySeqno ?? -1;
    let high = Infinity;
    session.sent.forEach((other, i) => {
      if (other.seqno === undefined) return;
      if (i < at) low = Math.max(low, other.seqno);
      if (i > at) high = Math.min(high, other.seqno);
    });
    const { sessions } = session.owner;
    const next = sessions[sessions.indexOf(session) + 1];
    if (next?.readySeqno !== undefined) high = Math.min(high, next.readySeqno);
    const bounds = { min: low + 1, max: high - 1 };
    this.frozenBounds?.set(message, bounds);
    return bounds;
  }

  /** Once every answer is in, bounds no longer change: remember them. */
  freeze(): void {
    this.frozenBounds = new Map();
  }

  /**
   * What a read at `before` may return for `page`: the writes that may precede it and are not
   * certainly overwritten by another that certainly precedes it; zeros if none certainly does.
   */
  expected(page: number, before: number): { writes: Write[]; zeros: boolean; floor: number } {
    const applied = this.versions(page).filter((w) => this.isApplied(w));
    const floor = this.floor(page, before);
    const writes = applied.filter((w) => {
      const b = this.writeBounds(w);
      return b.min < before && b.max >= floor;
    });
    return { writes, zeros: floor === -Infinity, floor };
  }

  /**
   * The lowest seqno the newest write of `page` certainly before `before` may have (-Infinity if
   * none): a write whose highest possible seqno is below it is certainly overwritten by then.
   */
  floor(page: number, before: number): number {
    let floor = -Infinity;
    for (const w of this.versions(page)) {
      if (!this.isApplied(w)) continue;
      const b = this.writeBounds(w);
      if (b.max < before) floor = Math.max(floor, b.min);
    }
    return floor;
  }

  /**
   * Whether R2 may hold `w` for a SYNCHRONOUS request whose page has this `floor`: `w` is not
   * certainly overwritten before the request (it may be newer than the request, too). During the
   * run, a write whose ack is still on its way may be applied already: it may be newer.
   */
  mayHold(w: Write, floor: number): boolean {
    return !this.isApplied(w) || this.writeBounds(w).max >= floor;
  }

  isApplied(w: Write): boolean {
    return w.message ? w.message.applied : true;
  }

  writeBounds(w: Write): Bounds {
    return w.message ? this.bounds(w.message) : { min: w.seqno!, max: w.seqno! };
  }

  writeFor(tag: string): Write | undefined {
    const [writeNo, page] = tag.split(":").map(Number);
    return this.versions(page!).find((w) => w.writeNo === writeNo);
  }

  completed(completion: Completion): void {
    this.completions.push(completion);
    if (completion.flags & SYNC) this.indexChecks.push(completion);
  }

  /** A dirty data_return over HTTP (docs/protocol.md §9): its response gives its seqno. */
  async httpWrite(): Promise<void> {
    const first = this.int(PAGES);
    const count = 1 + this.int(Math.min(3, PAGES - first));
    const writes: Write[] = [];
    const payload = new Uint8Array(count * PAGE);
    for (let i = 0; i < count; i++) {
      const writeNo = this.nextWriteNo();
      const bytes = makePage(writeNo, first + i, KERNELS);
      payload.set(bytes, i * PAGE);
      writes.push({ writeNo, page: first + i, bytes, message: null });
    }
    const response = await putPages(this.name, first * PAGE, payload);
    if (response.status !== 200) {
      this.violations.push(`HTTP write: ${response.status} ${await response.text()}`);
      return;
    }
    const { seqno } = await response.json<{ seqno: number }>();
    for (const w of writes) this.versions(w.page).push({ ...w, seqno });
    this.figures.httpWrites++;
  }

  /**
   * An HTTP synchronize, not awaited: it answers once the completion is due, with an error when
   * the write failed, or not at all when an eviction cuts its connection.
   */
  httpSynchronize(): void {
    const flags = this.pick([0, ASYNC, SYNC, SYNC, INVALIDATE, SYNC | INVALIDATE]);
    const offset = this.int(PAGES * PAGE);
    const length = this.random() < 0.1 ? 0 : 1 + this.int(PAGES * PAGE - offset);
    this.figures.httpSynchronizes++;
    const answered = synchronize(this.name, offset, length, flags).then(async (response) => {
      const cleanPutsAtArrival = this.bucket.clean.length;
      const body = await response.json<Record<string, any>>();
      if (response.status === 200) {
        if (body.offset !== offset || body.length !== length)
          this.violations.push(`HTTP synchronize: completion for another range`);
        this.completed({
          label: `http@${body.seqno}`,
          offset,
          length,
          flags,
          seqno: body.seqno,
          cleanPutsAtArrival,
        });
      } else if (body.error?.kern_return === KERN_MEMORY_ERROR) {
        this.figures.httpMemoryErrors++;
      } else {
        this.figures.httpCut++;
      }
    });
    this.httpSyncs.push(answered.catch(() => void this.figures.httpCut++));
  }

  /** Installs the fault wrapper in the running instance if an eviction dropped it. */
  async ensureBucket(): Promise<void> {
    // Compaction at any garbage, so its copies race the flushes, faults and evictions too.
    await ensureObjectBucket(this.name, this.bucket, (instance) => {
      instance.pager.testHooks.limits.compactMinGarbageBytes = 1;
    });
  }

  /**
   * The bytes R2 holds for an index row. The index is read first and R2 after, so a compaction
   * may have moved the page and swept its old segment in between: then the row is read again. A
   * row that still names a segment R2 no longer has is a violation (null).
   */
  async indexedBytes(row: { page: number; segment: string; slot: number }) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const object = await env.PAGES.get(row.segment, {
        range: { offset: row.slot * PAGE, length: PAGE },
      });
      if (object) return new Uint8Array(await object.arrayBuffer());
      const now = await pageLocation(this.name, row.page);
      if (!now || (now.segment === row.segment && now.slot === row.slot)) return null;
      row = { page: row.page, ...now };
    }
    return null;
  }

  /** Index checks for SYNCHRONOUS completions that arrived since the last call. */
  async drainIndexChecks(): Promise<void> {
    while (this.indexChecks.length > 0) {
      const sync = this.indexChecks.shift()!;
      const { first, end } = pageSpanOf(sync.offset, sync.length, PAGE);
      const rows = await pageIndex(this.name, { first, end });
      this.figures.indexChecks++;
      for (let page = first; page < end; page++) {
        const { writes, zeros, floor } = this.expected(page, sync.seqno);
        if (zeros) continue; // nothing certainly written before the request
        const row = rows.find((r) => r.page === page);
        const what = `SYNCHRONOUS completion of ${sync.label} (seqno ${sync.seqno}), page ${page}`;
        if (!row) {
          this.violations.push(`${what}: no index row, though written before (${writes.length})`);
          continue;
        }
        if (this.bucket.failedAfterWrite.has(row.segment)) {
          this.violations.push(`${what}: index points at ${row.segment}, whose put failed`);
        }
        const bytes = await this.indexedBytes(row);
        const w = bytes ? this.writeFor(tagOf(bytes)) : undefined;
        if (!bytes || !w || !equal(bytes, w.bytes) || !this.mayHold(w, floor)) {
          this.violations.push(`${what}: R2 holds ${bytes ? tagOf(bytes) : "nothing"}`);
        }
      }
    }
  }
}

async function listAll(prefix: string): Promise<R2Object[]> {
  const objects: R2Object[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.PAGES.list({ prefix, cursor });
    objects.push(...page.objects);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return objects;
}

function record(session: Session, id: number, type: string, duplicate = false): Sent {
  const entry = { id, type, at: session.sent.length, duplicate };
  session.sent.push(entry);
  return entry;
}

// ---------------------------------------------------------------------------------------------

/** One kernel across its sockets: ids, the unacked messages it keeps, the mids it processed. */
class TortureKernel {
  readonly sessions: Session[] = [];
  session: Session | null = null;
  private nextId = 1;
  processedMid = 0;
  /** The highest mid ever reported received (in an init or a `received`). */
  reportedMid = 0;
  /** Each report, so a mid that comes again can be matched with one the manager surely took. */
  readonly reports: Report[] = [];
  readonly unacked = new Map<number, Outgoing>();
  readonly syncs = new Map<number, SyncRequest>();
  /** Messages the manager applied, for resending as duplicates. */
  readonly appliedMessages: Outgoing[] = [];

  constructor(
    private readonly t: Torture,
    readonly index: number,
    readonly id: string,
  ) {}

  get ready(): boolean {
    return (
      this.session !== null &&
      this.session.readySeqno !== undefined &&
      this.session.kernel.closed === null
    );
  }

  /**
   * Connects and resumes (docs/protocol.md §3): init with received_mid, then resend above last_id. A
   * kernel whose socket is still open replaces it (docs/protocol.md §2: the manager closes the old one, 4409).
   */
  async connect(): Promise<void> {
    const previous = this.session;
    const kernel = await TestKernel.connect(this.t.name, this.id);
    const session: Session = { owner: this, kernel, sent: [], mids: new Set() };
    this.sessions.push(session);
    kernel.watch((m) => this.onMessage(session, m));
    const id = this.nextId++;
    const entry = record(session, id, "memory_object_init");
    // Sometimes report less than it processed (as a kernel that lost track would), so the
    // manager resends mids it already took and the kernel must ignore them.
    const receivedMid =
      this.t.random() < 0.6
        ? this.processedMid
        : this.reportedMid + this.t.int(this.processedMid - this.reportedMid + 1);
    this.reportedMid = Math.max(this.reportedMid, receivedMid);
    this.reports.push({ mid: receivedMid, session, entry });
    kernel.send({ type: "memory_object_init", id, page_size: PAGE, received_mid: receivedMid });
    const ready = await kernel.next(
      (m) => m.type === "memory_object_ready" || (m.type === "error" && m.reply_to === id),
    );
    if (ready.type !== "memory_object_ready")
      throw new Error(`init of ${this.id} failed: ${JSON.stringify(ready)}`);
    this.session = session;
    if (previous) {
      await waitFor(() => previous.kernel.closed !== null, `${this.id}'s old socket to close`);
      if (previous.kernel.closed!.code !== CLOSE_REPLACED)
        this.t.violations.push(
          `${this.id}: replaced socket closed with ${previous.kernel.closed!.code}`,
        );
    }
  }

  async drop(): Promise<void> {
    const session = this.session!;
    session.kernel.close();
    await waitFor(() => session.kernel.closed !== null, `${this.id}'s socket to close`);
    this.session = null;
  }

  /** A new state-changing message, kept until acked. */
  sendNew(header: Record<string, unknown> & { type: string }, payload?: Uint8Array): Outgoing {
    const id = this.nextId++;
    const message: Outgoing = {
      id,
      header: { ...header, id },
      payload,
      entry: { id, type: header.type, at: -1 },
      session: this.session!,
      applied: false,
    };
    this.unacked.set(id, message);
    this.transmit(message);
    return message;
  }

  /** A message that is answered but not kept (data_request, received). */
  sendOnce(header: Record<string, unknown> & { type: string }): Sent {
    const session = this.session!;
    const id = this.nextId++;
    const entry = record(session, id, header.type);
    try {
      session.kernel.send({ ...header, id });
    } catch {
      // The socket closed under us: nothing to keep.
    }
    return entry;
  }

  /** Sends an applied message again under its id (docs/protocol.md §3: acked again, not applied). */
  private sendDuplicate(message: Outgoing): void {
    const session = this.session!;
    record(session, message.id, message.header.type, true);
    this.t.figures.duplicatesSent++;
    try {
      if (message.payload) session.kernel.sendBinary(message.header, message.payload);
      else session.kernel.send(message.header);
    } catch {
      // The socket closed under us: it was only a duplicate.
    }
  }

  private transmit(message: Outgoing): void {
    const session = this.session!;
    message.entry = record(session, message.id, message.header.type);
    message.session = session;
    try {
      if (message.payload) session.kernel.sendBinary(message.header, message.payload);
      else session.kernel.send(message.header);
    } catch {
      // The socket closed under us; the message stays unacked and is resent after the next init.
    }
  }

  private onMessage(session: Session, m: Received): void {
    const t = this.t;
    const entryOf = (id: number) => [...session.sent].reverse().find((s) => s.id === id);
    if (m.type === "memory_object_ready") {
      session.readySeqno = m.seqno;
      entryOf(session.sent[0]!.id)!.seqno = m.seqno;
      // Resend at once, before any outbox message is handled and before any new message, so the
      // resent ids stay below every new one (a new id applied first would make them duplicates).
      this.session = session;
      for (const message of [...this.unacked.values()].sort((a, b) => a.id - b.id)) {
        if (message.id <= m.last_id) {
          this.unacked.delete(message.id);
          this.applied(message);
          // As a kernel that lost track would: the manager must ack it again, apply nothing.
          if (message.applied && t.answerRandom() < 0.3) this.sendDuplicate(message);
        } else {
          this.transmit(message);
        }
      }
      return;
    }
    if (m.type === "ack") {
      const entry = entryOf(m.id);
      if (entry?.duplicate) {
        t.figures.duplicateAcks++;
        return;
      }
      if (entry) entry.seqno = m.seqno;
      const message = this.unacked.get(m.id);
      if (message && message.session === session) {
        this.unacked.delete(m.id);
        this.applied(message);
      } else if (!entry) {
        t.violations.push(`${this.id}: ack for ${m.id}, never sent on this socket`);
      } else if (message) {
        // Resent on the new socket because the new init's last_id did not cover it, yet applied
        // from the replaced one: a replaced socket's message ran after the new init.
        t.violations.push(`${this.id}: ${m.id} applied from a replaced socket after the new init`);
      }
      // Else a late ack on a replaced socket for a message its successor's last_id covered.
      return;
    }
    if (m.mid !== undefined) return this.onOutbox(session, m);
    if (m.reply_to !== undefined && m.reply_to !== null) {
      const entry = entryOf(m.reply_to);
      if (entry) entry.seqno = m.seqno;
    }
    if (m.type === "error") {
      const message = this.unacked.get(m.reply_to);
      const sync = this.syncs.get(m.reply_to);
      if (message) this.unacked.delete(m.reply_to);
      if (sync && !sync.valid && m.kern_return === KERN_INVALID_ARGUMENT) return;
      t.violations.push(`${this.id}: unexpected error ${JSON.stringify(m)}`);
      return;
    }
    if (m.type === "memory_object_data_supply" || m.type === "memory_object_data_unavailable") {
      t.supplies.push({
        seqno: m.seqno,
        offset: m.offset,
        length: m.length,
        payload: m.payload ?? null,
      });
      return;
    }
    t.violations.push(`${this.id}: unexpected message ${JSON.stringify({ ...m, payload: 0 })}`);
  }

  private applied(message: Outgoing): void {
    const sync = this.syncs.get(message.id);
    // An invalid request was answered with an error; a later id's last_id covers it all the same.
    message.applied = !sync || sync.valid;
    if (message.applied) this.appliedMessages.push(message);
    if (sync) {
      sync.accepted = sync.valid;
      if (message.entry.seqno !== undefined) sync.seqno = message.entry.seqno;
    }
  }

  /** Outbox messages (docs/protocol.md §3): each mid takes effect once; repeats are ignored. */
  private onOutbox(session: Session, m: Received): void {
    const t = this.t;
    if (session.mids.has(m.mid)) t.violations.push(`${this.id}: mid ${m.mid} twice on one socket`);
    session.mids.add(m.mid);
    // A violation if the manager took a report covering this mid before it sent it: this
    // socket's init, or a report on an earlier socket (a `received` on this one may cross the
    // resend in flight, and a repeat on one socket is caught above). Whether a report arrived
    // (one lost in a drop reported nothing) is known at the end.
    const reports = this.reports.filter(
      (r) => r.mid >= m.mid && (r.session !== session || r.entry.type === "memory_object_init"),
    );
    if (reports.length > 0) t.lateMids.push({ kernel: this.id, mid: m.mid, reports });
    if (m.mid <= this.processedMid) {
      t.figures.redeliveries++;
      return;
    }
    this.processedMid = m.mid;
    if (m.type === "memory_object_lock_request") {
      if (!m.should_flush) return;
      if (t.answerRandom() < 0.85) {
        t.figures.lockAnswers++;
        if (this.ready && this.session === session) {
          this.sendNew({
            type: "memory_object_lock_completed",
            lock_id: m.lock_id,
            offset: m.offset,
            length: m.length,
          });
        }
      } else {
        t.figures.lockIgnored++;
      }
      return;
    }
    const sync = this.syncs.get(m.reply_to);
    if (!sync) {
      t.violations.push(`${this.id}: outbox message for unknown request ${JSON.stringify(m)}`);
      return;
    }
    if (sync.seqno !== undefined && sync.seqno !== m.seqno)
      t.violations.push(`${this.id}/${sync.message.id}: seqno ${m.seqno}, acked ${sync.seqno}`);
    sync.seqno = m.seqno;
    if (sync.message.entry.seqno === undefined) sync.message.entry.seqno = m.seqno;
    if (m.type === "memory_object_synchronize_completed") {
      sync.completions++;
      if (m.offset !== sync.offset || m.length !== sync.length)
        t.violations.push(`${this.id}/${sync.message.id}: completion for another range`);
      t.completed({
        label: `${this.id}/${sync.message.id}`,
        offset: sync.offset,
        length: sync.length,
        flags: sync.flags,
        seqno: m.seqno,
        cleanPutsAtArrival: t.bucket.clean.length,
      });
    } else if (m.type === "error" && m.kern_return === KERN_MEMORY_ERROR) {
      sync.errors++;
    } else {
      t.violations.push(`${this.id}: unexpected outbox message ${JSON.stringify(m)}`);
    }
  }

  // Operations ---------------------------------------------------------------------------------

  dataReturn(): void {
    const t = this.t;
    const first = t.int(PAGES);
    const count = 1 + t.int(Math.min(3, PAGES - first));
    const pages: Uint8Array[] = [];
    const writes: Omit<Write, "message">[] = [];
    for (let page = first; page < first + count; page++) {
      const writeNo = t.nextWriteNo();
      const bytes = makePage(writeNo, page, this.index);
      pages.push(bytes);
      writes.push({ writeNo, page, bytes });
    }
    const payload = new Uint8Array(count * PAGE);
    pages.forEach((bytes, i) => payload.set(bytes, i * PAGE));
    const message = this.sendNew(
      {
        type: "memory_object_data_return",
        offset: first * PAGE,
        length: count * PAGE,
        dirty: true,
        kernel_copy: false,
      },
      payload,
    );
    for (const w of writes) t.versions(w.page).push({ ...w, message });
    t.figures.dataReturns++;
  }

  synchronize(): void {
    const t = this.t;
    const base = t.pick([0, ASYNC, SYNC, SYNC, INVALIDATE, ASYNC | INVALIDATE, SYNC | INVALIDATE]);
    let flags = t.random() < 0.06 ? SYNC | ASYNC : base;
    for (const bit of LOCAL_BITS) if (t.random() < 0.1) flags |= bit;
    const offset = t.int(PAGES * PAGE);
    const length = t.random() < 0.1 ? 0 : 1 + t.int(PAGES * PAGE - offset);
    const valid = (flags & (SYNC | ASYNC)) !== (SYNC | ASYNC);
    const message = this.sendNew({
      type: "memory_object_synchronize",
      offset,
      length,
      sync_flags: flags,
    });
    const sync: SyncRequest = {
      kernel: this.index,
      message,
      offset,
      length,
      flags,
      valid,
      accepted: false,
      completions: 0,
      errors: 0,
    };
    this.syncs.set(message.id, sync);
    t.syncs.push(sync);
    t.figures.synchronizes++;
  }

  dataRequest(): void {
    const t = this.t;
    const first = t.int(PAGES);
    const count = 1 + t.int(Math.min(4, PAGES - first));
    this.sendOnce({
      type: "memory_object_data_request",
      offset: first * PAGE,
      length: count * PAGE,
      desired_access: 1,
    });
    t.figures.dataRequests++;
  }

  duplicate(): void {
    if (this.appliedMessages.length > 0) this.sendDuplicate(this.t.pick(this.appliedMessages));
  }

  received(): void {
    const mid = this.processedMid;
    this.reportedMid = Math.max(this.reportedMid, mid);
    const entry = this.sendOnce({ type: "received", mid });
    this.reports.push({ mid, session: this.session!, entry });
  }
}

// ---------------------------------------------------------------------------------------------

type Op =
  | "dataReturn"
  | "synchronize"
  | "dataRequest"
  | "received"
  | "duplicate"
  | "drop"
  | "evict"
  | "pause"
  | "reconnect"
  | "replace"
  | "httpWrite"
  | "httpSynchronize";

/** How often each operation is drawn, among those possible at the time. */
const WEIGHTS: [Op, number][] = [
  ["dataReturn", 36],
  ["synchronize", 24],
  ["dataRequest", 14],
  ["received", 4],
  ["duplicate", 3],
  ["drop", 4],
  ["evict", 3],
  ["pause", 3],
  ["reconnect", 12],
  ["replace", 2],
  ["httpWrite", 3],
  ["httpSynchronize", 2],
];

/** Operations a connected kernel does. */
const KERNEL_OPS = new Set<Op>([
  "dataReturn",
  "synchronize",
  "dataRequest",
  "received",
  "duplicate",
  "drop",
  "replace",
]);

function drawOp(t: Torture): Op {
  const someReady = t.kernels.some((k) => k.ready);
  const someAway = t.kernels.some((k) => !k.ready);
  const possible = WEIGHTS.filter(([op]) =>
    op === "reconnect" ? someAway : !KERNEL_OPS.has(op) || someReady,
  );
  let roll = t.random() * possible.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [op, weight] of possible) {
    if ((roll -= weight) < 0) return op;
  }
  return "pause";
}

async function evict(t: Torture): Promise<void> {
  const webSockets = t.random() < 0.6 ? "hibernate" : "close";
  await evictDurableObject(objectStub(t.name), { webSockets });
  t.figures.evictions++;
  // The fault wrapper went with the instance; a flush the new one started before this runs
  // uses the real bucket (counted as unwrapped puts at the end).
  await t.ensureBucket();
  if (webSockets === "hibernate") return;
  for (const k of t.kernels) {
    const session = k.session;
    if (!session) continue;
    await waitFor(() => session.kernel.closed !== null, `${k.id}'s socket to close`);
    k.session = null;
    t.figures.socketDrops++;
  }
  for (const k of t.kernels) {
    if (t.random() < 0.7) {
      await k.connect();
      t.figures.reconnects++;
    }
  }
}

async function step(t: Torture, op: Op): Promise<void> {
  const ready = t.kernels.filter((k) => k.ready);
  switch (op) {
    case "reconnect":
      await t.pick(t.kernels.filter((k) => !k.ready)).connect();
      t.figures.reconnects++;
      return;
    case "pause":
      await settle(t.int(40));
      return;
    case "evict":
      return evict(t);
    case "replace":
      await t.pick(ready).connect();
      t.figures.socketDrops++;
      t.figures.reconnects++;
      return;
    case "httpWrite":
      return t.httpWrite();
    case "httpSynchronize":
      return t.httpSynchronize();
    case "drop": {
      const k = t.pick(ready);
      await k.drop();
      t.figures.socketDrops++;
      if (t.random() < 0.5) {
        await k.connect();
        t.figures.reconnects++;
      }
      return;
    }
    default:
      t.pick(ready)[op]();
  }
}

async function run(t: Torture): Promise<void> {
  for (let i = 0; i < KERNELS; i++) t.kernels.push(new TortureKernel(t, i, `k${i}`));
  for (const k of t.kernels) await k.connect();
  await t.ensureBucket();
  for (let op = 0; op < OPS; op++) {
    t.figures.operations++;
    await step(t, drawOp(t));
    // Now and then let the manager's own work (flushes, acks, alarms) interleave.
    if (t.random() < 0.2) await settle(t.int(8));
    await t.drainIndexChecks();
  }
}

/** Faults off, every kernel back, every message acked, the journal flushed, every request done. */
async function quiesce(t: Torture): Promise<void> {
  t.faults.enabled = false;
  await t.ensureBucket();
  for (const k of t.kernels) {
    if (!k.ready) {
      await k.connect();
      t.figures.reconnects++;
    }
  }
  await waitFor(() => t.kernels.every((k) => k.unacked.size === 0), "every message to be acked");
  const stub = objectStub(t.name);
  // A request that never finishes is a finding, reported with the figures (missing), not a hang.
  await waitFor(async () => {
    await runDurableObjectAlarm(stub);
    const status = await stat(t.name);
    return status.journal_pages === 0 && status.syncs === 0;
  }, "the journal to drain and every synchronize to finish").catch((error) =>
    t.violations.push(String(error)),
  );
  await waitFor(
    () => t.syncs.every((s) => !s.accepted || s.completions + s.errors > 0),
    "every accepted synchronize to be answered",
    2_000,
  ).catch((error) => t.violations.push(String(error)));
  let httpDone = 0;
  await Promise.race([
    Promise.all(t.httpSyncs.map((answered) => answered.then(() => httpDone++))),
    settle(5_000),
  ]);
  if (httpDone < t.httpSyncs.length)
    t.violations.push(`${t.httpSyncs.length - httpDone} HTTP synchronizes never answered`);
  // A read on each kernel is the probe (`TestKernel.probe`): once it is answered, everything the
  // messages before it were to send, a duplicate included, has arrived.
  for (const k of t.kernels.filter((k) => k.ready)) {
    await k.session!.kernel.probe(
      () =>
        k.sendOnce({
          type: "memory_object_data_request",
          offset: 0,
          length: PAGE,
          desired_access: 1,
        }).id,
    );
  }
  await t.drainIndexChecks();
}

async function check(t: Torture) {
  t.freeze();
  // Lost: the final bytes of each page, from R2 through the index, against the model.
  const final = await readPages(t.name, 0, PAGES * PAGE);
  let lost = 0;
  for (let page = 0; page < PAGES; page++) {
    const bytes = final.subarray(page * PAGE, (page + 1) * PAGE);
    const { writes, zeros } = t.expected(page, Infinity);
    const ok = writes.some((w) => equal(w.bytes, bytes)) || (zeros && bytes.every((b) => !b));
    if (!ok) {
      lost++;
      t.violations.push(
        `page ${page} reads back as ${tagOf(bytes)}, expected one of ${
          writes.map((w) => w.writeNo).join(",") || "zeros"
        }`,
      );
    }
  }

  // The index: every row points at a cleanly written key that holds the row's version.
  const rows = await pageIndex(t.name);
  for (const row of rows) {
    if (t.bucket.failedAfterWrite.has(row.segment))
      t.violations.push(`index of page ${row.page} points at ${row.segment}, whose put failed`);
    const bytes = await t.indexedBytes(row);
    const w = bytes ? t.writeFor(tagOf(bytes)) : undefined;
    const b = w ? t.writeBounds(w) : null;
    if (!w || !equal(bytes!, w.bytes) || row.seqno < b!.min || row.seqno > b!.max)
      t.violations.push(`index row of page ${row.page} (seqno ${row.seqno}) does not match R2`);
  }

  // Segments in R2 that no wrapper put wrote: flushes that ran between an eviction and the
  // wrapper's reinstall, on the real bucket. Their timing is unknown to the arrival check.
  const listed = await listAll(`${t.name}/segments/`);
  const unwrapped: Set<string> = new Set();
  const written = new Set(t.bucket.written);
  let unwrappedPuts = 0;
  for (const object of listed) {
    if (written.has(object.key) || t.bucket.failedAfterWrite.has(object.key)) continue;
    unwrappedPuts++;
    const body = new Uint8Array(await (await env.PAGES.get(object.key))!.arrayBuffer());
    for (let at = 0; at < body.byteLength; at += PAGE) unwrapped.add(tagOf(body.subarray(at)));
  }

  // Early: a SYNCHRONOUS completion that arrived before its pages' put had resolved.
  const cleanAt = new Map<string, number>();
  t.bucket.clean.forEach(({ body }, index) => {
    for (let at = 0; at < body.byteLength; at += PAGE) {
      const tag = tagOf(body.subarray(at));
      if (!cleanAt.has(tag)) cleanAt.set(tag, index);
    }
  });
  let early = 0;
  let unverified = 0;
  for (const sync of t.completions) {
    if (!(sync.flags & SYNC)) continue;
    const { first, end } = pageSpanOf(sync.offset, sync.length, PAGE);
    for (let page = first; page < end; page++) {
      const floor = t.floor(page, sync.seqno);
      if (floor === -Infinity) continue;
      const holders = t.versions(page).filter((w) => t.isApplied(w) && t.mayHold(w, floor));
      const tags = holders.map((w) => `${w.writeNo}:${page}`);
      if (tags.some((tag) => (cleanAt.get(tag) ?? Infinity) < sync.cleanPutsAtArrival)) continue;
      if (tags.some((tag) => unwrapped.has(tag))) {
        unverified++;
        continue;
      }
      early++;
      t.violations.push(
        `SYNCHRONOUS completion of ${sync.label} (seqno ${sync.seqno}) came before page ${page} was in R2`,
      );
    }
  }

  // Reads: each data_supply as of its seqno.
  let staleReads = 0;
  for (const supply of t.supplies) {
    for (let i = 0; i * PAGE < supply.length; i++) {
      const page = supply.offset / PAGE + i;
      const bytes = supply.payload ? supply.payload.subarray(i * PAGE, (i + 1) * PAGE) : null;
      const { writes, zeros } = t.expected(page, supply.seqno);
      const ok = bytes
        ? writes.some((w) => equal(w.bytes, bytes)) || (zeros && bytes.every((b) => !b))
        : zeros;
      if (!ok) {
        staleReads++;
        t.violations.push(
          `read at seqno ${supply.seqno} of page ${page}: ${bytes ? tagOf(bytes) : "unavailable"}`,
        );
      }
    }
  }

  // Mids: none may come again once the manager took a report covering it (docs/protocol.md §3).
  for (const late of t.lateMids) {
    if (late.reports.some((r) => processed(r.session, r.entry)))
      t.violations.push(`${late.kernel}: mid ${late.mid} delivered after it was reported received`);
  }

  // Synchronize outcomes, per request id across reconnects.
  const accepted = t.syncs.filter((s) => s.accepted);
  const duplicated = accepted.reduce((n, s) => n + Math.max(0, s.completions + s.errors - 1), 0);
  const missing = accepted.filter((s) => s.completions + s.errors === 0).length;
  for (const s of t.syncs.filter((s) => !s.accepted && s.completions + s.errors > 0))
    t.violations.push(`k${s.kernel}/${s.message.id}: answered though never accepted`);

  return {
    lost,
    duplicated,
    missing,
    early,
    unverified,
    staleReads,
    unwrappedPuts,
    accepted: accepted.length,
    completed: accepted.filter((s) => s.completions > 0).length,
    memoryErrors: accepted.filter((s) => s.errors > 0).length,
    rejected: t.syncs.filter((s) => !s.valid).length,
  };
}

it(
  `survives a torture of ${OPS} operations (seed ${SEED})`,
  async () => {
    const started = Date.now();
    const t = new Torture();
    try {
      await run(t);
      const ran = Date.now();
      await quiesce(t);
      const result = await check(t);
      const { operations, evictions, socketDrops, ...more } = t.figures;
      const { lost, duplicated, ...checked } = result;
      const figures = {
        seed: SEED,
        operations,
        evictions,
        socketDrops,
        faults: t.faults.injected,
        lost,
        duplicated,
        ...checked,
        ...more,
        puts: t.bucket.attempts,
        rewrites: t.bucket.rewrites,
        reinstalls: t.bucket.installs - 1,
        seconds: (Date.now() - started) / 1000,
        checkSeconds: (Date.now() - ran) / 1000,
      };
      console.log(`torture figures: ${JSON.stringify(figures)}`);
      expect(t.violations).toEqual([]);
      expect(t.bucket.rewrites).toBe(0); // never rewrite a key (docs/architecture.md §4)
      expect({ lost: result.lost, duplicated: result.duplicated }).toEqual({
        lost: 0,
        duplicated: 0,
      });
      expect({
        missing: result.missing,
        early: result.early,
        staleReads: result.staleReads,
      }).toEqual({ missing: 0, early: 0, staleReads: 0 });
    } finally {
      for (const k of t.kernels) k.session?.kernel.close();
    }
  },
  Math.max(60_000, OPS * 50),
);
