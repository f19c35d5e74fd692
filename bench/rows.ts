/** One row of the benchmark table, as bench/run.ts prints it and bench/chart.ts draws it. */
export interface Target {
  /** "<=": the figure must not exceed `value`; ">=": it must reach it. */
  op: "<=" | ">=";
  value: number;
  /** What the target bounds, e.g. "ratio to baseline (a)". */
  of: string;
}

export interface Row {
  id: string;
  title: string;
  edgepager: string;
  baseline: string;
  /** The figure held against the target (or reported), and how to read it. */
  figure: number;
  figureLabel: string;
  target: Target | null;
  met: boolean | null;
  /** Raw measurements, in ms, bytes or per second as named. */
  data: Record<string, unknown>;
}
