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
  /** W7: timed handoffs of the coherent counter, after `w7Warmups`. */
  w7Handoffs: number;
  w7Warmups: number;
  /** W8 and W8b: timed 1-row INSERT transactions per row, after `w8Warmups`. */
  w8Samples: number;
  w8Warmups: number;
  /** W9: cold scans of the 16 MiB database, after one warm-up. */
  w9Reps: number;
  /** W10: small transactions, and the 16 MiB puts its baseline extrapolates from. */
  w10Transactions: number;
  w10Puts: number;
  /** The database of W9 and W10. */
  sqliteBytes: number;
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
  w7Handoffs: 400,
  w7Warmups: 20,
  w8Samples: 200,
  w8Warmups: 20,
  w9Reps: 5,
  w10Transactions: 1000,
  w10Puts: 4,
  sqliteBytes: 16 * MiB,
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
  w7Handoffs: 100,
  w7Warmups: 10,
  w8Samples: 100,
  w8Warmups: 10,
  w9Reps: 2,
  w10Transactions: 1000,
  w10Puts: 2,
  sqliteBytes: 16 * MiB,
};

/** Each run's objects get fresh names, so a rerun against a persisted server starts empty. */
const RUN = Date.now().toString(36);
let objects = 0;
export function freshObject(workload: string): string {
  return `bench-${RUN}-${workload}-${objects++}`;
}
