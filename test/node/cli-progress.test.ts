// The upload progress line of `edgepager put` (client/cli/progress.ts): it is drawn only on a
// terminal, so the CLI test cannot see it; here its text is checked directly.
import { describe, expect, it } from "vitest";
import { renderProgress } from "../../client/cli/progress";

const MiB = 1024 * 1024;

describe("renderProgress", () => {
  it("shows a fixed-width bar, percent, bytes, rate and ETA", () => {
    expect(renderProgress({ done: 8 * MiB, total: 16 * MiB, elapsedMs: 1000 }, 80)).toBe(
      "[##########..........]   50%  8.0 MiB / 16.0 MiB  8.0 MiB/s  ETA 0:01",
    );
    expect(renderProgress({ done: 16 * MiB, total: 16 * MiB, elapsedMs: 2000 }, 80)).toBe(
      "[####################]  100%  16.0 MiB / 16.0 MiB  8.0 MiB/s  ETA 0:00",
    );
  });

  it("has no ETA before the first byte, and drops the bar on a narrow terminal", () => {
    expect(renderProgress({ done: 0, total: 100, elapsedMs: 0 }, 80)).toBe(
      "[....................]    0%  0 B / 100 B  0 B/s  ETA -:--",
    );
    const narrow = renderProgress({ done: 3 * MiB, total: 6 * MiB, elapsedMs: 60_000 }, 50);
    expect(narrow).toBe(" 50%  3.0 MiB / 6.0 MiB  51.2 KiB/s  ETA 1:00");
  });

  it("counts an empty upload as done", () => {
    expect(renderProgress({ done: 0, total: 0, elapsedMs: 5 }, 100)).toMatch(/^\[#{20}\]  100%/);
  });
});
