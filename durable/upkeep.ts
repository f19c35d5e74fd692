/**
 * When the object's own work happens, as opposed to the work a message asks for: a flush as soon
 * as a SYNCHRONOUS request waits or the journal passes the segment target, else the idle flush;
 * a pause after a flush that failed every attempt; sweeping and compaction after a flush, off the
 * path of the requests that wait on flushes; lock deadlines and token expiry. All of it hangs on
 * the object's one alarm, so work left when the object is evicted still happens
 * (docs/architecture.md §6). The Pager (durable/pager.ts) calls `afterChange` after every change.
 */
import { DEFAULT_PAGE_SIZE } from "../schema";
import type { Compactor } from "./compactor";
import type { Flusher } from "./flusher";
import type { Limits } from "./limits";
import type { LockRequests } from "./lock-requests";
import type { PageStore } from "./page-store";
import type { Sockets } from "./sockets";
import type { Sweeper } from "./sweeper";
import type { SyncTracker } from "./sync-tracker";

/** After a flush failed every attempt, the next try waits this long (then the alarm retries). */
const FLUSH_FAILURE_BACKOFF_MS = 10_000;

/** The parts whose work is timed here, and the ones that tell when it is due. */
export interface UpkeepParts {
  storage: DurableObjectStorage;
  limits: Readonly<Limits>;
  store: PageStore;
  tracker: SyncTracker;
  locks: LockRequests;
  sockets: Sockets;
  flusher: Flusher;
  sweeper: Sweeper;
  compactor: Compactor;
}

/** What upkeep needs of the Pager itself. */
export interface UpkeepHooks {
  transact(step: () => void): void;
  pageSize(): number | null;
  objectName(): string;
  /** A socket closed (here: its token expired). */
  disconnected(socket: WebSocket): void;
  /** Lock requests past their deadline at `now`: their kernels are stale, or depart. */
  expireLocks(now: number): void;
  /** A flush ended (the directory entry may be due a refresh). */
  flushed(): void;
}

export class Upkeep {
  private alarmAt: number | null = null;
  private flushRetryAt: number | null = null;
  /** A flush ran since the last sweep and compaction. */
  private maintenanceDue = false;
  /**
   * The next alarm must be computed from every deadline: at start-up and after an alarm. Between
   * those, each change brings at most new deadlines (a lock request sent, a socket accepted),
   * which `scheduleAlarm` takes as they come: asking for the earliest of all on every message
   * cost a query and a walk over every socket per message (W4 in bench/README.md).
   */
  private recomputeAlarm = true;

  constructor(
    private readonly parts: UpkeepParts,
    private readonly hooks: UpkeepHooks,
  ) {}

  /** Start-up after a restart or eviction: pick up work that was under way. */
  async start(): Promise<void> {
    this.alarmAt = await this.parts.storage.getAlarm();
    this.afterChange();
  }

  /**
   * After every change: flush now if a SYNCHRONOUS request waits or the journal passed the segment
   * target, and keep an alarm for the idle flush and lock deadlines, so work left when the object
   * is evicted still happens.
   */
  afterChange(): void {
    const { store, limits, tracker } = this.parts;
    const journalBytes = store.journalPages() * (this.hooks.pageSize() ?? DEFAULT_PAGE_SIZE);
    const retryWaits = this.flushRetryAt !== null && this.flushRetryAt > Date.now();
    // A waiting SYNCHRONOUS request starts the write at once even during a failure backoff
    // (docs/protocol.md §6.4): every failed round answers the requests it covered, so this ends.
    // An empty journal has nothing to flush: skip asking the tracker (most messages end here).
    const due =
      journalBytes > 0 &&
      ((!retryWaits && journalBytes >= limits.segmentTargetBytes) || tracker.needsFlush());
    if (due) void this.flushNow();
    this.scheduleAlarm(journalBytes > 0);
  }

  /**
   * Flushes the journal and resolves when done; failures are retried later, never thrown. A flush
   * that moved pages may have left segments with none, or mostly garbage: the alarm after it
   * sweeps and compacts (`maintain`), off the path of the requests that wait on flushes.
   */
  private async flushNow(): Promise<void> {
    try {
      await this.parts.flusher.flush();
      this.flushRetryAt = null;
      this.hooks.flushed();
    } catch (error) {
      console.warn(
        `flush of ${this.hooks.objectName()} failed after every attempt: ${String(error)}`,
      );
      this.flushRetryAt = Date.now() + FLUSH_FAILURE_BACKOFF_MS;
    }
    this.maintenanceDue = true;
    this.afterChange();
  }

  /**
   * The alarm: close sockets whose token expired, expire lock requests, flush what the journal
   * holds, sweep and compact if a flush ran since the last time, then re-arm for what is left.
   */
  async onAlarm(): Promise<void> {
    this.alarmAt = null;
    this.recomputeAlarm = true;
    for (const socket of this.parts.sockets.closeExpired()) this.hooks.disconnected(socket);
    this.hooks.expireLocks(Date.now());
    this.flushRetryAt = null;
    if (this.parts.store.journalPages() > 0) await this.flushNow();
    if (this.maintenanceDue) await this.maintain();
    this.afterChange();
  }

  /**
   * Deletes the segments no page lives in any more, then compacts the mostly dead ones and sweeps
   * what that killed; once a day also deletes orphan segments.
   */
  async maintain(): Promise<void> {
    const { sweeper, compactor } = this.parts;
    this.maintenanceDue = false;
    let more = await sweeper.sweep();
    if (await compactor.compact()) more = (await sweeper.sweep()) || more;
    if (sweeper.orphanScanDue()) await sweeper.sweepOrphans();
    // Each round is bounded (durable/r2-bounds.ts): a backlog or an unfinished scan takes the
    // next alarm.
    if (more || sweeper.orphanScanUnfinished()) this.maintenanceDue = true;
  }

  /** The object was destroyed, its alarm deleted: nothing is due. */
  reset(): void {
    this.alarmAt = null;
    this.flushRetryAt = null;
    this.maintenanceDue = false;
  }

  private scheduleAlarm(journalWaiting: boolean): void {
    const { limits, locks, sockets } = this.parts;
    const candidates: number[] = [];
    if (journalWaiting) candidates.push(this.flushRetryAt ?? Date.now() + limits.flushDelayMs);
    // Garbage may wait after a flush: swept at the idle time (lost on eviction; the next flush
    // asks again).
    if (this.maintenanceDue) candidates.push(Date.now() + limits.flushDelayMs);
    // Lock deadlines, and token expiries (a socket is closed when its token expires, even if it
    // says nothing): all of them when recomputing, else those that arrived since the last change.
    const full = this.recomputeAlarm;
    this.recomputeAlarm = false;
    const lockDeadline = full ? locks.nextDeadline() : null;
    const tokenExpiry = full ? sockets.nextExpiry() : null;
    for (const at of [
      lockDeadline,
      tokenExpiry,
      locks.takeNewDeadline(),
      sockets.takeNewExpiry(),
    ]) {
      if (at !== null) candidates.push(at);
    }
    if (candidates.length === 0) return;
    const wake = Math.min(...candidates);
    // Keep an earlier alarm: the idle flush is due a fixed time after the first unflushed page.
    if (this.alarmAt !== null && this.alarmAt <= wake) return;
    this.alarmAt = wake;
    void this.parts.storage.setAlarm(wake);
  }
}
