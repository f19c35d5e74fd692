/**
 * W3 observed: W3 (ASYNCHRONOUS synchronize of clean pages, 64 in flight) on an object that 4
 * observers watch through its event stream, against W3 on an object nobody watches, in the same
 * run and in alternating order. The claim is that observers never slow the object
 * (durable/observers.ts), so the ratio of the rates should be about 1; each observer's delivered
 * events per second, its lost events and any event out of seqno order are reported beside it.
 */
import { KernelConnection, VM_SYNC_ASYNCHRONOUS } from "../../client";
import { EventObserver } from "../event-observer";
import { connect, finish } from "../session";
import { PAGE, freshObject } from "../settings";
import { elapsed } from "../timing";
import { windowed } from "./async-sync-rate";

export const OBSERVERS = 4;
/** How long the observers may take to catch up after a timed run before the next one starts. */
const DRAIN_TIMEOUT_MS = 10_000;

interface ObserverFigures {
  received: number;
  syncMessages: number;
  completions: number;
  lost: number;
  outOfOrder: number;
  completionsBeforeMessage: number;
  /** The first few events out of order, as they came. */
  anomalies: string[];
  /** Per observed run: events read from its start until this observer had them all. */
  eventsPerSecond: number[];
  /** Per observed run: events lost (told by the time it had accounted for them all). */
  lostPerRun: number[];
  /** Per observed run: the share of its events read before its last completion (0 to 1). */
  shareDuringRun: number[];
}

export interface ObservedSyncRate {
  /** Requests per second, per run, on the object nobody watches and on the watched one. */
  plain: number[];
  observed: number[];
  /** Per observed run: from its last completion until every observer had accounted for it. */
  lagMs: number[];
  /** Synchronize requests sent to the watched object (each makes a message and a completion event). */
  observedRequests: number;
  observers: ObserverFigures[];
}

/** `reps` runs of `messages` requests on each object, which one goes first alternating. */
export async function observedSyncRate(
  url: string,
  messages: number,
  reps: number,
  batch: boolean,
): Promise<ObservedSyncRate> {
  const plainObject = freshObject("w3o-plain");
  const watchedObject = freshObject("w3o-watched");
  const plain = await connect(url, plainObject, "bench", { batch });
  const watched = await connect(url, watchedObject, "bench", { batch });
  const observers = await Promise.all(
    Array.from({ length: OBSERVERS }, () => EventObserver.open(url, watchedObject)),
  );
  await Promise.all(observers.map((observer) => observer.ready));
  const result: ObservedSyncRate = {
    plain: [],
    observed: [],
    lagMs: [],
    observedRequests: 0,
    observers: [],
  };
  const eventsPerSecond: number[][] = observers.map(() => []);
  const lostPerRun: number[][] = observers.map(() => []);
  const shareDuringRun: number[][] = observers.map(() => []);

  const runPlain = () => windowed(messages, send(plain));
  const runObserved = async () => {
    const before = observers.map((observer) => observer.received);
    const lostBefore = observers.map((observer) => observer.lost);
    const start = performance.now();
    const rate = await windowed(messages, send(watched));
    const end = performance.now();
    const atEnd = observers.map((observer) => observer.received);
    result.observedRequests += messages;
    result.lagMs.push(await drained(observers, 2 * result.observedRequests, end));
    const spent = elapsed(start) / 1000;
    observers.forEach((observer, i) => {
      eventsPerSecond[i]!.push((observer.received - before[i]!) / spent);
      lostPerRun[i]!.push(observer.lost - lostBefore[i]!);
      shareDuringRun[i]!.push((atEnd[i]! - before[i]!) / (observer.received - before[i]!));
    });
    return rate;
  };

  // Warm-up, not counted in the rates (its events are counted in the observers' totals).
  await windowed(Math.min(500, messages), send(plain));
  await windowed(Math.min(500, messages), send(watched));
  result.observedRequests += Math.min(500, messages);
  await drained(observers, 2 * result.observedRequests, performance.now());

  for (let rep = 0; rep < reps; rep++) {
    if (rep % 2 === 0) {
      result.plain.push(await runPlain());
      result.observed.push(await runObserved());
    } else {
      result.observed.push(await runObserved());
      result.plain.push(await runPlain());
    }
  }

  await Promise.all(observers.map((observer) => observer.close()));
  await Promise.all(observers.map((observer) => observer.done));
  result.observers = observers.map((observer, i) => ({
    received: observer.received,
    syncMessages: observer.syncMessages,
    completions: observer.completions,
    lost: observer.lost,
    outOfOrder: observer.outOfOrder,
    completionsBeforeMessage: observer.completionsBeforeMessage,
    anomalies: observer.anomalies,
    eventsPerSecond: eventsPerSecond[i]!,
    lostPerRun: lostPerRun[i]!,
    shareDuringRun: shareDuringRun[i]!,
  }));
  await finish(url, plain, plainObject);
  await finish(url, watched, watchedObject);
  return result;
}

/** W3's request: worker w always on its own page. */
function send(connection: KernelConnection) {
  return (offset: number) => connection.synchronize(offset, PAGE, VM_SYNC_ASYNCHRONOUS);
}

/**
 * Waits until every observer has accounted for `events` (got them or was told it lost them), so
 * no backlog of one run is read during the next; returns how long after `since` that was. An
 * observer still short after DRAIN_TIMEOUT_MS is a finding, not a reason to stop: its shortfall
 * shows in its counts.
 */
async function drained(observers: EventObserver[], events: number, since: number) {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (observers.some((observer) => observer.accounted() < events)) {
    if (performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return performance.now() - since;
}
