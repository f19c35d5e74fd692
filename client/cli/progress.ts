/**
 * The upload progress bar of `put`: bytes done, rate and ETA on one line of stderr, redrawn at
 * most ten times a second. It draws only on a terminal; piped or with --json it stays silent,
 * so logs and scripts see the result line alone.
 */
import { formatBytes, formatDuration } from "./output";

const BAR_WIDTH = 20;

export interface ProgressState {
  done: number;
  total: number;
  elapsedMs: number;
}

/**
 * One line of the bar, fitted to `width` columns.
 *
 * @example renderProgress({ done: 8 << 20, total: 16 << 20, elapsedMs: 1000 }, 80)
 * // "[##########..........]   50%  8.0 MiB / 16.0 MiB  8.0 MiB/s  ETA 0:01"
 */
export function renderProgress(state: ProgressState, width: number): string {
  const fraction = state.total > 0 ? Math.min(1, state.done / state.total) : 1;
  const seconds = state.elapsedMs / 1000;
  const rate = seconds > 0 ? state.done / seconds : 0;
  const eta = rate > 0 ? formatDuration((state.total - state.done) / rate) : "-:--";
  const text = [
    `${String(Math.floor(fraction * 100)).padStart(3)}%`,
    `${formatBytes(state.done)} / ${formatBytes(state.total)}`,
    `${formatBytes(rate)}/s`,
    `ETA ${eta}`,
  ].join("  ");
  // A fixed-width bar, so the numbers do not jump; dropped when the terminal is too narrow.
  if (text.length + BAR_WIDTH + 4 >= width) return text.slice(0, Math.max(0, width - 1));
  const filled = Math.round(fraction * BAR_WIDTH);
  return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}]  ${text}`;
}

export class ProgressBar {
  private readonly startedAt = Date.now();
  private lastDrawn = 0;
  private drawn = false;

  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream | null,
  ) {}

  /** A bar on `process.stderr` when it is a terminal and output is for humans; else a no-op. */
  static forStderr(total: number, json: boolean): ProgressBar {
    return new ProgressBar(total, !json && process.stderr.isTTY ? process.stderr : null);
  }

  update(done: number, force = false): void {
    if (!this.stream) return;
    const now = Date.now();
    if (!force && now - this.lastDrawn < 100) return;
    this.lastDrawn = now;
    const line = renderProgress(
      { done, total: this.total, elapsedMs: now - this.startedAt },
      this.stream.columns || 80,
    );
    this.stream.write(`\r${line}\x1b[K`);
    this.drawn = true;
  }

  /** A status in place of the bar (`synchronizing…`). */
  status(text: string): void {
    if (!this.stream) return;
    this.stream.write(`\r${text}\x1b[K`);
    this.drawn = true;
  }

  /** Clears the line so the result prints on a clean one. */
  clear(): void {
    if (this.stream && this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }
}
