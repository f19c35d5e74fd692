/**
 * An observer of one object's event stream (`GET /v1/objects/{name}/events`, docs/protocol.md §9)
 * in the bench's Node process, for "W3 observed": it reads as fast as it can, parses every event
 * as a dashboard would, and counts what it got, what the object says it lost, and any message or
 * completion out of seqno order. It keeps counts, never the events, so a long run holds no memory.
 */

type StreamEvent = { type: string; seqno?: number; message?: string; count?: number };

export class EventObserver {
  /** Every event read, `hello` and `lost` included. */
  received = 0;
  /** `message` events of synchronize requests, and `completion` events. */
  syncMessages = 0;
  completions = 0;
  /** Events the object dropped for this observer (the sum of its `lost` events' counts). */
  lost = 0;
  /** Message or completion events whose seqno is not above the one before of their kind. */
  outOfOrder = 0;
  /**
   * Completions told before the message event of their own synchronize request (the same
   * seqno): a request that completes in its own step publishes its completion first.
   */
  completionsBeforeMessage = 0;
  /** The first few events out of order, as they came (the event and the seqno before it). */
  readonly anomalies: string[] = [];
  private lastMessageSeqno = -1;
  private lastCompletionSeqno = -1;
  private hello!: () => void;
  /** Resolves once the stream's first event, `hello`, has been read. */
  readonly ready = new Promise<void>((resolve) => (this.hello = resolve));
  /** Resolves when the stream ends (cancelled, or the object deleted). */
  readonly done: Promise<void>;

  private constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.done = this.readAll();
  }

  static async open(url: string, object: string): Promise<EventObserver> {
    const response = await fetch(`${url}/v1/objects/${encodeURIComponent(object)}/events`);
    const type = response.headers.get("content-type");
    if (response.status !== 200 || type !== "text/event-stream" || !response.body) {
      throw new Error(`events of ${object}: ${response.status} ${type}: ${await response.text()}`);
    }
    return new EventObserver(response.body.getReader());
  }

  /** The events this observer has accounted for: those it got and those it was told it lost. */
  accounted(): number {
    return this.syncMessages + this.completions + this.lost;
  }

  close(): Promise<void> {
    return this.reader.cancel().catch(() => undefined);
  }

  private async readAll(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!frame.startsWith("data: ")) throw new Error(`not an event: ${frame.slice(0, 80)}`);
          this.take(JSON.parse(frame.slice("data: ".length)) as StreamEvent);
        }
      }
    } catch (error) {
      // A cancelled stream rejects its pending read: that is its end, not a failure.
      if (!(error instanceof Error && error.name === "AbortError")) throw error;
    }
  }

  private take(event: StreamEvent): void {
    this.received++;
    if (event.type === "hello") this.hello();
    else if (event.type === "lost") this.lost += event.count ?? 0;
    else if (event.type === "message" && event.message === "memory_object_synchronize") {
      this.syncMessages++;
      if (event.seqno! <= this.lastMessageSeqno) this.anomaly(event, this.lastMessageSeqno);
      this.lastMessageSeqno = event.seqno!;
    } else if (event.type === "completion") {
      this.completions++;
      if (event.seqno! <= this.lastCompletionSeqno) this.anomaly(event, this.lastCompletionSeqno);
      if (event.seqno! > this.lastMessageSeqno) this.completionsBeforeMessage++;
      this.lastCompletionSeqno = event.seqno!;
    }
  }

  private anomaly(event: StreamEvent, before: number): void {
    this.outOfOrder++;
    if (this.anomalies.length < 3) this.anomalies.push(`${JSON.stringify(event)} after ${before}`);
  }
}
