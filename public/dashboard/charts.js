// Throughput and msync latency over the last minutes, drawn with uPlot (globalThis.uPlot, loaded
// by index.html). Events are not plotted one by one: each is added to its second's bucket, and
// the charts are redrawn once a second from at most WINDOW_SECONDS buckets, so 1,000 events a
// second cost the same drawing as one.

const WINDOW_SECONDS = 300;
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

function chartOptions(width, series) {
  return {
    width,
    height: HEIGHT,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    series: [{}, ...series],
  };
}

/** The two charts of one object, drawn into `throughputElement` and `latencyElement`. */
export class Charts {
  constructor(throughputElement, latencyElement) {
    this.buckets = new Buckets();
    const width = Math.max(320, throughputElement.clientWidth || 480);
    const empty = [[], []];
    this.throughput = new globalThis.uPlot(
      chartOptions(width, [
        { label: "bytes/s", stroke: "#0969da", fill: "rgba(9,105,218,0.1)", width: 1.5 },
      ]),
      empty,
      throughputElement,
    );
    this.latency = new globalThis.uPlot(
      chartOptions(width, [
        { label: "mean ms", stroke: "#8250df", width: 1.5 },
        { label: "max ms", stroke: "#cf222e", width: 1, dash: [4, 4] },
      ]),
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
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
    this.throughput.destroy();
    this.latency.destroy();
  }
}
