// The event log: the last MAX_LINES events of the stream, newest first. Events are only kept as
// they come (a bounded array, oldest dropped); the text is rebuilt at most RENDERS_PER_SECOND
// times a second, so a stream of 1,000 events a second never redraws the page 1,000 times.
import { formatClock, formatRange } from "./format.js";

const MAX_LINES = 500;
const RENDERS_PER_SECOND = 4;

/** One line for one event (docs/dashboard.md lists the types). */
function describeEvent(event) {
  const range = "offset" in event ? ` ${formatRange(event.offset, event.length)}` : "";
  switch (event.type) {
    case "hello":
      return `hello: next seqno ${event.status?.seqno}`;
    case "message":
      return (
        `#${event.seqno} ${event.kernel} id ${event.id} ${event.message}${range}` +
        (event.outcome === "ok" ? "" : ` → ${event.outcome}`)
      );
    case "flush":
      return `flush: segment ${event.segment}, ${event.pages} pages, ${event.bytes} bytes, ${event.ms} ms`;
    case "completion":
      return `completion: ${event.kernel} id ${event.id}${range}`;
    case "lock_request":
      return `lock_request ${event.lock_id} to ${event.kernel} (${event.purpose})${range}`;
    case "grant":
      return `grant to ${event.kernel}: ${event.kind}${event.write ? " write" : ""}${range}`;
    case "kernel":
      return `kernel ${event.kernel} ${event.connected ? "connected" : "disconnected"}`;
    case "departure":
      return `departure: ${event.kernel}${event.stale ? " (stale)" : ""}`;
    case "lost":
      return `lost ${event.count} events: this page was too slow to keep up`;
    default:
      return `${event.type} ${JSON.stringify(event)}`;
  }
}

export class EventLog {
  /** Writes into the `<pre>` `element`, and the counts line into `countsElement`. */
  constructor(element, countsElement) {
    this.element = element;
    this.countsElement = countsElement;
    this.events = [];
    this.seen = 0;
    this.lost = 0;
    this.timer = 0;
  }

  add(event) {
    if (event.type !== "note") this.seen++;
    if (event.type === "lost") this.lost += event.count;
    this.events.push(event);
    // Dropping in chunks keeps `add` cheap: one splice per MAX_LINES / 4 events.
    if (this.events.length > MAX_LINES * 1.25)
      this.events.splice(0, this.events.length - MAX_LINES);
    this.scheduleRender();
  }

  /** A note of the page's own (the stream went down, came back), logged like an event. */
  note(text) {
    this.add({ type: "note", at: Date.now(), text });
  }

  scheduleRender() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.render();
    }, 1000 / RENDERS_PER_SECOND);
  }

  render() {
    const shown = this.events.slice(-MAX_LINES).reverse();
    this.element.textContent = shown
      .map((event) => {
        const text = event.type === "note" ? `-- ${event.text}` : describeEvent(event);
        return `${formatClock(event.at)}  ${text}`;
      })
      .join("\n");
    this.countsElement.textContent =
      `(${this.seen} received` +
      (this.lost ? `, ${this.lost} lost` : "") +
      `; last ${MAX_LINES} shown)`;
  }

  destroy() {
    clearTimeout(this.timer);
  }
}
