// Throughput and msync latency over the last minutes, drawn with uPlot (globalThis.uPlot, loaded
// by index.html). Events are not plotted one by one: each is added to its second's bucket, and
// the charts are redrawn once a second from at most WINDOW_SECONDS buckets, so 1,000 events a
// second cost the same drawing as one.
import { formatBytes } from "./format.js";

const WINDOW_SECONDS = 300;
/** The summary line above each chart covers this many of the last seconds. */
const SUMMARY_SECONDS = 60;
const HEIGHT = 180;

/** Per-second sums over a sliding window of WINDOW_SECONDS, keyed by whole seconds. */
class Buckets {
  constructor() {
    this.bySecond = new Map();
  }

  /** The bucket of the second holding `at` (ms since the epoch), made if new. */
  at(at) {
    const second = Math.floor(at / 1000);
    let bucket = this.bySecond.get(second);
    if (!bucket) {
      bucket = { bytes: 0, latencySum: 0, latencyCount: 0, latencyMax: 0 };
      this.bySecond.set(second, bucket);
    }
    return bucket;
  }

  /** Forgets the seconds before the window ending at `nowSecond`. */
  trim(nowSecond) {
    for (const second of this.bySecond.keys()) {
      if (second <= nowSecond - WINDOW_SECONDS) this.bySecond.delete(second);
    }
  }
}

function chartOptions(width, series, formatValue) {
  return {
    width,
    height: HEIGHT,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [{}, { size: 90, values: (_chart, ticks) => ticks.map(formatValue) }],
    series: [{}, ...series.map((line) => ({ ...line, value: (_chart, v) => formatValue(v) }))],
  };
}

const formatRate = (bytes) => (bytes === null ? "--" : `${formatBytes(Math.round(bytes))}/s`);
const formatMs = (ms) => (ms === null ? "--" : `${Math.round(ms)} ms`);

/**
 * The two charts of one object, drawn into `throughputElement` and `latencyElement`, each with a
 * line of figures for the last minute in `throughputSummary` and `latencySummary`.
 */
export class Charts {
  constructor(throughputElement, latencyElement, throughputSummary, latencySummary) {
    this.throughputSummary = throughputSummary;
    this.latencySummary = latencySummary;
    this.buckets = new Buckets();
    const width = Math.max(320, throughputElement.clientWidth || 480);
    const empty = [[], []];
    this.throughput = new globalThis.uPlot(
      chartOptions(
        width,
        [{ label: "returned", stroke: "#0969da", fill: "rgba(9,105,218,0.1)", width: 1.5 }],
        formatRate,
      ),
      empty,
      throughputElement,
    );
    this.latency = new globalThis.uPlot(
      chartOptions(
        width,
        // Points as well as lines: a second with completions between two without is one point.
        [
          { label: "mean", stroke: "#8250df", width: 1.5, points: { show: true, size: 5 } },
          { label: "max", stroke: "#cf222e", width: 1, points: { show: true, size: 4 } },
        ],
        formatMs,
      ),
      [[], [], []],
      latencyElement,
    );
    this.resize = () => {
      const next = Math.max(320, throughputElement.clientWidth);
      this.throughput.setSize({ width: next, height: HEIGHT });
      this.latency.setSize({ width: next, height: HEIGHT });
    };
    window.addEventListener("resize", this.resize);
  }

  /** `bytes` returned (memory_object_data_return) at `at`. */
  addBytes(at, bytes) {
    this.buckets.at(at).bytes += bytes;
  }

  /** A synchronize completed at `at`, `latencyMs` after its message reached the object. */
  addLatency(at, latencyMs) {
    const bucket = this.buckets.at(at);
    bucket.latencySum += latencyMs;
    bucket.latencyCount += 1;
    bucket.latencyMax = Math.max(bucket.latencyMax, latencyMs);
  }

  /** Redraws both charts for the window ending now; every second of it has a point. */
  draw(now = Date.now()) {
    const nowSecond = Math.floor(now / 1000);
    this.buckets.trim(nowSecond);
    const seconds = [];
    const bytes = [];
    const mean = [];
    const max = [];
    for (let second = nowSecond - WINDOW_SECONDS + 1; second <= nowSecond; second++) {
      const bucket = this.buckets.bySecond.get(second);
      seconds.push(second);
      bytes.push(bucket?.bytes ?? 0);
      // No completion in a second: a gap, not a latency of 0.
      mean.push(bucket?.latencyCount ? bucket.latencySum / bucket.latencyCount : null);
      max.push(bucket?.latencyCount ? bucket.latencyMax : null);
    }
    this.throughput.setData([seconds, bytes]);
    this.latency.setData([seconds, mean, max]);
    this.summarize(nowSecond);
  }

  summarize(nowSecond) {
    let bytes = 0;
    let count = 0;
    let sum = 0;
    let max = 0;
    for (const [second, bucket] of this.buckets.bySecond) {
      if (second <= nowSecond - SUMMARY_SECONDS) continue;
      bytes += bucket.bytes;
      count += bucket.latencyCount;
      sum += bucket.latencySum;
      max = Math.max(max, bucket.latencyMax);
    }
    this.throughputSummary.textContent = `last minute: ${formatBytes(bytes)} returned`;
    this.latencySummary.textContent =
      `last minute: ${count} msync${count === 1 ? "" : "s"} completed` +
      (count ? `, mean ${Math.round(sum / count)} ms, max ${Math.round(max)} ms` : "");
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
    this.throughput.destroy();
    this.latency.destroy();
  }
}
