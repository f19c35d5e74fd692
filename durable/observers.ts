/**
 * Read-only observers of one object (`GET /v1/objects/{name}/events`): each is a server-sent
 * event stream of what happens to the object, in seqno order: messages and their outcomes,
 * flushes, completions, lock requests, grants, kernels coming and going (docs/dashboard.md).
 *
 * Observers never slow the object. An event is built only when someone observes, published
 * once its step commits, and put in each observer's queue without waiting: a queue holds at most
 * MAX_QUEUED_EVENTS, and an observer that does not keep up loses what does not fit, then is told
 * how many (`{type: "lost", count}`) before the next event it gets. At most MAX_OBSERVERS watch
 * one object.
 */
import { KERN_RESOURCE_SHORTAGE, ProtocolError } from "../schema";

/** One event as observers get it: its type and when, then what it says. */
export type ObjectEvent = { type: string } & Record<string, unknown>;

const MAX_OBSERVERS = 8;
const MAX_QUEUED_EVENTS = 1024;

const encoder = new TextEncoder();

class Observer {
  private readonly queue: string[] = [];
  private lost = 0;
  private ended = false;
  /** The stream's pull waiting for an event, if it is. */
  private wake: (() => void) | null = null;
  readonly stream: ReadableStream<Uint8Array>;

  constructor(onCancel: () => void) {
    this.stream = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (this.queue.length === 0 && this.lost === 0 && !this.ended) {
            await new Promise<void>((resolve) => (this.wake = resolve));
          }
          if (this.queue.length === 0 && this.lost === 0) return controller.close();
          let text = "";
          if (this.lost > 0) {
            text += frame(JSON.stringify({ type: "lost", at: Date.now(), count: this.lost }));
            this.lost = 0;
          }
          // What waited goes in one chunk: a burst costs one write, not one per event.
          for (const event of this.queue.splice(0)) text += frame(event);
          controller.enqueue(encoder.encode(text));
        },
        cancel: onCancel,
      },
      // Nothing buffered beyond the queue: an observer that does not read stops pulling.
      { highWaterMark: 0 },
    );
  }

  /** What is queued still goes out, then the stream ends. */
  end(): void {
    this.ended = true;
    this.wake?.();
    this.wake = null;
  }

  offer(event: string): void {
    if (this.queue.length >= MAX_QUEUED_EVENTS) this.lost++;
    else this.queue.push(event);
    this.wake?.();
    this.wake = null;
  }
}

function frame(json: string): string {
  return `data: ${json}\n\n`;
}

export class Observers {
  private readonly watching = new Set<Observer>();

  /** Whether anyone observes: events are built only then. */
  any(): boolean {
    return this.watching.size > 0;
  }

  /** A new observer, whose stream starts with `first`; refused past MAX_OBSERVERS. */
  open(first: ObjectEvent): ReadableStream<Uint8Array> {
    if (this.watching.size >= MAX_OBSERVERS) {
      throw new ProtocolError(
        KERN_RESOURCE_SHORTAGE,
        "too_many_observers",
        `this object already has ${MAX_OBSERVERS} observers; close one, or retry later`,
      );
    }
    const observer: Observer = new Observer(() => this.watching.delete(observer));
    this.watching.add(observer);
    observer.offer(JSON.stringify(first));
    return observer.stream;
  }

  /** Gives the event to every observer, dropping it for those whose queue is full. */
  publish(event: ObjectEvent): void {
    const json = JSON.stringify(event);
    for (const observer of this.watching) observer.offer(json);
  }

  /** The object was destroyed: every stream says so, then ends. */
  closeAll(): void {
    const deleted = JSON.stringify({ type: "deleted", at: Date.now() });
    for (const observer of this.watching) {
      observer.offer(deleted);
      observer.end();
    }
    this.watching.clear();
  }
}
