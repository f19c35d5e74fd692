/**
 * The sizes of `npm run bench` runs (full and `--quick`) and the names of their objects, shared by
 * every workload in bench/workloads/.
 */
export const PAGE = 4096;
export const MiB = 1 << 20;

export interface Sizes {
  warmups: number;
  /** Timed repetitions of W1 and W1b. */
  reps: number;
  w1Bytes: number;
  w2Samples: number;
  w3Messages: number;
  w4Rounds: number;
  w5Objects: number;
  w5Reps: number;
  w6Bytes: number;
}

export const FULL: Sizes = {
  warmups: 1,
  reps: 5,
  w1Bytes: 16 * MiB,
  w2Samples: 200,
  w3Messages: 3000,
  w4Rounds: 20,
  w5Objects: 64,
  w5Reps: 3,
  w6Bytes: 256 * MiB,
};

export const QUICK: Sizes = {
  warmups: 1,
  reps: 2,
  w1Bytes: 16 * MiB,
  w2Samples: 50,
  w3Messages: 600,
  w4Rounds: 5,
  w5Objects: 64,
  w5Reps: 1,
  w6Bytes: 32 * MiB,
};

/** Each run's objects get fresh names, so a rerun against a persisted server starts empty. */
const RUN = Date.now().toString(36);
let objects = 0;
export function freshObject(workload: string): string {
  return `bench-${RUN}-${workload}-${objects++}`;
}
