/**
 * How workloads are timed: wall-clock from Node, and edgepager alternating with its baseline so a
 * noisy machine's drift falls on both.
 */
import { ms } from "./statistics";

export function elapsed(start: number): number {
  return performance.now() - start;
}

export interface PairedTimes {
  edgepager: number[];
  baseline: number[];
}

/** Runs `edgepager` and `baseline` alternately (which goes first alternates too). */
export async function paired(
  warmups: number,
  reps: number,
  edgepager: () => Promise<number>,
  baseline: () => Promise<number>,
  progress: (line: string) => void,
): Promise<PairedTimes> {
  const times: PairedTimes = { edgepager: [], baseline: [] };
  for (let rep = 0; rep < warmups + reps; rep++) {
    const order = rep % 2 === 0 ? ["baseline", "edgepager"] : ["edgepager", "baseline"];
    const round: Record<string, number> = {};
    for (const which of order) {
      round[which] = which === "edgepager" ? await edgepager() : await baseline();
    }
    const label = rep < warmups ? "warm-up" : `rep ${rep - warmups + 1}/${reps}`;
    progress(`${label}: edgepager ${ms(round.edgepager!)}, baseline ${ms(round.baseline!)}`);
    if (rep < warmups) continue;
    times.edgepager.push(round.edgepager!);
    times.baseline.push(round.baseline!);
  }
  return times;
}
